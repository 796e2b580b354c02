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

use super::dma_attachment::Claimed;
use crate::range::PhysRange;

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

/// A busy entry of the iomem tree nested inside the non-busy entry (such as `Reserved`) that
/// contains it (`request_mem_region`); released on drop.
pub(crate) struct RequestedClaim {
    _region: Region,
    range: PhysRange,
}

impl RequestedClaim {
    /// Claims `range` under `name`. `None` if any part is already claimed.
    pub(crate) fn new(range: &PhysRange, name: CString) -> Option<Self> {
        let region =
            iomem_root().request_region(range.base(), range.size(), name, Flags::IORESOURCE_MEM)?;
        Some(Self {
            _region: region,
            range: *range,
        })
    }
}

impl Claimed for RequestedClaim {
    fn claimed_range(&self) -> PhysRange {
        self.range
    }
}

/// A busy entry inserted into the iomem tree (`insert_resource`) for RAM that memblock reserved
/// at boot; removed on drop.
///
/// # Invariants
///
/// `resource` is in the iomem tree, with no child, and stays there until dropped.
pub(crate) struct InsertedClaim {
    resource: KBox<Opaque<bindings::resource>>,
    range: PhysRange,
    _name: CString,
}

impl Claimed for InsertedClaim {
    fn claimed_range(&self) -> PhysRange {
        self.range
    }

    fn is_ram(&self) -> bool {
        true
    }
}

impl InsertedClaim {
    /// Claims `range` of RAM under `name`. `EBUSY` if it overlaps or equals an entry already
    /// there (another claim of the same memory).
    pub(crate) fn new(range: &PhysRange, name: CString) -> Result<Self> {
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
        // allocated (with the name it points to) until `Drop` removes it from the tree; the
        // tree locks itself.
        kernel::error::to_result(unsafe {
            bindings::insert_resource(&raw mut bindings::iomem_resource, resource.get())
        })
        .map_err(|_| EBUSY)?;
        // `insert_resource` wraps an entry of exactly the same range instead of refusing it.
        // SAFETY: The resource is in the tree; reading its child link is a snapshot of a pointer
        // that is only compared with NULL.
        if unsafe { !(*resource.get()).child.is_null() } {
            // SAFETY: Inserted just above; `remove_resource` hands the wrapped entry back.
            unsafe { bindings::remove_resource(resource.get()) };
            return Err(EBUSY);
        }
        // INVARIANT: Inserted above, with no child.
        Ok(Self {
            resource,
            range: *range,
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

/// The highest physical address the CPU can address (the end of the iomem tree's root).
pub(crate) fn max_phys_addr() -> u64 {
    let root = iomem_root();
    root.start() + root.size().saturating_sub(1)
}
