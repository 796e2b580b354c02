// SPDX-License-Identifier: GPL-2.0

//! VMAs that map physical page frames (`VM_PFNMAP`) of a source the VMA keeps alive: mapped
//! whole at `mmap` time (`remap_pfn_range`, 4 KiB entries) or filled at fault time (2 MiB
//! entries where the block fits, 4 KiB elsewhere), with `open`/`close` operations that let the
//! source count the VMAs (and every copy by fork or split) that map it.
//!
//! Each VMA owns a reference to the source (an [`Arc`] in `vm_private_data`): `open` takes one
//! for a copy, `close` drops it, so the source outlives every VMA whatever its owner does.

use kernel::{
    bindings,
    fs::File,
    mm::virt::{
        flags,
        VmaNew, //
    },
    page::PAGE_SHIFT,
    prelude::*,
    sync::Arc,
    types::ForeignOwnable, //
};

use crate::{
    kernel_ext::memtype::{
        CacheMode,
        PTE_CACHE_MASK, //
    },
    range::Window,
};

/// Something whose physical pages VMAs map.
pub(crate) trait PfnSource: Send + Sync + 'static {
    /// The first page frame number and the number of pages; page `vm_pgoff` of a VMA is frame
    /// `first + vm_pgoff`.
    fn pfns(&self) -> (usize, usize);
    /// A VMA now maps it (a new mapping, or a copy by fork or a split).
    fn vma_opened(&self);
    /// A VMA that mapped it is gone.
    fn vma_closed(&self);
}

/// The VMA's `vm_pgoff`: the page offset into the device that `mmap` asked for.
pub(crate) fn page_offset(vma: &VmaNew) -> u64 {
    // SAFETY: `vma` is a valid VMA being set up by `mmap`, under the mmap lock; `vm_pgoff` is
    // a plain integer set by the mmap core before calling the driver.
    let pgoff = unsafe { (*vma.as_ptr()).vm_pgoff };
    pgoff as u64
}

/// Whether the mapping is `MAP_SHARED` (`VM_MAYSHARE`: the kernel clears `VM_SHARED` on a
/// shared mapping of a file opened read-only).
pub(crate) fn is_shared(vma: &VmaNew) -> bool {
    vma.flags() & flags::MAYSHARE != 0
}

/// Gives the VMA's future page-table entries the memory type `mode` (as `pgprot_noncached`
/// and its kin do to `vm_page_prot`).
pub(crate) fn set_cache_mode(vma: &VmaNew, mode: CacheMode) {
    let bits = mode.pte_bits();
    let vma = vma.as_ptr();
    // SAFETY: `vma` is being set up by `mmap` under the mmap lock (the `VmaNew` contract), so
    // nothing else reads or writes its `vm_page_prot` now.
    unsafe {
        let prot = &mut (*vma).vm_page_prot.pgprot;
        *prot = (*prot & !PTE_CACHE_MASK) | bits;
    }
}

/// Why a VMA could not be mapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MapError {
    /// The kernel gave the entries another memory type than asked for (`Some`), or refused the
    /// one asked for (`None`): another mapping recorded the range first.
    Conflict(Option<CacheMode>),
    /// Anything else.
    Failed(Error),
}

/// The type the kernel gave the page-table entry that maps `vma.start()`.
fn first_entry_mode(vma: &VmaNew) -> Option<CacheMode> {
    let mut args = bindings::follow_pfnmap_args {
        vma: vma.as_ptr(),
        address: vma.start() as c_ulong,
        ..pin_init::zeroed()
    };
    // SAFETY: `vma` is valid and its mm's lock is held (the `VmaNew` contract); the call locks
    // the entry it finds, which `follow_pfnmap_end` unlocks.
    if unsafe { bindings::follow_pfnmap_start(&mut args) } != 0 {
        return None;
    }
    let bits = args.pgprot.pgprot;
    // SAFETY: `follow_pfnmap_start` succeeded for `args`.
    unsafe { bindings::follow_pfnmap_end(&mut args) };
    CacheMode::from_pte_bits(bits)
}

