// SPDX-License-Identifier: GPL-2.0

//! The kernel functions that the Rust abstractions do not wrap, each wrapped once here in a safe
//! function named for what it does. No other file calls `bindings::` directly.

use kernel::{
    bindings,
    mm::virt::VmaNew,
    page::PAGE_SHIFT,
    prelude::*,
    types::Opaque, //
};

use crate::{
    attr::CacheAttr,
    range::{
        PhysRange,
        Window, //
    },
};

/// How a physical range relates to System RAM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RamOverlap {
    /// No byte of the range is System RAM.
    Disjoint,
    /// Some or all of the range is System RAM.
    Intersects,
}

/// Asks the resource tree whether `range` touches System RAM (`region_intersects`).
pub(crate) fn system_ram_overlap(range: &PhysRange) -> Result<RamOverlap> {
    let size = usize::try_from(range.size()).map_err(|_| EINVAL)?;
    let flags = bindings::IORESOURCE_SYSTEM_RAM as c_ulong;
    // SAFETY: `region_intersects` only reads the resource tree under its own lock; any range
    // is a valid argument.
    let ret = unsafe {
        bindings::region_intersects(
            range.base(),
            size,
            flags,
            bindings::IORES_DESC_NONE as c_ulong,
        )
    };
    Ok(if ret == bindings::REGION_DISJOINT as c_int {
        RamOverlap::Disjoint
    } else {
        RamOverlap::Intersects
    })
}

/// A busy claim of a physical range in the iomem tree (`/proc/iomem`), released on drop.
///
/// # Invariants
///
/// `Requested`: `range` was claimed by `__request_region` on `iomem_resource` and is not yet
/// released. `Inserted`: `resource` is in the iomem tree (`insert_resource`), not yet removed.
pub(crate) enum IomemClaim {
    Requested {
        range: PhysRange,
    },
    Inserted {
        resource: KBox<Opaque<bindings::resource>>,
    },
}

/// Claims reserved memory: `range` under `name` (`request_mem_region`), nested inside whatever
/// non-busy entry (such as `Reserved`) contains it. `None` if any part is already claimed.
pub(crate) fn claim_iomem(range: &PhysRange, name: &'static CStr) -> Option<IomemClaim> {
    // SAFETY: `iomem_resource` is the root of the iomem tree, which `__request_region` locks
    // itself; `name` outlives the claim, which is released in `Drop` before the module (and
    // its static strings) can go.
    let claimed = unsafe {
        bindings::__request_region(
            &raw mut bindings::iomem_resource,
            range.base(),
            range.size(),
            name.as_char_ptr(),
            0,
        )
    };
    // INVARIANT: a non-NULL result means the range is now claimed.
    (!claimed.is_null()).then(|| IomemClaim::Requested { range: *range })
}

/// Claims RAM that memblock reserved at boot (`reserve_mem=`): it lies inside the busy
/// `System RAM` entry, where `request_mem_region` cannot nest, so the claim is inserted as a
/// busy entry of its own. `EBUSY` if it overlaps or equals an entry already there (another
/// claim of the same memory).
pub(crate) fn claim_reserved_ram(range: &PhysRange, name: &'static CStr) -> Result<IomemClaim> {
    let resource = KBox::new(
        Opaque::new(bindings::resource {
            start: range.base(),
            end: range.last(),
            name: name.as_char_ptr(),
            flags: (bindings::IORESOURCE_MEM | bindings::IORESOURCE_BUSY) as c_ulong,
            ..Default::default()
        }),
        GFP_KERNEL,
    )?;
    // SAFETY: `resource` is a valid, unlinked resource at a stable heap address that stays
    // allocated until `Drop` removes it from the tree; the tree locks itself.
    kernel::error::to_result(unsafe {
        bindings::insert_resource(&raw mut bindings::iomem_resource, resource.get())
    })
    .map_err(|_| EBUSY)?;
    // `insert_resource` wraps an entry of exactly the same range instead of refusing it.
    // SAFETY: the resource is in the tree; reading its child link under no lock is a snapshot
    // of a pointer we only compare with NULL.
    if unsafe { !(*resource.get()).child.is_null() } {
        // SAFETY: inserted just above; `remove_resource` hands the wrapped entry back.
        unsafe { bindings::remove_resource(resource.get()) };
        return Err(EBUSY);
    }
    // INVARIANT: inserted above.
    Ok(IomemClaim::Inserted { resource })
}

