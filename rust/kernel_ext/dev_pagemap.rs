// SPDX-License-Identifier: GPL-2.0

//! Struct pages for claimed device memory: a `memremap_pages` page map of type
//! `MEMORY_DEVICE_GENERIC` (as device-dax makes for its ranges), owned with the claim it covers
//! and undone (`memunmap_pages`) on drop, once no page of it is mapped or pinned any more.
//!
//! With struct pages the memory can be mapped page by page (`vm_normal_page` finds a page, not
//! a bare frame) and so pinned by `get_user_pages`: `O_DIRECT`, io_uring's registered buffers,
//! `vmsplice`, iommufd. The kernel maps the range write-back in its direct map, records the
//! write-back type for it (PAT) and allocates its memory map (64 bytes a 4 KiB page) from RAM:
//! the device memory itself is never read or written (no `altmap`).
//!
//! The pages form folios of one size for the whole page map ([`FolioSize`], device-dax's
//! `align`): 4 KiB (order 0), 2 MiB or 1 GiB (`vmemmap_shift`). Every entry that maps a large
//! folio maps all of it (a 2 MiB or 1 GiB entry): on x86 the kernel shares the tail pages'
//! memory map between the folios of a page map (`ARCH_WANT_OPTIMIZE_DAX_VMEMMAP`), so a 4 KiB
//! entry for a tail page would count its mapping in a `struct page` other tail pages share. A
//! page map of large folios has its own DAX address space ([`DaxSpace`]): the files that map it
//! use it, so that the mm core offers their VMAs 2 MiB and 1 GiB faults, as it does
//! device-dax's, and undoes 1 GiB entries with their folio references.
//!
//! A `MEMORY_DEVICE_GENERIC` page's count is 1 while idle; every mapping, reference and pin
//! adds to it, and `free_zone_device_folio` sets it back to 1 when the last is dropped. That is
//! how [`DevPagemap::busy_pages`] knows that pages are in use, and what `Drop` waits for:
//! freeing the memory map under a pinned page would leave the pin holder a freed `struct page`.
//!
//! The checks `memremap_pages` would otherwise answer with a kernel warning are made here
//! first: the range must not touch System RAM, must be aligned to the memory map's sub-sections
//! (2 MiB on x86), must lie where memory hotplug can map it, and must not already have a page
//! map.
//!
//! C: [`include/linux/memremap.h`], [`mm/memremap.c`]; the inline functions, and the calls that
//! exist only with `CONFIG_ZONE_DEVICE`, through `pages_helpers.c`.

use kernel::{
    bindings,
    page::PAGE_SHIFT,
    prelude::*,
    sync::Arc,
    types::Opaque, //
};

use crate::kernel_ext::{
    dax_space::DaxSpace,
    iomem::{
        self,
        Claimed,
        RamOverlap, //
    },
};

// Defined in `pages_helpers.c`. `pgmap` is a `struct dev_pagemap *`, whose fields include one
// that bindgen gives no members on a kernel without lockdep.
extern "C" {
    fn carveout_pgmap_check(start: u64, size: u64) -> c_int;
    fn carveout_pgmap_add(pgmap: *mut c_void, start: u64, size: u64, order: c_uint) -> c_int;
    fn carveout_pgmap_remove(pgmap: *mut c_void);
    fn carveout_pages_busy(pfn: usize, nr: usize, order: c_uint) -> usize;
    fn carveout_memmap_bytes(pgmap: *mut c_void, nr: usize) -> usize;
    fn carveout_folio_order_supported(order: c_uint) -> c_int;
}

/// The alignment of a page map's range: the memory map's sub-section (2 MiB on x86).
pub(crate) const PAGEMAP_ALIGN: u64 = bindings::SUBSECTION_SIZE as u64;

/// The size of the folios a page map's pages form, and so of every entry that maps them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FolioSize {
    /// 4 KiB: order-0 folios, mapped page by page.
    Page,
    /// 2 MiB folios, mapped by 2 MiB entries only.
    Pmd,
    /// 1 GiB folios, mapped by 1 GiB entries only.
    Pud,
}

impl FolioSize {
    /// The folio size of `bytes`: 4096, 2 MiB or 1 GiB.
    pub(crate) fn from_bytes(bytes: u64) -> Option<Self> {
        [Self::Page, Self::Pmd, Self::Pud]
            .into_iter()
            .find(|size| size.bytes() == bytes)
    }

    /// The folio's order: its pages are `1 << order`.
    pub(crate) fn order(self) -> u32 {
        match self {
            Self::Page => 0,
            Self::Pmd => bindings::PMD_SHIFT - PAGE_SHIFT as u32,
            Self::Pud => bindings::PUD_SHIFT - PAGE_SHIFT as u32,
        }
    }

    /// How many pages a folio has.
    pub(crate) fn pages(self) -> usize {
        1 << self.order()
    }

    /// The folio's size in bytes.
    pub(crate) fn bytes(self) -> u64 {
        1 << (self.order() + PAGE_SHIFT as u32)
    }

