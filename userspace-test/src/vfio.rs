//! A PCI device owned from userspace through VFIO's type1 container (`/dev/vfio/vfio`), after
//! `include/uapi/linux/vfio.h`: the container, the device's IOMMU group (`/dev/vfio/N`), the
//! device file, its regions (BARs, config space), and mappings of process memory into the
//! device's I/O address space (`VFIO_IOMMU_MAP_DMA`).
//!
//! The device must be bound to `vfio-pci` first, e.g.
//! `echo vfio-pci > /sys/bus/pci/devices/D/driver_override; echo D > /sys/bus/pci/drivers_probe`.
//!
//! A carveout mapping can be handed to the device as it is: the driver maps the region
//! `VM_PFNMAP`, which VFIO's type1 backend follows page table by page table (2 MiB entries
//! where the mapping has them) instead of pinning pages. [`Vfio::map_region`] does that.

use std::{
    ffi::{c_int, c_void, CString},
    fs, io,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    path::Path,
    ptr::NonNull,
};

use rustix::{
    fs::{open, Mode, OFlags},
    io::{pread, pwrite},
    ioctl::{ioctl, opcode, Ioctl, IoctlOutput, Opcode, Updater},
    mm::{mmap, munmap, MapFlags, ProtFlags},
};

use crate::Mapping;

/// `VFIO_TYPE` and `VFIO_BASE`: every VFIO ioctl is `_IO(';', 100 + n)`.
const fn op(n: u8) -> Opcode {
    opcode::none(b';', 100 + n)
}

const GET_API_VERSION: Opcode = op(0);
const CHECK_EXTENSION: Opcode = op(1);
const SET_IOMMU: Opcode = op(2);
const GROUP_GET_STATUS: Opcode = op(3);
const GROUP_SET_CONTAINER: Opcode = op(4);
const GROUP_GET_DEVICE_FD: Opcode = op(6);
const DEVICE_GET_INFO: Opcode = op(7);
const DEVICE_GET_REGION_INFO: Opcode = op(8);
const IOMMU_MAP_DMA: Opcode = op(13);
const IOMMU_UNMAP_DMA: Opcode = op(14);

/// `VFIO_API_VERSION`.
pub const API_VERSION: c_int = 0;
/// `VFIO_TYPE1v2_IOMMU`.
pub const TYPE1V2_IOMMU: c_int = 3;
/// `VFIO_GROUP_FLAGS_VIABLE`: every device of the group is bound to a VFIO driver (or none).
pub const GROUP_FLAGS_VIABLE: u32 = 1 << 0;
/// `VFIO_DEVICE_FLAGS_PCI`.
pub const DEVICE_FLAGS_PCI: u32 = 1 << 1;
/// `VFIO_PCI_BAR0_REGION_INDEX`.
pub const PCI_BAR0_REGION_INDEX: u32 = 0;
/// `VFIO_PCI_CONFIG_REGION_INDEX`.
pub const PCI_CONFIG_REGION_INDEX: u32 = 7;
/// `VFIO_REGION_INFO_FLAG_MMAP`.
pub const REGION_INFO_FLAG_MMAP: u32 = 1 << 2;
/// `VFIO_DMA_MAP_FLAG_READ`: the device may read the memory.
pub const DMA_MAP_FLAG_READ: u32 = 1 << 0;
/// `VFIO_DMA_MAP_FLAG_WRITE`: the device may write it.
pub const DMA_MAP_FLAG_WRITE: u32 = 1 << 1;

/// `struct vfio_group_status`.
#[repr(C)]
#[derive(Debug, Default)]
struct GroupStatus {
    argsz: u32,
    flags: u32,
}

/// `struct vfio_device_info`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct DeviceInfo {
    pub argsz: u32,
    pub flags: u32,
    pub num_regions: u32,
    pub num_irqs: u32,
    pub cap_offset: u32,
    pub pad: u32,
}

/// `struct vfio_region_info`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct RegionInfo {
    pub argsz: u32,
    pub flags: u32,
    pub index: u32,
    pub cap_offset: u32,
    pub size: u64,
    pub offset: u64,
}

