// SPDX-License-Identifier: GPL-2.0

//! A claimed physical range mapped for one PCI device through the kernel's DMA API
//! (`dma_map_phys`): the address the device must use for it (an IOVA when an IOMMU translates
//! the device's DMA, the physical address otherwise), kept until dropped, until the device is
//! removed, or until a driver that may hand the device's DMA to userspace binds to a device of
//! its IOMMU group, whichever comes first.
//!
//! Never a bounce buffer: where no IOMMU translates, the range must lie within the device's
//! DMA mask, and the address the DMA API hands back must be the physical one.
//!
//! What the device can address is its DMA mask, which its driver sets. A device with no
//! driver (driven from userspace through its sysfs `resource` files) has its bus's default,
//! 32 bits for PCI, whatever it decodes; for it the caller may state the reach instead
//! ([`Reach::Bits`]): the mask is set to it while the range is mapped, under the device's lock
//! (no driver binds meanwhile), and put back afterwards.
//!
//! # Why a device loses access when the attachment goes
//!
//! The DMA API maps and unmaps in the device's IOMMU group's *default* domain
//! (`iommu_get_dma_domain`), whatever domain the group is attached to at the time. The default
//! domain is replaced only through the group's sysfs `type`, and only while nothing holds the
//! group (`owner_cnt` 0: no DMA-API driver bound, no user owner). A user owner (VFIO's
//! container, iommufd) takes the group with `iommu_group_claim_dma_owner` or
//! `iommu_device_claim_dma_owner`, which only a driver with `driver_managed_dma` set does
//! (vfio-pci and its variants, pci-stub, the PCIe port driver); such a driver binding to a
//! device of the group is announced on the PCI bus (`BUS_NOTIFY_BIND_DRIVER`) before its
//! probe, while the group is still on its default domain. So:
//!
//! - an attach is refused while any device of the group is bound to such a driver, or while
//!   the group's domain is not a DMA-API or identity domain (a user owns it);
//! - a bind of such a driver to any device of the group unmaps the range first (revoked);
//! - every decision about the domain, and the map and unmap themselves, are made under the
//!   group's mutex (`iommu_group_for_each_dev`), where neither the sysfs `type` nor an owner
//!   can change it; the domain is read with `iommu_driver_get_domain_for_dev`, the call meant
//!   for use under that mutex;
//! - the unmap checks that the group's default domain is still the one mapped in (the same
//!   domain, and for a translating one the IOVA still leads to the range); if root replaced it
//!   through sysfs meanwhile, the mapping went with the old domain, which the kernel freed,
//!   and nothing is unmapped in the new one;
//! - removal of the device unmaps first, at `BUS_NOTIFY_DEL_DEVICE`, or at
//!   `BUS_NOTIFY_REMOVED_DEVICE` with a priority above the IOMMU core's, which takes the device
//!   out of its group on that event.

use core::{
    marker::PhantomData,
    ptr::NonNull, //
};

use kernel::{
    bindings,
    device::Device,
    dma::{
        attrs,
        Attrs,
        DataDirection,
        DmaMask, //
    },
    new_mutex,
    prelude::*,
    str::CString,
    sync::{
        aref::ARef,
        Mutex, //
    },
    types::Opaque,
};

use super::pci;
use crate::range::PhysRange;

/// The claims a device may be given: sealed, made only by the claim types of
/// [`super::iomem`].
pub(crate) use super::iomem::Claimed;

/// What a device can address, for [`DmaAttachment::new`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reach {
    /// Its DMA mask, as its driver (or, with none bound, its bus) set it.
    Mask,
    /// The low address bits it decodes (12 to 64), as the caller states them: only for a device
    /// with no driver bound.
    Bits(u32),
}

impl Reach {
    /// The fewest and most address bits a stated reach may have.
    pub(crate) const BITS: core::ops::RangeInclusive<u32> = 12..=64;
}