    /// The size as people write it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Page => "4 KiB",
            Self::Pmd => "2 MiB",
            Self::Pud => "1 GiB",
        }
    }
}

/// How long `Drop` sleeps between looks at pages still in use, in milliseconds.
const RELEASE_POLL_MS: c_uint = 100;

/// Why a claim could not be given struct pages ([`DevPagemap::new`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PagemapError {
    /// The claim is System RAM (`reserve_mem=`), which has struct pages already. `EINVAL`.
    Ram,
    /// Base or size is not a multiple of [`PAGEMAP_ALIGN`]. `EINVAL`.
    Unaligned,
    /// Base or size is not a multiple of the folio size. `EINVAL`.
    FolioUnaligned,
    /// This kernel cannot map folios of the size asked for with entries of their size (no
    /// `CONFIG_FS_DAX`, no transparent huge pages, or for 1 GiB no 1 GiB pages). `EOPNOTSUPP`.
    FolioUnsupported,
    /// Memory hotplug cannot map the range (beyond the direct map's reach). `ERANGE`.
    OutOfReach,
    /// A page map already covers part of the range. `EBUSY`.
    Conflict,
    /// The kernel has no `CONFIG_ZONE_DEVICE`. `EOPNOTSUPP`.
    Unsupported,
    /// `memremap_pages` failed (no memory for the memory map, or PAT refused write-back
    /// because part of the range is recorded with another type).
    Failed(Error),
}

impl PagemapError {
    /// The errno for the request that asked for the pages.
    pub(crate) fn errno(self) -> Error {
        match self {
            Self::Ram | Self::Unaligned | Self::FolioUnaligned => EINVAL,
            Self::FolioUnsupported => EOPNOTSUPP,
            Self::OutOfReach => ERANGE,
            Self::Conflict => EBUSY,
            Self::Unsupported => EOPNOTSUPP,
            Self::Failed(err) => err,
        }
    }

    /// Why, in words, for the refusal's line.
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Self::Ram => "System RAM has struct pages already",
            Self::Unaligned => {
                "base and size must be 2 MiB aligned (the memory map's sub-sections)"
            }
            Self::FolioUnaligned => "base and size must be multiples of pages_align (the folio size)",
            Self::FolioUnsupported => {
                "this kernel cannot map folios of that size whole (pages_align needs CONFIG_FS_DAX and transparent huge pages; 1 GiB also 1 GiB pages, gbpages)"
            }
            Self::OutOfReach => "beyond what memory hotplug can map",
            Self::Conflict => "another page map covers part of the range",
            Self::Unsupported => "this kernel has no CONFIG_ZONE_DEVICE",
            Self::Failed(_) => "memremap_pages failed",
        }
    }
}

/// Struct pages (`MEMORY_DEVICE_GENERIC`) for all of the memory of a claim, which it owns.
///
/// # Invariants
///
/// `pgmap` is a page map that `memremap_pages` set up for exactly `claim`'s range, which is not
/// System RAM, with folios of `folio` size (the range a multiple of it); it stays at its
/// address and is undone (`memunmap_pages`) only by `Drop`, before `claim` is released. So for
/// as long as the value lives, every frame of `claim` has a live `struct page` of `pgmap`.
/// `first_pfn` and `pages` are the frame of the range's first page and its number of pages.
/// `dax` is `Some` exactly when the folios are larger than a page.
pub(crate) struct DevPagemap<C: Claimed> {
    pgmap: KBox<Opaque<bindings::dev_pagemap>>,
    first_pfn: usize,
    pages: usize,
    folio: FolioSize,
    dax: Option<Arc<DaxSpace>>,
    /// Declared last: released after `Drop` has undone the page map.
    claim: C,
}

// SAFETY: The page map is only handed to the kernel's own (locked, RCU-protected) page-map
// code; nothing in it is tied to a thread.
unsafe impl<C: Claimed> Send for DevPagemap<C> {}
// SAFETY: `&DevPagemap` only reads page counts and frame numbers.
unsafe impl<C: Claimed> Sync for DevPagemap<C> {}

