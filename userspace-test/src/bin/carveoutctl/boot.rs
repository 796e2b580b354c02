//! What the boot set up: the kernel command line and the firmware's memory map.

use std::{fs, path::Path};

use carveout::{
    firmware_map::FirmwareMap,
    memmap::{self, Memmap},
    Failure,
};

use crate::output::Res;

/// The kernel command line: FILE's when given, else the running kernel's.
pub fn read_cmdline(file: Option<&Path>) -> Res<String> {
    let path = file.unwrap_or(Path::new("/proc/cmdline"));
    fs::read_to_string(path).map_err(|e| Failure::io(path.display(), &e))
}

/// The firmware's own memory map, or why it cannot be read.
pub fn firmware_memmap() -> Result<FirmwareMap, String> {
    let dir = Path::new("/sys/firmware/memmap");
    FirmwareMap::from_sysfs(dir)
        .map_err(|e| format!("{}: {e} (CONFIG_FIRMWARE_MEMMAP)", dir.display()))
}

/// The running kernel's `memmap=` entries; none when its command line cannot be read or parsed.
pub fn running_memmaps() -> Vec<Memmap> {
    fs::read_to_string("/proc/cmdline")
        .ok()
        .and_then(|c| memmap::parse_cmdline(&c).ok())
        .unwrap_or_default()
}
