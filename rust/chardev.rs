// SPDX-License-Identifier: GPL-2.0

//! The file operations of `/dev/carveout*`: open, mmap and ioctl on a claimed region; read,
//! write and lseek (`file_io.rs`).

use core::sync::atomic::{
    AtomicBool,
    Ordering, //
};

use kernel::{
    fs::{
        file,
        File, //
    },
    iov::{
        IovIterDest,
        IovIterSource, //
    },
    mm::virt::VmaNew,
    prelude::*,
    str::CString,
    sync::Arc,
    uaccess::UserSlice,
};

use crate::{
    abi,
    attr::CacheAttr,
    file_io,
    kernel_ext::{
        self,
        configfs_item::ConfigItemDependency,
        dax_space::DaxSpace,
        dma_attachment::{
            Reach,
            Translation, //
        },
        file_ops::FileOps,
        uapi,
    },
    node,
    range::BStrLossy,
    region::Region, //
};

/// An open `/dev/carveout*`. It holds the region, so the claim stays while the file (or a
/// mapping made through it, which holds the file) exists; and, for a region made in configfs,
/// a dependency on its directory, so `rmdir` of it fails with `EBUSY` meanwhile.
pub(crate) struct OpenRegion {
    region: Arc<Region>,
    _dependency: Option<ConfigItemDependency>,
    /// The file has read or written the region (counted once in the region's copiers).
    copied: AtomicBool,
}

impl OpenRegion {
    /// Opens the node with device number `rdev`.
    fn open(rdev: u32) -> Result<KBox<Self>> {
        let (region, config_item) = node::open_node(rdev)?;
        // A directory being removed refuses the dependency: the region is going away.
        let dependency = match &config_item {
            Some(item) => Some(item.depend().map_err(|_| ENODEV)?),
            None => None,
        };
        // Dropped here, with no lock held: it may be the directory's last reference.
        drop(config_item);
        region.file_opened();
        // On failure the value is dropped, which counts the file closed again.
        Ok(KBox::new(
            Self {
                region,
                _dependency: dependency,
                copied: AtomicBool::new(false),
            },
            GFP_KERNEL,
        )?)
    }

    /// Counts the file among the region's copiers on its first read or write.
    fn copying(&self) {
        if !self.copied.swap(true, Ordering::Relaxed) {
            self.region.copier_opened();
        }
    }

    fn ioctl(&self, file: &File, cmd: u32, arg: c_ulong) -> Result {
        let user = UserPtr::from_addr(arg);
        match cmd {
            abi::CARVEOUT_GET_INFO => {
                let info = self.region.info();
                uapi::write(
                    &mut UserSlice::new(user, core::mem::size_of_val(&info)).writer(),
                    &info,
                )
            }
            abi::CARVEOUT_GET_ATTR => {
                let desc = self.region.range_desc();
                uapi::write(
                    &mut UserSlice::new(user, core::mem::size_of_val(&desc)).writer(),
                    &desc,
                )
            }
            abi::CARVEOUT_SET_ATTR => {
                if file.flags() & file::flags::O_ACCMODE == file::flags::O_RDONLY {
                    return Err(EBADF);
                }
                let desc: abi::RangeDesc = uapi::read(
                    &mut UserSlice::new(user, core::mem::size_of::<abi::RangeDesc>()).reader(),
                )?;
                // SET reads only `flags`: the other fields must be zero, so that they can be
                // given a meaning later (Documentation/process/botching-up-ioctls.rst).
                if desc.base != 0 || desc.len != 0 || desc.pad0 != 0 || desc.owner != [0; 8] {
                    return Err(EINVAL);
                }
                let attr = CacheAttr::from_flags(desc.flags).ok_or(EINVAL)?;
                self.region.set_attr(attr)
            }
            abi::CARVEOUT_ATTACH | abi::CARVEOUT_DETACH | abi::CARVEOUT_BUS_ADDR => {
                let (mut reader, mut writer) =
                    UserSlice::new(user, core::mem::size_of::<abi::Attach>()).reader_writer();
                let mut req: abi::Attach = uapi::read(&mut reader)?;
                // A reach only for ATTACH.
                let reach_given = req.reach_bits != 0 && cmd != abi::CARVEOUT_ATTACH;
                if req.bus_addr != 0 || req.flags != 0 || reach_given || req.reserved != [0; 2] {
                    return Err(EINVAL);
                }
                let device = pci_device_name(&req.device)?;
                let reached = match cmd {
                    abi::CARVEOUT_BUS_ADDR => self.region.attachment(device)?,
                    _ => {
                        // Giving a device access to the region is the administrator's call.
                        if file.flags() & file::flags::O_ACCMODE == file::flags::O_RDONLY {
                            return Err(EBADF);
                        }
                        if !kernel_ext::capability::sys_admin() {
                            return Err(EPERM);
                        }
                        if cmd == abi::CARVEOUT_DETACH {
                            return self.region.detach(device);
                        }
                        self.region.attach(device, reach(req.reach_bits)?)?
                    }
                };
                req.bus_addr = reached.0;
                if reached.1 == Translation::Translated {
                    req.flags = abi::ATTACH_TRANSLATED;
                }
                uapi::write(&mut writer, &req)
            }
            abi::CARVEOUT_SYNC => {
                let req: abi::Sync = uapi::read(
                    &mut UserSlice::new(user, core::mem::size_of::<abi::Sync>()).reader(),
                )?;
                if req.pad0 != 0
                    || !matches!(req.direction, abi::SYNC_FOR_DEVICE | abi::SYNC_FOR_CPU)
                {
                    return Err(EINVAL);
                }
                self.region.sync(req.offset, req.len)
            }
            _ => Err(ENOTTY),
        }
    }
}

