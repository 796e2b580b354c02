// SPDX-License-Identifier: GPL-2.0

//! A claim mapped for a device by the DMA API (`dma_map_phys`), made under the device's lock
//! and, where an IOMMU translates for it, in its group's default domain with the group's mutex
//! held; unmapped on drop, only in the default domain it was made in. The device's lock is also
//! what a stated DMA mask is set under: every mapping is made under it, so none races with the
//! change (`dma_set_mask`'s obligation).
//!
//! The pieces of [`super::dma_attachment`], private to `kernel_ext`: a mapping alone does not
//! follow its device's removal or a bind in its group; the attachment does.

use kernel::{
    bindings,
    device::Device,
    dma::{
        attrs,
        Attrs,
        DataDirection,
        DmaMask, //
    },
    prelude::*,
    str::CString,
    sync::aref::ARef, //
};

use super::{
    device::as_raw,
    iomem::Claimed,
    iommu_group::{
        Domain,
        DomainId,
        IommuGroup,
        Member, //
    },
    pci,
};

/// How the device reaches memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Translation {
    /// An IOMMU translates its DMA (a `DMA` or `DMA-FQ` domain): the bus address is an IOVA.
    Translated,
    /// No IOMMU, or an identity (passthrough) domain: the bus address is the physical address.
    Direct,
}

/// Why a range could not be mapped for a device.
#[derive(Debug)]
pub(super) enum MapError {
    /// The device left its IOMMU group (it is being removed).
    LeftGroup,
    /// The driver core is still adding the device (found on its bus before the IOMMU core
    /// probed it).
    NotAdded,
    /// The group's domain is neither a DMA-API nor an identity one: a user driver owns it.
    UserOwned,
    /// The device's DMA mask does not reach the range and no IOMMU translates for it; the
    /// mask is given.
    OutOfReach(u64),
    /// The DMA API would have bounced the transfers through another buffer.
    WouldBounce,
    /// The DMA API refused (no IOVA space, no memory).
    Refused,
    /// Anything else.
    Failed(Error),
}

/// How the range is mapped for the device: both directions, no CPU cache maintenance (x86
/// DMA is cache coherent; `CARVEOUT_SYNC` is the explicit path for devices that do not snoop).
const DIRECTION: DataDirection = DataDirection::Bidirectional;
const ATTRS: Attrs = attrs::DMA_ATTR_SKIP_CPU_SYNC;

/// The C value of `attrs` (the kernel crate keeps `Attrs::as_raw` to itself).
fn raw_attrs(attrs: Attrs) -> c_ulong {
    [
        (
            attrs::DMA_ATTR_WEAK_ORDERING,
            bindings::DMA_ATTR_WEAK_ORDERING,
        ),
        (
            attrs::DMA_ATTR_WRITE_COMBINE,
            bindings::DMA_ATTR_WRITE_COMBINE,
        ),
        (
            attrs::DMA_ATTR_SKIP_CPU_SYNC,
            bindings::DMA_ATTR_SKIP_CPU_SYNC,
        ),
        (attrs::DMA_ATTR_NO_WARN, bindings::DMA_ATTR_NO_WARN),
        (attrs::DMA_ATTR_PRIVILEGED, bindings::DMA_ATTR_PRIVILEGED),
    ]
    .into_iter()
    .filter(|(attr, _)| attrs.contains(*attr))
    .fold(0, |raw, (_, bit)| raw | bit as c_ulong)
}

/// The lock of a device (`device_lock`): no driver binds to it or unbinds while it is held.
///
/// # Invariants
///
/// The device's mutex is held by this task from construction until drop.
pub(super) struct DeviceLock<'a> {
    dev: &'a Device,
}

impl<'a> DeviceLock<'a> {
    /// Takes `dev`'s lock, sleeping until it is free.
    pub(super) fn new(dev: &'a Device) -> Self {
        // SAFETY: `dev` is a live device, whose mutex was initialised with it.
        unsafe { bindings::mutex_lock(&raw mut (*as_raw(dev)).mutex) };
        // INVARIANT: Locked above.
        Self { dev }
    }

    /// Whether the driver core has finished adding the device: its bus's notifiers have run,
    /// the IOMMU core's probe among them, so the device has the IOMMU group (or none) and the
    /// DMA API path it keeps. A device found on its bus before that (it is linked into the
    /// bus's list first) has no group yet, and the DMA API would map for it directly, then go
    /// through the IOMMU the group brings: nothing may be mapped for it until then.
    pub(super) fn added(&self) -> bool {
        // SAFETY: `dev` is a live device (a reference to it is held); the call only tests one
        // bit of its flags, which `device_add` sets under the lock held here and never clears.
        unsafe { carveout_dev_added(as_raw(self.dev).cast()) }
    }