/// Why a device could not be given the range.
#[derive(Debug)]
pub(crate) enum AttachError {
    /// No PCI device of that name (or it was removed while being attached).
    NoDevice,
    /// A reach was stated for a device that has a driver, whose DMA mask rules.
    HasDriver,
    /// A device of the device's IOMMU group is bound to a driver that manages DMA itself and
    /// may hand the group to userspace: the device, the driver.
    UserDriver(CString, CString),
    /// The group's domain is neither a DMA-API nor an identity one: a user driver owns it.
    UserOwned,
    /// A driver that may hand the group to userspace bound while the range was being mapped.
    Revoked,
    /// The DMA API does not let the device have the stated reach (`dma_set_mask` refused).
    ReachRefused,
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

impl From<Error> for AttachError {
    fn from(err: Error) -> Self {
        Self::Failed(err)
    }
}

impl From<kernel::alloc::AllocError> for AttachError {
    fn from(_: kernel::alloc::AllocError) -> Self {
        Self::Failed(ENOMEM)
    }
}

/// How the device reaches memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Translation {
    /// An IOMMU translates its DMA (a `DMA` or `DMA-FQ` domain): the bus address is an IOVA.
    Translated,
    /// No IOMMU, or an identity (passthrough) domain: the bus address is the physical address.
    Direct,
}

/// Where an attachment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    /// Mapped: the device uses `bus` for the range's first byte.
    Mapped {
        /// The bus address of the range's first byte.
        bus: u64,
        /// Whether an IOMMU translates it.
        translation: Translation,
    },
    /// The device was removed: the range was unmapped first.
    Removed,
    /// A driver that may hand the device's DMA to userspace bound to a device of its group:
    /// the range was unmapped first.
    Revoked,
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

/// The C `struct device` of `dev`.
fn raw(dev: &Device) -> *mut bindings::device {
    // `Device` is a transparent wrapper of `struct device`; its `as_raw` is private to the
    // kernel crate.
    core::ptr::from_ref(dev).cast_mut().cast()
}

/// A reference to an IOMMU group (`iommu_group_get`), put on drop.
///
/// # Invariants
///
/// `ptr` is an IOMMU group this value holds a reference to.
struct IommuGroup {
    ptr: NonNull<bindings::iommu_group>,
}

// SAFETY: A group reference may be put from any task; the group's own mutex guards its state.
unsafe impl Send for IommuGroup {}
// SAFETY: As above; `&IommuGroup` only compares the pointer or locks the group.
unsafe impl Sync for IommuGroup {}

impl IommuGroup {
    /// The IOMMU group of `dev`, `None` if no IOMMU translates for it.
    fn of(dev: &Device) -> Option<Self> {
        // SAFETY: `dev` is a live device; the call returns its group with a reference taken, or
        // NULL.
        let ptr = NonNull::new(unsafe { bindings::iommu_group_get(raw(dev)) })?;
        // INVARIANT: The reference was taken above.
        Some(Self { ptr })
    }

    /// Whether `dev` (a live device) is in this group.
    fn holds(&self, dev: *mut bindings::device) -> bool {
        // SAFETY: The caller passes a live device (the one a bus notification is about).
        let other = unsafe { bindings::iommu_group_get(dev) };
        if other.is_null() {
            return false;
        }
        // SAFETY: Puts the reference just taken.
        unsafe { bindings::iommu_group_put(other) };
        other == self.ptr.as_ptr()
    }

    /// The group's devices now, each referenced.
    fn devices(&self) -> Result<KVec<ARef<Device>>> {
        let mut out: (KVec<ARef<Device>>, Result) = (KVec::new(), Ok(()));
        // SAFETY: The group is referenced; `collect` gets `out` as its data, which lives across
        // the call.
        unsafe {
            bindings::iommu_group_for_each_dev(
                self.ptr.as_ptr(),
                (&raw mut out).cast(),
                Some(collect),
            )
        };
        out.1.map(|()| out.0)
    }

    /// Runs `f` on `dev` with the group's mutex held, if `dev` is (still) in the group.
    fn with_member<F: FnOnce(&Member<'_>) -> R, R>(&self, dev: &Device, f: F) -> Option<R> {
        let mut visit = Visit {
            dev: raw(dev),
            f: Some(f),
            out: None,
        };
        // SAFETY: The group is referenced; `visit_member` gets `visit`, of the same type
        // parameters, as its data, alive across the call.
        unsafe {
            bindings::iommu_group_for_each_dev(
                self.ptr.as_ptr(),
                (&raw mut visit).cast(),
                Some(visit_member::<F, R>),
            )
        };
        visit.out
    }
}

impl Drop for IommuGroup {
    fn drop(&mut self) {
        // SAFETY: The reference is held by the type invariant and put only here.
        unsafe { bindings::iommu_group_put(self.ptr.as_ptr()) };
    }
}

