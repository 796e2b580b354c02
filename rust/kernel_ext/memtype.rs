// SPDX-License-Identifier: GPL-2.0

//! x86 PAT memory types (`enum page_cache_mode`): the cache bits that select each in a
//! page-table entry, and the kernel's record of a physical range's type (its memtype list,
//! `/sys/kernel/debug/x86/pat_memtype_list`), held while mappings filled at fault time need it.
//!
//! Mappings made at fault time (`vmf_insert_pfn`, `vmf_insert_pfn_pmd`) take their type from
//! that record (`pfnmap_setup_cachemode`); a non-RAM range with no record gets UC-. Linux 7.3
//! exports one way to record a type without a kernel mapping, `arch_io_reserve_memtype_wc`,
//! and only for write-combining. For the other types the record comes with an `ioremap_prot`
//! of the range: the kernel maps it with 2 MiB or 1 GiB entries where the range is aligned
//! (`ioremap_max_page_shift`), so its page tables stay a few entries, and the mapping has the
//! record's own type, so nothing aliases with another type. Nothing ever reads or writes
//! through it.
//!
//! The kernel may hand a request a *compatible* type instead of the one asked for, when another
//! mapping recorded the range first (`memtype_reserve` with a `new_type`): [`MemtypeHold`]
//! checks the type it got from the page-table entry of a mapping made under the record.

use core::ptr::NonNull;

use kernel::{
    bindings,
    page::PAGE_SIZE,
    prelude::*, //
};

use super::iomem::Claimed;
use crate::range::PhysRange;

/// A memory type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CacheMode {
    /// UC: uncached, whatever the MTRRs say.
    Uncached,
    /// UC-: uncached unless an MTRR says write-combining (`pgprot_noncached`).
    UncachedMinus,
    /// WC.
    WriteCombining,
    /// WT.
    WriteThrough,
    /// WB.
    WriteBack,
    /// WP.
    WriteProtect,
}

const ALL: [CacheMode; 6] = [
    CacheMode::Uncached,
    CacheMode::UncachedMinus,
    CacheMode::WriteCombining,
    CacheMode::WriteThrough,
    CacheMode::WriteBack,
    CacheMode::WriteProtect,
];

/// The cache bits of a 4 KiB entry: PWT, PCD and PAT (bit 7).
pub(crate) const PTE_CACHE_MASK: usize = (1 << bindings::_PAGE_BIT_PWT)
    | (1 << bindings::_PAGE_BIT_PCD)
    | (1 << bindings::_PAGE_BIT_PAT);

/// The PAT bit of a 2 MiB or 1 GiB entry (bit 7 is PSE there).
const PAT_LARGE: usize = 1 << bindings::_PAGE_BIT_PAT_LARGE;

impl CacheMode {
    fn raw(self) -> bindings::page_cache_mode {
        match self {
            Self::Uncached => bindings::page_cache_mode__PAGE_CACHE_MODE_UC,
            Self::UncachedMinus => bindings::page_cache_mode__PAGE_CACHE_MODE_UC_MINUS,
            Self::WriteCombining => bindings::page_cache_mode__PAGE_CACHE_MODE_WC,
            Self::WriteThrough => bindings::page_cache_mode__PAGE_CACHE_MODE_WT,
            Self::WriteBack => bindings::page_cache_mode__PAGE_CACHE_MODE_WB,
            Self::WriteProtect => bindings::page_cache_mode__PAGE_CACHE_MODE_WP,
        }
    }

    /// The cache bits (PWT, PCD, PAT) of a 4 KiB entry that select this type through the PAT
    /// the kernel programmed at boot.
    pub(crate) fn pte_bits(self) -> usize {
        // SAFETY: `cachemode2protval` only reads the translation table set up at boot.
        let bits = unsafe { bindings::cachemode2protval(self.raw()) };
        bits as usize & PTE_CACHE_MASK
    }

    /// Whether a 2 MiB or 1 GiB entry can select this type with the bits a 4 KiB entry uses:
    /// only if its PAT index does not need bit 2 (the PAT bit, bit 7 of a 4 KiB entry, is bit
    /// 12 of a large one, and neither `vmf_insert_pfn_pmd` nor `vmf_insert_pfn_pud` moves it).
    /// Not WT or WP as the kernel programs the PAT.
    pub(crate) fn fits_large_entry(self) -> bool {
        self.pte_bits() & (1 << bindings::_PAGE_BIT_PAT) == 0
    }

