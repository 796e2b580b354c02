// SPDX-License-Identifier: GPL-2.0

//! A DAX address space: an inode of its own marked `S_DAX`, on a private pseudo-filesystem
//! mount, whose mapping an open file can take as its own (`f_mapping`), as device-dax's files
//! take their device's.
//!
//! The mm core treats the VMAs of such a file as device-dax's (`vma_is_dax`): it offers them
//! 2 MiB and 1 GiB faults whatever the transparent huge page settings, and unmapping or
//! splitting a 1 GiB folio entry of such a VMA gives the folio's reference and rmap count back.
//! For any other file VMA it offers 1 GiB faults only to `VM_PFNMAP`/`VM_MIXEDMAP` VMAs, whose
//! 1 GiB entries it undoes without touching their folios: a folio mapped so would never become
//! idle again. The `S_DAX` inode's file type is not that of a character device's, but the
//! file's own inode stays the device's, so the core does not take the file for a filesystem's
//! DAX file (`vma_is_fsdax`): long-term pins (io_uring, iommufd) stay allowed.
//!
//! Only [`super::file_ops`] hands the mapping to a file, and keeps the space alive until the
//! file is released.
//!
//! C: `init_pseudo`, `kern_mount`, `alloc_anon_inode` ([`fs/libfs.c`]), `vma_is_dax`
//! ([`include/linux/fs.h`]); through `pages_helpers.c`, which fails with `EOPNOTSUPP` without
//! `CONFIG_FS_DAX`.

use kernel::{
    bindings,
    prelude::*, //
};

// Defined in `pages_helpers.c`. `mnt` is a `struct vfsmount *`, `inode` a `struct inode *` and
// `file` a `struct file *`: structures with fields bindgen gives no members.
extern "C" {
    fn carveout_dax_space_new(mnt: *mut *mut c_void, inode: *mut *mut c_void) -> c_int;
    fn carveout_dax_space_free(mnt: *mut c_void, inode: *mut c_void);
    fn carveout_file_set_mapping(file: *mut c_void, inode: *mut c_void);
}

/// An `S_DAX` inode of its own on a private mount, which it owns.
///
/// # Invariants
///
/// `mnt` is a kernel mount of the private pseudo filesystem and `inode` an inode of it with
/// `S_DAX`, both valid until `Drop` releases them.
pub(crate) struct DaxSpace {
    mnt: *mut c_void,
    inode: *mut c_void,
}

// SAFETY: The mount and the inode are reference-counted kernel objects with no tie to a thread.
unsafe impl Send for DaxSpace {}
// SAFETY: `&DaxSpace` only hands the inode's mapping to files being opened.
unsafe impl Sync for DaxSpace {}

impl DaxSpace {
    /// Makes a mount and an `S_DAX` inode on it. `EOPNOTSUPP` without `CONFIG_FS_DAX`.
    pub(crate) fn new() -> Result<Self> {
        let mut mnt = core::ptr::null_mut();
        let mut inode = core::ptr::null_mut();
        // SAFETY: The out-pointers are valid; on failure the helper released what it made.
        let ret = unsafe { carveout_dax_space_new(&mut mnt, &mut inode) };
        if ret != 0 {
            return Err(Error::from_errno(ret));
        }
        // INVARIANT: The helper made both and gave them to us.
        Ok(Self { mnt, inode })
    }

    /// Gives `file`, being opened, this space's mapping as its own.
    ///
    /// # Safety
    ///
    /// `file` is a file being opened (not yet visible to anyone else), and `self` lives until
    /// the file is released.
    pub(super) unsafe fn adopt(&self, file: *mut bindings::file) {
        // SAFETY: By the function's safety requirement the file is being opened, so nothing
        // uses its mapping yet; the inode lives while `self` does, which outlives the file.
        unsafe { carveout_file_set_mapping(file.cast(), self.inode) };
    }
}

impl Drop for DaxSpace {
    fn drop(&mut self) {
        // SAFETY: Both are ours (type invariant), released once, here; no file uses the mapping
        // any more (every file that adopted it held the space until its release).
        unsafe { carveout_dax_space_free(self.mnt, self.inode) };
    }
}
