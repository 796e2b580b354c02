// SPDX-License-Identifier: GPL-2.0

//! The device node of a bound region: a misc device with the region's name, node path and
//! mode, and its read-only sysfs attributes (`/sys/class/misc/<name>/`): `phys_addr`, `size`,
//! `attr`, `map_count`, and the `mode` and `gid` that udev applies to the node.
//!
//! `kernel::miscdevice::MiscDeviceRegistration` cannot set a node path, mode or attribute
//! groups, so this registers the same `struct miscdevice` (its file operations built by
//! `MiscDeviceOptions::into_raw`) with those fields filled in.

use core::fmt::Write;

use kernel::{
    bindings,
    error::to_result,
    miscdevice::{
        MiscDeviceOptions,
        MiscDeviceRegistration, //
    },
    page::PAGE_SIZE,
    prelude::*,
    str::{
        CString,
        Formatter, //
    },
    types::Opaque,
};

use crate::{
    chardev::RegionFile,
    driver::BoundRegion, //
};

/// How the node is named and who may open it.
pub(crate) struct NodeSpec {
    /// The misc device name (`/sys/class/misc/<name>`).
    pub(crate) name: CString,
    /// The path under `/dev`, if not the name (e.g. `carveout/<region>`).
    pub(crate) path: Option<CString>,
    /// The node's permission bits.
    pub(crate) mode: u16,
    /// The group udev gives the node (shown in sysfs; the kernel creates it root:root).
    pub(crate) gid: u32,
}

/// A registered misc device for a region; deregistered on drop.
///
/// # Invariants
///
/// `misc` is registered (`misc_register` succeeded) and its name and node path point into the
/// [`NodeSpec`] stored beside it in the same [`BoundRegion`], which outlives it.
#[repr(transparent)]
#[pin_data(PinnedDrop)]
pub(crate) struct RegionNode {
    #[pin]
    misc: Opaque<bindings::miscdevice>,
}

impl RegionNode {
    /// Registers the node described by `spec`.
    ///
    /// # Safety
    ///
    /// `spec` must outlive the returned node (it is dropped after it).
    pub(crate) unsafe fn register(spec: &NodeSpec) -> impl PinInit<Self, Error> {
        let name = spec.name.as_char_ptr();
        let path = spec
            .path
            .as_ref()
            .map_or(core::ptr::null(), |path| path.as_char_ptr());
        let mode = spec.mode;
        try_pin_init!(Self {
            misc <- Opaque::try_ffi_init(move |slot: *mut bindings::miscdevice| {
                let mut raw = MiscDeviceOptions { name: c"carveout" }.into_raw::<RegionFile>();
                raw.name = name;
                raw.nodename = path;
                raw.mode = mode;
                raw.groups = GROUPS.0.as_ptr().cast_mut();
                // SAFETY: The initializer may write to `slot`.
                unsafe { slot.write(raw) };
                // SAFETY: `slot` holds a filled-in miscdevice that stays pinned until `drop`
                // deregisters it; its strings outlive it by the function's safety requirement.
                // INVARIANT: on success the device is registered.
                to_result(unsafe { bindings::misc_register(slot) })
            }),
        })
    }

    /// The node whose `MiscDeviceRegistration` view the misc core hands to `open`.
    pub(crate) fn from_registration(misc: &MiscDeviceRegistration<RegionFile>) -> *const Self {
        // Both are `repr(transparent)` wrappers of the same `Opaque<miscdevice>`.
        core::ptr::from_ref(misc).cast()
    }
}

// SAFETY: The misc core may deregister the device from any thread.
unsafe impl Send for RegionNode {}
// SAFETY: `&self` gives no access to the miscdevice; the misc core synchronises its own use.
unsafe impl Sync for RegionNode {}

#[pinned_drop]
impl PinnedDrop for RegionNode {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: The device is registered by the type invariant, and deregistered only here.
        unsafe { bindings::misc_deregister(self.misc.get()) };
    }
}

/// The bound region whose node is the misc device `dev`.
///
/// # Safety
///
/// `dev` must be the `this_device` of a registered [`RegionNode`].
unsafe fn bound_of_device<'a>(dev: *mut bindings::device) -> &'a BoundRegion {
    // SAFETY: `misc_register` makes the miscdevice the device's driver data.
    let misc = unsafe { (*dev).driver_data }.cast::<RegionNode>();
    // SAFETY: By the function's safety requirement, `misc` is a `RegionNode` inside a live
    // `BoundRegion` (sysfs removes the attributes before the node is deregistered).
    unsafe { BoundRegion::of_node(misc) }
}

