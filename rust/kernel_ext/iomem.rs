// SPDX-License-Identifier: GPL-2.0

//! The iomem resource tree (`/proc/iomem`): what kind of memory a physical range is, and busy
//! claims of it.
//!
//! Claims nested inside a non-busy entry use the kernel crate's [`kernel::io::resource`]
//! (`Resource::request_region` on the tree's root); RAM set aside at boot (`reserve_mem=`) lies
//! inside busy `System RAM`, where a request cannot nest, so its claim is an inserted entry of
//! its own ([`InsertedClaim`]).

use kernel::{
    bindings,
    io::resource::{
        Flags,
        Region,
        Resource, //
    },
    prelude::*,
    str::CString,
    types::Opaque, //
};

use crate::{
    kernel_ext::dev_pagemap::DevPagemap,
    range::PhysRange, //
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

/// The kinds of memory the firmware map and the kernel's command line give the iomem tree
/// (`IORES_DESC_*`), as far as a region cares about them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MemoryKind {
    /// `Reserved`: `memmap=SIZE$BASE`, or reserved by the firmware.
    Reserved,
    /// `Persistent Memory (legacy)`: `memmap=SIZE!BASE`.
    PersistentMemoryLegacy,
    /// `Soft Reserved`: EFI specific-purpose memory.
    SoftReserved,
    /// `ACPI Tables` (also `memmap=SIZE#BASE`).
    AcpiTables,
    /// `ACPI Non-volatile Storage`.
    AcpiNvStorage,
}

impl MemoryKind {
    fn desc(self) -> c_ulong {
        let desc = match self {
            Self::Reserved => bindings::IORES_DESC_RESERVED,
            Self::PersistentMemoryLegacy => bindings::IORES_DESC_PERSISTENT_MEMORY_LEGACY,
            Self::SoftReserved => bindings::IORES_DESC_SOFT_RESERVED,
            Self::AcpiTables => bindings::IORES_DESC_ACPI_TABLES,
            Self::AcpiNvStorage => bindings::IORES_DESC_ACPI_NV_STORAGE,
        };
        desc as c_ulong
    }

    /// The name `/proc/iomem` gives such an entry.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Reserved => "Reserved",
            Self::PersistentMemoryLegacy => "Persistent Memory (legacy)",
            Self::SoftReserved => "Soft Reserved",
            Self::AcpiTables => "ACPI Tables",
            Self::AcpiNvStorage => "ACPI Non-volatile Storage",
        }
    }
}

/// Adds the length of one matching entry (clipped to the walk's range) to the `u64` at `arg`.
///
/// # Safety
///
/// Called by `walk_iomem_res_desc` with `res` a valid resource and `arg` the pointer
/// [`bytes_of_kind`] passed, to a `u64` it owns.
unsafe extern "C" fn add_length(res: *mut bindings::resource, arg: *mut c_void) -> c_int {
    // SAFETY: By the function's safety requirement.
    unsafe {
        let total = &mut *arg.cast::<u64>();
        *total = total.saturating_add((*res).end - (*res).start + 1);
    }
    0
}

/// How many bytes of `range` lie in iomem entries of `kind` (which do not overlap each other).
pub(crate) fn bytes_of_kind(range: &PhysRange, kind: MemoryKind) -> u64 {
    let mut total: u64 = 0;
    // SAFETY: The walk reads the tree under its own lock and calls `add_length` with a copy of
    // each matching entry, clipped to the range, and with `&mut total`, which outlives the call.
    // Its result only says whether anything matched, which `total` says too.
    let _ = unsafe {
        bindings::walk_iomem_res_desc(
            kind.desc(),
            bindings::IORESOURCE_MEM as c_ulong,
            range.base(),
            range.last(),
            (&raw mut total).cast(),
            Some(add_length),
        )
    };
    total
}

/// The root of the iomem tree, as the kernel crate's resource type.
fn iomem_root() -> &'static Resource {
    // SAFETY: `Resource` is a transparent wrapper of `struct resource`, and `iomem_resource`
    // is a static that lives as long as the kernel; `Resource` only hands it to functions that
    // take the tree's lock.
    unsafe { &*(&raw mut bindings::iomem_resource).cast::<Resource>() }
}

mod sealed {
    /// Implemented only by the claim types of this file: see [`super::Claimed`].
    pub(crate) trait Sealed {}
}