/// Maps `window` of physical memory over all of `vma` now (`remap_pfn_range`: the kernel
/// records the memory type for the VMA and frees the record with its last piece), with the
/// VMA's page protection, and makes `source` count the VMA and its copies. Sets
/// `VM_IO | VM_PFNMAP | VM_DONTEXPAND | VM_DONTDUMP`. Call `source.vma_opened()` first.
///
/// `window` must be memory of `source` (the caller checks it is inside it). If the kernel gives
/// the entries another type than the VMA's (a compatible type recorded earlier by another
/// mapping), it fails with [`MapError::Conflict`]; the mmap core then removes the entries.
pub(crate) fn map_now<T: PfnSource>(
    vma: &VmaNew,
    window: Window,
    source: Arc<T>,
) -> Result<(), MapError> {
    let len = usize::try_from(window.len).map_err(|_| MapError::Failed(EINVAL))?;
    if vma.end() - vma.start() != len {
        return Err(MapError::Failed(EINVAL));
    }
    let pfn = usize::try_from(window.phys >> PAGE_SHIFT).map_err(|_| MapError::Failed(EINVAL))?;
    let raw = vma.as_ptr();
    // SAFETY: `vma` is valid and being set up under the mmap lock (the `VmaNew` contract), the
    // target `[vm_start, vm_start + len)` is exactly the VMA; a PFN mapping of physical memory
    // touches no kernel object.
    let wanted_bits = unsafe { (*raw).vm_page_prot.pgprot } & PTE_CACHE_MASK;
    // SAFETY: As above.
    let ret = unsafe { bindings::remap_pfn_range(raw, vma.start(), pfn, len, (*raw).vm_page_prot) };
    match ret {
        0 => {}
        ret if ret == EINVAL.to_errno() => return Err(MapError::Conflict(None)),
        ret => return Err(MapError::Failed(Error::from_errno(ret))),
    }
    let got = first_entry_mode(vma);
    if got.map(CacheMode::pte_bits) != Some(wanted_bits) {
        return Err(MapError::Conflict(got));
    }
    set_ops(vma, const { &VmOps::<T>::COUNTING }, source);
    Ok(())
}

/// Sets `vma` up to be filled at fault time from `source`, with the VMA's page protection:
/// 2 MiB entries where a whole aligned block of the source lies inside the VMA, 4 KiB entries
/// elsewhere. Makes `source` count the VMA and its copies. Sets
/// `VM_IO | VM_PFNMAP | VM_DONTEXPAND | VM_DONTDUMP`, as `remap_pfn_range` does. Call
/// `source.vma_opened()` first.
///
/// The entries take their memory type from the kernel's record for the range (a
/// [`MemtypeHold`](crate::kernel_ext::memtype::MemtypeHold)); without one, UC-.
pub(crate) fn map_on_fault<T: PfnSource>(vma: &VmaNew, source: Arc<T>) {
    vma.set_io();
    vma.set_dontexpand();
    vma.set_dontdump();
    // No kernel crate method sets VM_PFNMAP (it is set by remap_pfn_range in C).
    // SAFETY: `vma` is being set up under the mmap lock and not yet visible to anyone else; a
    // VMA whose entries are only inserted by `vmf_insert_pfn*` is a PFN map.
    unsafe { (*vma.as_ptr()).__bindgen_anon_2.vm_flags |= bindings::VM_PFNMAP };
    set_ops(vma, const { &VmOps::<T>::FAULTING }, source);
}

/// Installs `ops` and hands the VMA a reference to `source`.
fn set_ops<T: PfnSource>(
    vma: &VmaNew,
    ops: &'static bindings::vm_operations_struct,
    source: Arc<T>,
) {
    let vma = vma.as_ptr();
    // SAFETY: `vma` is being set up under the mmap lock; the ops are a `'static` constant whose
    // callbacks expect a `T` reference in the private data, which the VMA now owns.
    unsafe {
        (*vma).vm_ops = ops;
        (*vma).vm_private_data = source.into_foreign();
    }
}

