// SPDX-License-Identifier: GPL-2.0

//! Regions created at runtime through configfs, in the style of rnull's `configfs.rs`:
//!
//! ```text
//! mkdir /sys/kernel/config/carveout/dma0
//! cd /sys/kernel/config/carveout/dma0
//! echo 0x8000000 > base; echo 64M > size        # size also takes a K/M/G suffix
//! echo wc > attr; echo 0660 > mode; echo 27 > gid
//! echo 1 > enable                               # claims it: /dev/carveout/dma0
//! echo 0 > enable; cd ..; rmdir dma0            # releases it
//! ```
//!
//! Or, instead of `base` and `size`: `echo NAME > reserve_mem` claims the memory the kernel
//! reserved at boot for `reserve_mem=SIZE:ALIGN:NAME`.
//!
//! `enable` = 1 creates a platform device describing the region; the driver binds to it and
//! claims the range, or the write fails with the driver's errno (and its `dmesg` line).
//! `enable` = 0 and `rmdir` refuse with `EBUSY` while the region is open or mapped (an open file
//! holds a configfs dependency on the directory; a mapping holds its file). `base` and `size`
//! cannot change while enabled (`FIXBASE`, `FIXLEN`); `attr` can, unless it is mapped.
//!
//! `echo 1 > pages` (before `enable`) gives the region struct pages (pages mode, see
//! `include/carveout.h`): then `enable` = 0 also refuses with `EBUSY` while any page is pinned,
//! even after its mapping and file are gone (an io_uring's registered buffers), and `rmdir`
//! refuses with `EBUSY` until `enable` = 0. `echo 2M > pages_align` (4K, 2M or 1G) sizes the
//! pages' folios, and so every mapping entry: mappings must then be aligned to it.

use core::fmt::{
    self,
    Write, //
};

use kernel::{
    configfs::{
        self,
        AttributeOperations, //
    },
    configfs_attrs, new_mutex,
    page::PAGE_SIZE,
    prelude::*,
    str::{
        kstrtobool_bytes,
        CString,
        Formatter, //
    },
    sync::{
        Arc,
        Mutex, //
    },
};

use crate::{
    attr::CacheAttr,
    driver::{
        self,
        PlatformDeviceRegistration, //
    },
    kernel_ext::{
        configfs_item::{
            ConfigItemDependency,
            GroupAnchor,
            GroupLink, //
        },
        dev_pagemap::FolioSize,
        dma_attachment::Status,
    },
    platform_device::{
        Memory,
        RegionSpec, //
    },
    range::{
        parse_mode,
        parse_u64,
        BStrLossy, //
    },
    region::Region, //
};

/// The `carveout` configfs subsystem: one directory per region.
pub(crate) fn subsystem() -> impl PinInit<configfs::Subsystem<Regions>, Error> {
    let item_type = configfs_attrs! {
        container: configfs::Subsystem<Regions>,
        data: Regions,
        child: RegionConfig,
        attributes: [],
    };
    configfs::Subsystem::new(c"carveout", item_type, try_pin_init!(Regions {}))
}

#[pin_data]
pub(crate) struct Regions {}

#[vtable]
impl configfs::GroupOperations for Regions {
    type Child = RegionConfig;

    fn make_group(
        &self,
        name: &CStr,
    ) -> Result<impl PinInit<configfs::Group<RegionConfig>, Error>> {
        let item_type = configfs_attrs! {
            container: configfs::Group<RegionConfig>,
            data: RegionConfig,
            attributes: [
                base: 0,
                size: 1,
                attr: 2,
                mode: 3,
                gid: 4,
                enable: 5,
                reserve_mem: 6,
                allow_unlisted: 7,
                attach: 8,
                detach: 9,
                pages: 10,
                pages_align: 11,
            ],
        };
        let link = GroupLink::new()?;
        let anchor = GroupAnchor::new(&link);
        let bind = link.clone();
        Ok(configfs::Group::new(
            name.try_into()?,
            item_type,
            try_pin_init!(RegionConfig {
                link,
                anchor <- anchor,
                inner <- new_mutex!(ConfigInner {
                    name: name.try_into()?,
                    base: 0,
                    size: 0,
                    attr: None,
                    allow_unlisted: false,
                    mode: 0o600,
                    gid: 0,
                    reserve_mem: None,
                    pages: false,
                    pages_align: FolioSize::Page,
                    enabled: None,
                    pages_dependency: None,
                }),
            }),
        )
        .pin_chain(move |group| bind.bind(&group)))
    }
}

