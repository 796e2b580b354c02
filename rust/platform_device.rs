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

use kernel::{
    device::Device,
    prelude::*,
    str::CString, //
};

use crate::{
    attr::CacheAttr,
    kernel_ext::{
        dev_pagemap::FolioSize,
        platform_device::Properties, //
    },
};

const PROP_RESERVE_MEM: &CStr = c"carveout,reserve-mem";
const PROP_BASE: &CStr = c"carveout,base";
const PROP_SIZE: &CStr = c"carveout,size";
const PROP_NAME: &CStr = c"carveout,name";
const PROP_PATH: &CStr = c"carveout,path";
const PROP_ATTR: &CStr = c"carveout,attr";
const PROP_MODE: &CStr = c"carveout,mode";
const PROP_GID: &CStr = c"carveout,gid";
const PROP_ALLOW_UNLISTED: &CStr = c"carveout,allow-unlisted";
const PROP_PAGES: &CStr = c"carveout,pages";

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
    /// Give the memory struct pages (pages mode: pinnable mappings, write-back only), in folios
    /// of this size.
    pub(crate) pages: Option<FolioSize>,
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
            pages: match node.property_read::<u32>(PROP_PAGES).required_by(dev)? {
                0 => None,
                bytes => Some(FolioSize::from_bytes(bytes.into()).ok_or_else(|| {
                    dev_err!(dev, "refusing a folio size of {:#x} bytes\n", bytes);
                    EINVAL
                })?),
            },
            mode: node.property_read::<u16>(PROP_MODE).required_by(dev)?,
            gid: node.property_read::<u32>(PROP_GID).required_by(dev)?,
        })
    }
}

impl RegionSpec {
    /// The description as the device's properties, which [`RegionSpec::from_device`] reads.
    pub(crate) fn properties(&self) -> Result<Properties<'_>> {
        let mut properties = Properties::new();
        match &self.memory {
            Memory::Range { base, size } => {
                properties.push_u64(PROP_BASE, *base)?;
                properties.push_u64(PROP_SIZE, *size)?;
            }
            Memory::ReserveMem(name) => properties.push_string(PROP_RESERVE_MEM, name)?,
        }
        properties.push_string(PROP_NAME, &self.name)?;
        if let Some(path) = &self.path {
            properties.push_string(PROP_PATH, path)?;
        }
        properties.push_u32(PROP_ATTR, self.attr.map_or(0, |attr| attr.flag()))?;
        properties.push_u32(PROP_ALLOW_UNLISTED, u32::from(self.allow_unlisted))?;
        // 0, or the folio size in bytes (at most 1 GiB).
        let pages = self.pages.map_or(0, |folio| folio.bytes() as u32);
        properties.push_u32(PROP_PAGES, pages)?;
        properties.push_u16(PROP_MODE, self.mode)?;
        properties.push_u32(PROP_GID, self.gid)?;
        Ok(properties)
    }
}
