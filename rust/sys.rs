// SPDX-License-Identifier: GPL-2.0

//! The kernel functions that the Rust abstractions do not wrap, each wrapped once here in a safe
//! function named for what it does. No other file calls `bindings::` directly.

use kernel::{
    bindings,
    mm::virt::VmaNew,
    page::PAGE_SHIFT,
    prelude::*, //
};

use crate::range::{
    PhysRange,
    Window, //
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
/// `range` was claimed by `__request_region` on `iomem_resource` and is not yet released.
pub(crate) struct IomemClaim {
    range: PhysRange,
}

/// Claims `range` under `name` (`request_mem_region`), nested inside whatever non-busy entry
/// (such as `Reserved`) contains it. `None` if any part of it is already claimed.
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
    (!claimed.is_null()).then(|| IomemClaim { range: *range })
}

impl Drop for IomemClaim {
    fn drop(&mut self) {
        // SAFETY: the range is claimed by the type invariant and released only here.
        unsafe {
            bindings::__release_region(
                &raw mut bindings::iomem_resource,
                self.range.base(),
                self.range.size(),
            )
        };
    }
}

/// The VMA's `vm_pgoff`: the page offset into the device that `mmap` asked for.
pub(crate) fn vma_page_offset(vma: &VmaNew) -> u64 {
    // SAFETY: `vma` is a valid VMA being set up by `mmap`, under the mmap lock; `vm_pgoff` is
    // a plain integer set by the mmap core before calling the driver.
    let pgoff = unsafe { (*vma.as_ptr()).vm_pgoff };
    pgoff as u64
}

/// Whether the mapping is `MAP_SHARED`.
pub(crate) fn vma_is_shared(vma: &VmaNew) -> bool {
    vma.flags() & bindings::VM_SHARED != 0
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
