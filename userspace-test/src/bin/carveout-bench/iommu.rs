//! `iommu-attach`: `CARVEOUT_ATTACH` time of regions of several sizes, in the IOMMU bench guest.

use std::{fs, time::Duration};

use carveout::Region;

use crate::{
    clock::Clock,
    load::{insmod, rmmod},
    report::{Report, Stat},
};

/// A size as the measurement names write it: `16m`, `1g`.
fn size_name(size: u64) -> String {
    if size >= 1 << 30 && size % (1 << 30) == 0 {
        format!("{}g", size >> 30)
    } else {
        format!("{}m", size >> 20)
    }
}

/// `iommu_attach_<size>`: CARVEOUT_ATTACH time of regions of `size`, `size / 4`, `size / 16`
/// and `size / 64` at `base`, for `device` (stating `reach_bits` if given), each after the
/// IOVA of the one before is free again. A size the DMA API cannot map (the device's DMA mask
/// leaves too little I/O address space: a driverless PCI device has 32 bits, less the PCI
/// windows) is reported and left out; the ratio is then of the largest size that could be
/// mapped over the one 16 times smaller.
pub fn bench_iommu_attach(
    dev: &str,
    module: &str,
    (base, size): (u64, u64),
    device: &str,
    reach_bits: Option<u32>,
    runs: usize,
) -> Result<(), String> {
    let mut report = Report::default();
    let _ = rmmod();
    let clock = Clock::calibrate();
    let iommu = carveout::iommu::PciIommu::read(device).map_err(|e| e.to_string())?;
    println!("# {device}: IOMMU {:?}", iommu.domain);
    for cap in fs::read_dir("/sys/class/iommu")
        .into_iter()
        .flatten()
        .flatten()
    {
        if let Ok(text) = fs::read_to_string(cap.path().join("intel-iommu/cap")) {
            let c = u64::from_str_radix(text.trim(), 16).unwrap_or(0);
            println!(
                "# {}: large pages 2 MiB {}, 1 GiB {}",
                cap.file_name().to_string_lossy(),
                (c >> 34) & 1,
                (c >> 35) & 1
            );
        }
    }
    let sizes = [size, size / 4, size / 16, size / 64];
    let mut measured = Vec::new();
    for &len in &sizes {
        let name = format!("iommu_attach_{}", size_name(len));
        insmod(module, base, len)?;
        let result = (|| -> Result<Vec<f64>, String> {
            let region = Region::open(dev).map_err(|e| e.to_string())?;
            let mut samples = Vec::new();
            for _ in 0..runs.max(11) {
                let watch = clock.start();
                let reply = region.attach(device, reach_bits);
                let secs = watch.secs();
                let reply = reply.map_err(|e| {
                    format!("CARVEOUT_ATTACH of {} for {device}: {e}", size_name(len))
                })?;
                samples.push(secs * 1e3);
                region
                    .detach(device)
                    .map_err(|e| format!("CARVEOUT_DETACH: {e}"))?;
                // A DMA-FQ domain frees the IOVA from its flush queue (within 10 ms), not at
                // unmap: until then a second region as large may find no room.
                std::thread::sleep(Duration::from_millis(50));
                if samples.len() == 1 {
                    println!(
                        "# {}: bus address {:#x} for physical {base:#x}",
                        size_name(len),
                        reply.bus_addr
                    );
                }
            }
            Ok(samples)
        })();
        rmmod()?;
        match result {
            Ok(samples) => {
                report.add(Stat::of(&name, "ms", samples));
                measured.push(len);
            }
            Err(why) => println!("# {name}: not measured: {why}"),
        }
    }
    if let Some(&big) = measured.first() {
        if measured.contains(&(big / 16)) {
            let name = format!(
                "iommu_attach_{}_over_{}",
                size_name(big),
                size_name(big / 16)
            );
            report.ratio(
                &name,
                &format!("iommu_attach_{}", size_name(big)),
                &format!("iommu_attach_{}", size_name(big / 16)),
            );
        }
    }
    report.markdown();
    Ok(())
}
