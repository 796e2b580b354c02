// SPDX-License-Identifier: GPL-2.0

//! The platform device that describes one region, and the description itself.
//!
//! The module registers one for its parameters, configfs one per enabled directory; the driver
//! in `driver.rs` binds to them by name and reads the description back from the device's
//! properties (`carveout,base`, `carveout,size`, `carveout,name`, …) through the firmware-node
//! API, so a device-tree or ACPI node with the same properties describes a region the same way.
//!
//! The range is deliberately *not* a `struct resource` of the device: `platform_device_add`
//! inserts memory resources into the iomem tree, where one equal to the `Reserved` entry wraps
//! it, and `platform_device_unregister` then unlinks the wrapped entries with it (the kernel's
//! own `Reserved` or pmem entries would vanish from `/proc/iomem`). Like ramoops, the driver
//! claims the range itself, nested inside `Reserved`.

use core::ptr::NonNull;

use kernel::{
    bindings,
    device::Device,
    error::from_err_ptr,
    prelude::*,
    str::CString, //
};

use crate::attr::CacheAttr;

const PROP_RESERVE_MEM: &CStr = c"carveout,reserve-mem";
const PROP_BASE: &CStr = c"carveout,base";
const PROP_SIZE: &CStr = c"carveout,size";
const PROP_NAME: &CStr = c"carveout,name";
const PROP_PATH: &CStr = c"carveout,path";
const PROP_ATTR: &CStr = c"carveout,attr";
const PROP_MODE: &CStr = c"carveout,mode";
const PROP_GID: &CStr = c"carveout,gid";
const PROP_ALLOW_UNLISTED: &CStr = c"carveout,allow-unlisted";

/// The name the driver and its devices match on.
pub(crate) const DRIVER_NAME: &CStr = c"carveout";

/// Where a region's memory is.
pub(crate) enum Memory {
    /// A physical range the firmware map or `memmap=` reserved.
    Range { base: u64, size: u64 },
    /// The RAM the kernel reserved at boot for `reserve_mem=SIZE:ALIGN:NAME`.
    ReserveMem(CString),
}

/// Everything that describes a region before it is claimed.
pub(crate) struct RegionSpec {
    pub(crate) memory: Memory,
    /// The device name, `carveout0` or `carveout-<configfs name>` (`/sys/class/carveout/<name>`).
    pub(crate) name: CString,
    /// The node path under `/dev` when it is not the name.
    pub(crate) path: Option<CString>,
    /// The cache attribute; `None`: the range's default (write-back; uncached for memory not
    /// listed as reserved).
    pub(crate) attr: Option<CacheAttr>,
    /// Claim a range the kernel's map does not list as reserved memory.
    pub(crate) allow_unlisted: bool,
    /// The node's permission bits.
    pub(crate) mode: u16,
    /// The node's group.
    pub(crate) gid: u32,
}

