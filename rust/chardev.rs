// SPDX-License-Identifier: GPL-2.0

//! The file operations of `/dev/carveout*`: open, mmap and ioctl on a claimed region; read,
//! write and lseek (`file_io.rs`).

use kernel::{
    bindings,
    fs::{
        file,
        File,
        Kiocb, //
    },
    iov::{
        IovIterDest,
        IovIterSource, //
    },
    mm::virt::VmaNew,
    prelude::*,
    sync::Arc,
    types::ForeignOwnable,
    uaccess::UserSlice,
};

use crate::{
    abi,
    attr::CacheAttr,
    file_io,
    kernel_ext::{
        self,
        configfs_item::ConfigItemDependency,
        dma_attachment::Translation, //
    },
    node,
    region::Region, //
};

/// An open `/dev/carveout*`. It holds the region, so the claim stays while the file (or a
/// mapping made through it, which holds the file) exists; and, for a region made in configfs,
/// a dependency on its directory, so `rmdir` of it fails with `EBUSY` meanwhile.
struct OpenRegion {
    region: Arc<Region>,
    _dependency: Option<ConfigItemDependency>,
}

impl OpenRegion {
    /// Opens the node with device number `rdev`.
    fn open(rdev: bindings::dev_t) -> Result<KBox<Self>> {
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
            },
            GFP_KERNEL,
        )?)
    }

    fn ioctl(&self, file: &File, cmd: u32, arg: c_ulong) -> Result {
        let user = UserPtr::from_addr(arg);
        match cmd {
            abi::CARVEOUT_GET_INFO => {
                let info = self.region.info();
                UserSlice::new(user, core::mem::size_of_val(&info))
                    .writer()
                    .write(&info)
            }
            abi::CARVEOUT_GET_ATTR => {
                let desc = self.region.range_desc();
                UserSlice::new(user, core::mem::size_of_val(&desc))
                    .writer()
                    .write(&desc)
            }
            abi::CARVEOUT_SET_ATTR => {
                if file.flags() & file::flags::O_ACCMODE == file::flags::O_RDONLY {
                    return Err(EBADF);
                }
                let desc: abi::RangeDesc =
                    UserSlice::new(user, core::mem::size_of::<abi::RangeDesc>())
                        .reader()
                        .read()?;
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
                let mut req: abi::Attach = reader.read()?;
                if req.bus_addr != 0 || req.flags != 0 || req.pad0 != 0 || req.reserved != [0; 2] {
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
                        self.region.attach(device)?
                    }
                };
                req.bus_addr = reached.0;
                if reached.1 == Translation::Translated {
                    req.flags = abi::ATTACH_TRANSLATED;
                }
                writer.write(&req)
            }
            abi::CARVEOUT_SYNC => {
                let req: abi::Sync = UserSlice::new(user, core::mem::size_of::<abi::Sync>())
                    .reader()
                    .read()?;
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

/// The PCI device name in an attach request (`DDDD:BB:DD.F`, NUL-terminated): `EINVAL`, with
/// a line saying so, for anything else.
fn pci_device_name(raw: &[u8]) -> Result<&CStr> {
    let name = CStr::from_bytes_until_nul(raw).ok();
    let well_formed = name.is_some_and(|name| {
        let bytes = name.to_bytes();
        bytes.len() == 12
            && bytes.iter().enumerate().all(|(i, b)| match i {
                4 | 7 => *b == b':',
                10 => *b == b'.',
                _ => b.is_ascii_hexdigit(),
            })
    });
    match name {
        Some(name) if well_formed => Ok(name),
        _ => {
            pr_err!("attach: not a PCI device name (DDDD:BB:DD.F)\n");
            Err(EINVAL)
        }
    }
}

impl Drop for OpenRegion {
    fn drop(&mut self) {
        self.region.file_closed();
    }
}

/// The file operations of every node, for its `cdev`.
pub(crate) fn file_operations() -> &'static bindings::file_operations {
    &FILE_OPERATIONS.0
}

/// A `file_operations` in a `static`.
#[repr(transparent)]
struct FileOperations(bindings::file_operations);

// SAFETY: Never written after initialisation; the VFS only reads it.
unsafe impl Sync for FileOperations {}

static FILE_OPERATIONS: FileOperations = FileOperations(bindings::file_operations {
    // The cdev pins the module too; the VFS takes this reference for every open file.
    owner: kernel::module::this_module::<crate::CarveoutModule>().as_ptr(),
    open: Some(open),
    release: Some(release),
    read_iter: Some(read_iter),
    write_iter: Some(write_iter),
    llseek: Some(llseek),
    mmap: Some(mmap),
    get_unmapped_area: Some(get_unmapped_area),
    unlocked_ioctl: Some(ioctl),
    #[cfg(CONFIG_COMPAT)]
    compat_ioctl: Some(bindings::compat_ptr_ioctl),
    ..pin_init::zeroed()
});

/// # Safety
///
/// Called by the VFS for a node of the `cdev` these operations serve, with `file` being opened.
unsafe extern "C" fn open(inode: *mut bindings::inode, file: *mut bindings::file) -> c_int {
    // SAFETY: The pointers are valid and for a file being opened.
    let ret = unsafe { bindings::generic_file_open(inode, file) };
    if ret != 0 {
        return ret;
    }
    // SAFETY: The inode is valid for the call.
    let rdev = unsafe { (*inode).i_rdev };
    match OpenRegion::open(rdev) {
        Ok(open) => {
            // SAFETY: `open` owns the file's private data; `release` takes it back.
            unsafe { (*file).private_data = open.into_foreign() };
            0
        }
        Err(err) => err.to_errno(),
    }
}

/// # Safety
///
/// Called by the VFS once for each file `open` succeeded for.
unsafe extern "C" fn release(_inode: *mut bindings::inode, file: *mut bindings::file) -> c_int {
    // SAFETY: `open` stored a `KBox<OpenRegion>` there; `release` owns it now.
    drop(unsafe { KBox::<OpenRegion>::from_foreign((*file).private_data) });
    0
}

/// The open region of `file`, and the file, for an operation between `open` and `release`.
///
/// # Safety
///
/// `file` must be a file of these operations that `open` succeeded for, valid and not yet
/// released for `'a`, with no `fdget_pos` region active on it in this thread.
unsafe fn opened<'a>(file: *mut bindings::file) -> (&'a OpenRegion, &'a File) {
    // SAFETY: `open` stored a `KBox<OpenRegion>` there, which `release` frees only later.
    let open = unsafe { KBox::<OpenRegion>::borrow((*file).private_data) };
    // SAFETY: By the function's safety requirement.
    let file = unsafe { File::from_raw_file(file) };
    (open, file)
}