/// `struct vfio_iommu_type1_dma_map`.
#[repr(C)]
#[derive(Debug, Default)]
struct DmaMap {
    argsz: u32,
    flags: u32,
    vaddr: u64,
    iova: u64,
    size: u64,
}

/// `struct vfio_iommu_type1_dma_unmap` without its trailing `data[]` (no dirty bitmap).
#[repr(C)]
#[derive(Debug, Default)]
struct DmaUnmap {
    argsz: u32,
    flags: u32,
    iova: u64,
    size: u64,
}

/// The argsz of a VFIO struct: its size, which the kernel checks against what it knows.
fn argsz<T>() -> u32 {
    std::mem::size_of::<T>() as u32
}

/// A VFIO ioctl whose argument is an integer or a pointer the caller keeps valid, and whose
/// result is the ioctl's return value (an API version, an extension's presence, a new fd).
struct Value<const OPCODE: Opcode> {
    arg: *mut c_void,
}

impl<const OPCODE: Opcode> Value<OPCODE> {
    /// # Safety
    ///
    /// `OPCODE` takes `arg` as an integer, or as a pointer to memory that is valid for what the
    /// ioctl does with it until the call returns.
    unsafe fn new(arg: *mut c_void) -> Self {
        Self { arg }
    }
}

// SAFETY: `new`'s contract makes the argument what the opcode expects; the kernel writes no
// memory through it for the opcodes used here (IS_MUTATING is false), and the output is the
// return value alone.
unsafe impl<const OPCODE: Opcode> Ioctl for Value<OPCODE> {
    type Output = IoctlOutput;
    const IS_MUTATING: bool = false;

    fn opcode(&self) -> Opcode {
        OPCODE
    }

    fn as_ptr(&mut self) -> *mut c_void {
        self.arg
    }

    unsafe fn output_from_ptr(out: IoctlOutput, _: *mut c_void) -> rustix::io::Result<IoctlOutput> {
        Ok(out)
    }
}

fn annotate(what: impl std::fmt::Display) -> impl FnOnce(rustix::io::Errno) -> io::Error {
    move |errno| {
        let err = io::Error::from(errno);
        io::Error::new(err.kind(), format!("{what}: {err}"))
    }
}

/// A PCI device bound to vfio-pci, opened through a type1 container of its own. Fields drop in
/// order: the device file, then the group, then the container.
#[derive(Debug)]
pub struct Vfio {
    device: OwnedFd,
    /// Kept open while the device is in use: closing it takes the group out of the container.
    /// `None` (and no container either) for a device file inherited from a parent process.
    _group: Option<OwnedFd>,
    container: Option<OwnedFd>,
    bdf: String,
    group_id: u32,
}

