// SPDX-License-Identifier: GPL-2.0

//! VMAs that map the struct pages of a [`DevPagemap`] (pages mode), filled at fault time one
//! folio at a time, as device-dax's: 4 KiB pages with 4 KiB entries (`vmf_insert_page_mkwrite`),
//! 2 MiB and 1 GiB folios whole with 2 MiB and 1 GiB entries (`vmf_insert_folio_pmd/pud`), with
//! `open`/`close` operations that let the source count the VMAs (and every copy by fork or
//! split) that map it.
//!
//! A mapping of large folios must map whole folios: its address, length and offset are
//! multiples of the folio size (`EINVAL` otherwise), it cannot be split elsewhere (`munmap` or
//! `mprotect` of part of it, `may_split`), and a fault that cannot be served by an entry of the
//! folio's size (a mapping moved by `mremap` to an address of another alignment) gets
//! `SIGBUS`. The mm core offers such a VMA 2 MiB and 1 GiB faults because its file maps through
//! the page map's DAX address space ([`super::dax_space`]).
//!
//! Unlike a PFN map (`pfn_vma.rs`) the VMA is neither `VM_PFNMAP` nor `VM_IO`, and its entries
//! are not special: they count as references to their pages, are in the rmap, and
//! `get_user_pages` can pin them (`O_DIRECT`, io_uring's registered buffers, `vmsplice`,
//! iommufd). The entries are write-back only: the kernel's direct map of the pages is.
//!
//! Each VMA owns a reference to the source (an [`Arc`] in `vm_private_data`): `open` takes one
//! for a copy, `close` drops it, so the page map outlives every VMA whatever its owner does; a
//! pin may outlive the VMA, which the page map itself waits for when dropped.
//!
//! The pages' `mapping` field is left empty, unlike device-dax's (`dax_set_mapping`), which
//! points it at the device's own inode mapping with a `dirty_folio` that does nothing: the
//! mapping of a character device's inode has no `dirty_folio`, which `folio_mark_dirty` (at the
//! end of an `O_DIRECT` read into the pages) would call. With no mapping it marks nothing; the
//! rmap and `get_user_pages` need none (a long-term writable pin takes the slow path).
//!
//! The abstraction decides everything soundness rests on by itself: the frames come only from
//! the source's page map ([`DevPagemap`], whose claim only [`super::iomem`] makes), every page
//! offset is checked against it at fault time, the VMA must be shared and not set up already,
//! and its entries are write-back.

use kernel::{
    bindings,
    mm::virt::VmaNew,
    prelude::*,
    sync::Arc,
    types::ForeignOwnable, //
};

use crate::kernel_ext::{
    dev_pagemap::{
        DevPagemap,
        FolioSize, //
    },
    iomem::Claimed,
    memtype::CacheMode,
    pfn_vma::{
        self,
        MapError, //
    },
    ratelimit,
};

// Defined in `pages_helpers.c`.
extern "C" {
    // `struct vm_fault *`, which holds a field bindgen gives no members.
    fn carveout_insert_page(vmf: *mut c_void, pfn: usize, write: bool) -> bindings::vm_fault_t;
    fn carveout_insert_folio(
        vmf: *mut c_void,
        pfn: usize,
        order: c_uint,
        write: bool,
    ) -> bindings::vm_fault_t;
}

/// Something that owns a page map whose pages VMAs map.
///
/// An implementation decides which of its page maps is mapped, never which pages: those come
/// from the page map, checked here. The VMA keeps the source (and so the page map) alive.
pub(crate) trait PageSource: Send + Sync + 'static {
    /// The kind of claim the page map covers.
    type Claim: Claimed;

    /// The page map whose pages VMAs of this source map (page `vm_pgoff` of a VMA is page
    /// `vm_pgoff` of the page map); `None` if the source has none, when [`map_on_fault`]
    /// refuses and a fault gets `SIGBUS`.
    fn pagemap(&self) -> Option<&DevPagemap<Self::Claim>>;

    /// A VMA now maps it (a new mapping, or a copy by fork or a split). Called by
    /// [`map_on_fault`] before it sets anything up, and by the VMA's `open`.
    fn vma_opened(&self);

    /// A VMA that mapped it is gone, or a [`map_on_fault`] that counted one failed.
    fn vma_closed(&self);
}