/// # Safety
///
/// Called by the VFS between `open` and `release` of `file`, with `vma` in its initial setup.
unsafe extern "C" fn mmap(file: *mut bindings::file, vma: *mut bindings::vm_area_struct) -> c_int {
    // SAFETY: The VFS calls `mmap` between `open` and `release`, outside `fdget_pos`.
    let (open, _) = unsafe { opened(file) };
    // SAFETY: The VFS hands `mmap` a VMA undergoing its initial setup.
    let vma = unsafe { VmaNew::from_raw(vma) };
    match open.region.map(vma) {
        Ok(()) => 0,
        Err(err) => err.to_errno(),
    }
}

/// # Safety
///
/// Called by the VFS between `open` and `release` of `file`, for an `mmap` of it.
unsafe extern "C" fn get_unmapped_area(
    file: *mut bindings::file,
    addr: c_ulong,
    len: c_ulong,
    pgoff: c_ulong,
    flags: c_ulong,
) -> c_ulong {
    // SAFETY: The VFS calls this for an `mmap` of an open file, outside `fdget_pos`.
    let (open, file) = unsafe { opened(file) };
    open.region.unmapped_area(file, addr, len, pgoff, flags)
}

/// # Safety
///
/// Called by the VFS between `open` and `release` of `file`.
unsafe extern "C" fn ioctl(file: *mut bindings::file, cmd: c_uint, arg: c_ulong) -> c_long {
    // SAFETY: The VFS calls `ioctl` between `open` and `release`, outside `fdget_pos`.
    let (open, file) = unsafe { opened(file) };
    match open.ioctl(file, cmd, arg) {
        Ok(()) => 0,
        Err(err) => err.to_errno() as c_long,
    }
}

/// # Safety
///
/// Called by the VFS for a read of a file between `open` and `release`, with `iter` a valid
/// destination `iov_iter`.
unsafe extern "C" fn read_iter(
    kiocb: *mut bindings::kiocb,
    iter: *mut bindings::iov_iter,
) -> isize {
    // SAFETY: The kiocb is valid for the call, and its file's private data is the
    // `KBox<OpenRegion>` that `open` stored.
    let mut kiocb = unsafe { Kiocb::<KBox<OpenRegion>>::from_raw(kiocb) };
    // SAFETY: The VFS hands `read_iter` a valid destination iterator, used only here.
    let dest = unsafe { IovIterDest::from_raw(iter) };
    let open = kiocb.file();
    match file_io::read(&open.region, kiocb.ki_pos_mut(), dest) {
        Ok(done) => done as isize,
        Err(err) => err.to_errno() as isize,
    }
}

/// # Safety
///
/// Called by the VFS for a write of a file between `open` and `release`, with `iter` a valid
/// source `iov_iter`.
unsafe extern "C" fn write_iter(
    kiocb: *mut bindings::kiocb,
    iter: *mut bindings::iov_iter,
) -> isize {
    // SAFETY: As in `read_iter`.
    let mut kiocb = unsafe { Kiocb::<KBox<OpenRegion>>::from_raw(kiocb) };
    // SAFETY: The VFS hands `write_iter` a valid source iterator, used only here.
    let src = unsafe { IovIterSource::from_raw(iter) };
    let open = kiocb.file();
    match file_io::write(&open.region, kiocb.ki_pos_mut(), src) {
        Ok(done) => done as isize,
        Err(err) => err.to_errno() as isize,
    }
}

/// # Safety
///
/// Called by the VFS between `open` and `release` of `file`.
unsafe extern "C" fn llseek(
    file: *mut bindings::file,
    offset: bindings::loff_t,
    whence: c_int,
) -> bindings::loff_t {
    // SAFETY: `open` stored a `KBox<OpenRegion>` there, which `release` frees only later. (No
    // `File` is made: `lseek` runs inside the caller's `fdget_pos` region.)
    let open = unsafe { KBox::<OpenRegion>::borrow((*file).private_data) };
    match file_io::seek_end(&open.region, whence) {
        // SAFETY: `file` is valid for the call; the helper takes the file's own lock to move
        // its position. Any offset up to `i64::MAX` may be set; `SEEK_END` is the size.
        Ok(eof) => unsafe {
            bindings::generic_file_llseek_size(file, offset, whence, i64::MAX, eof)
        },
        Err(err) => err.to_errno().into(),
    }
}
