// SPDX-License-Identifier: GPL-2.0

//! Device classes (`struct class`, `/sys/class/<name>`) made at run time (`class_create`).

use core::ptr::NonNull;

use kernel::{
    bindings,
    error::from_err_ptr,
    prelude::*, //
};

/// A device class; destroyed (`class_destroy`) on drop. Devices of the class hold it (see
/// [`ClassDevice`](super::class_device::ClassDevice)) in an [`Arc`](kernel::sync::Arc), so it
/// outlives them.
///
/// # Invariants
///
/// `class` was returned by `class_create` and is not yet destroyed.
pub(crate) struct Class {
    class: NonNull<bindings::class>,
}

impl Class {
    /// Creates the class `name`.
    pub(crate) fn create(name: &'static CStr) -> Result<Self> {
        // SAFETY: The name is a static string, as the class keeps it.
        let class = from_err_ptr(unsafe { bindings::class_create(name.as_char_ptr()) })?;
        // INVARIANT: Created above; `class_create` returns an error pointer, never NULL.
        Ok(Self {
            class: NonNull::new(class).ok_or(ENOMEM)?,
        })
    }

    /// The class, for the devices made of it in this folder.
    pub(super) fn as_raw(&self) -> *mut bindings::class {
        self.class.as_ptr()
    }
}

impl Drop for Class {
    fn drop(&mut self) {
        // SAFETY: Created by `class_create` by the type invariant and destroyed only here.
        unsafe { bindings::class_destroy(self.class.as_ptr()) };
    }
}

// SAFETY: The driver core locks the class itself; it may be destroyed from any thread.
unsafe impl Send for Class {}
// SAFETY: `&Class` only hands the class to the driver core, which locks it itself.
unsafe impl Sync for Class {}
