//! Reading and writing through a mapping: sequential bandwidth, random reads.

use std::{hint::black_box, ptr};

use crate::{
    bench::Bench,
    clock::rate,
    maps::{Map, Source},
};

/// Sequential read, write and copy bandwidth through a mapping of `len` bytes, in MiB/s.
pub fn bench_bandwidth(
    b: &mut Bench,
    name: &str,
    source: Source<'_>,
    len: usize,
) -> Result<(), String> {
    let map = Map::touched(source, len)?;
    let (mut read, mut write, mut copy) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..b.runs {
        read.push(rate(b.clock, len, || {
            let mut sum = 0u64;
            for off in (0..len).step_by(8) {
                sum = sum.wrapping_add(map.read_u64(off));
            }
            black_box(sum);
        }));
        write.push(rate(b.clock, len, || {
            for off in (0..len).step_by(8) {
                map.write_u64(off, off as u64);
            }
        }));
        // Copy the first half over the second: the bytes copied count.
        let half = len / 2;
        copy.push(rate(b.clock, half, || {
            // SAFETY: Both halves lie inside the mapping and do not overlap; no Rust
            // reference to the mapping exists.
            unsafe { ptr::copy_nonoverlapping(map.ptr.as_ptr(), map.ptr.as_ptr().add(half), half) };
            black_box(map.read_u64(half));
        }));
    }
    b.add(&format!("read_{name}"), "MiB/s", read);
    b.add(&format!("write_{name}"), "MiB/s", write);
    b.add(&format!("copy_{name}"), "MiB/s", copy);
    Ok(())
}

/// Random 8-byte reads over a mapping of `len` bytes (TLB bound), in million reads per second.
pub fn bench_random(
    b: &mut Bench,
    name: &str,
    source: Source<'_>,
    len: usize,
) -> Result<(), String> {
    let map = Map::touched(source, len)?;
    let reads = 2_000_000usize;
    let words = (len / 8) as u64;
    let mut samples = Vec::new();
    for run in 0..b.runs {
        let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ run as u64;
        let mut sum = 0u64;
        let watch = b.clock.start();
        for _ in 0..reads {
            // xorshift64
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            sum = sum.wrapping_add(map.read_u64(((x % words) * 8) as usize));
        }
        black_box(sum);
        samples.push(reads as f64 / 1e6 / watch.secs());
    }
    b.add(&format!("random_{name}"), "Mreads/s", samples);
    Ok(())
}