/// Sets `vma` up to be filled at fault time with the pages of `source`'s page map it asks for
/// (its page offset and length), write-back, and makes `source` count the VMA and its copies.
/// Sets `VM_DONTEXPAND | VM_DONTDUMP`; the VMA stays pinnable (no `VM_IO`, no `VM_PFNMAP`).
///
/// Refuses a private mapping ([`MapError::Private`]: a copy-on-write VMA would copy the pages
/// into anonymous memory), a window not inside the page map ([`MapError::Window`]), a VMA
/// already set up, a source without a page map, and for large folios a VMA whose address,
/// length or offset is not a multiple of the folio size (`EINVAL`, with a line).
pub(crate) fn map_on_fault<T: PageSource>(vma: &VmaNew, source: Arc<T>) -> Result<(), MapError> {
    if !pfn_vma::is_shared(vma) {
        if ratelimit::refusal_may_print() {
            pr_err!(
                "page_vma: refusing a private mapping: device pages are mapped shared only (MAP_SHARED)\n"
            );
        }
        return Err(MapError::Private);
    }
    let (vm_flags, private, pgoff) = pfn_vma::setup_fields(vma);
    if vm_flags & (bindings::VM_PFNMAP | bindings::VM_MIXEDMAP | bindings::VM_IO) != 0
        || !private.is_null()
    {
        return Err(MapError::Failed(EINVAL));
    }
    let len = (vma.end() - vma.start()) as u64;
    let pagemap = source.pagemap().ok_or(MapError::Failed(EINVAL))?;
    let claim = pagemap.claim().claimed_range();
    pfn_vma::claim_window(&claim, pgoff as u64, len).map_err(MapError::Window)?;
    let folio = pagemap.folio_size();
    let offset = (pgoff as u64) << kernel::page::PAGE_SHIFT;
    if [vma.start() as u64, len, offset]
        .iter()
        .any(|value| value % folio.bytes() != 0)
    {
        if ratelimit::refusal_may_print() {
            pr_err!(
                "page_vma: refusing a mapping of {:#x} bytes at offset {:#x} to {:#x}: the pages form {} folios, mapped whole (address, length and offset multiples of {:#x})\n",
                len,
                offset,
                vma.start(),
                folio.name(),
                folio.bytes()
            );
        }
        return Err(MapError::Failed(EINVAL));
    }
    source.vma_opened();
    vma.set_dontexpand();
    vma.set_dontdump();
    // The kernel's direct map of the pages is write-back: so are the entries.
    pfn_vma::set_cache_mode(vma, CacheMode::WriteBack);
    let raw = vma.as_ptr();
    let ops = match folio {
        FolioSize::Page => const { &VmOps::<T>::FAULTING },
        FolioSize::Pmd | FolioSize::Pud => const { &VmOps::<T>::FOLIOS },
    };
    // SAFETY: `vma` is being set up under the mmap lock and not yet visible to anyone else; the
    // ops are a `'static` constant whose callbacks expect an `Arc<T>` in the private data,
    // which the VMA now owns.
    unsafe {
        (*raw).vm_ops = ops;
        (*raw).vm_private_data = source.into_foreign();
    }
    Ok(())
}

/// The `vm_operations_struct` for VMAs of a `T`.
struct VmOps<T>(core::marker::PhantomData<T>);

const SIGBUS: bindings::vm_fault_t =
    bindings::vm_fault_reason_VM_FAULT_SIGBUS as bindings::vm_fault_t;
const FALLBACK: bindings::vm_fault_t =
    bindings::vm_fault_reason_VM_FAULT_FALLBACK as bindings::vm_fault_t;

impl<T: PageSource> VmOps<T> {
    const FAULTING: bindings::vm_operations_struct = bindings::vm_operations_struct {
        open: Some(Self::open),
        close: Some(Self::close),
        fault: Some(Self::fault),
        ..pin_init::zeroed()
    };

    /// For a page map of large folios: every fault maps a whole folio.
    const FOLIOS: bindings::vm_operations_struct = bindings::vm_operations_struct {
        open: Some(Self::open),
        close: Some(Self::close),
        fault: Some(Self::fault),
        huge_fault: Some(Self::huge_fault),
        may_split: Some(Self::may_split),
        pagesize: Some(Self::pagesize),
        ..pin_init::zeroed()
    };