/// A claim on physical memory that this file made in the iomem tree and holds for as long as
/// the value lives: whatever takes a `&impl Claimed` (a VMA's page frames, a kernel mapping, a
/// device's DMA mapping) reaches that memory and no other.
///
/// The trait is sealed: only [`RequestedClaim`], [`InsertedClaim`], [`Claim`] and a
/// [`DevPagemap`] (which owns a claim) implement it, and only their constructors make them, each
/// after the kernel gave it the range. A driver
/// cannot implement it, so no driver code can make a range it did not claim look claimed.
///
/// # Invariants
///
/// For as long as an implementor lives, [`Claimed::claimed_range`] is one and the same range,
/// held by a busy entry of the iomem tree that it owns, and [`Claimed::is_ram`] says whether
/// that range is System RAM.
pub(crate) trait Claimed: sealed::Sealed + Send + Sync {
    /// The claimed range.
    fn claimed_range(&self) -> PhysRange;

    /// Whether the claimed memory is System RAM (set aside by `reserve_mem=`, never given to
    /// the page allocator), which the kernel's direct map covers write-back.
    fn is_ram(&self) -> bool;
}

/// A busy entry of the iomem tree nested inside the non-busy entry (such as `Reserved`) that
/// contains it (`request_mem_region`); released on drop.
///
/// # Invariants
///
/// `_region` holds `range`. The kernel nests a requested region only inside entries that are
/// not busy, and System RAM is busy: `range` is not System RAM.
pub(crate) struct RequestedClaim {
    _region: Region,
    range: PhysRange,
}

impl RequestedClaim {
    /// Claims `range` under `name`. `None` if any part is already claimed or is System RAM.
    pub(crate) fn new(range: &PhysRange, name: CString) -> Option<Self> {
        let region =
            iomem_root().request_region(range.base(), range.size(), name, Flags::IORESOURCE_MEM)?;
        // INVARIANT: `request_region` succeeded for exactly `range`.
        Some(Self {
            _region: region,
            range: *range,
        })
    }
}

impl sealed::Sealed for RequestedClaim {}

impl Claimed for RequestedClaim {
    fn claimed_range(&self) -> PhysRange {
        self.range
    }

    fn is_ram(&self) -> bool {
        // By the type invariant.
        false
    }
}

/// Why a `reserve_mem=` range could not be claimed ([`InsertedClaim::reserve_mem`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReserveMemError {
    /// The kernel set no range aside under that name.
    NotFound,
    /// The range is not page aligned (the claim covers whole pages).
    Unaligned,
    /// The entry would not be a direct child of a top-level `System RAM` entry: the range lies
    /// inside another entry there, or wholly covers one (an entry of the same range).
    NotInSystemRam,
    /// An entry of the tree overlaps part of it (already claimed).
    Busy,
    /// No memory.
    NoMemory,
}

/// A busy entry of the iomem tree for RAM that the kernel set aside at boot
/// (`reserve_mem=SIZE:ALIGN:NAME`), inserted as a child of the `System RAM` entry that contains
/// it; removed on drop.
///
/// # Invariants
///
/// `resource` is in the iomem tree, a direct child of a top-level `System RAM` entry, for
/// `range`, the range the kernel's `reserve_mem` table holds under a name: memory that
/// memblock reserved at boot and never handed to the page allocator. It stays there until
/// dropped.
pub(crate) struct InsertedClaim {
    resource: KBox<Opaque<bindings::resource>>,
    range: PhysRange,
    _name: CString,
}

impl sealed::Sealed for InsertedClaim {}

impl Claimed for InsertedClaim {
    fn claimed_range(&self) -> PhysRange {
        self.range
    }

    fn is_ram(&self) -> bool {
        true
    }
}

