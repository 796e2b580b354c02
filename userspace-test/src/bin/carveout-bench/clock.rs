//! Timing: a stopwatch on the time-stamp counter, and rates of a repeated pass.

use std::time::{Duration, Instant};

/// A stopwatch on the time-stamp counter: the guest's `clock_gettime` ticks in jiffies (4 ms)
/// under the test kernel, too coarse for a single `insmod`; QEMU's TSC counts host time.
#[derive(Clone, Copy)]
pub struct Clock {
    /// TSC ticks per second, measured against `Instant` once.
    pub hz: f64,
}

impl Clock {
    pub fn calibrate() -> Self {
        let (instant, start) = (Instant::now(), tsc());
        std::thread::sleep(Duration::from_millis(500));
        let ticks = tsc().wrapping_sub(start) as f64;
        Clock {
            hz: ticks / instant.elapsed().as_secs_f64(),
        }
    }

    pub fn start(self) -> Stopwatch {
        Stopwatch {
            clock: self,
            start: tsc(),
        }
    }
}

pub struct Stopwatch {
    clock: Clock,
    start: u64,
}

impl Stopwatch {
    pub fn secs(&self) -> f64 {
        tsc().wrapping_sub(self.start) as f64 / self.clock.hz
    }
}

fn tsc() -> u64 {
    // SAFETY: `rdtsc` has no preconditions on x86-64.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Repeats `pass` (which moves `bytes` bytes) for at least 0.2 s; MiB/s.
pub fn rate(clock: Clock, bytes: usize, mut pass: impl FnMut()) -> f64 {
    let watch = clock.start();
    let mut passes = 0u32;
    while passes == 0 || watch.secs() < 0.2 {
        pass();
        passes += 1;
    }
    f64::from(passes) * bytes as f64 / f64::from(1u32 << 20) / watch.secs()
}
