// SPDX-License-Identifier: GPL-2.0

//! The file operations of a character device whose nodes open to a value of the driver's: a
//! `#[vtable]` trait the driver implements with safe methods, and the `struct file_operations`
//! whose C callbacks turn into calls on it (after the kernel crate's `miscdevice.rs`).
//!
//! `open` makes the file's private data (a `KBox` of the `T` and, if `T` asks for one, the DAX
//! address space the file maps through), `release` drops it, and every other operation borrows
//! it for the length of the call.

use core::marker::PhantomData;

use kernel::{
    bindings,
    error::VTABLE_DEFAULT_ERROR,
    fs::{
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
    types::ForeignOwnable, //
};

use crate::kernel_ext::dax_space::DaxSpace;

/// What the open files of a character device do.
#[vtable]
pub(crate) trait FileOps: Sized + Send + Sync + 'static {
    /// The module that owns the operations: the VFS holds it for every open file.
    type OwnerModule: kernel::ModuleMetadata;

    /// Opens the node with device number `rdev`; the value lives until the file is released.
    fn open(rdev: u32) -> Result<KBox<Self>>;

    /// The DAX address space the file is to map through (its `f_mapping`), asked once, right
    /// after `open`; the file holds it until it is released. `None`: the node's own.
    fn dax_space(&self) -> Option<Arc<DaxSpace>> {
        None
    }

    /// Sets up `vma`, a new mapping of the file.
    fn mmap(&self, _vma: &VmaNew) -> Result {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// Where to put a mapping of `len` bytes at page offset `pgoff` when the caller lets the
    /// kernel choose (`addr` is its hint).
    fn get_unmapped_area(
        &self,
        _file: &File,
        _addr: usize,
        _len: usize,
        _pgoff: usize,
        _flags: usize,
    ) -> usize {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// An ioctl: `cmd` with the user's argument `arg`.
    fn ioctl(&self, _file: &File, _cmd: u32, _arg: usize) -> Result {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// Reads at `*pos` into `dest`, moving `*pos` past what it read; returns the bytes read.
    fn read(&self, _pos: &mut i64, _dest: &mut IovIterDest<'_>) -> Result<usize> {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// Writes `src` at `*pos`, moving `*pos` past what it wrote; returns the bytes written.
    fn write(&self, _pos: &mut i64, _src: &mut IovIterSource<'_>) -> Result<usize> {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// For `lseek`: the file's size (what `SEEK_END` counts from) if `whence` is one the file
    /// takes, else the error. The position itself is moved by the VFS's own helper.
    fn seek_end(&self, _whence: c_int) -> Result<i64> {
        build_error!(VTABLE_DEFAULT_ERROR)
    }
}

/// A file's private data: the value `open` made and the DAX address space the file maps
/// through, if any, which must outlive the file's use of it (until `release`).
struct Opened<T> {
    value: T,
    _dax: Option<Arc<DaxSpace>>,
}

/// The `struct file_operations` of `T`.
pub(crate) struct FileOperations<T>(PhantomData<T>);

impl<T: FileOps> FileOperations<T> {
    const VTABLE: bindings::file_operations = bindings::file_operations {
        owner: kernel::module::this_module::<T::OwnerModule>().as_ptr(),
        open: Some(Self::open),
        release: Some(Self::release),
        read_iter: if T::HAS_READ {
            Some(Self::read_iter)
        } else {
            None
        },
        write_iter: if T::HAS_WRITE {
            Some(Self::write_iter)
        } else {
            None
        },
        // splice and sendfile go through the same read and write: the kernel's generic
        // helpers copy between a pipe's pages and `read_iter`/`write_iter`.
        splice_read: if T::HAS_READ {
            Some(bindings::copy_splice_read)
        } else {
            None
        },
        splice_write: if T::HAS_WRITE {
            Some(bindings::iter_file_splice_write)
        } else {
            None
        },
        llseek: if T::HAS_SEEK_END {
            Some(Self::llseek)
        } else {
            None
        },
        mmap: if T::HAS_MMAP { Some(Self::mmap) } else { None },
        get_unmapped_area: if T::HAS_GET_UNMAPPED_AREA {
            Some(Self::get_unmapped_area)
        } else {
            None
        },
        unlocked_ioctl: if T::HAS_IOCTL {
            Some(Self::ioctl)
        } else {
            None
        },
        #[cfg(CONFIG_COMPAT)]
        // `compat_ptr_ioctl` is bound as an `Option` already: the ABI's structures have one
        // layout for 32- and 64-bit callers, so the pointer argument only needs widening.
        compat_ioctl: if T::HAS_IOCTL {
            bindings::compat_ptr_ioctl
        } else {
            None
        },
        ..pin_init::zeroed()
    };

    /// The table, for a `cdev` of the module.
    pub(crate) const fn get() -> &'static bindings::file_operations {
        &Self::VTABLE
    }

    /// # Safety
    ///
    /// Called by the VFS for a node of a `cdev` these operations serve, with `file` being
    /// opened.
    unsafe extern "C" fn open(inode: *mut bindings::inode, file: *mut bindings::file) -> c_int {
        // SAFETY: The pointers are valid and for a file being opened.
        let ret = unsafe { bindings::generic_file_open(inode, file) };
        if ret != 0 {
            return ret;
        }
        // SAFETY: The inode is valid for the call.
        let rdev = unsafe { (*inode).i_rdev };
        let value = match T::open(rdev) {
            Ok(value) => KBox::into_inner(value),
            Err(err) => return err.to_errno(),
        };
        let dax = value.dax_space();
        let opened = match KBox::new(Opened { value, _dax: dax }, GFP_KERNEL) {
            Ok(opened) => opened,
            Err(err) => return Error::from(err).to_errno(),
        };
        if let Some(dax) = &opened._dax {
            // SAFETY: The file is being opened; the space lives in its private data until
            // `release`.
            unsafe { dax.adopt(file) };
        }
        // SAFETY: `opened` owns the file's private data now; `release` takes it back.
        unsafe { (*file).private_data = opened.into_foreign() };
        0
    }

    /// # Safety
    ///
    /// Called by the VFS once for each file `open` succeeded for.
    unsafe extern "C" fn release(_inode: *mut bindings::inode, file: *mut bindings::file) -> c_int {
        // SAFETY: `open` stored a `KBox<Opened<T>>` there; `release` owns it now.
        drop(unsafe { KBox::<Opened<T>>::from_foreign((*file).private_data) });
        0
    }

    /// The value and the file of an operation between `open` and `release`.
    ///
    /// # Safety
    ///
    /// `file` must be a file of these operations that `open` succeeded for, valid and not yet
    /// released for `'a`, with no `fdget_pos` region active on it in this thread.
    unsafe fn opened<'a>(file: *mut bindings::file) -> (&'a T, &'a File) {
        // SAFETY: `open` stored a `KBox<Opened<T>>` there, which `release` frees only later.
        let opened = unsafe { KBox::<Opened<T>>::borrow((*file).private_data) };
        // SAFETY: By the function's safety requirement.
        let file = unsafe { File::from_raw_file(file) };
        (&opened.value, file)
    }

    /// # Safety
    ///
    /// Called by the VFS between `open` and `release` of `file`, with `vma` in its initial
    /// setup.
    unsafe extern "C" fn mmap(
        file: *mut bindings::file,
        vma: *mut bindings::vm_area_struct,
    ) -> c_int {
        // SAFETY: The VFS calls `mmap` between `open` and `release`, outside `fdget_pos`.
        let (value, _) = unsafe { Self::opened(file) };
        // SAFETY: The VFS hands `mmap` a VMA undergoing its initial setup.
        let vma = unsafe { VmaNew::from_raw(vma) };
        match value.mmap(vma) {
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
        let (value, file) = unsafe { Self::opened(file) };
        value.get_unmapped_area(file, addr, len, pgoff, flags)
    }

    /// # Safety
    ///
    /// Called by the VFS between `open` and `release` of `file`.
    unsafe extern "C" fn ioctl(file: *mut bindings::file, cmd: c_uint, arg: c_ulong) -> c_long {
        // SAFETY: The VFS calls `ioctl` between `open` and `release`, outside `fdget_pos`.
        let (value, file) = unsafe { Self::opened(file) };
        match value.ioctl(file, cmd, arg) {
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
        // `KBox<Opened<T>>` that `open` stored.
        let mut kiocb = unsafe { Kiocb::<KBox<Opened<T>>>::from_raw(kiocb) };
        // SAFETY: The VFS hands `read_iter` a valid destination iterator, used only here.
        let dest = unsafe { IovIterDest::from_raw(iter) };
        let value = &kiocb.file().value;
        match value.read(kiocb.ki_pos_mut(), dest) {
            Ok(done) => done as isize,
            Err(err) => err.to_errno() as isize,
        }
    }

    /// # Safety
    ///
    /// Called by the VFS for a write of a file between `open` and `release`, with `iter` a
    /// valid source `iov_iter`.
    unsafe extern "C" fn write_iter(
        kiocb: *mut bindings::kiocb,
        iter: *mut bindings::iov_iter,
    ) -> isize {
        // SAFETY: As in `read_iter`.
        let mut kiocb = unsafe { Kiocb::<KBox<Opened<T>>>::from_raw(kiocb) };
        // SAFETY: The VFS hands `write_iter` a valid source iterator, used only here.
        let src = unsafe { IovIterSource::from_raw(iter) };
        let value = &kiocb.file().value;
        match value.write(kiocb.ki_pos_mut(), src) {
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
        // SAFETY: `open` stored a `KBox<Opened<T>>` there, which `release` frees only later.
        // (No `File` is made: `lseek` runs inside the caller's `fdget_pos` region.)
        let value = &unsafe { KBox::<Opened<T>>::borrow((*file).private_data) }.value;
        match value.seek_end(whence) {
            // SAFETY: `file` is valid for the call; the helper takes the file's own lock to
            // move its position. Any offset up to `i64::MAX` may be set.
            Ok(eof) => unsafe {
                bindings::generic_file_llseek_size(file, offset, whence, i64::MAX, eof)
            },
            Err(err) => err.to_errno().into(),
        }
    }
}
