// SPDX-License-Identifier: GPL-2.0

//! The device nodes of bound regions: a `carveout` device class with one character device per
//! region, and the region's read-only sysfs attributes in `/sys/class/carveout/<name>/`:
//! `phys_addr`, `size`, `attr`, `map_count`, `unlisted`, `dma_devices`, `mode`, `gid`.
//!
//! devtmpfs creates each node (`/dev/carveout0`, `/dev/carveout/<name>`) with the region's mode
//! and group, which the node's device type hands it (`devnode`). A misc device can give neither
//! a group nor a device type, hence a class of our own.
//!
//! One range of [`MINORS`] device numbers and one `cdev` serve every node: `open` (in
//! `chardev.rs`) finds the region by minor in the node table.

use core::{
    fmt::Write,
    ptr::{
        null_mut,
        NonNull, //
    },
};

use kernel::{
    bindings,
    device::Device,
    error::{
        from_err_ptr,
        to_result, //
    },
    page::PAGE_SIZE,
    prelude::*,
    str::{
        CString,
        Formatter, //
    },
    sync::Arc,
    types::Opaque,
};

use crate::{
    chardev,
    kernel_ext::dma_attachment::Translation,
    region::Region,
    sys::{
        ConfigItem,
        ConfigItemRef, //
    },
};

/// How many nodes can exist at once.
const MINORS: usize = 64;

/// Bits of the minor in a `dev_t` (`MINORBITS`).
const MINOR_BITS: u32 = 20;

/// The class and the device numbers' name: `/sys/class/carveout`, `carveout` in
/// `/proc/devices`.
const CLASS_NAME: &CStr = c"carveout";

/// How the node is named and who may open it.
pub(crate) struct NodeSpec {
    /// The device name (`/sys/class/carveout/<name>`).
    pub(crate) name: CString,
    /// The path under `/dev`, if not the name (e.g. `carveout/<region>`).
    pub(crate) path: Option<CString>,
    /// The node's permission bits.
    pub(crate) mode: u16,
    /// The node's group.
    pub(crate) gid: u32,
}

/// What opening a node finds.
struct NodeEntry {
    region: Arc<Region>,
    /// The configfs directory the region was made from, if it was: while the node is in the
    /// table the directory is alive (its removal removes the node first).
    config_item: Option<ConfigItem>,
}

/// The nodes by minor, and what makes new ones.
struct NodeTable {
    /// The class, or null while the module has none (before init and after exit).
    class: *mut bindings::class,
    /// The first device number (minor 0).
    first: bindings::dev_t,
    entries: [Option<NodeEntry>; MINORS],
}

// SAFETY: The class pointer is only used under the table's lock, from any thread.
unsafe impl Send for NodeTable {}

kernel::sync::global_lock! {
    // SAFETY: Initialised in `NodeClass::register`, from the module's `init`, before any node.
    unsafe(uninit) static NODES: Mutex<NodeTable> = NodeTable {
        class: null_mut(),
        first: 0,
        entries: [const { None }; MINORS],
    };
}

/// The class and the `cdev` of every node; the module holds it from `init` to `exit`.
///
/// # Invariants
///
/// `cdev` is added for the [`MINORS`] device numbers from `NODES.first`, which are allocated,
/// and `NODES.class` is the class `class_create` made.
#[pin_data(PinnedDrop)]
pub(crate) struct NodeClass {
    #[pin]
    cdev: Opaque<bindings::cdev>,
}

// SAFETY: The cdev is only touched by the VFS, under its own locks, and deleted on drop.
unsafe impl Send for NodeClass {}
// SAFETY: `&NodeClass` gives no access to the cdev.
unsafe impl Sync for NodeClass {}

impl NodeClass {
    /// Allocates the device numbers, creates the class and adds the `cdev`. Call once.
    pub(crate) fn register(module: &'static ThisModule) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            cdev <- Opaque::try_ffi_init(move |cdev: *mut bindings::cdev| {
                // SAFETY: Called once, from the module's `init`, before any other use.
                unsafe { NODES.init() };
                let mut first: bindings::dev_t = 0;
                // SAFETY: `first` is writable; the name is a static string.
                to_result(unsafe {
                    bindings::alloc_chrdev_region(
                        &mut first,
                        0,
                        MINORS as u32,
                        CLASS_NAME.as_char_ptr(),
                    )
                })?;
                // SAFETY: The name is a static string.
                let class = from_err_ptr(unsafe { bindings::class_create(CLASS_NAME.as_char_ptr()) })
                    .inspect_err(|_| {
                        // SAFETY: Allocated above and not used since.
                        unsafe { bindings::unregister_chrdev_region(first, MINORS as u32) };
                    })?;
                // SAFETY: `cdev` is the pinned slot being initialised; the file operations are
                // a `'static` constant.
                unsafe {
                    bindings::cdev_init(cdev, chardev::file_operations());
                    (*cdev).owner = module.as_ptr();
                }
                // SAFETY: `cdev` was initialised above and stays pinned until `drop` deletes
                // it; the device numbers are ours.
                if let Err(err) = to_result(unsafe { bindings::cdev_add(cdev, first, MINORS as u32) }) {
                    // SAFETY: Made above and not used since.
                    unsafe {
                        bindings::class_destroy(class);
                        bindings::unregister_chrdev_region(first, MINORS as u32);
                    }
                    return Err(err);
                }
                // INVARIANT: The cdev is added, the numbers allocated, the class recorded.
                let mut table = NODES.lock();
                table.class = class;
                table.first = first;
                Ok(())
            }),
        })
    }
}