/// One region directory.
#[pin_data]
pub(crate) struct RegionConfig {
    /// The directory itself, whose removal open files of the region refuse.
    link: GroupLink,
    /// Where `link` finds the directory, while it exists.
    #[pin]
    anchor: GroupAnchor,
    #[pin]
    inner: Mutex<ConfigInner>,
}

struct ConfigInner {
    /// The directory's name: the node is `/dev/carveout/<name>`.
    name: CString,
    base: u64,
    size: u64,
    /// `None` until written: the range's default (wb; uc for unlisted memory).
    attr: Option<CacheAttr>,
    /// Claim memory the kernel's map does not list as reserved.
    allow_unlisted: bool,
    mode: u16,
    gid: u32,
    /// A `reserve_mem=` name to claim instead of `base` and `size`.
    reserve_mem: Option<CString>,
    /// Give the region struct pages (pages mode).
    pages: bool,
    /// The size of the pages' folios in pages mode.
    pages_align: FolioSize,
    /// The device and its region while enabled.
    enabled: Option<(PlatformDeviceRegistration, Arc<Region>)>,
    /// While a pages-mode region is enabled, a dependency on the directory: `rmdir` fails with
    /// `EBUSY` until `enable` = 0, which refuses while a page is pinned (a pin can outlive every
    /// file and mapping, which hold dependencies of their own).
    pages_dependency: Option<ConfigItemDependency>,
}

impl ConfigInner {
    fn spec(&self) -> Result<RegionSpec> {
        let name = self.name.to_str()?;
        let memory = match &self.reserve_mem {
            Some(mem_name) => Memory::ReserveMem(CString::try_from(&**mem_name)?),
            None => Memory::Range {
                base: self.base,
                size: self.size,
            },
        };
        Ok(RegionSpec {
            memory,
            name: CString::try_from_fmt(fmt!("carveout-{name}"))?,
            path: Some(CString::try_from_fmt(fmt!("carveout/{name}"))?),
            attr: self.attr,
            allow_unlisted: self.allow_unlisted,
            pages: self.pages.then_some(self.pages_align),
            mode: self.mode,
            gid: self.gid,
        })
    }

    /// Refuses a change of what `enable` fixed (base, size, mode, gid).
    fn unless_enabled(&mut self) -> Result<&mut Self> {
        if self.enabled.is_some() {
            return Err(EBUSY);
        }
        Ok(self)
    }
}

/// Writes `value` and a newline into a configfs page.
fn show_line(page: &mut [u8; PAGE_SIZE], value: fmt::Arguments<'_>) -> Result<usize> {
    let mut out = Formatter::new(page);
    out.write_fmt(value)?;
    out.write_str("\n")?;
    Ok(out.bytes_written())
}

/// The value a store writes, as `base`/`size` take it: decimal, `0x` hex, K/M/G suffix.
fn stored_u64(page: &[u8]) -> Result<u64> {
    parse_u64(page).ok_or_else(|| {
        pr_err!("configfs: not a number: {:?}\n", BStrLossy(page));
        EINVAL
    })
}

#[vtable]
impl AttributeOperations<0> for RegionConfig {
    type Data = RegionConfig;

    fn show(this: &RegionConfig, page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
        show_line(page, fmt!("{:#x}", this.inner.lock().base))
    }

    fn store(this: &RegionConfig, page: &[u8]) -> Result {
        let value = stored_u64(page)?;
        this.inner.lock().unless_enabled()?.base = value;
        Ok(())
    }
}

#[vtable]
impl AttributeOperations<1> for RegionConfig {
    type Data = RegionConfig;

    fn show(this: &RegionConfig, page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
        show_line(page, fmt!("{:#x}", this.inner.lock().size))
    }

    fn store(this: &RegionConfig, page: &[u8]) -> Result {
        let value = stored_u64(page)?;
        this.inner.lock().unless_enabled()?.size = value;
        Ok(())
    }
}

#[vtable]
impl AttributeOperations<2> for RegionConfig {
    type Data = RegionConfig;

    /// The region's attribute while enabled (`SET_ATTR` may have changed it), else the one
    /// `enable` will give it.
    fn show(this: &RegionConfig, page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
        let inner = this.inner.lock();
        let attr = match &inner.enabled {
            Some((_, region)) => Some(region.attr()),
            None => inner.attr,
        };
        show_line(page, fmt!("{}", attr.map_or("default", CacheAttr::name)))
    }