impl Vfio {
    /// Opens the device `bdf` (e.g. `0000:00:03.0`): a new container, the device's group
    /// (which must be viable) added to it, the type1v2 IOMMU set, and the device file.
    pub fn open(bdf: &str) -> io::Result<Self> {
        let group_id = iommu_group(bdf)?.ok_or_else(|| {
            io::Error::other(format!(
                "{bdf} has no IOMMU group: no IOMMU translates its DMA (boot with \
                 intel_iommu=on or amd_iommu=on)"
            ))
        })?;
        let container = open(
            "/dev/vfio/vfio",
            OFlags::RDWR | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(annotate("open /dev/vfio/vfio"))?;
        // SAFETY: GET_API_VERSION takes no argument.
        let version = unsafe { ioctl(&container, Value::<GET_API_VERSION>::new(0 as _)) }
            .map_err(annotate("VFIO_GET_API_VERSION"))?;
        if version != API_VERSION {
            return Err(io::Error::other(format!(
                "VFIO API version {version}, this program knows {API_VERSION}"
            )));
        }
        // SAFETY: CHECK_EXTENSION takes the extension's number as an integer.
        let type1 = unsafe {
            ioctl(
                &container,
                Value::<CHECK_EXTENSION>::new(TYPE1V2_IOMMU as _),
            )
        }
        .map_err(annotate("VFIO_CHECK_EXTENSION"))?;
        if type1 != 1 {
            return Err(io::Error::other(
                "the VFIO container has no type1v2 IOMMU (CONFIG_VFIO_IOMMU_TYPE1)",
            ));
        }
        let group_path = format!("/dev/vfio/{group_id}");
        let group = open(&group_path, OFlags::RDWR | OFlags::CLOEXEC, Mode::empty()).map_err(
            annotate(format!("open {group_path} (is {bdf} bound to vfio-pci?)")),
        )?;
        let mut status = GroupStatus {
            argsz: argsz::<GroupStatus>(),
            flags: 0,
        };
        // SAFETY: GROUP_GET_STATUS fills exactly one `struct vfio_group_status`.
        unsafe { ioctl(&group, Updater::<GROUP_GET_STATUS, _>::new(&mut status)) }
            .map_err(annotate("VFIO_GROUP_GET_STATUS"))?;
        if status.flags & GROUP_FLAGS_VIABLE == 0 {
            return Err(io::Error::other(format!(
                "IOMMU group {group_id} is not viable: bind every device in \
                 /sys/kernel/iommu_groups/{group_id}/devices to vfio-pci"
            )));
        }
        let mut container_fd: c_int = container.as_raw_fd();
        // SAFETY: GROUP_SET_CONTAINER reads one int (the container's fd) through the pointer,
        // which points to `container_fd`, alive across the call.
        unsafe {
            ioctl(
                &group,
                Value::<GROUP_SET_CONTAINER>::new((&raw mut container_fd).cast()),
            )
        }
        .map_err(annotate("VFIO_GROUP_SET_CONTAINER"))?;
        // SAFETY: SET_IOMMU takes the IOMMU type as an integer.
        unsafe { ioctl(&container, Value::<SET_IOMMU>::new(TYPE1V2_IOMMU as _)) }.map_err(
            annotate(
                "VFIO_SET_IOMMU (type1v2; without interrupt remapping boot with \
                 vfio_iommu_type1.allow_unsafe_interrupts=1)",
            ),
        )?;
        let name = CString::new(bdf).map_err(|_| io::Error::other("a NUL in the device name"))?;
        // SAFETY: GROUP_GET_DEVICE_FD reads a NUL-terminated string through the pointer, which
        // points into `name`, alive across the call.
        let fd = unsafe {
            ioctl(
                &group,
                Value::<GROUP_GET_DEVICE_FD>::new(name.as_ptr().cast_mut().cast()),
            )
        }
        .map_err(annotate(format!("VFIO_GROUP_GET_DEVICE_FD {bdf}")))?;
        // SAFETY: a successful GET_DEVICE_FD returns a new file descriptor that we now own.
        let device = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Self {
            device,
            _group: Some(group),
            container: Some(container),
            bdf: bdf.to_owned(),
            group_id,
        })
    }

    /// A device file opened by a parent process, which keeps the container and the group
    /// (and whatever it mapped in the container). [`Vfio::map_dma`] then has no container to
    /// map into.
    pub fn inherit(bdf: &str, device: OwnedFd) -> io::Result<Self> {
        let group_id = iommu_group(bdf)?.unwrap_or_default();
        Ok(Self {
            device,
            _group: None,
            container: None,
            bdf: bdf.to_owned(),
            group_id,
        })
    }

    /// Whether this process opened the container (rather than inheriting the device file).
    pub fn owns_container(&self) -> bool {
        self.container.is_some()
    }

    fn container(&self) -> io::Result<&OwnedFd> {
        self.container.as_ref().ok_or_else(|| {
            io::Error::other("the device file was inherited: its container is the parent's")
        })
    }

    pub fn bdf(&self) -> &str {
        &self.bdf
    }

    pub fn group_id(&self) -> u32 {
        self.group_id
    }

    /// `VFIO_DEVICE_GET_INFO`.
    pub fn device_info(&self) -> io::Result<DeviceInfo> {
        let mut info = DeviceInfo {
            argsz: argsz::<DeviceInfo>(),
            ..DeviceInfo::default()
        };
        // SAFETY: DEVICE_GET_INFO fills at most argsz bytes of one `struct vfio_device_info`.
        unsafe { ioctl(&self.device, Updater::<DEVICE_GET_INFO, _>::new(&mut info)) }
            .map_err(annotate("VFIO_DEVICE_GET_INFO"))?;
        Ok(info)
    }

