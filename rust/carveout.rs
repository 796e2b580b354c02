// SPDX-License-Identifier: GPL-2.0

//! carveout: hands userspace and devices a block of physical memory the kernel never touches.
//!
//! Boot with the range reserved (`memmap=64M$0x8000000`), then
//! `insmod carveout.ko base=0x8000000 size=0x4000000`. The module registers a platform device
//! describing that range; the `carveout` platform driver binds to it, refuses a range that is
//! not reserved or is already claimed, claims it (`/proc/iomem` shows `carveout`) and
//! publishes `/dev/carveout0`. More regions are created at runtime through configfs
//! (`/sys/kernel/config/carveout/<name>`, see `configfs.rs`). The memory is never read, written
//! or zeroed by the driver.
//!
//! The userspace ABI (ioctls, mmap rules, read/write/lseek) is `include/carveout.h`.

// The driver's files call only safe code: the compiler refuses `unsafe` in them, including
// what a macro of ours would expand there. `kernel_ext` is the one module that holds `unsafe`
// (and this file, for what `module!` expands).
#[deny(unsafe_code)]
mod abi;
#[deny(unsafe_code)]
mod attachment;
#[deny(unsafe_code)]
mod attr;
#[deny(unsafe_code)]
mod chardev;
#[deny(unsafe_code)]
mod configfs;
#[deny(unsafe_code)]
mod driver;
#[deny(unsafe_code)]
mod file_io;
mod kernel_ext;
#[deny(unsafe_code)]
mod listing;
#[deny(unsafe_code)]
mod node;
#[deny(unsafe_code)]
mod platform_device;
#[deny(unsafe_code)]
mod range;
#[deny(unsafe_code)]
mod region;

use kernel::{
    configfs::Subsystem,
    driver::Registration,
    platform,
    prelude::*,
    str::CString,
    sync::Arc, //
};

use crate::{
    attr::CacheAttr,
    chardev::OpenRegion,
    configfs::Regions,
    driver::{
        CarveoutDriver,
        PlatformDeviceRegistration, //
    },
    kernel_ext::dev_pagemap::FolioSize,
    node::NodeClass,
    platform_device::{
        Memory,
        RegionSpec, //
    },
    range::PhysRange,
    region::Region, //
};

module! {
    type: CarveoutModule,
    name: "carveout",
    authors: ["carveout developers"],
    description: "Reserved physical memory for research devices, mapped to userspace",
    license: "GPL",
    params: {
        base: u64 {
            default: 0,
            description: "Physical base address of the region (page aligned)",
        },
        size: u64 {
            default: 0,
            description: "Size of the region in bytes (page aligned); base=0 size=0: no region",
        },
        attr: u32 {
            default: 0,
            description: "Cache attribute, a CARVEOUT_MR_* bit: 1 UC, 2 WC, 4 WT, 8 WB, 16 WP; 0: WB (UC with allow_unlisted)",
        },
        allow_unlisted: bool {
            default: false,
            description: "Claim a range the kernel's memory map does not list as reserved memory (default attribute UC)",
        },
        pages: bool {
            default: false,
            description: "Give the region struct pages (ZONE_DEVICE): its mappings can be pinned (O_DIRECT, io_uring, vmsplice, iommufd); write-back only, base and size 2 MiB aligned",
        },
        pages_align: u64 {
            default: 0x1000,
            description: "With pages=1: the size of the folios the pages form and of every mapping entry, 0x1000 (4 KiB), 0x200000 (2 MiB) or 0x40000000 (1 GiB); mappings must be aligned to it",
        },
        mode: u32 {
            default: 0o600,
            description: "Permission bits of /dev/carveout0 (default 0600)",
        },
        gid: u32 {
            default: 0,
            description: "Group of /dev/carveout0 (default 0, root)",
        },
    },
    // And `reserve_mem` and `attach` (strings), declared in string_params.c.
}

#[pin_data]
struct CarveoutModule {
    /// Declared first so it is dropped (unbound and unregistered) before the driver.
    _param_region: Option<(PlatformDeviceRegistration, Arc<Region>)>,
    #[pin]
    _configfs: Subsystem<Regions>,
    #[pin]
    _driver: Registration<platform::Adapter<CarveoutDriver>>,
    /// Declared last: every node is gone before the class goes.
    _nodes: NodeClass,
}