/// `iommu_group_for_each_dev` callback of [`IommuGroup::devices`].
///
/// # Safety
///
/// `data` points to the `(KVec<ARef<Device>>, Result)` of `devices`; `dev` is a device of the
/// group.
unsafe extern "C" fn collect(dev: *mut bindings::device, data: *mut c_void) -> c_int {
    // SAFETY: By the function's safety requirement.
    let out = unsafe { &mut *data.cast::<(KVec<ARef<Device>>, Result)>() };
    // SAFETY: A device of the group is live while the group's mutex is held (which
    // `iommu_group_for_each_dev` does); `ARef::from` takes a reference of its own.
    let dev: &Device = unsafe { Device::from_raw(dev) };
    let dev = ARef::from(dev);
    match out.0.push(dev, GFP_KERNEL) {
        Ok(()) => 0,
        Err(err) => {
            out.1 = Err(err.into());
            1
        }
    }
}

/// What [`IommuGroup::with_member`] hands its callback.
struct Visit<F, R> {
    dev: *mut bindings::device,
    f: Option<F>,
    out: Option<R>,
}

/// `iommu_group_for_each_dev` callback of [`IommuGroup::with_member`].
///
/// # Safety
///
/// `data` points to a `Visit<F, R>`; `dev` is a device of the group, whose mutex is held.
unsafe extern "C" fn visit_member<F: FnOnce(&Member<'_>) -> R, R>(
    dev: *mut bindings::device,
    data: *mut c_void,
) -> c_int {
    // SAFETY: By the function's safety requirement.
    let visit = unsafe { &mut *data.cast::<Visit<F, R>>() };
    if dev != visit.dev {
        return 0;
    }
    if let Some(f) = visit.f.take() {
        // INVARIANT: Called by `iommu_group_for_each_dev`, which holds the group's mutex, for a
        // device of the group.
        let member = Member {
            // SAFETY: A device of the group is live while the group's mutex is held.
            dev: unsafe { Device::from_raw(dev) },
            _locked: PhantomData,
        };
        visit.out = Some(f(&member));
    }
    1
}

/// A device of an IOMMU group whose mutex is held: its domain cannot change, nor its default
/// domain, nor its owner.
///
/// # Invariants
///
/// `dev` is in its group, whose mutex is held for `'a`.
struct Member<'a> {
    dev: &'a Device,
    _locked: PhantomData<&'a ()>,
}

/// The domain a group is attached to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Domain {
    /// A DMA-API (translating) domain: the group's default domain.
    Dma(NonNull<bindings::iommu_domain>),
    /// An identity (passthrough) domain: the group's default domain.
    Identity(NonNull<bindings::iommu_domain>),
    /// Another: a user driver's (or the blocking domain while the group is given to one, or
    /// while the device is reset).
    Other,
}

impl Member<'_> {
    /// The domain the device's group is attached to.
    fn domain(&self) -> Domain {
        // SAFETY: The group's mutex is held (type invariant), as the call requires.
        let Some(domain) =
            NonNull::new(unsafe { bindings::iommu_driver_get_domain_for_dev(raw(self.dev)) })
        else {
            return Domain::Other;
        };
        // SAFETY: The group's current domain lives while its mutex is held.
        let kind = unsafe { (*domain.as_ptr()).type_ };
        if kind & bindings::__IOMMU_DOMAIN_DMA_API != 0 {
            Domain::Dma(domain)
        } else if kind == bindings::IOMMU_DOMAIN_IDENTITY {
            Domain::Identity(domain)
        } else {
            Domain::Other
        }
    }

    /// Whether the IOMMU core defers attaching the device to its domain until its first DMA
    /// mapping (a kdump kernel): that mapping takes the group's mutex, held here.
    fn attach_deferred(&self) -> bool {
        // SAFETY: A device of a group has its `iommu` data while it is in the group.
        let iommu = unsafe { (*raw(self.dev)).iommu };
        // SAFETY: Non-NULL: the device's IOMMU data, alive while it is in the group.
        !iommu.is_null() && unsafe { (*iommu).attach_deferred() } != 0
    }
}

/// What a [`Mapping`] was made in.
#[derive(Clone, Copy, PartialEq, Eq)]
enum MappedIn {
    /// No IOMMU group: the DMA API maps directly, and nothing can change that.
    NoGroup,
    /// The group's default domain at the time, compared (never dereferenced) at unmap.
    Domain(usize),
}