/// A sysfs `show` for the attribute `F` prints about a region.
///
/// # Safety
///
/// Called by sysfs for an attribute of [`GROUPS`], with `buf` a page.
unsafe extern "C" fn show<F: ShowRegion>(
    dev: *mut bindings::device,
    _attr: *mut bindings::device_attribute,
    buf: *mut c_char,
) -> isize {
    // SAFETY: The attributes are only in `GROUPS`, which only region nodes carry.
    let bound = unsafe { bound_of_device(dev) };
    // SAFETY: sysfs hands `show` a buffer of one page that nothing else uses meanwhile.
    let page = unsafe { core::slice::from_raw_parts_mut(buf.cast::<u8>(), PAGE_SIZE) };
    let mut out = Formatter::new(page);
    match F::show(bound, &mut out) {
        Ok(()) => out.bytes_written() as isize,
        Err(_) => EINVAL.to_errno() as isize,
    }
}

/// One read-only sysfs attribute of a region.
trait ShowRegion {
    fn show(bound: &BoundRegion, out: &mut Formatter<'_>) -> core::fmt::Result;
}

struct PhysAddr;
impl ShowRegion for PhysAddr {
    fn show(bound: &BoundRegion, out: &mut Formatter<'_>) -> core::fmt::Result {
        writeln!(out, "{:#x}", bound.region().range().base())
    }
}

struct Size;
impl ShowRegion for Size {
    fn show(bound: &BoundRegion, out: &mut Formatter<'_>) -> core::fmt::Result {
        writeln!(out, "{}", bound.region().range().size())
    }
}

struct Attr;
impl ShowRegion for Attr {
    fn show(bound: &BoundRegion, out: &mut Formatter<'_>) -> core::fmt::Result {
        writeln!(out, "{}", bound.region().attr().name())
    }
}

struct MapCount;
impl ShowRegion for MapCount {
    fn show(bound: &BoundRegion, out: &mut Formatter<'_>) -> core::fmt::Result {
        writeln!(out, "{}", bound.region().map_count())
    }
}

struct Mode;
impl ShowRegion for Mode {
    fn show(bound: &BoundRegion, out: &mut Formatter<'_>) -> core::fmt::Result {
        writeln!(out, "{:04o}", bound.node_spec().mode)
    }
}

struct Gid;
impl ShowRegion for Gid {
    fn show(bound: &BoundRegion, out: &mut Formatter<'_>) -> core::fmt::Result {
        writeln!(out, "{}", bound.node_spec().gid)
    }
}

/// A `device_attribute` in a `static`.
#[repr(transparent)]
struct DeviceAttr(bindings::device_attribute);

// SAFETY: Never written after initialisation; sysfs only reads it.
unsafe impl Sync for DeviceAttr {}

// The update fills the lockdep fields `struct attribute` has in debug kernels.
#[allow(clippy::needless_update)]
const fn read_only<F: ShowRegion>(name: &'static CStr) -> DeviceAttr {
    DeviceAttr(bindings::device_attribute {
        attr: bindings::attribute {
            name: kernel::str::as_char_ptr_in_const_context(name),
            mode: 0o444,
            ..pin_init::zeroed()
        },
        __bindgen_anon_1: bindings::device_attribute__bindgen_ty_1 {
            show: Some(show::<F>),
        },
        ..pin_init::zeroed()
    })
}

static PHYS_ADDR: DeviceAttr = read_only::<PhysAddr>(c"phys_addr");
static SIZE: DeviceAttr = read_only::<Size>(c"size");
static ATTR: DeviceAttr = read_only::<Attr>(c"attr");
static MAP_COUNT: DeviceAttr = read_only::<MapCount>(c"map_count");
static MODE: DeviceAttr = read_only::<Mode>(c"mode");
static GID: DeviceAttr = read_only::<Gid>(c"gid");

/// Pointers in a `static` (NULL-terminated arrays for sysfs).
#[repr(transparent)]
struct StaticPtrs<T, const N: usize>([*const T; N]);

// SAFETY: The pointers are to `static`s that are never written; sysfs only reads them.
unsafe impl<T, const N: usize> Sync for StaticPtrs<T, N> {}

static ATTRS: StaticPtrs<bindings::attribute, 7> = StaticPtrs([
    &raw const PHYS_ADDR.0.attr,
    &raw const SIZE.0.attr,
    &raw const ATTR.0.attr,
    &raw const MAP_COUNT.0.attr,
    &raw const MODE.0.attr,
    &raw const GID.0.attr,
    core::ptr::null(),
]);

/// A `attribute_group` in a `static`.
#[repr(transparent)]
struct AttrGroup(bindings::attribute_group);

// SAFETY: Never written after initialisation; sysfs only reads it.
unsafe impl Sync for AttrGroup {}

static GROUP: AttrGroup = AttrGroup(bindings::attribute_group {
    __bindgen_anon_2: bindings::attribute_group__bindgen_ty_2 {
        attrs_const: ATTRS.0.as_ptr(),
    },
    ..pin_init::zeroed()
});

static GROUPS: StaticPtrs<bindings::attribute_group, 2> =
    StaticPtrs([&raw const GROUP.0, core::ptr::null()]);