#[pinned_drop]
impl PinnedDrop for NodeClass {
    fn drop(self: Pin<&mut Self>) {
        let (class, first) = {
            let mut table = NODES.lock();
            let class = core::mem::take(&mut table.class);
            (class, table.first)
        };
        // SAFETY: By the type invariant. No node is left: the module drops the regions (and
        // unregisters the driver) first, and an open file holds the module.
        unsafe {
            bindings::cdev_del(self.cdev.get());
            bindings::class_destroy(class);
            bindings::unregister_chrdev_region(first, MINORS as u32);
        }
    }
}

/// The region of the node with device number `rdev`, and a reference to its configfs
/// directory if it has one. `ENXIO` for no such node; `ENODEV` for one whose directory is
/// being removed.
pub(crate) fn open_node(rdev: bindings::dev_t) -> Result<(Arc<Region>, Option<ConfigItemRef>)> {
    let table = NODES.lock();
    if table.class.is_null() || rdev >> MINOR_BITS != table.first >> MINOR_BITS {
        return Err(ENXIO);
    }
    let minor = (rdev & ((1 << MINOR_BITS) - 1)) as usize;
    let entry = table
        .entries
        .get(minor)
        .and_then(Option::as_ref)
        .ok_or(ENXIO)?;
    let item = match &entry.config_item {
        Some(item) => Some(item.get().ok_or(ENODEV)?),
        None => None,
    };
    Ok((entry.region.clone(), item))
}

/// A node's `struct device`, with what its callbacks read. Allocated by [`RegionNode::register`],
/// freed by [`release_node_device`] when the last reference to the device goes.
struct NodeDevice {
    dev: Opaque<bindings::device>,
    /// The region; alive while the device is registered (the node table holds it until after
    /// the device is deleted, and sysfs calls `show` only before that).
    region: *const Region,
    mode: u16,
    gid: u32,
    path: Option<CString>,
}

impl NodeDevice {
    /// The `NodeDevice` of `dev`.
    ///
    /// # Safety
    ///
    /// `dev` must be the `dev` field of a live `NodeDevice`, alive for `'a`.
    unsafe fn of<'a>(dev: *const bindings::device) -> &'a Self {
        let dev = Opaque::cast_from(dev);
        // SAFETY: By the function's safety requirement.
        unsafe { &*kernel::container_of!(dev, NodeDevice, dev) }
    }
}

/// A region's device node; deleted on drop.
///
/// # Invariants
///
/// `device` is a `NodeDevice` whose device is registered (`device_add` succeeded) and whose
/// table entry is `minor`.
pub(crate) struct RegionNode {
    device: NonNull<NodeDevice>,
    minor: usize,
}

// SAFETY: The node may be deleted from any thread.
unsafe impl Send for RegionNode {}
// SAFETY: `&RegionNode` gives no access to anything.
unsafe impl Sync for RegionNode {}