/// The range mapped for a device by `dma_map_phys`, unmapped on drop.
///
/// # Invariants
///
/// `bus_addr` came from `dma_map_phys(dev, phys, size, DIRECTION, ATTRS)` while `dev`'s group
/// (`group`, if it has one) was on `mapped_in`, its default domain, and is not unmapped yet.
struct Mapping {
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
}

/// Whether the DMA API bounces every direct mapping of `dev` through swiotlb (`swiotlb=force`,
/// a confidential guest's shared-memory bounce). Such a mapping would copy the range through
/// the kernel's direct map, which does not cover reserved memory: the attach is refused before
/// it is tried.
fn force_bounce(dev: &Device) -> bool {
    // SAFETY: `dev` is a live device (a reference to it is held); the call only reads its
    // swiotlb pool pointer and that pool's `force_bounce` flag.
    unsafe { carveout_dma_force_bounce(raw(dev).cast()) }
}

/// Maps `phys..phys + size` for `dev` in the DMA API.
///
/// # Safety
///
/// `dev` is a live device whose group (if any) is on its default domain and locked, and the
/// range is memory the caller holds a claim on.
unsafe fn map_raw(dev: &Device, phys: u64, size: usize) -> Option<bindings::dma_addr_t> {
    // SAFETY: By the function's safety requirements.
    let bus =
        unsafe { bindings::dma_map_phys(raw(dev), phys, size, DIRECTION.into(), raw_attrs(ATTRS)) };
    (!mapping_error(dev, bus)).then_some(bus)
}

/// `dma_mapping_error` (inline in C): whether `bus` is the DMA API's error value, all ones. With
/// `CONFIG_DMA_API_DEBUG` it also records that the result was checked, which the DMA-API
/// debugging demands before the unmap (or it warns).
fn mapping_error(dev: &Device, bus: bindings::dma_addr_t) -> bool {
    #[cfg(CONFIG_DMA_API_DEBUG)]
    {
        // SAFETY: `dev` is live; the call only marks the debugging entry of `bus` checked.
        unsafe { bindings::debug_dma_mapping_error(raw(dev), bus) };
    }
    #[cfg(not(CONFIG_DMA_API_DEBUG))]
    let _ = dev;
    bus == !0
}

impl Mapping {
    /// Maps the range for `dev` in its group's default domain (the group's mutex held), or
    /// directly with no group; refused where nothing translates and `mask` does not reach it.
    fn new(
        dev: &ARef<Device>,
        group: Option<IommuGroup>,
        range: &PhysRange,
        mask: u64,
    ) -> Result<Self, AttachError> {
        let size = usize::try_from(range.size()).map_err(|_| AttachError::Failed(EINVAL))?;
        let Some(group) = group else {
            if range.last() > mask {
                return Err(AttachError::OutOfReach(mask));
            }
            if force_bounce(dev) {
                return Err(AttachError::WouldBounce);
            }
            // SAFETY: With no IOMMU group there is no domain to be on; the range is claimed by
            // the caller of `DmaAttachment::new`.
            let bus_addr =
                unsafe { map_raw(dev, range.base(), size) }.ok_or(AttachError::Refused)?;
            // INVARIANT: Mapped just above, directly.
            return Ok(Self {
                dev: dev.clone(),
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
                    Domain::Other => return Err(AttachError::UserOwned),
                };
                if translation == Translation::Direct && range.last() > mask {
                    return Err(AttachError::OutOfReach(mask));
                }
                if translation == Translation::Direct && force_bounce(member.dev) {
                    return Err(AttachError::WouldBounce);
                }
                if member.attach_deferred() {
                    return Err(AttachError::Failed(EBUSY));
                }
                // SAFETY: The group's mutex is held and its domain is the default one (a DMA-API
                // or identity domain is only ever a default domain); the range is claimed by
                // the caller of `DmaAttachment::new`.
                let bus = unsafe { map_raw(member.dev, range.base(), size) }
                    .ok_or(AttachError::Refused)?;
                Ok((bus, domain.as_ptr() as usize, translation))
            })
            .ok_or(AttachError::NoDevice)?;
        let (bus_addr, domain, translation) = mapped?;
        // INVARIANT: Mapped just above, in `domain`, the group's default domain.
        Ok(Self {
            dev: dev.clone(),
            group: Some(group),
            mapped_in: MappedIn::Domain(domain),
            bus_addr,
            phys: range.base(),
            size,
            translation,
        })
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
        if self.mapped_in != MappedIn::Domain(domain.as_ptr() as usize) {
            return false;
        }
        // The same address may be a new domain (the old one freed): the IOVA must still lead to
        // the range, as only this mapping makes it do.
        !translated || {
            // SAFETY: `domain` is the group's live domain (its mutex is held); the call only
            // walks its page table.
            unsafe { bindings::iommu_iova_to_phys(domain.as_ptr(), self.bus_addr) == self.phys }
        }
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
                raw(&self.dev),
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
            // SAFETY: No group: mapped directly, and unmapped once, here.
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
            // Unmapped before the IOMMU core lets go of a device being removed (the notifier's
            // priority): not reached.
            None => pr_warn!(
                "{}: left its IOMMU group while the carve-out was mapped for it\n",
                name
            ),
        }
    }
}