impl<C: Claimed> DevPagemap<C> {
    /// Gives the memory of `claim` struct pages as device memory; the claim is released if it
    /// fails. Refuses (see [`PagemapError`]) what `memremap_pages` would refuse with a kernel
    /// warning, before calling it.
    pub(crate) fn new(claim: C, folio: FolioSize) -> Result<Self, PagemapError> {
        let range = claim.claimed_range();
        if claim.is_ram() || !matches!(iomem::system_ram_overlap(&range), Ok(RamOverlap::Disjoint))
        {
            return Err(PagemapError::Ram);
        }
        if range.base() % PAGEMAP_ALIGN != 0 || range.size() % PAGEMAP_ALIGN != 0 {
            return Err(PagemapError::Unaligned);
        }
        if range.base() % folio.bytes() != 0 || range.size() % folio.bytes() != 0 {
            return Err(PagemapError::FolioUnaligned);
        }
        // SAFETY: Only reads the kernel's configuration and the CPU's features.
        if unsafe { carveout_folio_order_supported(folio.order()) } == 0 {
            return Err(PagemapError::FolioUnsupported);
        }
        let first_pfn =
            usize::try_from(range.base() >> PAGE_SHIFT).map_err(|_| PagemapError::OutOfReach)?;
        let pages =
            usize::try_from(range.size() >> PAGE_SHIFT).map_err(|_| PagemapError::OutOfReach)?;
        // SAFETY: Only reads the page-map table and the hotplug limits; any range is valid.
        match unsafe { carveout_pgmap_check(range.base(), range.size()) } {
            0 => {}
            ret if ret == EOPNOTSUPP.to_errno() => return Err(PagemapError::Unsupported),
            ret if ret == EBUSY.to_errno() => return Err(PagemapError::Conflict),
            _ => return Err(PagemapError::OutOfReach),
        }
        let dax = match folio {
            FolioSize::Page => None,
            _ => Some(
                Arc::new(DaxSpace::new().map_err(PagemapError::Failed)?, GFP_KERNEL)
                    .map_err(|_| PagemapError::Failed(ENOMEM))?,
            ),
        };
        let pgmap = KBox::new(Opaque::<bindings::dev_pagemap>::zeroed(), GFP_KERNEL)
            .map_err(|_| PagemapError::Failed(ENOMEM))?;
        // SAFETY: `pgmap` is zeroed, at a stable heap address, and kept there until `Drop`
        // undoes the map (or dropped right here if this fails, when nothing refers to it). The
        // range is the claim's, held by us until then: device memory (not System RAM, checked
        // above), aligned to sub-sections and to the folio size, within hotplug's reach, with
        // no page map yet, so `memremap_pages` neither warns nor touches memory anyone else
        // owns.
        let ret = unsafe {
            carveout_pgmap_add(
                pgmap.get().cast(),
                range.base(),
                range.size(),
                folio.order(),
            )
        };
        if ret != 0 {
            return Err(PagemapError::Failed(Error::from_errno(ret)));
        }
        // INVARIANT: `memremap_pages` set up the page map for exactly the claim's range, with
        // folios of `folio` size; `dax` is there for large folios.
        Ok(Self {
            pgmap,
            first_pfn,
            pages,
            folio,
            dax,
            claim,
        })
    }

    /// The claim whose memory has the pages.
    pub(crate) fn claim(&self) -> &C {
        &self.claim
    }

    /// The size of the folios the pages form.
    pub(crate) fn folio_size(&self) -> FolioSize {
        self.folio
    }

    /// The DAX address space the files that map the pages use (large folios only).
    pub(crate) fn dax_space(&self) -> Option<&Arc<DaxSpace>> {
        self.dax.as_ref()
    }

    /// The frame of page `index` of the claim, which has a `struct page` of this page map for
    /// as long as `self` lives; `None` past the end of the claim.
    pub(crate) fn frame(&self, index: usize) -> Option<usize> {
        (index < self.pages).then(|| self.first_pfn + index)
    }

    /// The RAM the memory map of the pages takes: a `struct page` each, or for large folios
    /// (whose tail pages share their memory map) the memory map's first two pages a folio.
    pub(crate) fn memmap_bytes(&self) -> usize {
        // SAFETY: The page map is live (type invariant); the call reads its folio size.
        unsafe { carveout_memmap_bytes(self.pgmap.get().cast(), self.pages) }
    }

    /// How many pages someone maps, pins or otherwise holds now (the pages of every folio
    /// whose count is not the idle 1). The answer is stale at once unless the caller keeps new
    /// mappings from being made.
    pub(crate) fn busy_pages(&self) -> usize {
        // SAFETY: `first_pfn..first_pfn + pages` are the pages of this live page map, in whole
        // folios of `folio`'s order (type invariant); the call only reads the folios' counts
        // (and may reschedule: no lock is held here).
        unsafe { carveout_pages_busy(self.first_pfn, self.pages, self.folio.order()) }
    }
}

impl<C: Claimed> Drop for DevPagemap<C> {
    fn drop(&mut self) {
        // Nothing new can map a page now (whatever mapped them held a reference to `self`), but
        // a pin (an io_uring's registered buffer, an `O_DIRECT` in flight) may outlive every
        // mapping: the memory map is freed only once the last page is back.
        let mut said = false;
        loop {
            let busy = self.busy_pages();
            if busy == 0 {
                break;
            }
            if !said {
                let range = self.claim.claimed_range();
                pr_info!(
                    "{:#x}-{:#x}: waiting until {} pinned page(s) are released before freeing their struct pages\n",
                    range.base(),
                    range.last(),
                    busy
                );
                said = true;
            }
            // SAFETY: Sleeps in process context (dropping a region happens there: module
            // unload, a configfs write or rmdir, a file's release).
            unsafe { bindings::msleep(RELEASE_POLL_MS) };
        }
        // SAFETY: The page map was set up by `memremap_pages` (type invariant) and is undone
        // once, here, with no page of it in use.
        unsafe { carveout_pgmap_remove(self.pgmap.get().cast()) };
    }
}