    fn store(this: &RegionConfig, page: &[u8]) -> Result {
        let attr = CacheAttr::parse(page).ok_or_else(|| {
            pr_err!(
                "configfs: attr must be uc, wc, wt, wb or wp, not {:?}\n",
                BStrLossy(page)
            );
            EINVAL
        })?;
        let mut inner = this.inner.lock();
        if let Some((_, region)) = &inner.enabled {
            region.set_attr(attr)?;
        }
        inner.attr = Some(attr);
        Ok(())
    }
}

#[vtable]
impl AttributeOperations<3> for RegionConfig {
    type Data = RegionConfig;

    fn show(this: &RegionConfig, page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
        show_line(page, fmt!("{:04o}", this.inner.lock().mode))
    }

    fn store(this: &RegionConfig, page: &[u8]) -> Result {
        let mode = parse_mode(page).ok_or_else(|| {
            pr_err!(
                "configfs: mode must be octal permission bits, not {:?}\n",
                BStrLossy(page)
            );
            EINVAL
        })?;
        this.inner.lock().unless_enabled()?.mode = mode;
        Ok(())
    }
}

#[vtable]
impl AttributeOperations<4> for RegionConfig {
    type Data = RegionConfig;

    fn show(this: &RegionConfig, page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
        show_line(page, fmt!("{}", this.inner.lock().gid))
    }

    fn store(this: &RegionConfig, page: &[u8]) -> Result {
        let gid = stored_u64(page)?.try_into().map_err(|_| {
            pr_err!(
                "configfs: gid {:?} does not fit in 32 bits\n",
                BStrLossy(page)
            );
            EINVAL
        })?;
        this.inner.lock().unless_enabled()?.gid = gid;
        Ok(())
    }
}

#[vtable]
impl AttributeOperations<5> for RegionConfig {
    type Data = RegionConfig;

    fn show(this: &RegionConfig, page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
        show_line(
            page,
            fmt!("{}", u8::from(this.inner.lock().enabled.is_some())),
        )
    }

    fn store(this: &RegionConfig, page: &[u8]) -> Result {
        let enable = kstrtobool_bytes(page).inspect_err(|_| {
            pr_err!(
                "configfs: enable must be 1 or 0, not {:?}\n",
                BStrLossy(page)
            );
        })?;
        let mut inner = this.inner.lock();
        match (&inner.enabled, enable) {
            (None, true) => {
                let spec = inner.spec()?;
                let link = this.link.clone();
                let enabled = driver::create_region(&spec, None, Some(link))?;
                if spec.pages.is_some() {
                    // From the directory's own callback: no configfs lock taken.
                    inner.pages_dependency = Some(this.anchor.depend()?);
                }
                inner.enabled = Some(enabled);
            }
            (Some((_, region)), false) => {
                if region.in_use() {
                    return Err(EBUSY);
                }
                let held = region.pages_held();
                if held > 0 {
                    pr_err!(
                        "configfs: enable=0 refused: {} page(s) of {} are still pinned\n",
                        held,
                        region.name().to_str().unwrap_or("?")
                    );
                    return Err(EBUSY);
                }
                // Enabling again gives the attribute the region has now (SET_ATTR changes it).
                inner.attr = Some(region.attr());
                inner.enabled = None;
                inner.pages_dependency = None;
            }
            _ => {}
        }
        Ok(())
    }
}

#[vtable]
impl AttributeOperations<6> for RegionConfig {
    type Data = RegionConfig;

    fn show(this: &RegionConfig, page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
        let inner = this.inner.lock();
        let name = inner
            .reserve_mem
            .as_ref()
            .map_or(Ok(""), |name| name.to_str())?;
        show_line(page, fmt!("{name}"))
    }

    /// A `reserve_mem=` name, or an empty line to use `base` and `size` again.
    fn store(this: &RegionConfig, page: &[u8]) -> Result {
        let text = page.trim_ascii();
        let name = match text {
            [] => None,
            _ if text.len() < 64 && text.iter().all(|b| b.is_ascii_graphic()) => Some(
                CString::try_from_fmt(fmt!("{}", core::str::from_utf8(text)?))?,
            ),
            _ => {
                pr_err!(
                    "configfs: reserve_mem must be a name, not {:?}\n",
                    BStrLossy(page)
                );
                return Err(EINVAL);
            }
        };
        this.inner.lock().unless_enabled()?.reserve_mem = name;
        Ok(())
    }
}