/// Where a [`DmaAttachment`] stands.
enum State {
    /// Being mapped by [`DmaAttachment::new`].
    Mapping,
    /// Mapped.
    Mapped(Mapping),
    /// The device was removed.
    Removed,
    /// A driver that may hand the device's DMA to userspace bound to a device of its group.
    Revoked,
}

/// A range mapped for a PCI device's DMA. The device is referenced until drop; removing it,
/// or binding a driver that may hand its group to userspace, unmaps the range first (a bus
/// notifier, registered before the range is mapped).
///
/// # Invariants
///
/// `notifier` is registered on the PCI bus from construction until drop (or, if registering
/// failed, never: unregistering it then finds nothing).
#[pin_data(PinnedDrop)]
pub(crate) struct DmaAttachment {
    /// The device's name, which stays after it is removed.
    name: CString,
    dev: ARef<Device>,
    /// The device's IOMMU group, if an IOMMU translates for it.
    group: Option<IommuGroup>,
    #[pin]
    state: Mutex<State>,
    #[pin]
    notifier: Opaque<bindings::notifier_block>,
}

// SAFETY: The state is used under its mutex; the notifier block is only touched by the
// notifier chain under its own lock, and by drop; the device and group are references.
unsafe impl Send for DmaAttachment {}
// SAFETY: As above.
unsafe impl Sync for DmaAttachment {}

/// The lock of a device (`device_lock`): no driver binds to it or unbinds while it is held.
///
/// # Invariants
///
/// The device's mutex is held by this task from construction until drop.
struct DeviceLock<'a> {
    dev: &'a Device,
}

impl<'a> DeviceLock<'a> {
    /// Takes `dev`'s lock, sleeping until it is free.
    fn new(dev: &'a Device) -> Self {
        // SAFETY: `dev` is a live device, whose mutex was initialised with it.
        unsafe { bindings::mutex_lock(&raw mut (*raw(dev)).mutex) };
        // INVARIANT: Locked above.
        Self { dev }
    }

    /// Whether a driver is bound to the device.
    fn has_driver(&self) -> bool {
        // SAFETY: The device is live; `driver` changes only under its lock, which is held.
        unsafe { !(*raw(self.dev)).driver.is_null() }
    }

    /// The name of the device's driver if it manages the device's DMA itself.
    fn dma_managing_driver(&self) -> Result<Option<CString>> {
        // SAFETY: The device is live and locked: its driver stays bound meanwhile.
        match unsafe { pci::dma_managing_driver(raw(self.dev)) } {
            Some(name) => Ok(Some(CString::try_from(name)?)),
            None => Ok(None),
        }
    }