    /// `VFIO_DEVICE_GET_REGION_INFO` for region `index` (a BAR, the config space).
    pub fn region_info(&self, index: u32) -> io::Result<RegionInfo> {
        let mut info = RegionInfo {
            argsz: argsz::<RegionInfo>(),
            index,
            ..RegionInfo::default()
        };
        // SAFETY: DEVICE_GET_REGION_INFO fills at most argsz bytes of one
        // `struct vfio_region_info`.
        unsafe {
            ioctl(
                &self.device,
                Updater::<DEVICE_GET_REGION_INFO, _>::new(&mut info),
            )
        }
        .map_err(annotate(format!("VFIO_DEVICE_GET_REGION_INFO {index}")))?;
        Ok(info)
    }

    /// Reads `buf.len()` bytes of PCI config space at `offset` through the device file.
    pub fn config_read(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let region = self.region_info(PCI_CONFIG_REGION_INDEX)?;
        let n = pread(&self.device, &mut *buf, region.offset + offset)
            .map_err(annotate("config space read"))?;
        if n != buf.len() {
            return Err(io::Error::other("short config space read"));
        }
        Ok(())
    }

    /// Writes `buf` to PCI config space at `offset` through the device file.
    pub fn config_write(&self, offset: u64, buf: &[u8]) -> io::Result<()> {
        let region = self.region_info(PCI_CONFIG_REGION_INDEX)?;
        let n = pwrite(&self.device, buf, region.offset + offset)
            .map_err(annotate("config space write"))?;
        if n != buf.len() {
            return Err(io::Error::other("short config space write"));
        }
        Ok(())
    }

    /// Maps `len` bytes of BAR `index` shared and read-write; returns the address. The caller
    /// unmaps it (`munmap`) and reaches it only with volatile accesses.
    pub fn map_bar(&self, index: u32, len: usize) -> io::Result<NonNull<u8>> {
        let region = self.region_info(index)?;
        if region.flags & REGION_INFO_FLAG_MMAP == 0 || region.size < len as u64 {
            return Err(io::Error::other(format!(
                "BAR {index} of {}: {:#x} bytes, flags {:#x}: cannot map {len:#x} bytes",
                self.bdf, region.size, region.flags
            )));
        }
        // SAFETY: a new mapping at an address the kernel picks aliases no Rust object.
        let ptr = unsafe {
            mmap(
                std::ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
                &self.device,
                region.offset,
            )
        }
        .map_err(annotate(format!("mmap of BAR {index}")))?;
        NonNull::new(ptr.cast()).ok_or_else(|| io::Error::other("mmap gave NULL"))
    }

    /// Unmaps what [`Vfio::map_bar`] mapped.
    ///
    /// # Safety
    ///
    /// `ptr` and `len` are exactly a mapping `map_bar` returned, and nothing uses it after.
    pub unsafe fn unmap_bar(&self, ptr: NonNull<u8>, len: usize) {
        // SAFETY: the caller hands back a mapping of ours that nothing uses any more.
        let _ = unsafe { munmap(ptr.as_ptr().cast(), len) };
    }

    /// `VFIO_IOMMU_MAP_DMA`: the device sees `size` bytes of process memory at `vaddr` at
    /// I/O virtual address `iova`, readable and/or writable as `flags` say
    /// ([`DMA_MAP_FLAG_READ`], [`DMA_MAP_FLAG_WRITE`]). Undone by [`Vfio::unmap_dma`], or when
    /// the container closes.
    ///
    /// # Safety
    ///
    /// With [`DMA_MAP_FLAG_WRITE`] the device may write the memory at any time until it is
    /// unmapped: nothing in it may be a Rust object that relies on its contents.
    pub unsafe fn map_dma(
        &self,
        vaddr: *const u8,
        size: u64,
        iova: u64,
        flags: u32,
    ) -> io::Result<()> {
        let mut map = DmaMap {
            argsz: argsz::<DmaMap>(),
            flags,
            vaddr: vaddr as u64,
            iova,
            size,
        };
        // SAFETY: MAP_DMA reads one `struct vfio_iommu_type1_dma_map`; what the device may do
        // with the memory is the caller's promise.
        unsafe {
            ioctl(
                self.container()?,
                Updater::<IOMMU_MAP_DMA, _>::new(&mut map),
            )
        }
        .map_err(annotate(format!(
            "VFIO_IOMMU_MAP_DMA of {size:#x} bytes at {vaddr:p} to iova {iova:#x}"
        )))
    }