impl Drop for IomemClaim {
    fn drop(&mut self) {
        match self {
            Self::Requested { range } => {
                // SAFETY: the range is claimed by the type invariant and released only here.
                unsafe {
                    bindings::__release_region(
                        &raw mut bindings::iomem_resource,
                        range.base(),
                        range.size(),
                    )
                };
            }
            Self::Inserted { resource } => {
                // SAFETY: in the tree by the type invariant, and removed only here.
                unsafe { bindings::remove_resource(resource.get()) };
            }
        }
    }
}

// SAFETY: The claim is only released through the resource tree's own locking.
unsafe impl Send for IomemClaim {}
// SAFETY: `&IomemClaim` gives no access to the resource.
unsafe impl Sync for IomemClaim {}

// The string parameter `reserve_mem`, declared in C (`reserve_mem_param.c`).
extern "C" {
    static carveout_reserve_mem_name: [u8; 64];
}

/// The `reserve_mem=` module parameter, if given.
pub(crate) fn reserve_mem_param() -> Option<&'static CStr> {
    // SAFETY: Only the module loader writes the parameter, before `init` runs; its mode 0444
    // allows no later writes through sysfs.
    let raw = unsafe { &carveout_reserve_mem_name };
    CStr::from_bytes_until_nul(raw)
        .ok()
        .filter(|name| !name.is_empty())
}

/// The range the kernel reserved at boot for `reserve_mem=SIZE:ALIGN:NAME`, if any.
pub(crate) fn reserve_mem_range(name: &CStr) -> Option<(u64, u64)> {
    let mut start: bindings::phys_addr_t = 0;
    let mut size: bindings::phys_addr_t = 0;
    // SAFETY: `name` is NUL-terminated; `start` and `size` are valid for writes.
    let found =
        unsafe { bindings::reserve_mem_find_by_name(name.as_char_ptr(), &mut start, &mut size) };
    (found != 0).then_some((start, size))
}

/// The VMA's `vm_pgoff`: the page offset into the device that `mmap` asked for.
pub(crate) fn vma_page_offset(vma: &VmaNew) -> u64 {
    // SAFETY: `vma` is a valid VMA being set up by `mmap`, under the mmap lock; `vm_pgoff` is
    // a plain integer set by the mmap core before calling the driver.
    let pgoff = unsafe { (*vma.as_ptr()).vm_pgoff };
    pgoff as u64
}

/// Whether the mapping is `MAP_SHARED` (`VM_MAYSHARE`: the kernel clears `VM_SHARED` on a
/// shared mapping of a file opened read-only).
pub(crate) fn vma_is_shared(vma: &VmaNew) -> bool {
    vma.flags() & bindings::VM_MAYSHARE != 0
}

/// Maps `window` of physical memory at the start of `vma` (`remap_pfn_range`), with the VMA's
/// own page protection. Sets `VM_IO | VM_PFNMAP | VM_DONTEXPAND | VM_DONTDUMP`.
pub(crate) fn map_window(vma: &VmaNew, window: Window) -> Result {
    let len = usize::try_from(window.len).map_err(|_| EINVAL)?;
    if vma.end() - vma.start() != len {
        return Err(EINVAL);
    }
    let pfn = usize::try_from(window.phys >> PAGE_SHIFT).map_err(|_| EINVAL)?;
    let start = vma.start();
    let vma = vma.as_ptr();
    // SAFETY: `vma` is valid and being set up under the mmap lock (the `VmaNew` contract), the
    // target `[vm_start, vm_start + len)` is exactly the VMA, and `pfn` names memory that the
    // caller has claimed for this device.
    kernel::error::to_result(unsafe {
        bindings::remap_pfn_range(vma, start, pfn, len, (*vma).vm_page_prot)
    })
}