    /// # Safety
    ///
    /// Called by the mm core for a copy of a VMA set up by [`map_on_fault`] (fork, split),
    /// whose private data the copy shares.
    unsafe extern "C" fn open(vma: *mut bindings::vm_area_struct) {
        // SAFETY: By the function's safety requirement the private data is an `Arc<T>` the
        // original VMA owns.
        let data = unsafe { <Arc<T>>::borrow((*vma).vm_private_data) };
        let data: Arc<T> = data.into();
        data.vma_opened();
        // SAFETY: The copy owns the reference just taken; its `close` drops it.
        unsafe { (*vma).vm_private_data = data.into_foreign() };
    }

    /// # Safety
    ///
    /// Called by the mm core once for each VMA set up by [`map_on_fault`] or copied by `open`.
    unsafe extern "C" fn close(vma: *mut bindings::vm_area_struct) {
        // SAFETY: The VMA owns one reference in its private data, given back here.
        let source = unsafe { <Arc<T>>::from_foreign((*vma).vm_private_data) };
        source.vma_closed();
    }

    /// A 4 KiB entry for the faulting page: the page itself, counted and in the rmap. `SIGBUS`
    /// for a page of a large folio, which only an entry of the folio's size may map.
    ///
    /// # Safety
    ///
    /// `vmf` is a fault on a VMA set up by [`map_on_fault`], under its lock.
    unsafe extern "C" fn fault(vmf: *mut bindings::vm_fault) -> bindings::vm_fault_t {
        // SAFETY: By the function's safety requirement `vmf` and its VMA are valid.
        let (vma, pgoff, fault_flags) = unsafe {
            let fault = &(*vmf).__bindgen_anon_1;
            (fault.vma, fault.pgoff, (*vmf).flags)
        };
        // SAFETY: The VMA was set up by `map_on_fault` and is open during its faults.
        let frame = unsafe {
            Self::with_pagemap(vma, |pagemap| {
                pagemap
                    .filter(|pagemap| pagemap.folio_size() == FolioSize::Page)
                    .and_then(|pagemap| pagemap.frame(pgoff))
            })
        };
        let Some(pfn) = frame else {
            return SIGBUS;
        };
        let write = fault_flags & bindings::fault_flag_FAULT_FLAG_WRITE != 0;
        // SAFETY: `vmf` is a fault under the VMA's lock on a shared VMA that is neither
        // `VM_PFNMAP` nor `VM_MIXEDMAP` (`map_on_fault`) with write-back entries; `pfn` is a page
        // of the page map the VMA keeps alive, so its `struct page` lives while the entry (which
        // holds a reference to it) does.
        unsafe { carveout_insert_page(vmf.cast(), pfn, write) }
    }
}

impl<T: PageSource> VmOps<T> {
    /// Calls `f` with the page map a VMA set up by [`map_on_fault`] maps.
    ///
    /// # Safety
    ///
    /// `vma` was set up by [`map_on_fault`] (or copied by `open`) and is not closed during the
    /// call.
    unsafe fn with_pagemap<R>(
        vma: *mut bindings::vm_area_struct,
        f: impl FnOnce(Option<&DevPagemap<T::Claim>>) -> R,
    ) -> R {
        // SAFETY: The VMA owns an `Arc<T>` in its private data until `close`.
        let data = unsafe { <Arc<T>>::borrow((*vma).vm_private_data) };
        f(data.pagemap())
    }

