// SPDX-License-Identifier: GPL-2.0

//! How a region is mapped into a process: PFN maps with the region's cache attribute
//! (`pfn_vma`), or, in pages mode, its struct pages (`page_vma`).

use kernel::{
    fs::File,
    mm::virt::VmaNew,
    page::PAGE_SHIFT,
    prelude::*,
    sync::Arc, //
};

use crate::{
    attr::CacheAttr,
    kernel_ext::{
        dev_pagemap::DevPagemap,
        iomem::{
            Claim,
            RequestedClaim, //
        },
        memtype::{
            CacheMode,
            HoldError,
            MemtypeHold, //
        },
        page_vma::{
            self,
            PageSource, //
        },
        pfn_vma::{
            self,
            MapError,
            PfnSource, //
        },
    },
};

use super::Region;

impl Region {
    /// Where to map `len` bytes from page `pgoff` of the region when the caller lets the kernel
    /// choose (`get_unmapped_area`): an address congruent with the physical one modulo 1 GiB
    /// where the window holds a whole aligned GiB, else modulo 2 MiB, so that whole blocks get
    /// 1 GiB or 2 MiB entries without the caller aligning anything.
    pub(crate) fn unmapped_area(
        &self,
        file: &File,
        addr: usize,
        len: usize,
        pgoff: usize,
        flags: usize,
    ) -> usize {
        let first = (self.range.base() >> PAGE_SHIFT) as usize;
        pfn_vma::unmapped_area(file, addr, len, pgoff.wrapping_add(first), flags)
    }

    /// Maps the window of the region that `vma` asks for (its page offset and length), with
    /// the region's cache attribute: 1 GiB and 2 MiB entries, filled at fault time, where the
    /// addresses allow them and the attribute fits them; otherwise every page now, with 4 KiB
    /// entries.
    ///
    /// A pages-mode region maps its struct pages instead, write-back, 4 KiB at a time, at fault
    /// time (`page_vma`): such mappings can be pinned.
    ///
    /// `EINVAL` for a private mapping or an offset that overflows; `ENXIO` for a window that
    /// does not lie inside the region (both refused by `pfn_vma` and `page_vma` themselves);
    /// `EACCES` for a writable mapping of a write-protected region; `EBUSY` when the kernel
    /// would give the mapping another memory type than the region's (another mapping of the
    /// range recorded one first), with a line saying which.
    pub(crate) fn map(self: &Arc<Self>, vma: &VmaNew) -> Result {
        if self.pages() {
            // Pages mode: the attribute is write-back for good (`set_attr`), and the pages are
            // mapped at fault time, one by one.
            return page_vma::map_on_fault(vma, self.clone()).map_err(MapError::errno);
        }
        // Counted as a mapping until it returns, so `set_attr` cannot change the type under
        // it; the abstraction counts the VMA itself once it maps it.
        let (attr, setup) = {
            let mut state = self.state.lock();
            if !state.attr.allows_write() && vma.writable() {
                return Err(EACCES);
            }
            state.maps += 1;
            (state.attr, MapSetup { region: self })
        };
        if !attr.allows_write() {
            // No later mprotect(PROT_WRITE) either.
            vma.try_clear_maywrite()?;
        }
        pfn_vma::set_cache_mode(vma, attr.cache_mode());
        // 2 MiB (and 1 GiB) entries, filled at fault time: the memory type is then recorded for the whole
        // range while mapped. Otherwise (and for reserve_mem RAM, which the kernel's direct map
        // already types) every page is mapped now, and the kernel records the type per VMA.
        let claim = self.claim.claim();
        let huge = !self.reserved_ram
            && attr.fits_huge_entries()
            && pfn_vma::is_shared(vma)
            && pfn_vma::can_map_huge(vma, claim);
        let hold = if huge {
            let mut memtype = self.memtype.lock();
            if memtype.is_none() {
                match MemtypeHold::reserve(claim, attr.cache_mode()) {
                    // No memory for the `Arc`: no record, every page now, as below.
                    Ok(hold) => *memtype = Arc::new(hold, GFP_KERNEL).ok(),
                    Err(HoldError::Conflict(in_force)) => {
                        return Err(self.type_conflict(attr, in_force));
                    }
                    // No record (no memory): every page now, as below.
                    Err(HoldError::Failed(_)) => {}
                }
            }
            memtype.clone()
        } else {
            None
        };
        let mapped = match hold {
            Some(hold) => pfn_vma::map_on_fault(vma, self.clone(), hold),
            None => pfn_vma::map_now(vma, self.clone()),
        };
        drop(setup);
        mapped.map_err(|err| match err {
            MapError::Conflict(in_force) => self.type_conflict(attr, in_force),
            err => err.errno(),
        })
    }

    /// Says that a mapping at `attr` would get `in_force` instead (or was refused by the
    /// kernel's memory-type tracking), and gives the errno for it.
    fn type_conflict(&self, attr: CacheAttr, in_force: Option<CacheMode>) -> Error {
        pr_err!(
            "{}: refusing a {} mapping of {:#x}-{:#x}: {} is in force for the range (another mapping of it, e.g. /dev/mem, recorded that type first)\n",
            self.display_name(),
            attr.name(),
            self.range.base(),
            self.range.last(),
            in_force.map_or("another memory type", CacheMode::name)
        );
        EBUSY
    }
}

/// A mapping being set up ([`Region::map`]): counted among the region's mappings until
/// dropped.
struct MapSetup<'a> {
    region: &'a Region,
}

impl Drop for MapSetup<'_> {
    fn drop(&mut self) {
        self.region.vma_gone();
    }
}

impl PfnSource for Region {
    type Claim = Claim;

    fn claim(&self) -> &Claim {
        self.claim.claim()
    }

    fn vma_opened(&self) {
        self.vma_added();
    }

    fn vma_closed(&self) {
        self.vma_gone();
    }
}

impl PageSource for Region {
    type Claim = RequestedClaim;

    fn pagemap(&self) -> Option<&DevPagemap<RequestedClaim>> {
        self.claim.claim().pagemap()
    }

    fn vma_opened(&self) {
        self.vma_added();
    }

    fn vma_closed(&self) {
        self.vma_gone();
    }
}

impl Region {
    /// A VMA maps the region now.
    fn vma_added(&self) {
        self.state.lock().maps += 1;
    }

    /// A VMA that mapped the region is gone (or a mapping being set up failed).
    fn vma_gone(&self) {
        let mut memtype = self.memtype.lock();
        let mut state = self.state.lock();
        state.maps = state.maps.saturating_sub(1);
        if state.maps == 0 {
            drop(state);
            // The last VMA is gone: the memory type record goes too (and `set_attr` may change
            // the attribute again).
            *memtype = None;
        }
    }
}