#[vtable]
impl AttributeOperations<7> for RegionConfig {
    type Data = RegionConfig;

    fn show(this: &RegionConfig, page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
        show_line(page, fmt!("{}", u8::from(this.inner.lock().allow_unlisted)))
    }

    /// 1: claim the range even if the kernel's map does not list it as reserved memory.
    fn store(this: &RegionConfig, page: &[u8]) -> Result {
        let allow = kstrtobool_bytes(page).inspect_err(|_| {
            pr_err!(
                "configfs: allow_unlisted must be 1 or 0, not {:?}\n",
                BStrLossy(page)
            );
        })?;
        this.inner.lock().unless_enabled()?.allow_unlisted = allow;
        Ok(())
    }
}

/// The enabled region, for `attach` and `detach`: `ENODEV` (with a line) while disabled.
fn enabled_region(this: &RegionConfig) -> Result<Arc<Region>> {
    match &this.inner.lock().enabled {
        Some((_, region)) => Ok(region.clone()),
        None => {
            pr_err!("configfs: attach/detach: enable the region first\n");
            Err(ENODEV)
        }
    }
}

#[vtable]
impl AttributeOperations<8> for RegionConfig {
    type Data = RegionConfig;

    /// The attached devices: name, bus address, translation (as sysfs `dma_devices`).
    fn show(this: &RegionConfig, page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
        let Some(region) = this.inner.lock().enabled.as_ref().map(|(_, r)| r.clone()) else {
            return Ok(0);
        };
        let mut out = Formatter::new(page);
        region.each_attachment(|device, status| match status {
            Status::Mapped { bus, .. } => {
                writeln!(out, "{} {:#x}", device.to_str().unwrap_or("?"), bus)
            }
            Status::Removed | Status::Revoked => {
                writeln!(out, "{} -", device.to_str().unwrap_or("?"))
            }
        })?;
        Ok(out.bytes_written())
    }

    /// Maps the region for the PCI device written (`0000:00:03.0`; `0000:00:03.0@28` states
    /// the address bits a device with no driver decodes).
    fn store(this: &RegionConfig, page: &[u8]) -> Result {
        let (device, reach) = crate::chardev::attach_spec("configfs: attach", page)?;
        enabled_region(this)?.attach(&device, reach).map(|_| ())
    }
}

#[vtable]
impl AttributeOperations<9> for RegionConfig {
    type Data = RegionConfig;

    fn show(_this: &RegionConfig, _page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
        Ok(0)
    }

    /// Unmaps the region for the PCI device written.
    fn store(this: &RegionConfig, page: &[u8]) -> Result {
        let device = crate::chardev::device_name("configfs: detach", "DDDD:BB:DD.F", page)?;
        enabled_region(this)?.detach(&device)
    }
}

#[vtable]
impl AttributeOperations<10> for RegionConfig {
    type Data = RegionConfig;

    fn show(this: &RegionConfig, page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
        show_line(page, fmt!("{}", u8::from(this.inner.lock().pages)))
    }

    /// 1: give the region struct pages (pages mode) when it is enabled.
    fn store(this: &RegionConfig, page: &[u8]) -> Result {
        let pages = kstrtobool_bytes(page).inspect_err(|_| {
            pr_err!(
                "configfs: pages must be 1 or 0, not {:?}\n",
                BStrLossy(page)
            );
        })?;
        this.inner.lock().unless_enabled()?.pages = pages;
        Ok(())
    }
}

#[vtable]
impl AttributeOperations<11> for RegionConfig {
    type Data = RegionConfig;

    fn show(this: &RegionConfig, page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
        show_line(page, fmt!("{:#x}", this.inner.lock().pages_align.bytes()))
    }

    /// The size of the pages' folios in pages mode: 4K, 2M or 1G (also in bytes).
    fn store(this: &RegionConfig, page: &[u8]) -> Result {
        let folio = parse_u64(page)
            .and_then(FolioSize::from_bytes)
            .ok_or_else(|| {
                pr_err!(
                    "configfs: pages_align must be 4K, 2M or 1G, not {:?}\n",
                    BStrLossy(page)
                );
                EINVAL
            })?;
        this.inner.lock().unless_enabled()?.pages_align = folio;
        Ok(())
    }
}
