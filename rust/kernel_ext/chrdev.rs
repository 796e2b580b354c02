// SPDX-License-Identifier: GPL-2.0

//! A range of character-device numbers (`alloc_chrdev_region`) and the one `cdev` that serves
//! all of them.

use super::file_ops::{
    FileOperations,
    FileOps, //
};

use kernel::{
    bindings,
    error::to_result,
    prelude::*,
    types::Opaque, //
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
/// # Invariants
///
/// `cdev` is added (`cdev_add`) for all of `numbers`.
#[pin_data(PinnedDrop)]
pub(crate) struct CharDevRegion {
    numbers: DevNumbers,
    #[pin]
    cdev: Opaque<bindings::cdev>,
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
    ) -> Result<impl PinInit<Self, Error>> {
        let fops = FileOperations::<T>::get();
        let numbers = DevNumbers::alloc(name, count)?;
        let (first, count) = (numbers.first, numbers.count);
        Ok(try_pin_init!(Self {
            numbers,
            cdev <- Opaque::try_ffi_init(move |cdev: *mut bindings::cdev| {
                // SAFETY: `cdev` is the pinned slot being initialised; `fops` and the module
                // are `'static`.
                unsafe {
                    bindings::cdev_init(cdev, fops);
                    (*cdev).owner = module.as_ptr();
                }
                // SAFETY: `cdev` was initialised above and stays pinned until `drop` deletes
                // it; the device numbers are ours.
                to_result(unsafe { bindings::cdev_add(cdev, first, count) })
                // INVARIANT: Added for all the numbers (on failure, nothing is made).
            }),
        }))
    }

    /// The device numbers.
    pub(crate) fn range(&self) -> DevRange {
        DevRange {
            first: self.numbers.first,
            count: self.numbers.count,
        }
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

#[pinned_drop]
impl PinnedDrop for CharDevRegion {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: Added by the type invariant and deleted only here; the numbers are given
        // back after this (the field is dropped after `drop`).
        unsafe { bindings::cdev_del(self.cdev.get()) };
    }
}