    /// The type that the cache bits of a 4 KiB entry select, if one of these.
    pub(crate) fn from_pte_bits(bits: usize) -> Option<Self> {
        let bits = bits & PTE_CACHE_MASK;
        ALL.into_iter().find(|mode| mode.pte_bits() == bits)
    }

    /// The type that the cache bits of a 2 MiB or 1 GiB entry select: the PAT bit is bit 12
    /// there.
    pub(crate) fn from_large_entry_bits(bits: usize) -> Option<Self> {
        let pat = if bits & PAT_LARGE != 0 {
            1 << bindings::_PAGE_BIT_PAT
        } else {
            0
        };
        let pwt_pcd = bits & ((1 << bindings::_PAGE_BIT_PWT) | (1 << bindings::_PAGE_BIT_PCD));
        Self::from_pte_bits(pwt_pcd | pat)
    }

    /// The name the kernel's PAT code gives the type (`pat_memtype_list`, its log lines).
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Uncached => "uncached",
            Self::UncachedMinus => "uncached-minus",
            Self::WriteCombining => "write-combining",
            Self::WriteThrough => "write-through",
            Self::WriteBack => "write-back",
            Self::WriteProtect => "write-protected",
        }
    }

    /// The page protection of a kernel mapping of this type.
    pub(crate) fn pgprot(self) -> bindings::pgprot_t {
        bindings::pgprot_t {
            pgprot: self.pte_bits(),
        }
    }
}

/// Whether the CPU's page attribute table is in use: without it, x86 can give only write-back
/// and uncached mappings.
pub(crate) fn pat_enabled() -> bool {
    // SAFETY: `pat_enabled` only reads a boot-time flag.
    unsafe { bindings::pat_enabled() }
}

/// Why a type could not be recorded for a range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HoldError {
    /// Another type is in force for (part of) the range: recorded by another mapping first.
    /// `None` when the kernel refused without saying which.
    Conflict(Option<CacheMode>),
    /// Anything else (no memory, no PAT, a range the kernel does not map).
    Failed(Error),
}

/// A kernel mapping of physical memory (`ioremap_prot`) that nothing reads or writes; it holds
/// the range's memory-type record. Unmapped on drop.
///
/// # Invariants
///
/// `addr` was returned by `ioremap_prot` and is not yet unmapped.
struct IoMapping {
    addr: NonNull<c_void>,
}

impl IoMapping {
    /// Maps `len` bytes from `phys` with `mode`, recording the type if nothing is recorded yet.
    /// `[phys, phys + len)` is part of a claim that is not System RAM ([`MemtypeHold::reserve`]
    /// checks it; the only caller).
    fn new(phys: u64, len: u64, mode: CacheMode) -> Result<Self, HoldError> {
        let len = c_ulong::try_from(len).map_err(|_| HoldError::Failed(EINVAL))?;
        // SAFETY: The range is claimed memory that is not System RAM (see above), so no page
        // of the kernel's lies in it and no cached alias of it exists for the kernel's own use;
        // `ioremap_prot` maps it with `mode` and records the type (or refuses a conflicting
        // one). Nothing reads or writes through the mapping.
        let addr = unsafe { bindings::ioremap_prot(phys, len, mode.pgprot()) };
        // INVARIANT: A non-NULL result is a live mapping. NULL: the kernel refused the type
        // (it says which in its own log line) or had no memory.
        NonNull::new(addr)
            .map(|addr| Self { addr })
            .ok_or(HoldError::Conflict(None))
    }

    /// The type the kernel gave the mapping: the cache bits of its first page-table entry.
    fn mode(&self) -> Option<CacheMode> {
        let mut level: c_uint = 0;
        // SAFETY: `lookup_address` walks the kernel's page tables for an address; the mapping
        // is live by the type invariant, so its entries stay while this reads them.
        let entry = unsafe { bindings::lookup_address(self.addr.as_ptr() as c_ulong, &mut level) };
        if entry.is_null() {
            return None;
        }
        // SAFETY: A non-NULL result points to the live entry that maps the address.
        let bits = unsafe { (*entry).pte } as usize;
        if level == bindings::pg_level_PG_LEVEL_4K {
            CacheMode::from_pte_bits(bits)
        } else {
            CacheMode::from_large_entry_bits(bits)
        }
    }
}