    /// Sets the device's streaming DMA mask to `mask` until the returned value is dropped,
    /// which puts the old one back. `None` if the DMA API refuses the mask. Only for a device
    /// with no driver, and only here: this lock is held from before the mask is set until
    /// after it is put back, and every mapping this module makes for the device is made under
    /// it, so no mapping races with the change (`dma_set_mask`'s obligation).
    fn override_mask(&self, mask: DmaMask) -> Option<MaskOverride<'_, 'a>> {
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
        unsafe { bindings::mutex_unlock(&raw mut (*raw(self.dev)).mutex) };
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
    unsafe { bindings::dma_set_mask(raw(dev), mask) }
}

/// A DMA mask set on a locked device without a driver; the old one is put back on drop.
struct MaskOverride<'l, 'a> {
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
fn dma_mask(dev: &Device) -> u64 {
    // SAFETY: `dev` is a valid device; `dma_mask` is NULL or points to the mask its bus set up.
    let mask = unsafe { (*raw(dev)).dma_mask };
    if mask.is_null() {
        0
    } else {
        // SAFETY: Non-NULL: the device's mask, alive with the device.
        unsafe { *mask }
    }
}

/// Notifier priority: above the IOMMU core's (0), which takes a device out of its group on
/// `BUS_NOTIFY_REMOVED_DEVICE`; the range is unmapped before that.
const NOTIFIER_PRIORITY: c_int = 1;

impl DmaAttachment {
    /// Maps the whole of `claim` for the PCI device `name`, which can address what `reach`
    /// says.
    pub(crate) fn new(
        name: &CStr,
        claim: &impl Claimed,
        reach: Reach,
    ) -> Result<Pin<KBox<Self>>, AttachError> {
        let range = claim.claimed_range();
        let dev = pci::find_device(name).ok_or(AttachError::NoDevice)?;
        let stated = match reach {
            Reach::Mask => None,
            Reach::Bits(bits) if Reach::BITS.contains(&bits) => Some(DmaMask::try_new(bits)?),
            Reach::Bits(_) => return Err(AttachError::Failed(EINVAL)),
        };
        let group = IommuGroup::of(&dev);
        let own = dev.clone();
        let attachment = KBox::pin_init(
            try_pin_init!(Self {
                name: CString::try_from(name)?,
                dev: own,
                group,
                state <- new_mutex!(State::Mapping),
                notifier <- Opaque::ffi_init(|nb: *mut bindings::notifier_block| {
                    // SAFETY: `nb` is the pinned, uninitialised slot; zeroed is a valid
                    // notifier block to fill in.
                    unsafe {
                        nb.write(bindings::notifier_block {
                            notifier_call: Some(Self::device_event),
                            priority: NOTIFIER_PRIORITY,
                            ..pin_init::zeroed()
                        })
                    };
                }),
            }),
            GFP_KERNEL,
        )?;
        // Registered before anything is mapped: a removal or a bind from now on is seen.
        // SAFETY: The block is pinned in `attachment` until drop, which unregisters it.
        let ret = unsafe {
            bindings::bus_register_notifier(
                &raw const bindings::pci_bus_type,
                attachment.notifier.get(),
            )
        };
        if ret != 0 {
            // Unregistering a block that is not registered finds nothing and does nothing.
            return Err(AttachError::Failed(Error::from_errno(ret)));
        }
        // INVARIANT: Registered above.

        // Still on the bus now that the notifier is registered: the device's removal, if under
        // way, has not reached `BUS_NOTIFY_REMOVED_DEVICE` (which comes after it leaves the
        // bus's list), so the notifier sees that event.
        if pci::find_device(name).is_none_or(|found| raw(&found) != raw(&dev)) {
            return Err(AttachError::NoDevice);
        }

        // A stated reach only for a device with no driver (checked first: its mask is the
        // driver's).
        if stated.is_some() && DeviceLock::new(&dev).has_driver() {
            return Err(AttachError::HasDriver);
        }
        // No device of the group may be bound to a driver that could hand the group to
        // userspace (each checked under its own lock; a bind after its check is seen by the
        // notifier).
        let members = match &attachment.group {
            Some(group) => group.devices()?,
            None => {
                let mut own = KVec::new();
                own.push(dev.clone(), GFP_KERNEL)?;
                own
            }
        };
        for member in &members {
            if let Some(driver) = DeviceLock::new(member).dma_managing_driver()? {
                let device = CString::try_from(member.name())?;
                return Err(AttachError::UserDriver(device, driver));
            }
        }
        drop(members);

        let lock = DeviceLock::new(&dev);
        if stated.is_some() && lock.has_driver() {
            return Err(AttachError::HasDriver);
        }
        let mut state = attachment.state.lock();
        match *state {
            State::Mapping => {}
            State::Removed => return Err(AttachError::NoDevice),
            State::Revoked | State::Mapped(_) => return Err(AttachError::Revoked),
        }
        let mask = stated.map_or_else(|| dma_mask(&dev), |mask| mask.value());
        // The stated reach is the device's mask while it is mapped (the DMA API allocates an
        // IOVA below it, or checks the physical address against it); the old one comes back
        // after.
        let overridden = match stated {
            Some(mask) => Some(lock.override_mask(mask).ok_or(AttachError::ReachRefused)?),
            None => None,
        };
        let mapping = Mapping::new(&dev, IommuGroup::of(&dev), &range, mask);
        drop(overridden);
        let mapping = mapping?;
        let bounced =
            mapping.translation == Translation::Direct && mapping.bus_addr != range.base();
        let beyond = mapping
            .bus_addr
            .checked_add(range.size() - 1)
            .is_none_or(|last| last > mask);
        if bounced || beyond {
            // Dropping the mapping unmaps it.
            return Err(AttachError::WouldBounce);
        }
        *state = State::Mapped(mapping);
        drop(state);
        drop(lock);
        Ok(attachment)
    }