impl InsertedClaim {
    /// Claims the RAM the kernel set aside under `reserve_mem` name `mem_name`, naming the
    /// entry `name`. The range comes from the kernel's table, never from the caller, so a claim
    /// of System RAM is only ever of memory no one else uses.
    ///
    /// The entry must land as a direct child of the top-level `System RAM` entry that contains
    /// the range: nested inside any other entry, or wrapping one, it is removed again and the
    /// claim refused ([`ReserveMemError::NotInSystemRam`]).
    pub(crate) fn reserve_mem(mem_name: &CStr, name: CString) -> Result<Self, ReserveMemError> {
        let (base, size) =
            super::string_params::find_reserve_mem(mem_name).ok_or(ReserveMemError::NotFound)?;
        let range = PhysRange::new(base, size).map_err(|_| ReserveMemError::Unaligned)?;
        let resource = KBox::new(
            Opaque::new(bindings::resource {
                start: range.base(),
                end: range.last(),
                name: name.as_char_ptr(),
                flags: (bindings::IORESOURCE_MEM | bindings::IORESOURCE_BUSY) as c_ulong,
                ..Default::default()
            }),
            GFP_KERNEL,
        )
        .map_err(|_| ReserveMemError::NoMemory)?;
        // SAFETY: `resource` is a valid, unlinked resource at a stable heap address that stays
        // allocated (with the name it points to) until `Drop` removes it from the tree, or the
        // checks below do; the call takes the tree's lock.
        kernel::error::to_result(unsafe {
            bindings::insert_resource(&raw mut bindings::iomem_resource, resource.get())
        })
        .map_err(|_| ReserveMemError::Busy)?;
        // `insert_resource` nests the entry inside whatever entry contains it, busy or not, and
        // wraps an entry of the same range instead of refusing it: it must have landed as a
        // childless direct child of a top-level `System RAM` entry. The kernel exports no call
        // that reads an entry's links under `resource_lock`; the links are written only under
        // it, by insertions and removals, and are read here once each (`read_volatile`).
        // SAFETY: `resource` is in the tree; its own links are word-sized fields.
        let (parent, child) = unsafe {
            let raw = resource.get();
            (
                core::ptr::read_volatile(&raw const (*raw).parent),
                core::ptr::read_volatile(&raw const (*raw).child),
            )
        };
        let root: *mut bindings::resource = &raw mut bindings::iomem_resource;
        let in_system_ram = !parent.is_null() && child.is_null() && {
            // SAFETY: `parent` contains our entry, inserted under the lock just now, so it was
            // a live entry of the tree then. The entries that can contain `reserve_mem` RAM are
            // its `System RAM` entry, freed only by memory hot-remove, which cannot remove
            // memory holding pages memblock reserved, and the kernel's boot-time entries inside
            // it, never freed. (A driver's own entry wrapping reserved RAM, released at this
            // very moment, is the case a read under `resource_lock` would also cover; the lock
            // is not exported.)
            let (flags, grandparent) = unsafe {
                (
                    core::ptr::read_volatile(&raw const (*parent).flags),
                    core::ptr::read_volatile(&raw const (*parent).parent),
                )
            };
            let ram = bindings::IORESOURCE_SYSTEM_RAM as c_ulong;
            flags & ram == ram && grandparent == root
        };
        if !in_system_ram {
            // SAFETY: Inserted above, by us; `remove_resource` puts any wrapped entry back.
            unsafe { bindings::remove_resource(resource.get()) };
            return Err(ReserveMemError::NotInSystemRam);
        }
        // INVARIANT: A direct child of the top-level System RAM entry containing the range,
        // which is the `reserve_mem` table's.
        Ok(Self {
            resource,
            range,
            _name: name,
        })
    }
}

impl Drop for InsertedClaim {
    fn drop(&mut self) {
        // SAFETY: In the tree by the type invariant, and removed only here.
        unsafe { bindings::remove_resource(self.resource.get()) };
    }
}

// SAFETY: The entry is only linked and unlinked through the resource tree's own locking.
unsafe impl Send for InsertedClaim {}
// SAFETY: `&InsertedClaim` gives no access to the entry.
unsafe impl Sync for InsertedClaim {}

impl<C: Claimed> sealed::Sealed for DevPagemap<C> {}

/// A page map owns its claim and covers exactly its memory.
impl<C: Claimed> Claimed for DevPagemap<C> {
    fn claimed_range(&self) -> PhysRange {
        self.claim().claimed_range()
    }

    fn is_ram(&self) -> bool {
        self.claim().is_ram()
    }
}

/// A claim of any kind: reserved memory nested in its entry, `reserve_mem=` RAM, or reserved
/// memory given struct pages.
pub(crate) enum Claim {
    /// Nested inside the reserved entry that contains it.
    Requested(RequestedClaim),
    /// `reserve_mem=` RAM: an entry of its own inside System RAM.
    Inserted(InsertedClaim),
    /// Nested inside the reserved entry that contains it, with struct pages (pages mode).
    Paged(DevPagemap<RequestedClaim>),
}

impl Claim {
    /// The page map, for a claim with struct pages.
    pub(crate) fn pagemap(&self) -> Option<&DevPagemap<RequestedClaim>> {
        match self {
            Self::Paged(pagemap) => Some(pagemap),
            Self::Requested(_) | Self::Inserted(_) => None,
        }
    }
}

impl sealed::Sealed for Claim {}

impl Claimed for Claim {
    fn claimed_range(&self) -> PhysRange {
        match self {
            Self::Requested(claim) => claim.claimed_range(),
            Self::Inserted(claim) => claim.claimed_range(),
            Self::Paged(claim) => claim.claimed_range(),
        }
    }

    fn is_ram(&self) -> bool {
        match self {
            Self::Requested(claim) => claim.is_ram(),
            Self::Inserted(claim) => claim.is_ram(),
            Self::Paged(claim) => claim.is_ram(),
        }
    }
}

/// The highest physical address the CPU can address (the end of the iomem tree's root).
pub(crate) fn max_phys_addr() -> u64 {
    let root = iomem_root();
    root.start() + root.size().saturating_sub(1)
}
