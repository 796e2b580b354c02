//! Userspace access to carveout regions (`/dev/carveout*`).
//!
//! [`Region`] opens a device (by path or by name) and asks it what it is; [`Region::map`] maps
//! a window of it as a [`Mapping`], read and written with volatile accesses, since a device may
//! DMA into the memory underneath. Refusals are [`Error`]s that carry the errno and say what was
//! refused. [`devmem`] reads the same physical memory through `/dev/mem`, to check from outside
//! the driver that a mapping hits the carve-out.
//!
//! [`ptdump`] reads the page tables a mapping got, as the CPU uses them, and the memory type
//! each entry selects.
//!
//! Around that, the pieces of `carveoutctl`: [`memmap`] (the kernel command line's `memmap=`),
//! [`iomem`] (`/proc/iomem`), [`firmware_map`] (the firmware's memory map), [`plan`] (where
//! to put a new reservation), [`check`] (whether command line, `/proc/iomem` and the regions
//! agree) and [`configfs`] (regions made at run time). [`transfer`] copies between a region and a file through the region's own file
//! interface (`read`/`write` of the node): `carveoutctl save` and `restore`;
//! [`DirectBuffer`] is a mapping of a region with pages (pages mode) as the buffer of
//! `O_DIRECT`, io_uring and `vmsplice` transfers, which the kernel can pin (zero copy).
//! [`Failure`] is how the tools report what they could not do (an errno, a reason, an
//! exit status; one JSON object under `--json`).

pub mod abi;
pub mod attach;
mod attr;
pub mod check;
pub mod configfs;
pub mod devmem;
mod direct;
pub mod edu;
mod error;
pub mod failure;
pub mod firmware_map;
pub mod iomem;
pub mod iommu;
mod mapping;
pub mod memmap;
mod nodes;
pub mod pattern;
pub mod plan;
pub mod ptdump;
mod region;
pub mod transfer;
pub mod vfio;

pub use attr::{flag_names, Attr};
pub use direct::{open_direct, DirectBuffer, DIRECT_ALIGN};
pub use error::{errno_name, Error, Op, Result};
pub use failure::Failure;
pub use mapping::{Mapping, Placement};
pub use nodes::{discover, discover_in, resolve};
pub use pattern::Mismatch;
pub use region::{Access, Region};

/// Parses a number as the tools take seeds and addresses: decimal, or hex with `0x`. The
/// error says what was wrong, for clap's `value_parser`.
pub fn parse_u64(s: &str) -> std::result::Result<u64, String> {
    let parsed = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => s.parse(),
    };
    parsed.map_err(|err| format!("{s:?} is not a number: {err}"))
}