/// The `vm_operations_struct`s for VMAs of a `T`.
struct VmOps<T>(core::marker::PhantomData<T>);

const FALLBACK: bindings::vm_fault_t =
    bindings::vm_fault_reason_VM_FAULT_FALLBACK as bindings::vm_fault_t;
const SIGBUS: bindings::vm_fault_t =
    bindings::vm_fault_reason_VM_FAULT_SIGBUS as bindings::vm_fault_t;

/// Bytes one PMD entry maps: 2 MiB.
pub(crate) const PMD_SIZE: usize = 1 << bindings::PMD_SHIFT;

/// Pages one PMD entry maps: 512.
const PMD_PAGES: usize = PMD_SIZE >> PAGE_SHIFT;

impl<T: PfnSource> VmOps<T> {
    const COUNTING: bindings::vm_operations_struct = bindings::vm_operations_struct {
        open: Some(Self::open),
        close: Some(Self::close),
        ..pin_init::zeroed()
    };

    const FAULTING: bindings::vm_operations_struct = bindings::vm_operations_struct {
        open: Some(Self::open),
        close: Some(Self::close),
        fault: Some(Self::fault),
        huge_fault: Some(Self::huge_fault),
        ..pin_init::zeroed()
    };

    /// The source of a VMA set up by [`set_ops`].
    ///
    /// # Safety
    ///
    /// `vma` is such a VMA, alive for `'a`.
    unsafe fn source<'a>(vma: *const bindings::vm_area_struct) -> &'a T {
        // SAFETY: By the function's safety requirement the private data is an `Arc<T>` the VMA
        // owns until `close`, after every other callback.
        let source = unsafe { Arc::<T>::borrow((*vma).vm_private_data) };
        // SAFETY: The reference stays valid while the VMA owns the `Arc` (for `'a`).
        unsafe { &*core::ptr::from_ref(&*source) }
    }

    /// # Safety
    ///
    /// Called by the mm core for a copy of a VMA set up by [`set_ops`] (fork, split), whose
    /// private data the copy shares.
    unsafe extern "C" fn open(vma: *mut bindings::vm_area_struct) {
        // SAFETY: By the function's safety requirement.
        let source = unsafe { Arc::<T>::borrow((*vma).vm_private_data) };
        let source: Arc<T> = source.into();
        source.vma_opened();
        // SAFETY: The copy owns the reference just taken; its `close` drops it.
        unsafe { (*vma).vm_private_data = source.into_foreign() };
    }

    /// # Safety
    ///
    /// Called by the mm core once for each VMA set up by [`set_ops`] or copied by `open`.
    unsafe extern "C" fn close(vma: *mut bindings::vm_area_struct) {
        // SAFETY: The VMA owns one reference in its private data, given back here.
        let source = unsafe { Arc::<T>::from_foreign((*vma).vm_private_data) };
        source.vma_closed();
    }

    /// The frame of page `pgoff` of the VMA, if it lies in the source.
    fn frame(source: &T, pgoff: usize) -> Option<usize> {
        let (first, count) = source.pfns();
        (pgoff < count).then_some(first + pgoff)
    }

    /// A 4 KiB entry for the faulting page.
    ///
    /// # Safety
    ///
    /// `vmf` is a fault on a VMA set up by [`map_on_fault`], under its lock.
    unsafe extern "C" fn fault(vmf: *mut bindings::vm_fault) -> bindings::vm_fault_t {
        // SAFETY: By the function's safety requirement `vmf` and its VMA are valid.
        let (vma, pgoff, address) = unsafe {
            let fault = &(*vmf).__bindgen_anon_1;
            (fault.vma, fault.pgoff, fault.address)
        };
        // SAFETY: The VMA was set up by `map_on_fault` and is alive during its fault.
        let source = unsafe { Self::source(vma) };
        let Some(pfn) = Self::frame(source, pgoff) else {
            return SIGBUS;
        };
        // SAFETY: `vma` is a `VM_PFNMAP` VMA faulting at `address` under its lock; `pfn` is a
        // page of the source.
        unsafe { bindings::vmf_insert_pfn(vma, address, pfn) }
    }