impl RegionNode {
    /// Publishes `region` as the node `spec` describes, a child of `parent`. `config_item` is
    /// the configfs directory the region was made from: open files make its `rmdir` refuse.
    /// `ENOSPC` when [`MINORS`] nodes exist already.
    pub(crate) fn register(
        parent: &Device,
        spec: NodeSpec,
        region: Arc<Region>,
        config_item: Option<ConfigItem>,
    ) -> Result<Self> {
        let device = KBox::new(
            NodeDevice {
                dev: Opaque::zeroed(),
                region: &*region,
                mode: spec.mode,
                gid: spec.gid,
                path: spec.path,
            },
            GFP_KERNEL,
        )?;
        let (class, devt, minor) = {
            let mut table = NODES.lock();
            if table.class.is_null() {
                return Err(ENODEV);
            }
            let minor = table
                .entries
                .iter()
                .position(Option::is_none)
                .ok_or_else(|| {
                    dev_err!(
                        parent,
                        "refusing a node: all {} carveout nodes in use\n",
                        MINORS
                    );
                    ENOSPC
                })?;
            table.entries[minor] = Some(NodeEntry {
                region,
                config_item,
            });
            (table.class, table.first + minor as u32, minor)
        };
        // `Device` is a transparent wrapper of `struct device`; `device_add` takes a reference.
        let parent_device = core::ptr::from_ref(parent)
            .cast::<bindings::device>()
            .cast_mut();
        let device = KBox::into_raw(device);
        // SAFETY: `device` is a fresh allocation nobody else knows of yet.
        let dev = unsafe { (*device).dev.get() };
        // SAFETY: `dev` is zeroed; from here on its release function frees `device`.
        unsafe {
            bindings::device_initialize(dev);
            (*dev).devt = devt;
            (*dev).class = class;
            (*dev).type_ = &NODE_TYPE.0;
            (*dev).parent = parent_device;
            (*dev).groups = GROUPS.0.as_ptr().cast_mut();
            (*dev).release = Some(release_node_device);
        }
        // SAFETY: `dev` is initialised; the format takes one string, `spec.name`.
        let named = to_result(unsafe {
            bindings::dev_set_name(dev, c"%s".as_char_ptr(), spec.name.as_char_ptr())
        });
        // SAFETY: As above; `device_add` makes the node and the sysfs attributes.
        let added = named.and_then(|()| to_result(unsafe { bindings::device_add(dev) }));
        if let Err(err) = added {
            let entry = NODES.lock().entries[minor].take();
            // SAFETY: Dropping the reference `device_initialize` gave frees `device`.
            unsafe { bindings::put_device(dev) };
            drop(entry);
            return Err(err);
        }
        // INVARIANT: The device is registered and its entry is `minor`.
        Ok(Self {
            // SAFETY: `KBox::into_raw` does not return null.
            device: unsafe { NonNull::new_unchecked(device) },
            minor,
        })
    }
}

impl Drop for RegionNode {
    fn drop(&mut self) {
        // No new opens from here on; the region stays until the device is deleted.
        let entry = NODES.lock().entries[self.minor].take();
        // SAFETY: The device is registered by the type invariant, and unregistered only here;
        // its last reference frees it.
        unsafe { bindings::device_unregister((*self.device.as_ptr()).dev.get()) };
        drop(entry);
    }
}

/// Frees a node's `NodeDevice` with the last reference to its device.
///
/// # Safety
///
/// Called by the driver core once, for the device of a `NodeDevice` that
/// [`RegionNode::register`] allocated.
unsafe extern "C" fn release_node_device(dev: *mut bindings::device) {
    let dev = Opaque::cast_from(dev);
    // SAFETY: By the function's safety requirement.
    let device = unsafe { kernel::container_of!(dev, NodeDevice, dev) }.cast_mut();
    // SAFETY: `device` came from `KBox::into_raw` and nothing uses it any more.
    drop(unsafe { KBox::from_raw(device) });
}

/// Tells devtmpfs (and the uevent) the node's path, mode and group.
///
/// # Safety
///
/// Called by the driver core for a device of [`NODE_TYPE`]; `mode`, `uid` and `gid` are each
/// null or writable.
unsafe extern "C" fn devnode(
    dev: *const bindings::device,
    mode: *mut bindings::umode_t,
    _uid: *mut bindings::kuid_t,
    gid: *mut bindings::kgid_t,
) -> *mut c_char {
    // SAFETY: Only node devices have `NODE_TYPE`; the driver core holds the device.
    let node = unsafe { NodeDevice::of(dev) };
    if !mode.is_null() {
        // SAFETY: Writable by the function's safety requirement.
        unsafe { *mode = node.mode };
    }
    if !gid.is_null() {
        // The group number as seen from the initial user namespace, like devtmpfs itself.
        // SAFETY: Writable by the function's safety requirement.
        unsafe { *gid = bindings::kgid_t { val: node.gid } };
    }
    match &node.path {
        // The caller frees the copy; null (no memory) makes it fall back to the device name.
        // SAFETY: `path` is a NUL-terminated string.
        Some(path) => unsafe { bindings::kstrdup(path.as_char_ptr(), bindings::GFP_KERNEL) },
        None => null_mut(),
    }
}

/// A `device_type` in a `static`.
#[repr(transparent)]
struct DeviceType(bindings::device_type);

// SAFETY: Never written after initialisation; the driver core only reads it.
unsafe impl Sync for DeviceType {}

static NODE_TYPE: DeviceType = DeviceType(bindings::device_type {
    name: kernel::str::as_char_ptr_in_const_context(c"carveout_region"),
    devnode: Some(devnode),
    ..pin_init::zeroed()
});

