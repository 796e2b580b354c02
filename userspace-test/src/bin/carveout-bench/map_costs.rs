//! What making a mapping costs: mmap and first touch, the first mapping after a load, and
//! page-table setup alone.

use rustix::mm::ProtFlags;

use crate::{
    bench::Bench,
    clock::Clock,
    load::{insmod, rmmod},
    maps::{minor_faults, Map, Source, ThpOff, HUGE, PAGE},
    report::Stat,
};

/// `runs` times: a mapping of `len` bytes made, written once every `stride` bytes and
/// unmapped; the wall times and the minor faults of each.
fn time_map_and_write(
    clock: Clock,
    source: Source<'_>,
    len: usize,
    stride: usize,
    runs: usize,
) -> Result<(Vec<f64>, Vec<f64>), String> {
    let mut times = Vec::new();
    let mut faults = Vec::new();
    let _thp = ThpOff::new(source);
    for _ in 0..runs {
        let faults_before = minor_faults();
        let watch = clock.start();
        let map = Map::new(source, 0, len, ProtFlags::READ | ProtFlags::WRITE)?;
        map.touch_every(stride);
        times.push(watch.secs());
        faults.push((minor_faults() - faults_before) as f64);
        drop(map);
    }
    Ok((times, faults))
}

/// mmap plus a write to every page: wall time and minor faults.
pub fn bench_map_touch(
    b: &mut Bench,
    name: &str,
    source: Source<'_>,
    len: usize,
) -> Result<(), String> {
    let (times, faults) = time_map_and_write(b.clock, source, len, PAGE, b.runs)?;
    b.add(&format!("map_touch_{name}"), "s", times);
    b.add(&format!("faults_{name}"), "faults", faults);
    Ok(())
}

/// The first mapping after a load against the later ones: `reloads` times the module is
/// loaded, the 1 GiB region mapped with 4 KiB entries and written once per page `1 + STEADY`
/// times, and the module unloaded. Per load, the first time over the median of the later
/// ones is one sample of `first_map_over_steady`. The first load's first mapping is also the
/// first write to these guest pages since the guest booted (QEMU backs guest RAM with host
/// memory on first write, unless the bench guest preallocates it):
/// `first_map_since_boot_over_steady`. Leaves the module unloaded.
pub fn bench_first_map(
    b: &mut Bench,
    dev: &str,
    module: &str,
    base: u64,
    size: u64,
    reloads: usize,
) -> Result<(), String> {
    const STEADY: usize = 3;
    let len = usize::try_from(size).map_err(|e| e.to_string())?;
    let small = Source::Carveout { dev, huge: false };
    let (mut firsts, mut ratios) = (Vec::new(), Vec::new());
    for load in 0..reloads {
        insmod(module, base, size)?;
        let times = time_map_and_write(b.clock, small, len, PAGE, 1 + STEADY);
        rmmod()?;
        let times = times?.0;
        let steady = Stat::of("steady", "s", times[1..].to_vec()).median;
        println!(
            "# load {load}: first map + touch {:.3} s, then {:.3?} s",
            times[0],
            &times[1..]
        );
        firsts.push(times[0]);
        ratios.push(times[0] / steady);
    }
    if let Some(&since_boot) = ratios.first() {
        b.add(
            "first_map_since_boot_over_steady",
            "ratio",
            vec![since_boot],
        );
    }
    b.add("map_touch_first_after_load", "s", firsts);
    b.add("first_map_over_steady", "ratio", ratios);
    Ok(())
}

/// Page-table setup alone: `mmap` and one write per 2 MiB, so that every entry exists (the
/// 4 KiB path fills all its PTEs in `mmap`; the 2 MiB path one PMD entry per fault), without
/// the per-page first touch that dominates `map_touch_*` under TCG.
pub fn bench_map_setup(
    b: &mut Bench,
    name: &str,
    source: Source<'_>,
    len: usize,
) -> Result<(), String> {
    let (times, _) = time_map_and_write(b.clock, source, len, HUGE, b.runs)?;
    b.add(&format!("map_setup_{name}"), "s", times);
    Ok(())
}