    /// Whether a driver is bound to the device.
    pub(super) fn has_driver(&self) -> bool {
        // SAFETY: The device is live; `driver` changes only under its lock, which is held.
        unsafe { !(*as_raw(self.dev)).driver.is_null() }
    }

    /// The name of the device's driver if it manages the device's DMA itself.
    pub(super) fn dma_managing_driver(&self) -> Result<Option<CString>> {
        // SAFETY: The device is live and locked: its driver stays bound meanwhile.
        match unsafe { pci::dma_managing_driver(as_raw(self.dev)) } {
            Some(name) => Ok(Some(CString::try_from(name)?)),
            None => Ok(None),
        }
    }

    /// Sets the device's streaming DMA mask to `mask` until the returned value is dropped,
    /// which puts the old one back. `None` if the DMA API refuses the mask. Only for a device
    /// with no driver, and only here: this lock is held from before the mask is set until
    /// after it is put back, and every mapping this module makes for the device is made under
    /// it ([`Mapping::new`] takes the lock), so no mapping races with the change
    /// (`dma_set_mask`'s obligation).
    pub(super) fn override_mask(&self, mask: DmaMask) -> Option<MaskOverride<'_, 'a>> {
        if self.has_driver() {
            return None;
        }
        let old = dma_mask(self.dev);
        // SAFETY: The device is live, has no driver (nobody else maps for it through the DMA
        // API) and is locked, and this module maps for it only under the lock.
        let ret = unsafe { set_dma_mask(self.dev, mask.value()) };
        (ret == 0).then_some(MaskOverride { lock: self, old })
    }
}

impl Drop for DeviceLock<'_> {
    fn drop(&mut self) {
        // SAFETY: Held by the type invariant; released only here.
        unsafe { bindings::mutex_unlock(&raw mut (*as_raw(self.dev)).mutex) };
    }
}

/// Sets `dev`'s streaming DMA mask (`dma_set_mask`); 0 or a negative errno.
///
/// # Safety
///
/// No DMA mapping for `dev` may be made or checked concurrently (the mask decides where the DMA
/// API may place one): the caller holds the device's lock, no driver is bound to it, and every
/// mapping the caller makes for it is made under the same lock.
unsafe fn set_dma_mask(dev: &Device, mask: u64) -> c_int {
    // SAFETY: `dev` is live; nothing maps for it meanwhile (the function's requirement).
    unsafe { bindings::dma_set_mask(as_raw(dev), mask) }
}

/// A DMA mask set on a locked device without a driver; the old one is put back on drop.
pub(super) struct MaskOverride<'l, 'a> {
    lock: &'l DeviceLock<'a>,
    old: u64,
}

impl Drop for MaskOverride<'_, '_> {
    fn drop(&mut self) {
        // SAFETY: The device is still locked (`lock` outlives `self`) with no driver; `old` is
        // the mask it had, which the DMA API took before.
        unsafe { set_dma_mask(self.lock.dev, self.old) };
    }
}

/// The device's DMA mask (all it can address), 0 if it has none.
pub(super) fn dma_mask(dev: &Device) -> u64 {
    // SAFETY: `dev` is a valid device; `dma_mask` is NULL or points to the mask its bus set up.
    let mask = unsafe { (*as_raw(dev)).dma_mask };
    if mask.is_null() {
        0
    } else {
        // SAFETY: Non-NULL: the device's mask, alive with the device.
        unsafe { *mask }
    }
}

/// What a [`Mapping`] was made in.
#[derive(Clone, Copy, PartialEq, Eq)]
enum MappedIn {
    /// No IOMMU group once the device was added: the DMA API maps directly. Only an IOMMU
    /// driver registered later could give the device a group (and route its DMA API through
    /// the IOMMU): the unmap checks that it still maps directly.
    NoGroup,
    /// The group's default domain at the time, compared at unmap.
    Domain(DomainId),
}

/// The range mapped for a device by `dma_map_phys`, unmapped on drop.
///
/// # Invariants
///
/// `bus_addr` came from `dma_map_phys(dev, phys, size, DIRECTION, ATTRS)` while `dev`'s group
/// (`group`, if it has one) was on `mapped_in`, its default domain, and is not unmapped yet.
pub(super) struct Mapping {
    dev: ARef<Device>,
    group: Option<IommuGroup>,
    mapped_in: MappedIn,
    bus_addr: bindings::dma_addr_t,
    phys: u64,
    size: usize,
    translation: Translation,
}

