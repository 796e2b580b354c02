//! `all`: every measurement of the guest bench, with the module's load time and
//! `CARVEOUT_SYNC`, and the ratios `make bench` reports.

use carveout::{Attr, Region};

use crate::{
    bandwidth::{bench_bandwidth, bench_random},
    bench::Bench,
    file_io::bench_file_io,
    load::{insmod, rmmod},
    map_costs::{bench_first_map, bench_map_setup, bench_map_touch},
    maps::Source,
};

/// Every measurement, then the ratios and the Markdown table; needs the module unloaded and a
/// reservation of at least 1 GiB at `base`, and leaves the module unloaded.
pub fn bench_all(dev: &str, module: &str, base: u64, size: u64, runs: usize) -> Result<(), String> {
    let gib = 1u64 << 30;
    if size < gib {
        return Err(format!(
            "the reservation is {size:#x} bytes; the bench needs 1 GiB"
        ));
    }
    let len = gib as usize;
    let _ = rmmod();
    let mut b = Bench::new(runs);
    println!("# TSC: {:.0} MHz", b.clock.hz / 1e6);

    println!("# load: insmod of 4 MiB and 1 GiB regions");
    let sizes = [("insmod_4m", 4 << 20), ("insmod_1g", gib)];
    bench_load(&mut b, module, base, &sizes)?;

    println!("# the first map after a load, {} reloads", runs.max(5));
    bench_first_map(&mut b, dev, module, base, gib, runs.max(5))?;

    insmod(module, base, gib)?;
    let huge = Source::Carveout { dev, huge: true };
    let small = Source::Carveout { dev, huge: false };
    let result = (|| -> Result<(), String> {
        println!("# map and first touch of 1 GiB");
        bench_map_touch(&mut b, "carveout_4k", small, len)?;
        bench_map_touch(&mut b, "carveout_2m", huge, len)?;
        bench_map_setup(&mut b, "carveout_4k", small, len)?;
        bench_map_setup(&mut b, "carveout_2m", huge, len)?;
        bench_map_touch(&mut b, "devmem", Source::DevMem { phys: base }, len)?;
        bench_map_touch(&mut b, "anon", Source::Anon { thp: false }, len)?;
        bench_map_touch(&mut b, "anon_thp", Source::Anon { thp: true }, len)?;

        println!("# sequential bandwidth, 32 MiB");
        let bw = 32 << 20;
        let region = Region::open(dev).map_err(|e| e.to_string())?;
        for (attr, name) in [(Attr::Wb, "wb"), (Attr::Wc, "wc"), (Attr::Uc, "uc")] {
            region.set_attr(attr).map_err(|e| e.to_string())?;
            bench_bandwidth(&mut b, name, huge, bw)?;
        }
        region.set_attr(Attr::Wb).map_err(|e| e.to_string())?;
        bench_bandwidth(&mut b, "anon", Source::Anon { thp: true }, bw)?;

        println!("# read()/write() of the whole region in 1 MiB calls against memcpy");
        bench_file_io(&mut b, dev)?;
        println!("# CARVEOUT_SYNC of 64 MiB, write-back");
        bench_sync(&mut b, &region, 64 << 20)?;

        println!("# random 8-byte reads over 1 GiB");
        bench_random(&mut b, "carveout_4k", small, len)?;
        bench_random(&mut b, "carveout_2m", huge, len)?;
        bench_random(&mut b, "anon_thp", Source::Anon { thp: true }, len)?;
        Ok(())
    })();
    let _ = rmmod();
    result?;

    let report = &mut b.report;
    report.ratio("load_1g_over_4m", "insmod_1g", "insmod_4m");
    report.alias("touch_faults_carveout", "faults_carveout_2m");
    report.alias("touch_faults_anon", "faults_anon");
    report.ratio(
        "map_touch_anon_over_carveout",
        "map_touch_anon",
        "map_touch_carveout_2m",
    );
    report.ratio(
        "map_touch_4k_over_2m",
        "map_touch_carveout_4k",
        "map_touch_carveout_2m",
    );
    report.ratio(
        "map_setup_4k_over_2m",
        "map_setup_carveout_4k",
        "map_setup_carveout_2m",
    );
    report.ratio("wb_read_over_anon", "read_wb", "read_anon");
    report.ratio("wb_write_over_anon", "write_wb", "write_anon");
    report.ratio(
        "random_2m_over_4k",
        "random_carveout_2m",
        "random_carveout_4k",
    );
    report.markdown();
    Ok(())
}

/// `insmod` time of each of `sizes` (name, bytes), in ms. The sizes alternate, run by run,
/// so drift on a busy host hits them alike; `runs` is at least 11 (a load is quick).
fn bench_load(b: &mut Bench, module: &str, base: u64, sizes: &[(&str, u64)]) -> Result<(), String> {
    let mut samples = vec![Vec::new(); sizes.len()];
    for _ in 0..b.runs.max(11) {
        for (&(_, size), samples) in sizes.iter().zip(&mut samples) {
            let watch = b.clock.start();
            insmod(module, base, size)?;
            samples.push(watch.secs() * 1e3);
            rmmod()?;
        }
    }
    for (&(name, _), samples) in sizes.iter().zip(samples) {
        b.add(name, "ms", samples);
    }
    Ok(())
}

/// `sync_<MiB>m_ms`: CARVEOUT_SYNC (for the device) of the first `len` bytes of the region, a
/// write-back region. TCG does not model caches: this is the cost of the flush instructions
/// (and of mapping each 2 MiB piece into the kernel), not of memory traffic.
fn bench_sync(b: &mut Bench, region: &Region, len: u64) -> Result<(), String> {
    region.set_attr(Attr::Wb).map_err(|e| e.to_string())?;
    let mut samples = Vec::new();
    for _ in 0..b.runs {
        let watch = b.clock.start();
        region
            .sync(0, len, carveout::abi::SYNC_FOR_DEVICE)
            .map_err(|e| format!("CARVEOUT_SYNC of {len:#x} bytes: {e}"))?;
        samples.push(watch.secs() * 1e3);
    }
    b.add(&format!("sync_{}m_ms", len >> 20), "ms", samples);
    Ok(())
}
