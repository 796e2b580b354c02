//! The region's contents: `fill`, `verify`, `roundtrip` with the pattern through a mapping and
//! `/dev/mem`, and `devmem-verify` (physical memory, no region needed).

use std::io;

use carveout::{abi, devmem, Access, Mismatch, Region};

use crate::Failed;

/// [`crate::cli::Command::Fill`].
pub fn cmd_fill(region: &Region, info: &abi::Info, seed: u64) -> io::Result<Result<(), Failed>> {
    region
        .map(0..info.size, Access::ReadWrite)?
        .fill_pattern(seed, |_| ());
    Ok(Ok(()))
}

/// [`crate::cli::Command::Verify`].
pub fn cmd_verify(
    region: &Region,
    info: &abi::Info,
    seed: u64,
    devmem: bool,
) -> io::Result<Result<(), Failed>> {
    let result = if devmem {
        devmem::verify(info.base, info.size, seed)?
    } else {
        region
            .map(0..info.size, Access::Read)?
            .verify_pattern(seed, |_| ())
    };
    Ok(result.map_err(|m| mismatch(if devmem { "/dev/mem" } else { "mapping" }, m)))
}

/// [`crate::cli::Command::Roundtrip`].
pub fn cmd_roundtrip(
    region: &Region,
    info: &abi::Info,
    seed: u64,
) -> io::Result<Result<(), Failed>> {
    let mapping = region.map(0..info.size, Access::ReadWrite)?;
    mapping.fill_pattern(seed, |_| ());
    Ok(match mapping.verify_pattern(seed, |_| ()) {
        Err(m) => Err(mismatch("mapping", m)),
        Ok(()) => devmem::verify(info.base, info.size, seed)?.map_err(|m| mismatch("/dev/mem", m)),
    })
}

/// [`crate::cli::Command::DevmemVerify`].
pub fn cmd_devmem_verify(phys: u64, len: u64, seed: u64) -> io::Result<Result<(), Failed>> {
    Ok(devmem::verify(phys, len, seed)?.map_err(|m| mismatch("/dev/mem", m)))
}

fn mismatch(via: &str, m: Mismatch) -> Failed {
    Failed(format!(
        "{via}: {} words differ, the first at offset {:#x}",
        m.words, m.offset
    ))
}