/// The reach an attach states in address bits (0: the device's DMA mask): `EINVAL`, with a
/// line saying so, outside 12 to 64.
fn reach(bits: u32) -> Result<Reach> {
    match bits {
        0 => Ok(Reach::Mask),
        bits if Reach::BITS.contains(&bits) => Ok(Reach::Bits(bits)),
        bits => {
            pr_err!("attach: a reach of {bits} address bits: give 12 to 64 (0: the device's DMA mask)\n");
            Err(EINVAL)
        }
    }
}

/// What is written to configfs `attach` or named in the `attach=` parameter: a PCI device
/// name, and after `@` the address bits it decodes if it has no driver (`0000:03:00.0@40`).
/// `EINVAL`, with a line naming `what`, for anything else.
pub(crate) fn attach_spec(what: &str, text: &[u8]) -> Result<(CString, Reach)> {
    let text = text.trim_ascii();
    let (name, bits) = match text.iter().position(|&b| b == b'@') {
        Some(at) => (&text[..at], Some(&text[at + 1..])),
        None => (text, None),
    };
    let name = device_name(what, "DDDD:BB:DD.F[@BITS]", name)?;
    let reach = match bits {
        None => Reach::Mask,
        Some(bits) => {
            let bits = core::str::from_utf8(bits)
                .ok()
                .and_then(|bits| bits.parse::<u32>().ok())
                .filter(|bits| *bits != 0);
            match bits {
                Some(bits) => reach(bits)?,
                None => {
                    pr_err!(
                        "{what}: the reach after @ is a number of address bits (12 to 64): {:?}\n",
                        BStrLossy(text)
                    );
                    return Err(EINVAL);
                }
            }
        }
    };
    Ok((name, reach))
}

/// A PCI device name (`DDDD:BB:DD.F`) written to `what`, whose form is `form`, without the
/// blanks around it: `EINVAL`, with a line saying so, for anything else.
pub(crate) fn device_name(what: &str, form: &str, text: &[u8]) -> Result<CString> {
    let text = text.trim_ascii();
    if !is_pci_device_name(text) {
        pr_err!(
            "{what}: not a PCI device name ({form}): {:?}\n",
            BStrLossy(text)
        );
        return Err(EINVAL);
    }
    // Checked: ASCII digits, letters, ':' and '.'.
    CString::try_from_fmt(fmt!("{}", core::str::from_utf8(text).map_err(|_| EINVAL)?))
}

/// The PCI device name in an attach request (`DDDD:BB:DD.F`, NUL-terminated): `EINVAL`, with
/// a line saying so, for anything else.
fn pci_device_name(raw: &[u8]) -> Result<&CStr> {
    let name = CStr::from_bytes_until_nul(raw).ok();
    let well_formed = name.is_some_and(|name| is_pci_device_name(name.to_bytes()));
    match name {
        Some(name) if well_formed => Ok(name),
        _ => {
            pr_err!("attach: not a PCI device name (DDDD:BB:DD.F)\n");
            Err(EINVAL)
        }
    }
}

/// Whether `bytes` spell a PCI device name, `DDDD:BB:DD.F` in hex.
pub(crate) fn is_pci_device_name(bytes: &[u8]) -> bool {
    bytes.len() == 12
        && bytes.iter().enumerate().all(|(i, b)| match i {
            4 | 7 => *b == b':',
            10 => *b == b'.',
            _ => b.is_ascii_hexdigit(),
        })
}

impl Drop for OpenRegion {
    fn drop(&mut self) {
        if *self.copied.get_mut() {
            self.region.copier_closed();
        }
        self.region.file_closed();
    }
}

#[vtable]
impl FileOps for OpenRegion {
    type OwnerModule = crate::CarveoutModule;

    fn open(rdev: u32) -> Result<KBox<Self>> {
        OpenRegion::open(rdev)
    }

    fn dax_space(&self) -> Option<Arc<DaxSpace>> {
        self.region.dax_space()
    }

    fn mmap(&self, vma: &VmaNew) -> Result {
        self.region.map(vma)
    }

    fn get_unmapped_area(
        &self,
        file: &File,
        addr: usize,
        len: usize,
        pgoff: usize,
        flags: usize,
    ) -> usize {
        self.region.unmapped_area(file, addr, len, pgoff, flags)
    }

    fn ioctl(&self, file: &File, cmd: u32, arg: usize) -> Result {
        OpenRegion::ioctl(self, file, cmd, arg)
    }

    fn read(&self, pos: &mut i64, dest: &mut IovIterDest<'_>) -> Result<usize> {
        self.copying();
        file_io::read(&self.region, pos, dest)
    }

    fn write(&self, pos: &mut i64, src: &mut IovIterSource<'_>) -> Result<usize> {
        self.copying();
        file_io::write(&self.region, pos, src)
    }

    fn seek_end(&self, whence: c_int) -> Result<i64> {
        file_io::seek_end(&self.region, whence)
    }
}