impl RegionSpec {
    /// Reads the description from `dev`'s properties.
    pub(crate) fn from_device(dev: &Device) -> Result<Self> {
        let node = dev.fwnode().ok_or_else(|| {
            dev_err!(dev, "no firmware node: nothing describes the region\n");
            ENODEV
        })?;
        let flags = node.property_read::<u32>(PROP_ATTR).required_by(dev)?;
        let memory = match node.property_read::<CString>(PROP_RESERVE_MEM).optional() {
            Some(name) => Memory::ReserveMem(name),
            None => Memory::Range {
                base: node.property_read::<u64>(PROP_BASE).required_by(dev)?,
                size: node.property_read::<u64>(PROP_SIZE).required_by(dev)?,
            },
        };
        Ok(Self {
            memory,
            name: node.property_read::<CString>(PROP_NAME).required_by(dev)?,
            path: node.property_read::<CString>(PROP_PATH).optional(),
            attr: match flags {
                0 => None,
                flags => Some(CacheAttr::from_flags(flags).ok_or_else(|| {
                    dev_err!(dev, "refusing attribute flags {:#x}\n", flags);
                    EINVAL
                })?),
            },
            allow_unlisted: node
                .property_read::<u32>(PROP_ALLOW_UNLISTED)
                .required_by(dev)?
                != 0,
            mode: node.property_read::<u16>(PROP_MODE).required_by(dev)?,
            gid: node.property_read::<u32>(PROP_GID).required_by(dev)?,
        })
    }
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

/// An inline integer device property, as `PROPERTY_ENTRY_U16/U32/U64` build them in C.
fn int_property(name: &'static CStr, value: u64, bytes: usize) -> bindings::property_entry {
    let mut entry = bindings::property_entry {
        name: name.as_char_ptr(),
        length: bytes,
        is_inline: true,
        ..Default::default()
    };
    // The value fields are a union of arrays of the property's width; fill the right one.
    match bytes {
        2 => {
            entry.type_ = bindings::dev_prop_type_DEV_PROP_U16;
            entry.__bindgen_anon_1.value.u16_data = [value as u16, 0, 0, 0];
        }
        4 => {
            entry.type_ = bindings::dev_prop_type_DEV_PROP_U32;
            entry.__bindgen_anon_1.value.u32_data = [value as u32, 0];
        }
        _ => {
            entry.type_ = bindings::dev_prop_type_DEV_PROP_U64;
            entry.__bindgen_anon_1.value.u64_data = [value];
        }
    }
    entry
}

/// An inline string device property, as `PROPERTY_ENTRY_STRING` builds it in C.
fn string_property(name: &'static CStr, value: &CStr) -> bindings::property_entry {
    let mut entry = bindings::property_entry {
        name: name.as_char_ptr(),
        length: core::mem::size_of::<*const c_char>(),
        is_inline: true,
        type_: bindings::dev_prop_type_DEV_PROP_STRING,
        ..Default::default()
    };
    entry.__bindgen_anon_1.value.str_ = [value.as_char_ptr()];
    entry
}

impl PlatformDeviceRegistration {
    /// Registers a `carveout` platform device described by `spec`: `id` 0 for the module's own
    /// region (`carveout.0`), `None` for an automatic id.
    ///
    /// When the driver is registered, the driver core probes the device synchronously before
    /// this returns.
    pub(crate) fn register(spec: &RegionSpec, id: Option<i32>) -> Result<Self> {
        let mut properties = KVec::with_capacity(9, GFP_KERNEL)?;
        match &spec.memory {
            Memory::Range { base, size } => {
                properties.push(int_property(PROP_BASE, *base, 8), GFP_KERNEL)?;
                properties.push(int_property(PROP_SIZE, *size, 8), GFP_KERNEL)?;
            }
            Memory::ReserveMem(name) => {
                properties.push(string_property(PROP_RESERVE_MEM, name), GFP_KERNEL)?;
            }
        }
        properties.push(string_property(PROP_NAME, &spec.name), GFP_KERNEL)?;
        if let Some(path) = &spec.path {
            properties.push(string_property(PROP_PATH, path), GFP_KERNEL)?;
        }
        let flags = spec.attr.map_or(0, |attr| u64::from(attr.flag()));
        properties.push(int_property(PROP_ATTR, flags, 4), GFP_KERNEL)?;
        let allow_unlisted = u64::from(spec.allow_unlisted);
        properties.push(
            int_property(PROP_ALLOW_UNLISTED, allow_unlisted, 4),
            GFP_KERNEL,
        )?;
        properties.push(int_property(PROP_MODE, spec.mode.into(), 2), GFP_KERNEL)?;
        properties.push(int_property(PROP_GID, spec.gid.into(), 4), GFP_KERNEL)?;
        // The terminator.
        properties.push(bindings::property_entry::default(), GFP_KERNEL)?;

        let info = bindings::platform_device_info {
            name: DRIVER_NAME.as_char_ptr(),
            id: id.unwrap_or(bindings::PLATFORM_DEVID_AUTO),
            properties: properties.as_ptr(),
            ..Default::default()
        };
        // SAFETY: `info` and the terminated `properties` (and the strings they point to) are
        // valid for the call; the function copies all of them.
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