// Defined in `helpers.c`: `is_swiotlb_force_bounce` is an inline function. (A `struct device`
// pointer, declared `void *`: the bound `struct device` is not FFI-safe by Rust's lint.)
extern "C" {
    fn carveout_dma_force_bounce(dev: *mut c_void) -> bool;
    fn carveout_dev_added(dev: *mut c_void) -> bool;
    fn carveout_dev_dma_iommu(dev: *mut c_void) -> bool;
}

/// Whether the DMA API maps for `dev` through an IOMMU domain (its flag `dma_iommu`, set by the
/// IOMMU core when it gives the device a translating default domain).
fn dma_iommu(dev: &Device) -> bool {
    // SAFETY: `dev` is a live device (a reference to it is held); the call only tests one bit of
    // its flags.
    unsafe { carveout_dev_dma_iommu(as_raw(dev).cast()) }
}

/// Whether the DMA API bounces every direct mapping of `dev` through swiotlb (`swiotlb=force`,
/// a confidential guest's shared-memory bounce). Such a mapping would copy the range through
/// the kernel's direct map, which does not cover reserved memory: the attach is refused before
/// it is tried.
fn force_bounce(dev: &Device) -> bool {
    // SAFETY: `dev` is a live device (a reference to it is held); the call only reads its
    // swiotlb pool pointer and that pool's `force_bounce` flag.
    unsafe { carveout_dma_force_bounce(as_raw(dev).cast()) }
}

/// Maps `phys..phys + size` for `dev` in the DMA API.
///
/// # Safety
///
/// `dev` is a live device whose group (if any) is on its default domain and locked, and the
/// range is memory the caller holds a claim on.
unsafe fn map_raw(dev: &Device, phys: u64, size: usize) -> Option<bindings::dma_addr_t> {
    // SAFETY: By the function's safety requirements.
    let bus = unsafe {
        bindings::dma_map_phys(as_raw(dev), phys, size, DIRECTION.into(), raw_attrs(ATTRS))
    };
    (!mapping_error(dev, bus)).then_some(bus)
}

/// `dma_mapping_error` (inline in C): whether `bus` is the DMA API's error value, all ones. With
/// `CONFIG_DMA_API_DEBUG` it also records that the result was checked, which the DMA-API
/// debugging demands before the unmap (or it warns).
fn mapping_error(dev: &Device, bus: bindings::dma_addr_t) -> bool {
    #[cfg(CONFIG_DMA_API_DEBUG)]
    {
        // SAFETY: `dev` is live; the call only marks the debugging entry of `bus` checked.
        unsafe { bindings::debug_dma_mapping_error(as_raw(dev), bus) };
    }
    #[cfg(not(CONFIG_DMA_API_DEBUG))]
    let _ = dev;
    bus == !0
}

impl Mapping {
    /// Maps the whole of `claim` for the locked device in its group's default domain (the
    /// group's mutex held), or directly with no group; refused where nothing translates and
    /// `mask` does not reach it, and for a device the driver core has not finished adding
    /// (whose IOMMU group may still be coming). `group` is the device's, taken under `lock`.
    pub(super) fn new(
        lock: &DeviceLock<'_>,
        group: Option<IommuGroup>,
        claim: &impl Claimed,
        mask: u64,
    ) -> Result<Self, MapError> {
        let dev = lock.dev;
        if !lock.added() {
            return Err(MapError::NotAdded);
        }
        let range = claim.claimed_range();
        let size = usize::try_from(range.size()).map_err(|_| MapError::Failed(EINVAL))?;
        let Some(group) = group else {
            if dma_iommu(dev) {
                // An IOMMU translates for it, though it had no group when `group` was taken.
                return Err(MapError::NotAdded);
            }
            if range.last() > mask {
                return Err(MapError::OutOfReach(mask));
            }
            if force_bounce(dev) {
                return Err(MapError::WouldBounce);
            }
            // SAFETY: With no IOMMU group there is no domain to be on; the range is `claim`'s.
            let bus_addr = unsafe { map_raw(dev, range.base(), size) }.ok_or(MapError::Refused)?;
            // INVARIANT: Mapped just above, directly.
            return Ok(Self {
                dev: dev.into(),
                group: None,
                mapped_in: MappedIn::NoGroup,
                bus_addr,
                phys: range.base(),
                size,
                translation: Translation::Direct,
            });
        };
        let mapped = group
            .with_member(dev, |member| {
                let (domain, translation) = match member.domain() {
                    Domain::Dma(domain) => (domain, Translation::Translated),
                    Domain::Identity(domain) => (domain, Translation::Direct),
                    Domain::Other => return Err(MapError::UserOwned),
                };
                if translation == Translation::Direct && range.last() > mask {
                    return Err(MapError::OutOfReach(mask));
                }
                if translation == Translation::Direct && force_bounce(member.device()) {
                    return Err(MapError::WouldBounce);
                }
                if member.attach_deferred() {
                    return Err(MapError::Failed(EBUSY));
                }
                // SAFETY: The group's mutex is held and its domain is the default one (a DMA-API
                // or identity domain is only ever a default domain); the range is `claim`'s.
                let bus = unsafe { map_raw(member.device(), range.base(), size) }
                    .ok_or(MapError::Refused)?;
                Ok((bus, domain, translation))
            })
            .ok_or(MapError::LeftGroup)?;
        let (bus_addr, domain, translation) = mapped?;
        // INVARIANT: Mapped just above, in `domain`, the group's default domain.
        Ok(Self {
            dev: dev.into(),
            group: Some(group),
            mapped_in: MappedIn::Domain(domain),
            bus_addr,
            phys: range.base(),
            size,
            translation,
        })
    }

