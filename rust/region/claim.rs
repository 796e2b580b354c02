// SPDX-License-Identifier: GPL-2.0

//! The checks a region passes before it exists, and its claim: reserved memory nobody else
//! holds (or `reserve_mem` RAM), an attribute the CPU can give, and in pages mode struct pages.

use kernel::{
    device::Device,
    new_mutex,
    new_spinlock,
    prelude::*,
    str::CString,
    sync::Arc, //
};

use crate::{
    attachment::Attachments,
    attr::CacheAttr,
    kernel_ext::{
        dev_pagemap::{
            DevPagemap,
            FolioSize,
            PAGEMAP_ALIGN, //
        },
        iomem::{
            self,
            Claim,
            Claimed,
            InsertedClaim,
            RamOverlap,
            RequestedClaim,
            ReserveMemError, //
        },
        memtype,
        phys_window::ClaimWindow,
        string_params,
    },
    listing,
    platform_device::Memory,
    range::{
        PhysRange,
        RangeError, //
    },
};

use super::{
    Region,
    State,
    CLAIM_NAME, //
};

impl Region {
    /// Checks that `memory` is reserved memory nobody else holds, and claims it, with the
    /// cache attribute `attr` (`None`: write-back, or uncached for unlisted memory); with
    /// `pages`, gives it struct pages in folios of that size (pages mode: write-back only, 2 MiB
    /// and folio aligned, not `reserve_mem` RAM; `EINVAL` otherwise; `EOPNOTSUPP` for a folio
    /// size the kernel cannot map whole).
    ///
    /// Refusals: `EINVAL` for a range that is empty, unaligned, wraps, touches System RAM, or
    /// is not listed as reserved memory (a hole, a device's BAR, ACPI tables or NVS) unless
    /// `allow_unlisted`; `ENODEV` for an unknown `reserve_mem` name; `EBUSY` for memory
    /// something else already claimed; `EOPNOTSUPP` for an attribute the CPU (or the kernel's
    /// direct map, for `reserve_mem` RAM) cannot give. Each says why in one line on `dev`.
    /// Nothing reads or writes the memory.
    pub(crate) fn claim(
        dev: &Device,
        memory: &Memory,
        name: CString,
        attr: Option<CacheAttr>,
        allow_unlisted: bool,
        pages: Option<FolioSize>,
    ) -> Result<Arc<Self>> {
        let (base, size, reserved_ram) = match memory {
            Memory::Range { base, size } => (*base, *size, false),
            Memory::ReserveMem(mem_name) => {
                let (base, size) = string_params::find_reserve_mem(mem_name).ok_or_else(|| {
                    dev_err!(
                        dev,
                        "refusing reserve_mem {}: no such region (boot with reserve_mem=SIZE:ALIGN:{})\n",
                        mem_name.to_str().unwrap_or("?"),
                        mem_name.to_str().unwrap_or("NAME")
                    );
                    ENODEV
                })?;
                (base, size, true)
            }
        };
        let range = PhysRange::new(base, size).map_err(|err: RangeError| {
            dev_err!(dev, "refusing {:#x}+{:#x}: {}\n", base, size, err.reason());
            EINVAL
        })?;
        if range.last() > iomem::max_phys_addr() {
            dev_err!(
                dev,
                "refusing {:#x}-{:#x}: beyond the physical address space (ends at {:#x})\n",
                range.base(),
                range.last(),
                iomem::max_phys_addr()
            );
            return Err(EINVAL);
        }
        if !reserved_ram && iomem::system_ram_overlap(&range)? == RamOverlap::Intersects {
            dev_err!(
                dev,
                "refusing {:#x}-{:#x}: overlaps System RAM (reserve it first, e.g. memmap=SIZE$BASE)\n",
                range.base(),
                range.last()
            );
            return Err(EINVAL);
        }
        let unlisted = match (reserved_ram, listing::check(&range)?) {
            (true, _) | (false, Ok(())) => false,
            (false, Err(what)) if allow_unlisted => {
                dev_warn!(
                    dev,
                    "{:#x}-{:#x} is not listed as reserved memory ({}); claimed because allow_unlisted=1, default attribute uc\n",
                    range.base(),
                    range.last(),
                    what
                );
                true
            }
            (false, Err(what)) => {
                dev_err!(
                    dev,
                    "refusing {:#x}-{:#x}: not reserved memory: {} (allow_unlisted=1 claims it anyway)\n",
                    range.base(),
                    range.last(),
                    what
                );
                return Err(EINVAL);
            }
        };
        if pages.is_some() {
            check_pages(dev, &range, reserved_ram, attr)?;
        }
        let attr = attr.unwrap_or(if unlisted && pages.is_none() {
            CacheAttr::Uncached
        } else {
            CacheAttr::WriteBack
        });
        if let Some(why) = unsupported(attr, reserved_ram) {
            dev_err!(dev, "refusing attribute {}: {}\n", attr.name(), why);
            return Err(EOPNOTSUPP);
        }
        let claim_name = CString::try_from(CLAIM_NAME)?;
        let claim = match memory {
            Memory::ReserveMem(mem_name) => {
                match InsertedClaim::reserve_mem(mem_name, claim_name) {
                    Ok(claim) if claim.claimed_range() == range => Some(Claim::Inserted(claim)),
                    Ok(_) | Err(ReserveMemError::NotFound | ReserveMemError::Unaligned) => {
                        dev_err!(
                            dev,
                            "refusing reserve_mem {}: the kernel's table changed\n",
                            mem_name.to_str().unwrap_or("?")
                        );
                        return Err(EINVAL);
                    }
                    Err(ReserveMemError::NotInSystemRam) => {
                        dev_err!(
                        dev,
                        "refusing {:#x}-{:#x}: not a free part of one System RAM entry (see /proc/iomem)\n",
                        range.base(),
                        range.last()
                    );
                        return Err(EINVAL);
                    }
                    Err(ReserveMemError::NoMemory) => return Err(ENOMEM),
                    Err(ReserveMemError::Busy) => None,
                }
            }
            Memory::Range { .. } => RequestedClaim::new(&range, claim_name).map(Claim::Requested),
        };
        let claim = claim.ok_or_else(|| {
            dev_err!(
                dev,
                "refusing {:#x}-{:#x}: already claimed by another driver (see /proc/iomem)\n",
                range.base(),
                range.last()
            );
            EBUSY
        })?;
        let claim = match (claim, pages) {
            (Claim::Requested(requested), Some(folio)) => {
                Claim::Paged(DevPagemap::new(requested, folio).map_err(|err| {
                    dev_err!(
                        dev,
                        "refusing pages=1 (pages_align {}) for {:#x}-{:#x}: {}\n",
                        folio.name(),
                        range.base(),
                        range.last(),
                        err.reason()
                    );
                    err.errno()
                })?)
            }
            (claim, _) => claim,
        };
        dev_info!(
            dev,
            "claimed {:#x}-{:#x} ({} KiB, {}) as {}\n",
            range.base(),
            range.last(),
            range.size() / 1024,
            attr.name(),
            name.to_str().unwrap_or("?")
        );
        if let Some(pagemap) = claim.pagemap() {
            dev_info!(
                dev,
                "{}: pages mode: struct pages for the range in {} folios, their memory map takes {} KiB of RAM\n",
                name.to_str().unwrap_or("?"),
                pagemap.folio_size().name(),
                pagemap.memmap_bytes() / 1024
            );
        }
        let attachments_name = CString::try_from(&*name)?;
        Arc::pin_init(
            try_pin_init!(Self {
                range,
                reserved_ram,
                name,
                state <- new_spinlock!(State {
                    attr,
                    maps: 0,
                    opens: 0,
                    transfers: 0,
                    copiers: 0,
                }),
                memtype <- new_mutex!(None),
                unlisted,
                attachments <- Attachments::new(attachments_name),
                claim <- ClaimWindow::new(claim),
            }),
            GFP_KERNEL,
        )
    }
}