impl kernel::InPlaceModule for CarveoutModule {
    fn init(module: &'static ThisModule) -> impl PinInit<Self, Error> {
        let spec = param_spec();
        try_pin_init!(Self {
            _nodes: NodeClass::register::<OpenRegion>(module)?,
            _driver <- Registration::new(platform_device::DRIVER_NAME, module),
            _param_region: match spec? {
                Some(spec) => Some(param_region(&spec)?),
                None => None,
            },
            _configfs <- configfs::subsystem(),
        })
    }
}

/// Creates the region the module parameters describe and maps it for the PCI devices that
/// `attach=` names: the load fails (and claims nothing) if any of that fails.
fn param_region(spec: &RegionSpec) -> Result<(PlatformDeviceRegistration, Arc<Region>)> {
    let created = driver::create_region(spec, Some(0), None)?;
    if let Some(list) = kernel_ext::string_params::attach() {
        for spec in list.to_bytes().split(|b| *b == b',') {
            let (device, reach) = crate::chardev::attach_spec("attach=", spec)?;
            created.1.attach(&device, reach)?;
        }
    }
    Ok(created)
}

/// The region the module parameters describe (`None` for base=0 size=0), or `EINVAL` with
/// the reason in `dmesg`.
fn param_spec() -> Result<Option<RegionSpec>> {
    // Checked first, so that a bad value is refused even without a region.
    param_pages()?;
    let base = module_parameters::base.value();
    let size = module_parameters::size.value();
    let memory = match kernel_ext::string_params::reserve_mem() {
        Some(name) if base != 0 || size != 0 => {
            pr_err!(
                "refusing reserve_mem={} with base=/size=: give one or the other\n",
                name.to_str().unwrap_or("?")
            );
            return Err(EINVAL);
        }
        Some(name) => Memory::ReserveMem(CString::try_from(name)?),
        None if base == 0 && size == 0 => {
            pr_info!("no base= and size=: no region until one is created in configfs\n");
            return Ok(None);
        }
        None => {
            let range = PhysRange::new(base, size).map_err(|err| {
                pr_err!(
                    "refusing base={:#x} size={:#x}: {}\n",
                    base,
                    size,
                    err.reason()
                );
                EINVAL
            })?;
            Memory::Range {
                base: range.base(),
                size: range.size(),
            }
        }
    };
    let flags = module_parameters::attr.value();
    let attr = match flags {
        0 => None,
        flags => Some(CacheAttr::from_flags(flags).ok_or_else(|| {
            pr_err!(
                "refusing attr={flags:#x}: not one of 1 (UC), 2 (WC), 4 (WT), 8 (WB), 16 (WP)\n"
            );
            EINVAL
        })?),
    };
    let mode = module_parameters::mode.value();
    let mode = u16::try_from(mode)
        .ok()
        .filter(|mode| *mode <= 0o777)
        .ok_or_else(|| {
            pr_err!("refusing mode={mode:#o}: not permission bits (0 to 0777)\n");
            EINVAL
        })?;
    Ok(Some(RegionSpec {
        memory,
        name: CString::try_from(c"carveout0")?,
        path: None,
        attr,
        allow_unlisted: module_parameters::allow_unlisted.value(),
        pages: param_pages()?,
        mode,
        gid: module_parameters::gid.value(),
    }))
}

/// The folio size of a pages-mode region from `pages=` and `pages_align=`: `None` without pages.
/// Refuses (`EINVAL`, one line) a size other than 4 KiB, 2 MiB and 1 GiB, and `pages_align=`
/// without `pages=1`.
fn param_pages() -> Result<Option<FolioSize>> {
    let align = module_parameters::pages_align.value();
    let folio = FolioSize::from_bytes(align).ok_or_else(|| {
        pr_err!("refusing pages_align={align:#x}: not 0x1000 (4 KiB), 0x200000 (2 MiB) or 0x40000000 (1 GiB)\n");
        EINVAL
    })?;
    match (module_parameters::pages.value(), folio) {
        (true, folio) => Ok(Some(folio)),
        (false, FolioSize::Page) => Ok(None),
        (false, _) => {
            pr_err!("refusing pages_align={align:#x} without pages=1: it sizes the folios of a region with struct pages\n");
            Err(EINVAL)
        }
    }
}
