//! `check`: whether the kernel command line, /proc/iomem and the regions agree.

use std::{fs, path::Path, process::ExitCode};

use carveout::{
    check::{self, Level},
    iomem::Iomem,
    iommu::PciIommu,
    Failure,
};
use serde_json::json;

use crate::{
    boot::{firmware_memmap, read_cmdline},
    output::{plural, print_json, Res},
    regions::region_views,
};

pub fn cmd_check(
    cmdline: Option<&Path>,
    iomem: Option<&Path>,
    pci: &[String],
    json: bool,
) -> Res<ExitCode> {
    let iomem_path = iomem.unwrap_or(Path::new("/proc/iomem"));
    let iomem = fs::read_to_string(iomem_path)
        .map_err(|e| format!("{}: {e}", iomem_path.display()))
        .and_then(|text| Iomem::parse(&text));
    let (regions, region_errors) = region_views();
    let attachments = check::Attachments::read(&regions);
    let pci = check::pci_devices(pci, &attachments);
    let input = check::Input {
        cmdline: read_cmdline(cmdline)?,
        iomem,
        regions,
        region_errors: region_errors.iter().map(Failure::to_string).collect(),
        firmware: firmware_memmap(),
        pci: pci
            .iter()
            .map(|bdf| PciIommu::read(bdf).map_err(|e| e.to_string()))
            .collect(),
        attachments,
    };
    let findings = check::check(&input);
    let ok = check::consistent(&findings);
    if json {
        print_json(&json!({
            "consistent": ok,
            "findings": findings,
            "regions": input.regions,
            "pci": input.pci.iter().flatten().collect::<Vec<_>>(),
            "attachments": input.attachments,
        }))?;
    } else {
        for f in &findings {
            let level = match f.level {
                Level::Ok => "ok",
                Level::Note => "note",
                Level::Warning => "warning",
                Level::Problem => "problem",
            };
            println!("{level}: {}", f.message);
        }
        let problems = findings
            .iter()
            .filter(|f| f.level == Level::Problem)
            .count() as u64;
        if ok {
            println!("carveout check: consistent");
        } else {
            println!(
                "carveout check: {}",
                plural(problems, "problem", "problems")
            );
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