/// Refuses pages mode (with a line on `dev` and `EINVAL`) for `reserve_mem` RAM, an attribute
/// other than write-back, and a range that is not 2 MiB aligned.
fn check_pages(
    dev: &Device,
    range: &PhysRange,
    reserved_ram: bool,
    attr: Option<CacheAttr>,
) -> Result {
    if reserved_ram {
        dev_err!(
            dev,
            "refusing pages=1 for {:#x}-{:#x}: reserve_mem memory is System RAM, which has struct pages already\n",
            range.base(),
            range.last()
        );
        return Err(EINVAL);
    }
    if let Some(attr) = attr.filter(|attr| *attr != CacheAttr::WriteBack) {
        dev_err!(
            dev,
            "refusing attribute {} with pages=1: a region with struct pages is write-back only\n",
            attr.name()
        );
        return Err(EINVAL);
    }
    if range.base() % PAGEMAP_ALIGN != 0 || range.size() % PAGEMAP_ALIGN != 0 {
        dev_err!(
            dev,
            "refusing pages=1 for {:#x}+{:#x}: base and size must be 2 MiB aligned (the memory map's sub-sections)\n",
            range.base(),
            range.size()
        );
        return Err(EINVAL);
    }
    Ok(())
}

/// Why `attr` cannot be given to a region (`reserved_ram`: memory from `reserve_mem=`), if it
/// cannot: never silently downgraded.
pub(super) fn unsupported(attr: CacheAttr, reserved_ram: bool) -> Option<&'static str> {
    if reserved_ram && attr != CacheAttr::WriteBack {
        Some("reserve_mem memory is System RAM the kernel maps write-back; only wb")
    } else if attr.needs_pat() && !memtype::pat_enabled() {
        Some("this CPU has no PAT in use")
    } else {
        None
    }
}