    /// A 2 MiB or 1 GiB entry for the folio the faulting address lies in, whole, counted and
    /// in the rmap: for a fault of the folio's order. A larger order falls back to the next
    /// (the mm core then asks for 2 MiB); a smaller one, or a folio the VMA does not cover
    /// whole or at its own alignment, gets `SIGBUS`.
    ///
    /// # Safety
    ///
    /// `vmf` is a fault on a VMA set up by [`map_on_fault`] with [`VmOps::FOLIOS`], under its
    /// lock.
    unsafe extern "C" fn huge_fault(
        vmf: *mut bindings::vm_fault,
        order: c_uint,
    ) -> bindings::vm_fault_t {
        // SAFETY: By the function's safety requirement `vmf` and its VMA are valid, and the
        // VMA's bounds do not change while it faults under its lock.
        let (vma, fault_at, fault_flags) = unsafe {
            let fault = &(*vmf).__bindgen_anon_1;
            let bounds = &(*fault.vma).__bindgen_anon_1.__bindgen_anon_1;
            let fault_at = FaultAt {
                address: fault.address,
                pgoff: fault.pgoff,
                vm_start: bounds.vm_start,
                vm_end: bounds.vm_end,
            };
            (fault.vma, fault_at, (*vmf).flags)
        };
        // SAFETY: The VMA is set up by `map_on_fault` and open during its faults.
        let frame = unsafe {
            Self::with_pagemap(vma, |pagemap| {
                pagemap.map_or(Err(SIGBUS), |pagemap| {
                    folio_frame(pagemap, order, &fault_at)
                })
            })
        };
        let pfn = match frame {
            Ok(pfn) => pfn,
            Err(code) => return code,
        };
        let write = fault_flags & bindings::fault_flag_FAULT_FLAG_WRITE != 0;
        // SAFETY: `vmf` is a fault under the VMA's lock on a shared VMA that is neither
        // `VM_PFNMAP` nor `VM_MIXEDMAP` (`map_on_fault`) with write-back entries, covering the
        // folio-aligned block around the address; `pfn` starts a folio-aligned run of frames of
        // the page map the VMA keeps alive (the helper checks that they are one folio of
        // `order`).
        unsafe { carveout_insert_folio(vmf.cast(), pfn, order, write) }
    }

    /// Refuses to split a VMA of large folios anywhere but at a folio boundary.
    ///
    /// # Safety
    ///
    /// `vma` is a VMA set up by [`map_on_fault`] with [`VmOps::FOLIOS`].
    unsafe extern "C" fn may_split(vma: *mut bindings::vm_area_struct, addr: c_ulong) -> c_int {
        // SAFETY: The VMA is open while the mm core splits it.
        unsafe {
            Self::with_pagemap(vma, |pagemap| match pagemap {
                Some(pagemap) if addr as u64 % pagemap.folio_size().bytes() == 0 => 0,
                _ => EINVAL.to_errno(),
            })
        }
    }

    /// The size of the VMA's entries (`KernelPageSize` in `smaps`).
    ///
    /// # Safety
    ///
    /// `vma` is a VMA set up by [`map_on_fault`] with [`VmOps::FOLIOS`].
    unsafe extern "C" fn pagesize(vma: *mut bindings::vm_area_struct) -> c_ulong {
        // SAFETY: The VMA is open while the mm core asks.
        let bytes = unsafe {
            Self::with_pagemap(vma, |pagemap| {
                pagemap.map_or(kernel::page::PAGE_SIZE as u64, |pagemap| {
                    pagemap.folio_size().bytes()
                })
            })
        };
        bytes as c_ulong
    }
}

/// Where a fault is: the user address, its page offset, and the VMA's bounds.
struct FaultAt {
    address: usize,
    pgoff: usize,
    vm_start: usize,
    vm_end: usize,
}

/// The first frame of the folio a fault of `order` at `at` maps: `FALLBACK` for an order above
/// the folio's (the mm core then asks for the next), `SIGBUS` for one below it, or for a folio
/// the VMA does not cover whole at its own alignment.
fn folio_frame<C: Claimed>(
    pagemap: &DevPagemap<C>,
    order: c_uint,
    at: &FaultAt,
) -> Result<usize, bindings::vm_fault_t> {
    let folio = pagemap.folio_size();
    if order > folio.order() {
        return Err(FALLBACK);
    }
    if order < folio.order() {
        return Err(SIGBUS);
    }
    let size = folio.bytes() as usize;
    let first = pfn_vma::large_block_pgoff(at.address, at.pgoff, at.vm_start, at.vm_end, size)
        .filter(|first| first % folio.pages() == 0)
        .ok_or(SIGBUS)?;
    match (
        pagemap.frame(first),
        pagemap.frame(first + folio.pages() - 1),
    ) {
        (Some(pfn), Some(_)) => Ok(pfn),
        _ => Err(SIGBUS),
    }
}
