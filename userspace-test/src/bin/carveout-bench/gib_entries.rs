//! `map_setup_2m_over_1g`: page-table setup of a 2 GiB mapping with 2 MiB entries against
//! 1 GiB ones.

use std::{ffi::c_void, os::fd::OwnedFd, ptr};

use rustix::{
    fs::{open, Mode, OFlags},
    mm::{mmap, mmap_anonymous, munmap, MapFlags, ProtFlags},
};

use crate::{
    bench::Bench,
    load::{insmod, rmmod},
    maps::{minor_faults, HUGE},
    report::Stat,
};

const GIB: usize = 1 << 30;

/// A 2 GiB mapping of a 2 GiB reservation at `base` (1 GiB aligned), with 2 MiB entries
/// against 1 GiB ones. The same physical range is mapped at a user address congruent with it
/// modulo 1 GiB (the driver fills two 1 GiB entries at fault time: `map_setup_carveout_1g`) or
/// 2 MiB off that congruence (no 1 GiB block fits, 1024 entries of 2 MiB:
/// `map_setup_carveout_2m_of_2g`); timed: the `mmap` and one write per 2 MiB, as `map_setup_*`.
/// A mapping of the first 2 MiB is kept meanwhile, so that the region's memory-type record
/// (taken by the first mapping with large entries, dropped with the last) is not taken and
/// dropped in every run: the runs time the page tables. The two placements alternate, run by
/// run (at least 11 runs: a run is quick); the faults each took are printed. Loads the module
/// with the 2 GiB region and leaves it unloaded; says why and measures nothing for no
/// reservation (`base` 0) or one not 1 GiB aligned.
pub fn bench_map_setup_1g(
    b: &mut Bench,
    (dev, module): (&str, &str),
    base: u64,
) -> Result<(), String> {
    let len = 2 * GIB;
    if base == 0 || base % GIB as u64 != 0 {
        println!(
            "# map_setup_2m_over_1g: needs a 1 GiB-aligned reservation of 2 GiB (--gib-base); \
             not measured"
        );
        return Ok(());
    }
    insmod(module, base, len as u64)?;
    let mut samples = [(Vec::new(), Vec::new()), (Vec::new(), Vec::new())];
    let result = time_placements(b, dev, len, &mut samples);
    let _ = rmmod();
    result?;
    let [(gib_times, gib_faults), (huge_times, huge_faults)] = samples;
    println!(
        "# map_setup_2m_over_1g: faults per 2 GiB mapping: {} placed for 1 GiB entries, {} for \
         2 MiB ones (expected 2 and 1024)",
        Stat::of("", "", gib_faults).median,
        Stat::of("", "", huge_faults).median
    );
    b.add("map_setup_carveout_1g", "ms", gib_times);
    b.add("map_setup_carveout_2m_of_2g", "ms", huge_times);
    b.report.ratio(
        "map_setup_2m_over_1g",
        "map_setup_carveout_2m_of_2g",
        "map_setup_carveout_1g",
    );
    Ok(())
}

type Samples = (Vec<f64>, Vec<f64>);

/// The runs of both placements, with the first 2 MiB kept mapped: times (ms) and faults.
fn time_placements(
    b: &Bench,
    dev: &str,
    len: usize,
    samples: &mut [Samples; 2],
) -> Result<(), String> {
    let fd: OwnedFd = open(dev, OFlags::RDWR, Mode::empty()).map_err(|e| format!("{dev}: {e}"))?;
    let rw = ProtFlags::READ | ProtFlags::WRITE;
    // SAFETY: A new mapping at an address the kernel picks aliases nothing; unmapped below.
    let keeper = unsafe { mmap(ptr::null_mut(), HUGE, rw, MapFlags::SHARED, &fd, 0) }
        .map_err(|e| format!("{dev}: mmap of 2 MiB: {e}"))?;
    let timed = (|| -> Result<(), String> {
        for _ in 0..b.runs.max(11) {
            for (shift, (times, faults)) in [0, HUGE].into_iter().zip(samples.iter_mut()) {
                let (ms, n) = time_one(b, dev, &fd, len, shift)?;
                times.push(ms);
                faults.push(n);
            }
        }
        Ok(())
    })();
    // SAFETY: The kept mapping is ours, and nothing refers to it.
    let _ = unsafe { munmap(keeper, HUGE) };
    timed
}

/// One 2 GiB mapping at a 1 GiB-aligned address plus `shift`, written once per 2 MiB and
/// unmapped: its time (ms) and minor faults.
fn time_one(
    b: &Bench,
    dev: &str,
    fd: &OwnedFd,
    len: usize,
    shift: usize,
) -> Result<(f64, f64), String> {
    let rw = ProtFlags::READ | ProtFlags::WRITE;
    // An address 1 GiB aligned (plus `shift`) inside a reservation of our own.
    let span = len + 2 * GIB;
    // SAFETY: A new inaccessible mapping at an address the kernel picks aliases nothing.
    let reserve = unsafe {
        mmap_anonymous(
            ptr::null_mut(),
            span,
            ProtFlags::empty(),
            MapFlags::PRIVATE | MapFlags::NORESERVE,
        )
    }
    .map_err(|e| format!("reserving {span} bytes of address space: {e}"))?;
    let addr = (reserve as usize).next_multiple_of(GIB) + shift;
    let faults_before = minor_faults();
    let watch = b.clock.start();
    // SAFETY: `addr..addr + len` lies inside our own reservation, which it replaces in part.
    let mapped = unsafe {
        mmap(
            addr as *mut c_void,
            len,
            rw,
            MapFlags::SHARED | MapFlags::FIXED,
            fd,
            0,
        )
    };
    let result = mapped
        .map(|ptr| {
            for off in (0..len).step_by(HUGE) {
                // SAFETY: `off` is inside the writable mapping just made.
                unsafe {
                    ptr.cast::<u8>()
                        .add(off)
                        .cast::<u64>()
                        .write_volatile(off as u64)
                };
            }
            (watch.secs() * 1e3, (minor_faults() - faults_before) as f64)
        })
        .map_err(|e| format!("{dev}: mmap of {len} bytes at {addr:#x}: {e}"));
    // SAFETY: The reservation (the mapping replaced part of it) is ours, and nothing refers
    // to it.
    let _ = unsafe { munmap(reserve, span) };
    result
}