impl Drop for IoMapping {
    fn drop(&mut self) {
        // SAFETY: `addr` is a live ioremap by the type invariant, unmapped only here.
        unsafe { bindings::iounmap(self.addr.as_ptr()) };
    }
}

/// How a [`MemtypeHold`] holds its record.
enum Record {
    /// `arch_io_reserve_memtype_wc` of `start..start + size`.
    WriteCombining { start: u64, size: u64 },
    /// A mapping of the whole range.
    Mapping(#[allow(dead_code)] IoMapping),
}

/// The kernel's record of the memory type of a physical range, held for as long as this
/// exists.
///
/// # Invariants
///
/// The record is of type `mode` for all of `range`, a claim of memory that is not System RAM,
/// and is in force while this exists: PAT gives any other request for (part of) the range
/// that same type or refuses it. For `Record::WriteCombining`, `arch_io_reserve_memtype_wc`
/// succeeded for the range and is not yet undone.
pub(crate) struct MemtypeHold {
    record: Record,
    range: PhysRange,
    mode: CacheMode,
}

impl MemtypeHold {
    /// Records `mode` for all of `claim`, which must not be System RAM (`EINVAL`: the kernel
    /// types RAM through its direct map). Refuses with [`HoldError::Conflict`] if another type
    /// is in force for it.
    pub(crate) fn reserve(claim: &impl Claimed, mode: CacheMode) -> Result<Self, HoldError> {
        if !pat_enabled() {
            return Err(HoldError::Failed(EOPNOTSUPP));
        }
        if claim.is_ram() {
            return Err(HoldError::Failed(EINVAL));
        }
        let range = &claim.claimed_range();
        let hold = if mode == CacheMode::WriteCombining {
            // SAFETY: `memtype_reserve_io` records the type and then syncs the kernel's direct
            // map of the range to it, which it does only for a range that starts in System
            // RAM (`memtype_kernel_map_sync` checks `page_is_ram`): the claim is not RAM, so
            // only the record is made. It is freed in `Drop`.
            let ret = unsafe { bindings::arch_io_reserve_memtype_wc(range.base(), range.size()) };
            if ret != 0 {
                return Err(HoldError::Conflict(None));
            }
            Self {
                record: Record::WriteCombining {
                    start: range.base(),
                    size: range.size(),
                },
                range: *range,
                mode,
            }
        } else {
            Self {
                record: Record::Mapping(IoMapping::new(range.base(), range.size(), mode)?),
                range: *range,
                mode,
            }
        };
        // The record's type, seen through a mapping made under it: the kernel may have handed
        // either request a compatible type recorded earlier.
        let in_force = match &hold.record {
            Record::Mapping(mapping) => mapping.mode(),
            Record::WriteCombining { .. } => {
                IoMapping::new(range.base(), PAGE_SIZE as u64, mode)?.mode()
            }
        };
        if in_force != Some(mode) {
            return Err(HoldError::Conflict(in_force));
        }
        // INVARIANT: Recorded above for all of the claim, non-RAM, and the type in force is
        // `mode`.
        Ok(hold)
    }

    /// The range the record covers: all of the claim it was made for.
    pub(crate) fn range(&self) -> PhysRange {
        self.range
    }

    /// The type in force for the range while this exists.
    pub(crate) fn mode(&self) -> CacheMode {
        self.mode
    }
}

impl Drop for MemtypeHold {
    fn drop(&mut self) {
        if let Record::WriteCombining { start, size } = self.record {
            // SAFETY: Reserved by the type invariant, and freed only here.
            unsafe { bindings::arch_io_free_memtype_wc(start, size) };
        }
    }
}

// SAFETY: The record may be given back from any thread; nothing is accessed through it.
unsafe impl Send for MemtypeHold {}
// SAFETY: `&MemtypeHold` gives no access to anything.
unsafe impl Sync for MemtypeHold {}
