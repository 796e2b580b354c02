// SPDX-License-Identifier: GPL-2.0

//! The device nodes of bound regions: a `carveout` device class with one character device per
//! region, and the region's read-only sysfs attributes in `/sys/class/carveout/<name>/`:
//! `phys_addr`, `size`, `attr`, `map_count`, `mode`, `gid`, `unlisted`, `dma_devices`, `pages`,
//! `pages_align`, `pages_in_use`.
//!
//! devtmpfs creates each node (`/dev/carveout0`, `/dev/carveout/<name>`) with the region's mode
//! and group, which the node's device type hands it (`devnode`). A misc device can give neither
//! a group nor a device type, hence a class of our own.
//!
//! One range of [`MINORS`] device numbers and one `cdev` serve every node: its file
//! operations (`chardev.rs`'s, which the module hands [`NodeClass::register`]) find the region
//! by minor in the node table ([`open_node`]). The kernel objects themselves (class, device
//! numbers and cdev, devices and their attribute tables) are wrapped in `kernel_ext/`.

use core::fmt::Write;

use kernel::{
    device::Device,
    prelude::*,
    str::{
        CString,
        Formatter, //
    },
    sync::Arc,
};

use crate::{
    kernel_ext::{
        chrdev::{
            CharDevRegion,
            DevRange, //
        },
        class::Class,
        class_device::{
            AttributeGroup,
            AttributeGroups,
            AttributeList,
            ClassDevice,
            ClassDeviceOps,
            DeviceAttribute,
            Devnode,
            ShowAttribute, //
        },
        configfs_item::{
            ConfigItemRef,
            GroupLink, //
        },
        dma_attachment::{
            Status,
            Translation, //
        },
        file_ops::FileOps,
        static_mutex::StaticMutex,
    },
    region::Region,
};

/// How many nodes can exist at once.
const MINORS: usize = 64;

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
    /// The configfs directory the region was made from, if it was.
    config_item: Option<GroupLink>,
}

/// The nodes by minor, and what makes new ones.
struct NodeTable {
    /// The class, while the module has one (from init to exit).
    class: Option<Arc<Class>>,
    /// The device numbers of the nodes, index = minor offset (empty without a class).
    numbers: DevRange,
    entries: [Option<NodeEntry>; MINORS],
}

static NODES: StaticMutex<NodeTable> = StaticMutex::new(
    c"carveout_nodes",
    NodeTable {
        class: None,
        numbers: DevRange::EMPTY,
        entries: [const { None }; MINORS],
    },
);

/// The class and the `cdev` of every node; the module holds it from `init` to `exit`.
pub(crate) struct NodeClass {
    _numbers: CharDevRegion,
}

impl NodeClass {
    /// Allocates the device numbers, adds the `cdev` whose files are `F`s (whose `open` finds
    /// the node with [`open_node`]) and creates the class. Call once.
    pub(crate) fn register<F: FileOps>(module: &'static ThisModule) -> Result<Self> {
        let numbers = CharDevRegion::register::<F>(CLASS_NAME, MINORS as u32, module)?;
        let class = Arc::new(Class::create(CLASS_NAME)?, GFP_KERNEL)?;
        let mut table = NODES.lock();
        table.class = Some(class);
        table.numbers = numbers.range();
        Ok(Self { _numbers: numbers })
    }
}

impl Drop for NodeClass {
    fn drop(&mut self) {
        // No node is left: the module drops the regions (and unregisters the driver) first,
        // and an open file holds the module. The cdev and the numbers go after this.
        let class = {
            let mut table = NODES.lock();
            table.numbers = DevRange::EMPTY;
            table.class.take()
        };
        drop(class);
    }
}

