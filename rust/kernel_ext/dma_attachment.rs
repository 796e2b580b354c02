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
//! - an attach is refused while the driver core is still adding the device: it is on the
//!   bus's list (and found by name) before the IOMMU core probes it at `BUS_NOTIFY_ADD_DEVICE`,
//!   and until then it has no group and the DMA API would map for it directly, then unmap the
//!   physical address as an IOVA in the domain the probe gives it;
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
//!
//! The mapping itself, and the device's lock and mask it is made under, are
//! [`super::dma_mapping`]'s; the group, its mutex and its domain are [`super::iommu_group`]'s.

use kernel::{
    bindings,
    device::Device,
    dma::DmaMask,
    new_mutex,
    prelude::*,
    str::CString,
    sync::{
        aref::ARef,
        Mutex, //
    },
    types::Opaque,
};

use super::{
    device::as_raw,
    dma_mapping::{
        dma_mask,
        DeviceLock,
        MapError,
        Mapping, //
    },
    iommu_group::IommuGroup,
    pci,
};

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
    /// No PCI device of that name (or it was removed while being attached, or the driver core
    /// is still adding it).
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
pub(crate) use super::dma_mapping::Translation;

impl From<MapError> for AttachError {
    fn from(err: MapError) -> Self {
        match err {
            MapError::LeftGroup | MapError::NotAdded => Self::NoDevice,
            MapError::UserOwned => Self::UserOwned,
            MapError::OutOfReach(mask) => Self::OutOfReach(mask),
            MapError::WouldBounce => Self::WouldBounce,
            MapError::Refused => Self::Refused,
            MapError::Failed(err) => Self::Failed(err),
        }
    }
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
        // The driver core links a device into its bus's list before the IOMMU core probes it
        // (`BUS_NOTIFY_ADD_DEVICE`): until it is done adding it, the device has no group yet and
        // the DMA API would map for it directly. Once added, its group (or its having none) is
        // the one it keeps.
        if !DeviceLock::new(&dev).added() {
            return Err(AttachError::NoDevice);
        }
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
        if pci::find_device(name).is_none_or(|found| as_raw(&found) != as_raw(&dev)) {
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
        let mapping = Mapping::new(&lock, IommuGroup::of(&dev), claim, mask);
        drop(overridden);
        let mapping = mapping?;
        let bounced =
            mapping.translation() == Translation::Direct && mapping.bus_addr() != range.base();
        let beyond = mapping
            .bus_addr()
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
                bus: mapping.bus_addr(),
                translation: mapping.translation(),
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
        let ours = dev == as_raw(&this.dev);
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
                // SAFETY: `dev` is live for the notification.
                let bound: &Device = unsafe { Device::from_raw(dev) };
                if !ours && !this.group.as_ref().is_some_and(|group| group.holds(bound)) {
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