    /// A 2 MiB entry for the block around the faulting address, when the block lies wholly
    /// inside the VMA and is 2 MiB aligned in physical memory; otherwise the core falls back
    /// to [`Self::fault`].
    ///
    /// # Safety
    ///
    /// As for [`Self::fault`].
    unsafe extern "C" fn huge_fault(
        vmf: *mut bindings::vm_fault,
        order: c_uint,
    ) -> bindings::vm_fault_t {
        if order != bindings::PMD_ORDER {
            return FALLBACK;
        }
        // SAFETY: As in `fault`.
        let (vma, pgoff, address, fault_flags) = unsafe {
            let fault = &(*vmf).__bindgen_anon_1;
            (fault.vma, fault.pgoff, fault.address, (*vmf).flags)
        };
        // SAFETY: As in `fault`.
        let source = unsafe { Self::source(vma) };
        // SAFETY: The VMA's bounds do not change while it faults under its lock.
        let (vm_start, vm_end) = unsafe {
            let bounds = &(*vma).__bindgen_anon_1.__bindgen_anon_1;
            (bounds.vm_start, bounds.vm_end)
        };
        let block = address & !(PMD_SIZE - 1);
        if block < vm_start || block.checked_add(PMD_SIZE).is_none_or(|end| end > vm_end) {
            return FALLBACK;
        }
        let Some(first) = pgoff.checked_sub((address - block) >> PAGE_SHIFT) else {
            return FALLBACK;
        };
        let (Some(pfn), Some(_)) = (
            Self::frame(source, first),
            Self::frame(source, first + PMD_PAGES - 1),
        ) else {
            return FALLBACK;
        };
        if pfn % PMD_PAGES != 0 {
            return FALLBACK;
        }
        let write = fault_flags & bindings::fault_flag_FAULT_FLAG_WRITE != 0;
        // SAFETY: `vmf` is a fault on a `VM_PFNMAP` shared VMA under its lock; the block lies
        // inside the VMA and `pfn..pfn + 512` inside the source.
        unsafe { bindings::vmf_insert_pfn_pmd(vmf, pfn, write) }
    }
}

/// A user address for a mapping of `len` bytes of physical memory from page frame `pfn`:
/// congruent with the physical address modulo 2 MiB whenever the range holds a whole aligned
/// 2 MiB block (so the mapping can use 2 MiB entries), else wherever the kernel would put it
/// (`thp_get_unmapped_area`, as for a file at offset `pfn`). `MAP_FIXED` keeps `addr`.
pub(crate) fn unmapped_area(
    file: &File,
    addr: usize,
    len: usize,
    pfn: usize,
    flags: usize,
) -> usize {
    // SAFETY: `file` is a live file being mapped by the current task; the function only picks
    // an address in the current task's address space.
    unsafe { bindings::thp_get_unmapped_area(file.as_ptr(), addr, len, pfn, flags) }
}

/// Whether `window` mapped at the start of `vma` can use 2 MiB entries: the user address and
/// the physical address agree modulo 2 MiB, and at least one whole aligned 2 MiB block lies
/// inside the window. The pages before the first and after the last such block are mapped with
/// 4 KiB entries.
pub(crate) fn can_map_huge(vma: &VmaNew, window: Window) -> bool {
    let pmd = PMD_SIZE as u64;
    let start = vma.start() as u64;
    if (start ^ window.phys) & (pmd - 1) != 0 {
        return false;
    }
    let first_block = start.checked_next_multiple_of(pmd);
    match (first_block, start.checked_add(window.len)) {
        (Some(block), Some(end)) => block.checked_add(pmd).is_some_and(|b| b <= end),
        _ => false,
    }
}