    /// [`Vfio::map_dma`] of a carveout mapping: memory only ever reached with volatile
    /// accesses, so the device may read and write it at will.
    pub fn map_region(&self, mapping: &Mapping, iova: u64, flags: u32) -> io::Result<()> {
        // SAFETY: a `Mapping` is device memory in Rust's eyes (volatile accesses only); the
        // physical pages behind it stay the carve-out's after an munmap, so a device writing
        // them cannot touch memory Rust owns.
        unsafe { self.map_dma(mapping.as_ptr(), mapping.len() as u64, iova, flags) }
    }

    /// `VFIO_IOMMU_UNMAP_DMA` of `iova..iova + size`; returns how many bytes were unmapped.
    pub fn unmap_dma(&self, iova: u64, size: u64) -> io::Result<u64> {
        let mut unmap = DmaUnmap {
            argsz: argsz::<DmaUnmap>(),
            flags: 0,
            iova,
            size,
        };
        // SAFETY: UNMAP_DMA reads and updates one `struct vfio_iommu_type1_dma_unmap` (no
        // dirty bitmap asked for, so nothing past it).
        unsafe {
            ioctl(
                self.container()?,
                Updater::<IOMMU_UNMAP_DMA, _>::new(&mut unmap),
            )
        }
        .map_err(annotate(format!("VFIO_IOMMU_UNMAP_DMA at iova {iova:#x}")))?;
        Ok(unmap.size)
    }
}

/// The IOMMU group of PCI device `bdf` (`/sys/bus/pci/devices/D/iommu_group`), or `None` when
/// it has none (no IOMMU translates its DMA).
pub fn iommu_group(bdf: &str) -> io::Result<Option<u32>> {
    let link = Path::new("/sys/bus/pci/devices")
        .join(bdf)
        .join("iommu_group");
    match fs::read_link(&link) {
        Ok(target) => target
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.parse().ok())
            .map(Some)
            .ok_or_else(|| {
                io::Error::other(format!(
                    "{} points to {}: not a group",
                    link.display(),
                    target.display()
                ))
            }),
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            if Path::new("/sys/bus/pci/devices").join(bdf).exists() {
                Ok(None)
            } else {
                Err(io::Error::new(
                    err.kind(),
                    format!("no PCI device {bdf} in /sys/bus/pci/devices"),
                ))
            }
        }
        Err(err) => Err(io::Error::new(
            err.kind(),
            format!("{}: {err}", link.display()),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    #[test]
    fn structs_match_the_uapi_header() {
        // include/uapi/linux/vfio.h: sizes and the offsets of the 64-bit fields.
        assert_eq!(size_of::<GroupStatus>(), 8);
        assert_eq!(size_of::<DeviceInfo>(), 24);
        assert_eq!(size_of::<RegionInfo>(), 32);
        assert_eq!(offset_of!(RegionInfo, size), 16);
        assert_eq!(offset_of!(RegionInfo, offset), 24);
        assert_eq!(size_of::<DmaMap>(), 32);
        assert_eq!(offset_of!(DmaMap, vaddr), 8);
        assert_eq!(offset_of!(DmaMap, size), 24);
        assert_eq!(size_of::<DmaUnmap>(), 24);
    }

    #[test]
    fn opcodes_are_io_semicolon() {
        // _IO(';', 100 + n): no size, no direction.
        assert_eq!(GET_API_VERSION as u64, 0x3b64);
        assert_eq!(GROUP_GET_DEVICE_FD as u64, 0x3b6a);
        assert_eq!(IOMMU_MAP_DMA as u64, 0x3b71);
        assert_eq!(IOMMU_UNMAP_DMA as u64, 0x3b72);
    }
}