    /// The bus address of the range's first byte, as the device must use it.
    pub(super) fn bus_addr(&self) -> u64 {
        self.bus_addr
    }

    /// Whether an IOMMU translates the bus address.
    pub(super) fn translation(&self) -> Translation {
        self.translation
    }

    /// Whether the group's default domain, which `member`'s group is on, is the one mapped in.
    fn still_mapped_in(&self, member: &Member<'_>) -> bool {
        let (domain, translated) = match member.domain() {
            Domain::Dma(domain) => (domain, true),
            Domain::Identity(domain) => (domain, false),
            // Not a default domain: no user owns the group while the range is mapped (binding
            // a driver that may hand it to one revokes the mapping first), so this is the
            // blocking domain of a reset, or a domain a kernel driver of the group attached:
            // neither can replace the default domain meanwhile.
            Domain::Other => return true,
        };
        if self.mapped_in != MappedIn::Domain(domain) {
            return false;
        }
        // The same address may be a new domain (the old one freed): the IOVA must still lead to
        // the range, as only this mapping makes it do.
        !translated || member.iova_to_phys(self.bus_addr) == self.phys
    }

    /// Unmaps the range.
    ///
    /// # Safety
    ///
    /// The group (if any) is locked and still on the default domain mapped in; called once.
    unsafe fn unmap_raw(&self) {
        // SAFETY: By the type invariant and the function's requirements the mapping is live,
        // in the device's default domain, and unmapped only now.
        unsafe {
            bindings::dma_unmap_phys(
                as_raw(&self.dev),
                self.bus_addr,
                self.size,
                DIRECTION.into(),
                raw_attrs(ATTRS),
            )
        };
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        let name = self.dev.name().to_str().unwrap_or("?");
        let Some(group) = &self.group else {
            if dma_iommu(&self.dev) {
                // An IOMMU driver registered since gave the device a translating domain: the
                // DMA API would unmap the bus address there, where it is not this mapping's
                // (or is another's). A direct mapping holds nothing to give back.
                pr_info!(
                    "{}: an IOMMU took over its DMA while the carve-out was mapped for it directly: nothing to unmap\n",
                    name
                );
                return;
            }
            // SAFETY: No group, and the DMA API still maps directly for the device: mapped
            // directly, and unmapped once, here.
            unsafe { self.unmap_raw() };
            return;
        };
        let unmapped = group.with_member(&self.dev, |member| {
            if !self.still_mapped_in(member) {
                return false;
            }
            // SAFETY: The group's mutex is held and it is on the domain mapped in; unmapped
            // once, here.
            unsafe { self.unmap_raw() };
            true
        });
        match unmapped {
            Some(true) => {}
            Some(false) => pr_info!(
                "{}: its IOMMU domain changed while the carve-out was mapped for it: the mapping went with the old domain\n",
                name
            ),
            // Unmapped before the IOMMU core lets go of a device being removed (the attachment's
            // notifier's priority): not reached.
            None => pr_warn!(
                "{}: left its IOMMU group while the carve-out was mapped for it\n",
                name
            ),
        }
    }
}
