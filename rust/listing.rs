// SPDX-License-Identifier: GPL-2.0

//! Whether a physical range is memory set aside for us: it must lie wholly inside memory the
//! kernel's map lists as reserved (`Reserved`: `memmap=SIZE$BASE` or the firmware;
//! `Persistent Memory (legacy)`: `memmap=SIZE!BASE`; `Soft Reserved`). A hole, a device's BAR,
//! ACPI tables or NVS are refused, saying which, unless the caller opted in to unlisted memory.
//!
//! The kernel's map cannot tell `Reserved` from the command line apart from `Reserved` by the
//! firmware (SMM, option ROMs, tables): the firmware's own map in `/sys/firmware/memmap` can,
//! and `carveoutctl check` reads it.

use core::fmt;

use kernel::prelude::*;

use crate::{
    kernel_ext::{
        iomem::{
            self,
            MemoryKind, //
        },
        pci,
    },
    range::PhysRange,
};

/// The kinds of memory a region may be made of.
const ACCEPTED: [MemoryKind; 3] = [
    MemoryKind::Reserved,
    MemoryKind::PersistentMemoryLegacy,
    MemoryKind::SoftReserved,
];

/// What a range that is not reserved memory is instead.
pub(crate) enum Unlisted {
    /// ACPI tables or NVS.
    Acpi(MemoryKind),
    /// A memory BAR of a PCI device.
    DeviceBar(pci::Bar),
    /// Partly reserved memory, partly something else (`bytes` of it reserved).
    Partly { bytes: u64 },
    /// Nothing the kernel's map lists as memory.
    Hole,
}

impl kernel::fmt::Display for Unlisted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Acpi(kind) => write!(f, "it is {} (firmware data)", kind.name()),
            Self::DeviceBar(bar) => write!(
                f,
                "it is device memory, BAR {} of PCI device {}",
                bar.index,
                bar.device.to_str().unwrap_or("?")
            ),
            Self::Partly { bytes } => write!(
                f,
                "only {bytes:#x} bytes of it are reserved memory, the rest is not"
            ),
            Self::Hole => write!(f, "no memory is listed there (a hole in the memory map)"),
        }
    }
}

/// `Ok` if all of `range` is reserved memory; else what it is. (System RAM is refused before
/// this is asked.)
pub(crate) fn check(range: &PhysRange) -> Result<core::result::Result<(), Unlisted>> {
    let listed = ACCEPTED.into_iter().fold(0u64, |sum, kind| {
        sum.saturating_add(iomem::bytes_of_kind(range, kind))
    });
    if listed >= range.size() {
        return Ok(Ok(()));
    }
    for kind in [MemoryKind::AcpiTables, MemoryKind::AcpiNvStorage] {
        if iomem::bytes_of_kind(range, kind) > 0 {
            return Ok(Err(Unlisted::Acpi(kind)));
        }
    }
    if let Some(bar) = pci::bar_overlapping(range)? {
        return Ok(Err(Unlisted::DeviceBar(bar)));
    }
    Ok(Err(if listed > 0 {
        Unlisted::Partly { bytes: listed }
    } else {
        Unlisted::Hole
    }))
}
