// SPDX-License-Identifier: GPL-2.0

//! A range of character-device numbers (`alloc_chrdev_region`) and the one `cdev` that serves
//! all of them, allocated and counted by the kernel (`cdev_alloc`).

use super::file_ops::{
    FileOperations,
    FileOps, //
};

use core::ptr::NonNull;

use kernel::{
    bindings,
    error::to_result,
    prelude::*, //
};

/// Bits of the minor in a `dev_t` (`MINORBITS`).
const MINOR_BITS: u32 = 20;

/// Allocated device numbers; given back on drop.
///
/// # Invariants
///
/// `first..first + count` was allocated by `alloc_chrdev_region` and is not yet unregistered.
struct DevNumbers {
    first: u32,
    count: u32,
}

impl DevNumbers {
    fn alloc(name: &'static CStr, count: u32) -> Result<Self> {
        let mut first: bindings::dev_t = 0;
        // SAFETY: `first` is writable; the name is a static string, as `/proc/devices` keeps it.
        to_result(unsafe {
            bindings::alloc_chrdev_region(&mut first, 0, count, name.as_char_ptr())
        })?;
        // INVARIANT: Allocated above.
        Ok(Self { first, count })
    }
}

impl Drop for DevNumbers {
    fn drop(&mut self) {
        // SAFETY: Allocated by the type invariant and unregistered only here.
        unsafe { bindings::unregister_chrdev_region(self.first, self.count) };
    }
}

/// `count` device numbers, all served by one `cdev` with the given file operations; the cdev
/// is deleted and the numbers given back on drop.
///
/// The cdev is allocated by the kernel (`cdev_alloc`) and counted: an open file holds a
/// reference to it (`inode->i_cdev`, put by `__fput` after the file's `release`), so it lives
/// as long as any file opened through it, whenever this value is dropped. `cdev_del` drops only
/// this value's reference. The operations' owner is the module, which every open file holds.
///
/// # Invariants
///
/// `cdev` came from `cdev_alloc`, this value owns one reference to it, and it is added
/// (`cdev_add`) for all of `numbers`.
pub(crate) struct CharDevRegion {
    cdev: NonNull<bindings::cdev>,
    numbers: DevNumbers,
}

// SAFETY: The cdev is used by the VFS under its own locks, and may be deleted from any thread.
unsafe impl Send for CharDevRegion {}
// SAFETY: `&CharDevRegion` gives only the device numbers.
unsafe impl Sync for CharDevRegion {}

impl CharDevRegion {
    /// Allocates `count` device numbers named `name` (`/proc/devices`) and adds a cdev for
    /// them whose files are `T`s ([`FileOps`]), owned by `module`.
    pub(crate) fn register<T: FileOps>(
        name: &'static CStr,
        count: u32,
        module: &'static ThisModule,
    ) -> Result<Self> {
        let fops = FileOperations::<T>::get();
        let numbers = DevNumbers::alloc(name, count)?;
        // SAFETY: No precondition; NULL when out of memory.
        let cdev = NonNull::new(unsafe { bindings::cdev_alloc() }).ok_or(ENOMEM)?;
        let raw = cdev.as_ptr();
        // SAFETY: `raw` is a new cdev nobody else uses yet; `fops` and the module are
        // `'static`.
        unsafe {
            (*raw).ops = fops;
            (*raw).owner = module.as_ptr();
        }
        // SAFETY: `raw` is an initialised cdev (`cdev_alloc`); the device numbers are ours.
        if let Err(err) = to_result(unsafe { bindings::cdev_add(raw, numbers.first, count) }) {
            // SAFETY: Our reference from `cdev_alloc`, given back: the cdev was never added.
            unsafe { bindings::kobject_put(&raw mut (*raw).kobj) };
            return Err(err);
        }
        // INVARIANT: Allocated and added above for all the numbers.
        Ok(Self { cdev, numbers })
    }

    /// The device numbers.
    pub(crate) fn range(&self) -> DevRange {
        DevRange {
            first: self.numbers.first,
            count: self.numbers.count,
        }
    }
}

impl Drop for CharDevRegion {
    fn drop(&mut self) {
        // SAFETY: Added by the type invariant and deleted only here: no new open finds it, and
        // the kernel frees it when the last open file lets go of it. The numbers are given
        // back after this (the field is dropped after `drop`).
        unsafe { bindings::cdev_del(self.cdev.as_ptr()) };
    }
}

/// A range of device numbers, as plain numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct DevRange {
    first: u32,
    count: u32,
}

impl DevRange {
    /// No numbers.
    pub(crate) const EMPTY: Self = Self { first: 0, count: 0 };

    /// The index in the range of device number `devt`, if it is one of them.
    pub(crate) fn index(&self, devt: u32) -> Option<u32> {
        if devt >> MINOR_BITS != self.first >> MINOR_BITS {
            return None;
        }
        let index = devt.checked_sub(self.first)?;
        (index < self.count).then_some(index)
    }

    /// The device number at `index` in the range, if there is one.
    pub(crate) fn devt(&self, index: u32) -> Option<u32> {
        (index < self.count).then(|| self.first + index)
    }
}