/// A sysfs `show` for the attribute `F` prints about a node.
///
/// # Safety
///
/// Called by sysfs for an attribute of [`GROUPS`], with `buf` a page.
unsafe extern "C" fn show<F: ShowNode>(
    dev: *mut bindings::device,
    _attr: *mut bindings::device_attribute,
    buf: *mut c_char,
) -> isize {
    // SAFETY: The attributes are only in `GROUPS`, which only node devices carry, and exist
    // only while the device is registered.
    let node = unsafe { NodeDevice::of(dev) };
    // SAFETY: The region is alive while the device is registered (see `NodeDevice::region`).
    let region = unsafe { &*node.region };
    // SAFETY: sysfs hands `show` a buffer of one page that nothing else uses meanwhile.
    let page = unsafe { core::slice::from_raw_parts_mut(buf.cast::<u8>(), PAGE_SIZE) };
    let mut out = Formatter::new(page);
    match F::show(node, region, &mut out) {
        Ok(()) => out.bytes_written() as isize,
        Err(_) => EINVAL.to_errno() as isize,
    }
}

/// One read-only sysfs attribute of a node.
trait ShowNode {
    fn show(node: &NodeDevice, region: &Region, out: &mut Formatter<'_>) -> core::fmt::Result;
}

struct PhysAddr;
impl ShowNode for PhysAddr {
    fn show(_node: &NodeDevice, region: &Region, out: &mut Formatter<'_>) -> core::fmt::Result {
        writeln!(out, "{:#x}", region.range().base())
    }
}

struct Size;
impl ShowNode for Size {
    fn show(_node: &NodeDevice, region: &Region, out: &mut Formatter<'_>) -> core::fmt::Result {
        writeln!(out, "{}", region.range().size())
    }
}

struct Attr;
impl ShowNode for Attr {
    fn show(_node: &NodeDevice, region: &Region, out: &mut Formatter<'_>) -> core::fmt::Result {
        writeln!(out, "{}", region.attr().name())
    }
}

struct MapCount;
impl ShowNode for MapCount {
    fn show(_node: &NodeDevice, region: &Region, out: &mut Formatter<'_>) -> core::fmt::Result {
        writeln!(out, "{}", region.map_count())
    }
}

struct Unlisted;
impl ShowNode for Unlisted {
    fn show(_node: &NodeDevice, region: &Region, out: &mut Formatter<'_>) -> core::fmt::Result {
        writeln!(out, "{}", u8::from(region.unlisted()))
    }
}

/// One line per attached PCI device: its name, the bus address it must use for the region's
/// base (`-` once the device is removed) and whether its IOMMU translates.
struct DmaDevices;
impl ShowNode for DmaDevices {
    fn show(_node: &NodeDevice, region: &Region, out: &mut Formatter<'_>) -> core::fmt::Result {
        region.each_attachment(|device, bus, translation| {
            let device = device.to_str().unwrap_or("?");
            let how = match translation {
                Translation::Translated => "translated",
                Translation::Direct => "direct",
            };
            match bus {
                Some(bus) => writeln!(out, "{device} {bus:#x} {how}"),
                None => writeln!(out, "{device} - removed"),
            }
        })
    }
}

struct Mode;
impl ShowNode for Mode {
    fn show(node: &NodeDevice, _region: &Region, out: &mut Formatter<'_>) -> core::fmt::Result {
        writeln!(out, "{:04o}", node.mode)
    }
}

struct Gid;
impl ShowNode for Gid {
    fn show(node: &NodeDevice, _region: &Region, out: &mut Formatter<'_>) -> core::fmt::Result {
        writeln!(out, "{}", node.gid)
    }
}

/// A `device_attribute` in a `static`.
#[repr(transparent)]
struct DeviceAttr(bindings::device_attribute);

// SAFETY: Never written after initialisation; sysfs only reads it.
unsafe impl Sync for DeviceAttr {}

// The update fills the lockdep fields `struct attribute` has in debug kernels.
#[allow(clippy::needless_update)]
const fn read_only<F: ShowNode>(name: &'static CStr) -> DeviceAttr {
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
static UNLISTED: DeviceAttr = read_only::<Unlisted>(c"unlisted");
static DMA_DEVICES: DeviceAttr = read_only::<DmaDevices>(c"dma_devices");
static MODE: DeviceAttr = read_only::<Mode>(c"mode");
static GID: DeviceAttr = read_only::<Gid>(c"gid");

/// Pointers in a `static` (NULL-terminated arrays for sysfs).
#[repr(transparent)]
struct StaticPtrs<T, const N: usize>([*const T; N]);

// SAFETY: The pointers are to `static`s that are never written; sysfs only reads them.
unsafe impl<T, const N: usize> Sync for StaticPtrs<T, N> {}

static ATTRS: StaticPtrs<bindings::attribute, 9> = StaticPtrs([
    &raw const PHYS_ADDR.0.attr,
    &raw const SIZE.0.attr,
    &raw const ATTR.0.attr,
    &raw const MAP_COUNT.0.attr,
    &raw const UNLISTED.0.attr,
    &raw const DMA_DEVICES.0.attr,
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
