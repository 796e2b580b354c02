//! Zero copy (issue 22): `O_DIRECT` writes from a pages-mode mapping to a block device against
//! buffered writes of the same bytes and `fsync` (`odirect_write_over_buffered`), and what
//! pages mode costs at load (`pages_mode_load_overhead`): `insmod` time and the memory map,
//! for a 1 GiB region with pages over one without.

use std::{fs, path::Path};

use carveout::{open_direct, DirectBuffer, Region};

use crate::{
    bench::Bench,
    load::{insmod_pages, rmmod},
};

type Res<T> = Result<T, String>;

/// Bytes each write measurement moves.
const TOTAL: usize = 256 << 20;
/// Bytes a call moves.
const CALL: usize = 4 << 20;

/// The pages the kernel's memory maps take, in MiB (/proc/vmstat `nr_memmap_pages`: what
/// the page allocator gave for `struct page`s, also of memory added later, as pages mode's).
fn memmap_mib() -> Res<f64> {
    let text = fs::read_to_string("/proc/vmstat").map_err(|e| format!("/proc/vmstat: {e}"))?;
    text.lines()
        .find_map(|l| l.strip_prefix("nr_memmap_pages "))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|pages| (pages * 4096) as f64 / f64::from(1 << 20))
        .ok_or_else(|| "/proc/vmstat has no nr_memmap_pages".to_string())
}

/// The size of block device `dev` (`/sys/class/block/NAME/size`, in 512-byte sectors).
fn device_size(dev: &Path) -> Res<u64> {
    let name = dev
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| format!("{}: not a device path", dev.display()))?;
    let sectors = fs::read_to_string(format!("/sys/class/block/{name}/size"))
        .map_err(|e| format!("{}: size: {e}", dev.display()))?;
    sectors
        .trim()
        .parse::<u64>()
        .map(|s| s * 512)
        .map_err(|e| format!("{}: size {sectors:?}: {e}", dev.display()))
}

/// Both measurements; the module must be unloaded. `base` is a reservation of at least 1 GiB.
pub fn bench_zerocopy(dev: &str, module: &str, base: u64, pmem: &Path, runs: usize) -> Res<()> {
    let _ = rmmod();
    let mut b = Bench::new(runs);
    println!("# pages mode: insmod of a 1 GiB region with and without pages");
    load_overhead(&mut b, module, base)?;
    println!(
        "# {} MiB from a pages-mode mapping to {}: O_DIRECT against buffered + fsync",
        TOTAL >> 20,
        pmem.display()
    );
    insmod_pages(module, base, TOTAL as u64, true)?;
    let result = write_rates(&mut b, dev, pmem);
    let _ = rmmod();
    result?;
    b.report.ratio(
        "odirect_write_over_buffered",
        "odirect_write_256m",
        "buffered_write_fsync_256m",
    );
    b.report.ratio(
        "pages_mode_load_overhead",
        "insmod_1g_pages",
        "insmod_1g_pfn",
    );
    b.report.markdown();
    Ok(())
}

/// `insmod_1g_pfn`, `insmod_1g_pages` (ms) and `pages_memmap_1g` (the MiB of memory map a load
/// with pages adds beyond one without, as /proc/vmstat counts it), the loads alternating run
/// by run.
fn load_overhead(b: &mut Bench, module: &str, base: u64) -> Res<()> {
    let gib = 1u64 << 30;
    let (mut plain, mut pages, mut memmap) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..b.runs.max(5) {
        let mut taken = [0f64; 2];
        for (with_pages, samples) in [(false, &mut plain), (true, &mut pages)] {
            let memmap = memmap_mib()?;
            let watch = b.clock.start();
            insmod_pages(module, base, gib, with_pages)?;
            samples.push(watch.secs() * 1e3);
            taken[usize::from(with_pages)] = memmap_mib()? - memmap;
            rmmod()?;
        }
        memmap.push(taken[1] - taken[0]);
    }
    b.add("insmod_1g_pfn", "ms", plain);
    b.add("insmod_1g_pages", "ms", pages);
    b.add("pages_memmap_1g", "MiB", memmap);
    Ok(())
}

/// `odirect_write_256m` and `buffered_write_fsync_256m` (MiB/s): 256 MiB of the region, in
/// 4 MiB calls, onto the device over and over (it is smaller); buffered, each pass over the
/// device ends with fsync, so that every byte reaches it as with O_DIRECT.
fn write_rates(b: &mut Bench, dev: &str, pmem: &Path) -> Res<()> {
    let room = device_size(pmem)? as usize / CALL * CALL;
    if room == 0 {
        return Err(format!("{} is smaller than {CALL} bytes", pmem.display()));
    }
    let region = Region::open(dev).map_err(|e| e.to_string())?;
    let buffer = DirectBuffer::new(&region, 0..TOTAL as u64).map_err(|e| e.to_string())?;
    buffer.mapping().fill_pattern(0x2e20, |_| ());
    let direct = open_direct(pmem).map_err(|e| format!("{}: {e}", pmem.display()))?;
    let buffered = fs::OpenOptions::new()
        .write(true)
        .open(pmem)
        .map_err(|e| format!("{}: {e}", pmem.display()))?;
    let mib = TOTAL as f64 / f64::from(1 << 20);
    let (mut odirect, mut cached) = (Vec::new(), Vec::new());
    for _ in 0..b.runs {
        let watch = b.clock.start();
        for at in (0..TOTAL).step_by(CALL) {
            let n = buffer
                .write_to(&direct, (at % room) as u64, at..at + CALL)
                .map_err(|e| format!("pwrite(O_DIRECT): {e}"))?;
            if n != CALL {
                return Err(format!("pwrite(O_DIRECT) wrote {n} of {CALL} bytes"));
            }
        }
        odirect.push(mib / watch.secs());

        let watch = b.clock.start();
        for at in (0..TOTAL).step_by(CALL) {
            // The same pwrite from the mapping, without O_DIRECT: the kernel copies the bytes
            // into the page cache, and writeback copies them again onto the device.
            let n = buffer
                .write_to(&buffered, (at % room) as u64, at..at + CALL)
                .map_err(|e| format!("buffered pwrite: {e}"))?;
            if n != CALL {
                return Err(format!("buffered pwrite wrote {n} of {CALL} bytes"));
            }
            if (at + CALL) % room == 0 || at + CALL == TOTAL {
                buffered.sync_all().map_err(|e| format!("fsync: {e}"))?;
            }
        }
        cached.push(mib / watch.secs());
    }
    b.add("odirect_write_256m", "MiB/s", odirect);
    b.add("buffered_write_fsync_256m", "MiB/s", cached);
    Ok(())
}