    /// The device's name.
    pub(crate) fn name(&self) -> &CStr {
        &self.name
    }

    /// Where the attachment stands.
    pub(crate) fn status(&self) -> Status {
        match &*self.state.lock() {
            State::Mapped(mapping) => Status::Mapped {
                bus: mapping.bus_addr,
                translation: mapping.translation,
            },
            State::Revoked => Status::Revoked,
            State::Mapping | State::Removed => Status::Removed,
        }
    }

    /// Unmaps the range when the device is about to go, or when a driver that may hand the
    /// device's DMA to userspace binds to a device of its group.
    ///
    /// # Safety
    ///
    /// Called by the PCI bus's notifier chain with `nb` the `notifier` of a live
    /// `DmaAttachment` and `data` the device the event is about.
    unsafe extern "C" fn device_event(
        nb: *mut bindings::notifier_block,
        action: c_ulong,
        data: *mut c_void,
    ) -> c_int {
        let dev = data.cast::<bindings::device>();
        let nb = Opaque::cast_from(nb);
        // SAFETY: By the function's safety requirement `nb` is inside a live attachment.
        let this = unsafe { &*kernel::container_of!(nb, Self, notifier) };
        let ours = dev == raw(&this.dev);
        let (next, driver) = match action as bindings::bus_notifier_event {
            bindings::bus_notifier_event_BUS_NOTIFY_DEL_DEVICE
            | bindings::bus_notifier_event_BUS_NOTIFY_REMOVED_DEVICE
                if ours =>
            {
                (State::Removed, None)
            }
            bindings::bus_notifier_event_BUS_NOTIFY_BIND_DRIVER => {
                // SAFETY: `dev` is the PCI device being bound, whose lock the driver core holds
                // with its driver set.
                let Some(driver) = (unsafe { pci::dma_managing_driver(dev) }) else {
                    return bindings::NOTIFY_DONE as c_int;
                };
                if !ours && !this.group.as_ref().is_some_and(|group| group.holds(dev)) {
                    return bindings::NOTIFY_DONE as c_int;
                }
                (State::Revoked, Some(driver))
            }
            _ => return bindings::NOTIFY_DONE as c_int,
        };
        let mut state = this.state.lock();
        if matches!(*state, State::Removed | State::Revoked) {
            return bindings::NOTIFY_DONE as c_int;
        }
        // Dropping the mapping (if made) unmaps it.
        let old = core::mem::replace(&mut *state, next);
        let was_mapped = matches!(old, State::Mapped(_));
        drop(old);
        drop(state);
        let name = this.name.to_str().unwrap_or("?");
        match driver {
            None if was_mapped => pr_info!(
                "{} is being removed: the carve-out is no longer mapped for it\n",
                name
            ),
            Some(driver) => {
                // SAFETY: `dev` is live for the notification.
                let bound = unsafe { CStr::from_char_ptr(bindings::dev_name(dev)) };
                pr_info!(
                    "{}: {} binds to {}, which may hand DMA in its IOMMU group to userspace: the carve-out is no longer mapped for {}\n",
                    name,
                    driver.to_str().unwrap_or("?"),
                    bound.to_str().unwrap_or("?"),
                    name
                );
            }
            None => {}
        }
        bindings::NOTIFY_OK as c_int
    }
}

#[pinned_drop]
impl PinnedDrop for DmaAttachment {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: Registered by the type invariant; after this returns the chain no longer
        // calls `device_event` for it. Called with no lock of ours held.
        unsafe {
            bindings::bus_unregister_notifier(
                &raw const bindings::pci_bus_type,
                self.notifier.get(),
            )
        };
        // Dropping the mapping (if any) unmaps it.
        *self.state.lock() = State::Removed;
    }
}
