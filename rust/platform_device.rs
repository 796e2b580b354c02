// SPDX-License-Identifier: GPL-2.0

//! A platform device describing a carve-out, registered by the module for the range its
//! parameters name. The driver in `driver.rs` binds to it by name.
//!
//! The range travels as two device properties, [`PROP_BASE`] and [`PROP_SIZE`] (u64), read by
//! the driver through the firmware-node API, so a device-tree or ACPI node with the same
//! properties describes a region the same way. It is deliberately *not* a `struct resource`:
//! `platform_device_add` inserts memory resources into the iomem tree, where one equal to the
//! `Reserved` entry wraps it, and `platform_device_unregister` then unlinks the wrapped entries
//! with it (the kernel's own `Reserved` or pmem entries would vanish from `/proc/iomem`). Like
//! ramoops, the driver claims the range itself, nested inside `Reserved`.

use core::ptr::NonNull;

use kernel::{
    bindings,
    error::from_err_ptr,
    prelude::*, //
};

use crate::range::PhysRange;

/// The device property holding the region's physical base address (u64).
pub(crate) const PROP_BASE: &CStr = c"carveout,base";
/// The device property holding the region's size in bytes (u64).
pub(crate) const PROP_SIZE: &CStr = c"carveout,size";

/// An inline u64 device property, as `PROPERTY_ENTRY_U64` builds it in C.
fn u64_property(name: &'static CStr, value: u64) -> bindings::property_entry {
    let mut entry = bindings::property_entry {
        name: name.as_char_ptr(),
        length: core::mem::size_of::<u64>(),
        is_inline: true,
        type_: bindings::dev_prop_type_DEV_PROP_U64,
        ..Default::default()
    };
    entry.__bindgen_anon_1.value.u64_data = [value];
    entry
}

/// A registered `struct platform_device`; unregistered on drop.
///
/// # Invariants
///
/// `pdev` points to a platform device registered by `platform_device_register_full` and not
/// yet unregistered.
pub(crate) struct PlatformDeviceRegistration {
    pdev: NonNull<bindings::platform_device>,
}

impl PlatformDeviceRegistration {
    /// Registers platform device `name.id` describing `range`.
    ///
    /// When a driver named `name` is registered, the driver core probes the device
    /// synchronously before this returns.
    pub(crate) fn register(name: &'static CStr, id: i32, range: &PhysRange) -> Result<Self> {
        let properties = [
            u64_property(PROP_BASE, range.base()),
            u64_property(PROP_SIZE, range.size()),
            // The terminator.
            bindings::property_entry::default(),
        ];
        let info = bindings::platform_device_info {
            name: name.as_char_ptr(),
            id,
            properties: properties.as_ptr(),
            ..Default::default()
        };
        // SAFETY: `info` and the NUL-terminated `properties` array are valid for the call; the
        // function copies both (the names are `'static`).
        let pdev = from_err_ptr(unsafe { bindings::platform_device_register_full(&info) })?;
        // INVARIANT: registration succeeded, so `pdev` is a registered device (never NULL).
        Ok(Self {
            pdev: NonNull::new(pdev).ok_or(ENOMEM)?,
        })
    }

    /// Whether a driver is bound to the device (its probe succeeded).
    pub(crate) fn is_bound(&self) -> bool {
        // SAFETY: `pdev` is a registered device by the type invariant, so its `dev` is valid.
        unsafe { bindings::device_is_bound(&raw mut (*self.pdev.as_ptr()).dev) }
    }
}

impl Drop for PlatformDeviceRegistration {
    fn drop(&mut self) {
        // SAFETY: `pdev` is registered by the type invariant and is unregistered only here.
        unsafe { bindings::platform_device_unregister(self.pdev.as_ptr()) };
    }
}

// SAFETY: The platform device is reference counted by the driver core and may be unregistered
// from any thread.
unsafe impl Send for PlatformDeviceRegistration {}
// SAFETY: `&self` only reads the device's binding state, which the driver core keeps coherent.
unsafe impl Sync for PlatformDeviceRegistration {}