/// Whether the CPU's page attribute table is in use: without it, x86 can give only write-back
/// and uncached mappings.
pub(crate) fn pat_enabled() -> bool {
    // SAFETY: `pat_enabled` only reads a boot-time flag.
    unsafe { bindings::pat_enabled() }
}

/// The page-table cache bits (PWT, PCD, PAT) of an x86 PTE.
const PTE_CACHE_MASK: usize = (1 << bindings::_PAGE_BIT_PWT)
    | (1 << bindings::_PAGE_BIT_PCD)
    | (1 << bindings::_PAGE_BIT_PAT);

/// Gives the VMA's future page-table entries the memory type of `attr`.
///
/// Write-protect keeps the type for read-only mappings; the caller refuses writable ones.
pub(crate) fn set_cache_attr(vma: &VmaNew, attr: CacheAttr) {
    let mode = match attr {
        // As pgprot_noncached() does: UC- (uncached unless an MTRR says write-combining).
        CacheAttr::Uncached => bindings::page_cache_mode__PAGE_CACHE_MODE_UC_MINUS,
        CacheAttr::WriteCombining => bindings::page_cache_mode__PAGE_CACHE_MODE_WC,
        CacheAttr::WriteThrough => bindings::page_cache_mode__PAGE_CACHE_MODE_WT,
        CacheAttr::WriteBack => bindings::page_cache_mode__PAGE_CACHE_MODE_WB,
        CacheAttr::WriteProtect => bindings::page_cache_mode__PAGE_CACHE_MODE_WP,
    };
    // SAFETY: `cachemode2protval` only reads the PAT translation table set up at boot.
    let bits = unsafe { bindings::cachemode2protval(mode) };
    let vma = vma.as_ptr();
    // SAFETY: `vma` is being set up by `mmap` under the mmap lock (the `VmaNew` contract), so
    // nothing else reads or writes its `vm_page_prot` now.
    unsafe {
        let prot = &mut (*vma).vm_page_prot.pgprot;
        *prot = (*prot & !PTE_CACHE_MASK) | bits;
    }
}

/// Something that counts the VMAs mapping it.
pub(crate) trait MapCounter: Sync {
    /// A VMA now maps it (a new mapping, or a copy by fork or a split).
    fn vma_opened(&self);
    /// A VMA that mapped it is gone.
    fn vma_closed(&self);
}

/// The `vm_operations_struct` for VMAs of a `T`: `open` and `close` keep its count.
struct CountingVmOps<T>(core::marker::PhantomData<T>);

impl<T: MapCounter> CountingVmOps<T> {
    const OPS: bindings::vm_operations_struct = bindings::vm_operations_struct {
        open: Some(Self::open),
        close: Some(Self::close),
        ..pin_init::zeroed()
    };

    /// # Safety
    ///
    /// `vma` is a VMA set up by [`count_mappings`], so its private data points to a live `T`.
    unsafe extern "C" fn open(vma: *mut bindings::vm_area_struct) {
        // SAFETY: By the function's safety requirement.
        let counter = unsafe { &*(*vma).vm_private_data.cast::<T>() };
        counter.vma_opened();
    }

    /// # Safety
    ///
    /// As for [`Self::open`].
    unsafe extern "C" fn close(vma: *mut bindings::vm_area_struct) {
        // SAFETY: By the function's safety requirement.
        let counter = unsafe { &*(*vma).vm_private_data.cast::<T>() };
        counter.vma_closed();
    }
}

/// Makes `counter` count this VMA and every copy of it until each is unmapped. Call it last in
/// `mmap`, once the mapping has succeeded and `counter.vma_opened()` has been called for it.
///
/// # Safety
///
/// `counter` must outlive the VMA and its copies (for example: the VMA's file owns it).
pub(crate) unsafe fn count_mappings<T: MapCounter>(vma: &VmaNew, counter: &T) {
    let vma = vma.as_ptr();
    // SAFETY: `vma` is being set up under the mmap lock; the ops are a `'static` constant and
    // the private data outlives the VMA by the function's safety requirement.
    unsafe {
        (*vma).vm_ops = const { &CountingVmOps::<T>::OPS };
        (*vma).vm_private_data = core::ptr::from_ref(counter).cast_mut().cast();
    }
}
