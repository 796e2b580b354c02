// SPDX-License-Identifier: GPL-2.0

//! The kernel functions that the Rust abstractions do not wrap, each wrapped once here in a safe
//! function named for what it does. The others that call `bindings::` are each one kernel
//! object's wrapper: the device node and its class (`node.rs`), its file operations
//! (`chardev.rs`) and the platform device (`platform_device.rs`).

use core::ptr::NonNull;

use kernel::{
    bindings,
    fs::File,
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
/// released. `Inserted`: `resource` is in the iomem tree (`insert_resource`), not yet removed,
/// and covers `range`, which is System RAM.
pub(crate) enum IomemClaim {
    Requested {
        range: PhysRange,
    },
    Inserted {
        resource: KBox<Opaque<bindings::resource>>,
        range: PhysRange,
    },
}

impl IomemClaim {
    /// The claimed range.
    pub(crate) fn range(&self) -> PhysRange {
        match self {
            Self::Requested { range } | Self::Inserted { range, .. } => *range,
        }
    }

    /// Whether the claimed memory is System RAM (set aside by `reserve_mem=`), which the
    /// kernel's direct map covers write-back.
    pub(crate) fn is_ram(&self) -> bool {
        matches!(self, Self::Inserted { .. })
    }
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
    // INVARIANT: inserted above; the caller found `range` reserved by `reserve_mem=`.
    Ok(IomemClaim::Inserted {
        resource,
        range: *range,
    })
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
            Self::Inserted { resource, .. } => {
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

/// The highest physical address the CPU can address (the end of the iomem tree's root).
pub(crate) fn max_phys_addr() -> u64 {
    // SAFETY: `iomem_resource.end` is set at boot and never changes afterwards.
    unsafe { bindings::iomem_resource.end }
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

/// Bytes one PMD entry maps: 2 MiB.
const PMD_SIZE: usize = 1 << bindings::PMD_SHIFT;

/// Pages one PMD entry maps: 512.
const PMD_PAGES: usize = PMD_SIZE >> PAGE_SHIFT;

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

/// The kernel's record of the memory type of a physical range (x86 PAT's memtype list), held
/// for as long as this exists.
///
/// Mappings made at fault time (`vmf_insert_pfn*`) take their memory type from that record
/// (`pfnmap_setup_cachemode`), and for an unrecorded, non-RAM range it says UC-. The kernel
/// does not export `memtype_reserve` to modules; an `ioremap_prot` of the range reserves the
/// same record (and its kernel mapping, which nothing uses, has the same type, so nothing
/// aliases). `iounmap` frees both.
///
/// # Invariants
///
/// `addr` was returned by `ioremap_prot` and is not yet unmapped.
pub(crate) struct MemtypeHold {
    addr: NonNull<c_void>,
}

impl MemtypeHold {
    /// Records `range` with the memory type of `vma`'s page protection. `EINVAL` if the kernel
    /// refuses (the range is RAM, or already recorded with a type that conflicts).
    pub(crate) fn reserve(range: &PhysRange, vma: &VmaNew) -> Result<Self> {
        let size = c_ulong::try_from(range.size()).map_err(|_| EINVAL)?;
        // SAFETY: `vma` is being set up under the mmap lock (the `VmaNew` contract); its
        // protection is a plain value.
        let prot = unsafe { (*vma.as_ptr()).vm_page_prot };
        // SAFETY: `ioremap_prot` may be called on any physical range; it refuses RAM. The
        // caller has claimed `range` for this device.
        let addr = unsafe { bindings::ioremap_prot(range.base(), size, prot) };
        // INVARIANT: a non-NULL result is a live ioremap.
        NonNull::new(addr).map(|addr| Self { addr }).ok_or(EINVAL)
    }
}

impl Drop for MemtypeHold {
    fn drop(&mut self) {
        // SAFETY: `addr` is a live ioremap by the type invariant, unmapped only here.
        unsafe { bindings::iounmap(self.addr.as_ptr()) };
    }
}

// SAFETY: The ioremap may be undone from any thread; nothing dereferences `addr`.
unsafe impl Send for MemtypeHold {}
// SAFETY: `&MemtypeHold` gives no access to the mapping.
unsafe impl Sync for MemtypeHold {}

/// Something whose physical pages VMAs map at fault time.
pub(crate) trait PfnSource: MapCounter {
    /// The first page frame number and the number of pages; page `vm_pgoff` of a VMA is frame
    /// `first + vm_pgoff`.
    fn pfns(&self) -> (usize, usize);
}

/// The `vm_operations_struct` for VMAs of a `T` that are filled at fault time: 2 MiB entries
/// where the block fits, 4 KiB entries elsewhere; `open` and `close` count as
/// [`CountingVmOps`] does.
struct FaultingVmOps<T>(core::marker::PhantomData<T>);

const FALLBACK: bindings::vm_fault_t =
    bindings::vm_fault_reason_VM_FAULT_FALLBACK as bindings::vm_fault_t;
const SIGBUS: bindings::vm_fault_t =
    bindings::vm_fault_reason_VM_FAULT_SIGBUS as bindings::vm_fault_t;

impl<T: PfnSource> FaultingVmOps<T> {
    const OPS: bindings::vm_operations_struct = bindings::vm_operations_struct {
        open: Some(CountingVmOps::<T>::open),
        close: Some(CountingVmOps::<T>::close),
        fault: Some(Self::fault),
        huge_fault: Some(Self::huge_fault),
        ..pin_init::zeroed()
    };

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
        // SAFETY: By the function's safety requirement `vmf` and its VMA are valid, and the
        // VMA's private data points to a live `T`.
        let (vma, pgoff, address, source) = unsafe {
            let fault = &(*vmf).__bindgen_anon_1;
            let source = &*(*fault.vma).vm_private_data.cast::<T>();
            (fault.vma, fault.pgoff, fault.address, source)
        };
        let Some(pfn) = Self::frame(source, pgoff) else {
            return SIGBUS;
        };
        // SAFETY: `vma` is a `VM_PFNMAP` VMA faulting at `address` under its lock; `pfn` is a
        // page of the claimed range.
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
        let (vma, pgoff, address, flags, source) = unsafe {
            let fault = &(*vmf).__bindgen_anon_1;
            let source = &*(*fault.vma).vm_private_data.cast::<T>();
            (fault.vma, fault.pgoff, fault.address, (*vmf).flags, source)
        };
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
        let write = flags & bindings::fault_flag_FAULT_FLAG_WRITE != 0;
        // SAFETY: `vmf` is a fault on a `VM_PFNMAP` shared VMA under its lock; the block lies
        // inside the VMA and `pfn..pfn + 512` inside the claimed range.
        unsafe { bindings::vmf_insert_pfn_pmd(vmf, pfn, write) }
    }
}

/// Sets `vma` up to be filled at fault time from `source` (2 MiB entries where possible),
/// with the VMA's page protection, and makes `source` count it and every copy of it. Sets
/// `VM_IO | VM_PFNMAP | VM_DONTEXPAND | VM_DONTDUMP`, as `remap_pfn_range` does. Call it last
/// in `mmap`, once `source.vma_opened()` has been called for it. The memory type must be
/// recorded (a [`MemtypeHold`]) for as long as any such VMA exists.
///
/// # Safety
///
/// `source` must outlive the VMA and its copies (for example: the VMA's file owns it).
pub(crate) unsafe fn map_on_fault<T: PfnSource>(vma: &VmaNew, source: &T) {
    let vma = vma.as_ptr();
    let set =
        bindings::VM_IO | bindings::VM_PFNMAP | bindings::VM_DONTEXPAND | bindings::VM_DONTDUMP;
    // SAFETY: `vma` is being set up under the mmap lock and not yet visible to anyone else;
    // these flags are what `remap_pfn_range` sets on a shared mapping. The ops are a `'static`
    // constant and the private data outlives the VMA by the function's safety requirement.
    unsafe {
        (*vma).__bindgen_anon_2.vm_flags |= set;
        (*vma).vm_ops = const { &FaultingVmOps::<T>::OPS };
        (*vma).vm_private_data = core::ptr::from_ref(source).cast_mut().cast();
    }
}

/// A configfs directory (`config_item`) of this module's subsystem, which open files of its
/// region make `rmdir` refuse (`configfs_depend_item`).
///
/// # Invariants
///
/// `item` is a directory directly under the subsystem `subsys`, which stays registered while
/// the module is loaded. The memory of `item` stays while this value is used: the caller of
/// [`ConfigItem::new`] sees to it.
#[derive(Clone, Copy)]
pub(crate) struct ConfigItem {
    item: NonNull<bindings::config_item>,
    subsys: NonNull<bindings::configfs_subsystem>,
}

impl ConfigItem {
    /// The directory whose `config_group` is `group`.
    ///
    /// # Safety
    ///
    /// `group` must be a live directory directly under a registered subsystem (as in one of its
    /// attribute callbacks), and must stay alive for as long as [`ConfigItem::get`] is called.
    pub(crate) unsafe fn new(group: NonNull<bindings::config_group>) -> Self {
        let group = group.as_ptr();
        // SAFETY: `group` is live by the function's safety requirement; a linked directory's
        // `ci_group` is its parent, here the subsystem's own group.
        let (item, parent) = unsafe { (&raw mut (*group).cg_item, (*group).cg_item.ci_group) };
        // SAFETY: The parent is the `su_group` of a `configfs_subsystem`.
        let subsys =
            unsafe { kernel::container_of!(parent, bindings::configfs_subsystem, su_group) };
        // INVARIANT: By the function's safety requirement.
        Self {
            // SAFETY: Field projections of a non-null pointer.
            item: unsafe { NonNull::new_unchecked(item) },
            // SAFETY: As above.
            subsys: unsafe { NonNull::new_unchecked(subsys) },
        }
    }

    /// Takes a reference to the directory, so its memory stays until the reference is dropped
    /// even if it is removed meanwhile; `None` once its last reference is gone (it is being
    /// freed).
    pub(crate) fn get(&self) -> Option<ConfigItemRef> {
        // SAFETY: The item's memory is alive by the type invariant.
        let item = unsafe { bindings::config_item_get_unless_zero(self.item.as_ptr()) };
        if item.is_null() {
            return None;
        }
        // INVARIANT: A reference to `self.item` (what was returned) is held.
        Some(ConfigItemRef(*self))
    }
}

// SAFETY: The pointers are only used through configfs' own locking.
unsafe impl Send for ConfigItem {}
// SAFETY: As above.
unsafe impl Sync for ConfigItem {}

/// A counted reference to a configfs directory (`config_item_get`), put on drop. Dropping the
/// last one frees the directory, which may run its `release` (and drop its region): drop it
/// with no lock held that freeing a region takes.
///
/// # Invariants
///
/// One reference to the directory is held.
pub(crate) struct ConfigItemRef(ConfigItem);

impl ConfigItemRef {
    /// Makes `rmdir` of the directory fail with `EBUSY` until the returned value is dropped.
    /// `ENOENT` if the directory is being (or has been) removed.
    pub(crate) fn depend(&self) -> Result<ConfigItemDependency> {
        // SAFETY: The subsystem is registered and the item's memory alive by the type
        // invariant. `configfs_depend_item` takes the configfs root's lock; it is not called
        // from a configfs callback (it is called from `open`).
        kernel::error::to_result(unsafe {
            bindings::configfs_depend_item(self.0.subsys.as_ptr(), self.0.item.as_ptr())
        })?;
        Ok(ConfigItemDependency { item: self.0.item })
    }
}

impl Drop for ConfigItemRef {
    fn drop(&mut self) {
        // SAFETY: By the type invariant one reference is held; it is given back here.
        unsafe { bindings::config_item_put(self.0.item.as_ptr()) };
    }
}

/// A dependency on a configfs directory (`configfs_depend_item`): `rmdir` of it fails with
/// `EBUSY` until this is dropped (`configfs_undepend_item`).
///
/// # Invariants
///
/// One dependency on `item` is held; while it is, the directory cannot be removed (so its
/// memory stays).
pub(crate) struct ConfigItemDependency {
    item: NonNull<bindings::config_item>,
}

impl Drop for ConfigItemDependency {
    fn drop(&mut self) {
        // SAFETY: By the type invariant the item is alive and one dependency on it is held;
        // it is given back here and the item not touched again.
        unsafe { bindings::configfs_undepend_item(self.item.as_ptr()) };
    }
}

// SAFETY: The dependency may be dropped from any thread.
unsafe impl Send for ConfigItemDependency {}
// SAFETY: `&ConfigItemDependency` gives no access to anything.
unsafe impl Sync for ConfigItemDependency {}