/// The region of the node with device number `rdev`, and a reference to its configfs
/// directory if it has one. `ENXIO` for no such node; `ENODEV` for one whose directory is
/// being removed.
pub(crate) fn open_node(rdev: u32) -> Result<(Arc<Region>, Option<ConfigItemRef>)> {
    let table = NODES.lock();
    let minor = table.numbers.index(rdev).ok_or(ENXIO)? as usize;
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

/// What a node's device carries: what its node and attributes show.
struct NodeData {
    region: Arc<Region>,
    mode: u16,
    gid: u32,
    path: Option<CString>,
}

#[vtable]
impl ClassDeviceOps for NodeData {
    const TYPE_NAME: &'static CStr = c"carveout_region";

    fn devnode(&self) -> Devnode<'_> {
        Devnode {
            mode: Some(self.mode),
            gid: Some(self.gid),
            path: self.path.as_deref(),
        }
    }
}

/// A region's device node; deleted on drop.
///
/// # Invariants
///
/// The table entry `minor` is this node's.
pub(crate) struct RegionNode {
    _device: ClassDevice<NodeData>,
    minor: usize,
}

impl RegionNode {
    /// Publishes `region` as the node `spec` describes, a child of `parent`. `config_item` is
    /// the configfs directory the region was made from: open files make its `rmdir` refuse.
    /// `ENOSPC` when [`MINORS`] nodes exist already.
    pub(crate) fn register(
        parent: &Device,
        spec: NodeSpec,
        region: Arc<Region>,
        config_item: Option<GroupLink>,
    ) -> Result<Self> {
        let data = NodeData {
            region: region.clone(),
            mode: spec.mode,
            gid: spec.gid,
            path: spec.path,
        };
        let (class, devt, minor) = {
            let mut table = NODES.lock();
            let class = table.class.clone().ok_or(ENODEV)?;
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
            let devt = table.numbers.devt(minor as u32).ok_or(ENODEV)?;
            table.entries[minor] = Some(NodeEntry {
                region,
                config_item,
            });
            (class, devt, minor)
        };
        match ClassDevice::register(&class, parent, devt, &spec.name, &GROUPS, data) {
            // INVARIANT: The entry `minor` was filled above for this node.
            Ok(device) => Ok(Self {
                _device: device,
                minor,
            }),
            Err(err) => {
                let entry = NODES.lock().entries[minor].take();
                drop(entry);
                Err(err)
            }
        }
    }
}

impl Drop for RegionNode {
    fn drop(&mut self) {
        // No new opens from here on; the device (which holds the region too) is deleted
        // after this.
        let entry = NODES.lock().entries[self.minor].take();
        drop(entry);
    }
}

struct PhysAddr;
impl ShowAttribute<NodeData> for PhysAddr {
    fn show(node: &NodeData, out: &mut Formatter<'_>) -> core::fmt::Result {
        writeln!(out, "{:#x}", node.region.range().base())
    }
}

struct Size;
impl ShowAttribute<NodeData> for Size {
    fn show(node: &NodeData, out: &mut Formatter<'_>) -> core::fmt::Result {
        writeln!(out, "{}", node.region.range().size())
    }
}

struct Attr;
impl ShowAttribute<NodeData> for Attr {
    fn show(node: &NodeData, out: &mut Formatter<'_>) -> core::fmt::Result {
        writeln!(out, "{}", node.region.attr().name())
    }
}

struct MapCount;
impl ShowAttribute<NodeData> for MapCount {
    fn show(node: &NodeData, out: &mut Formatter<'_>) -> core::fmt::Result {
        writeln!(out, "{}", node.region.map_count())
    }
}

/// One line per attached PCI device: its name, the bus address it must use for the region's
/// base and whether its IOMMU translates, or `- removed` once the device is removed, `- revoked`
/// once a driver that may hand its DMA to userspace bound to its IOMMU group.
struct DmaDevices;
impl ShowAttribute<NodeData> for DmaDevices {
    fn show(node: &NodeData, out: &mut Formatter<'_>) -> core::fmt::Result {
        node.region.each_attachment(|device, status| {
            let device = device.to_str().unwrap_or("?");
            match status {
                Status::Mapped { bus, translation } => {
                    let how = match translation {
                        Translation::Translated => "translated",
                        Translation::Direct => "direct",
                    };
                    writeln!(out, "{device} {bus:#x} {how}")
                }
                Status::Removed => writeln!(out, "{device} - removed"),
                Status::Revoked => writeln!(out, "{device} - revoked"),
            }
        })
    }
}

struct Mode;
impl ShowAttribute<NodeData> for Mode {
    fn show(node: &NodeData, out: &mut Formatter<'_>) -> core::fmt::Result {
        writeln!(out, "{:04o}", node.mode)
    }
}

struct Gid;
impl ShowAttribute<NodeData> for Gid {
    fn show(node: &NodeData, out: &mut Formatter<'_>) -> core::fmt::Result {
        writeln!(out, "{}", node.gid)
    }
}

struct Unlisted;
impl ShowAttribute<NodeData> for Unlisted {
    fn show(node: &NodeData, out: &mut Formatter<'_>) -> core::fmt::Result {
        writeln!(out, "{}", u8::from(node.region.unlisted()))
    }
}

/// 1 for a region with struct pages (pages mode).
struct Pages;
impl ShowAttribute<NodeData> for Pages {
    fn show(node: &NodeData, out: &mut Formatter<'_>) -> core::fmt::Result {
        writeln!(out, "{}", u8::from(node.region.pages()))
    }
}

/// The size of a pages-mode region's folios in bytes, and of every entry that maps them (0
/// without pages).
struct PagesAlign;
impl ShowAttribute<NodeData> for PagesAlign {
    fn show(node: &NodeData, out: &mut Formatter<'_>) -> core::fmt::Result {
        let bytes = node.region.folio_size().map_or(0, |folio| folio.bytes());
        writeln!(out, "{bytes}")
    }
}

/// How many of a pages-mode region's pages are mapped or pinned now (0 without pages).
struct PagesInUse;
impl ShowAttribute<NodeData> for PagesInUse {
    fn show(node: &NodeData, out: &mut Formatter<'_>) -> core::fmt::Result {
        writeln!(out, "{}", node.region.pages_held())
    }
}

static PHYS_ADDR: DeviceAttribute<NodeData> = DeviceAttribute::read_only::<PhysAddr>(c"phys_addr");
static SIZE: DeviceAttribute<NodeData> = DeviceAttribute::read_only::<Size>(c"size");
static ATTR: DeviceAttribute<NodeData> = DeviceAttribute::read_only::<Attr>(c"attr");
static MAP_COUNT: DeviceAttribute<NodeData> = DeviceAttribute::read_only::<MapCount>(c"map_count");
static MODE: DeviceAttribute<NodeData> = DeviceAttribute::read_only::<Mode>(c"mode");
static GID: DeviceAttribute<NodeData> = DeviceAttribute::read_only::<Gid>(c"gid");
static UNLISTED: DeviceAttribute<NodeData> = DeviceAttribute::read_only::<Unlisted>(c"unlisted");
static DMA_DEVICES: DeviceAttribute<NodeData> =
    DeviceAttribute::read_only::<DmaDevices>(c"dma_devices");
static PAGES: DeviceAttribute<NodeData> = DeviceAttribute::read_only::<Pages>(c"pages");
static PAGES_ALIGN: DeviceAttribute<NodeData> =
    DeviceAttribute::read_only::<PagesAlign>(c"pages_align");
static PAGES_IN_USE: DeviceAttribute<NodeData> =
    DeviceAttribute::read_only::<PagesInUse>(c"pages_in_use");

static ATTRS: AttributeList<NodeData, 11> = AttributeList::new([
    &PHYS_ADDR,
    &SIZE,
    &ATTR,
    &MAP_COUNT,
    &MODE,
    &GID,
    &UNLISTED,
    &DMA_DEVICES,
    &PAGES,
    &PAGES_ALIGN,
    &PAGES_IN_USE,
]);
static GROUP: AttributeGroup<NodeData> = AttributeGroup::new(&ATTRS);
static GROUPS: AttributeGroups<NodeData> = AttributeGroups::new(&GROUP);
