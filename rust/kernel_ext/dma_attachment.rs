// SPDX-License-Identifier: GPL-2.0

//! A claimed physical range mapped for one PCI device through the kernel's DMA API
//! (`dma_map_phys`): the address the device must use for it (an IOVA when an IOMMU translates
//! the device's DMA, the physical address otherwise), kept until dropped or until the device is
//! removed, whichever comes first.
//!
//! Never a bounce buffer: where no IOMMU translates, the range must lie within the device's
//! DMA mask, and the address the DMA API hands back must be the physical one.
//!
//! What the device can address is its DMA mask, which its driver sets. A device with no
//! driver (driven from userspace through its sysfs `resource` files) has its bus's default,
//! 32 bits for PCI, whatever it decodes; for it the caller may state the reach instead
//! ([`Reach::Bits`]): the mask is set to it while the range is mapped, under the device's lock
//! (no driver binds meanwhile), and put back afterwards.

use core::ptr::NonNull;

use kernel::{
    bindings,
    device::Device,
    new_mutex,
    prelude::*,
    str::CString,
    sync::{
        aref::ARef,
        Mutex, //
    },
    types::Opaque,
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
    /// No PCI device of that name.
    NoDevice,
    /// A reach was stated for a device that has a driver, whose DMA mask rules.
    HasDriver,
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

/// A live mapping of the range for the device.
struct Mapping {
    dev: ARef<Device>,
    bus_addr: bindings::dma_addr_t,
    /// The range's first byte.
    phys: u64,
    size: usize,
    /// How the device reached memory when mapped.
    translation: Translation,
}

impl Mapping {
    /// Whether the mapping still lives in the device's current domain. Without a driver bound,
    /// the device's IOMMU group may be given another default domain (sysfs
    /// `iommu_group/type`) while the range is mapped for it: the old domain, with the IOVA,
    /// is gone; unmapping through the new one would unmap what it never mapped (a `WARN` in
    /// the DMA API, and an IOVA freed that its allocator never handed out).
    fn in_current_domain(&self) -> bool {
        match (self.translation, current_domain(&self.dev)) {
            (Translation::Direct, None) => true,
            (Translation::Translated, Some(domain)) => {
                // SAFETY: `domain` is the device's live paging domain; the call only walks its
                // page table.
                let phys = unsafe { bindings::iommu_iova_to_phys(domain.as_ptr(), self.bus_addr) };
                phys == self.phys
            }
            _ => false,
        }
    }

    fn unmap(self) {
        if !self.in_current_domain() {
            pr_info!(
                "{}: its IOMMU domain changed while the carve-out was mapped for it: the mapping went with the old domain\n",
                self.dev.name().to_str().unwrap_or("?")
            );
            return;
        }
        // SAFETY: `bus_addr` came from `dma_map_phys` for this device and size, in the domain
        // the device still has, and is unmapped once (the mapping is consumed).
        unsafe {
            bindings::dma_unmap_phys(
                raw(&self.dev),
                self.bus_addr,
                self.size,
                bindings::dma_data_direction::DMA_BIDIRECTIONAL,
                bindings::DMA_ATTR_SKIP_CPU_SYNC as c_ulong,
            )
        };
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

/// A range mapped for a PCI device's DMA. The device is referenced while mapped; removing it
/// unmaps the range first (a bus notifier).
///
/// # Invariants
///
/// `notifier` is registered on the PCI bus from construction until drop (or, if registering
/// failed, never: unregistering it then finds nothing).
#[pin_data(PinnedDrop)]
pub(crate) struct DmaAttachment {
    /// The device's name, which stays after it is removed.
    name: CString,
    translation: Translation,
    /// The bus address while mapped.
    bus_addr: u64,
    #[pin]
    mapping: Mutex<Option<Mapping>>,
    #[pin]
    notifier: Opaque<bindings::notifier_block>,
}

// SAFETY: The mapping is used under its mutex; the notifier block is only touched by the
// notifier chain under its own lock, and by drop.
unsafe impl Send for DmaAttachment {}
// SAFETY: As above.
unsafe impl Sync for DmaAttachment {}

/// The PCI device called `name`, with a reference held.
fn find_pci_device(name: &CStr) -> Option<ARef<Device>> {
    // SAFETY: `pci_bus_type` is the PCI bus, registered at boot for good; the name is a
    // NUL-terminated string for the duration of the call; `bus_find_device` returns a device
    // with a reference taken, or NULL.
    let dev = unsafe {
        bindings::bus_find_device(
            &raw const bindings::pci_bus_type,
            core::ptr::null_mut(),
            name.as_char_ptr().cast(),
            Some(bindings::device_match_name),
        )
    };
    let dev = NonNull::new(dev)?;
    // SAFETY: `dev` is a valid device whose reference this takes over.
    Some(unsafe { ARef::from_raw(dev.cast()) })
}

/// The C `struct device` of `dev`.
fn raw(dev: &Device) -> *mut bindings::device {
    // `Device` is a transparent wrapper of `struct device`; its `as_raw` is private to the
    // kernel crate.
    core::ptr::from_ref(dev).cast_mut().cast()
}

/// The device's domain if it is a paging (translating) one.
fn current_domain(dev: &Device) -> Option<NonNull<bindings::iommu_domain>> {
    // SAFETY: `dev` is a valid device held by the caller; the call only reads its group's
    // domain.
    let domain = NonNull::new(unsafe { bindings::iommu_get_domain_for_dev(raw(dev)) })?;
    // SAFETY: A non-NULL domain is the device's live domain while it is in its group.
    let kind = unsafe { (*domain.as_ptr()).type_ };
    (kind & bindings::__IOMMU_DOMAIN_PAGING != 0).then_some(domain)
}

/// How `dev`'s DMA reaches memory.
fn translation(dev: &Device) -> Translation {
    match current_domain(dev) {
        Some(_) => Translation::Translated,
        None => Translation::Direct,
    }
}

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

    /// Sets the device's streaming DMA mask to `mask` until the returned value is dropped,
    /// which puts the old one back. `None` if the DMA API refuses the mask. Only for a
    /// device with no driver (whose mask nobody else sets while the lock is held).
    fn override_mask(&self, mask: u64) -> Option<MaskOverride<'_, 'a>> {
        if self.has_driver() {
            return None;
        }
        let old = dma_mask(self.dev);
        // SAFETY: The device is live, has no driver and is locked: nobody else sets its mask
        // meanwhile.
        let ret = unsafe { bindings::dma_set_mask(raw(self.dev), mask) };
        (ret == 0).then_some(MaskOverride { lock: self, old })
    }
}

impl Drop for DeviceLock<'_> {
    fn drop(&mut self) {
        // SAFETY: Held by the type invariant; released only here.
        unsafe { bindings::mutex_unlock(&raw mut (*raw(self.dev)).mutex) };
    }
}

/// A DMA mask set on a locked device without a driver; the old one is put back on drop.
struct MaskOverride<'l, 'a> {
    lock: &'l DeviceLock<'a>,
    old: u64,
}

impl Drop for MaskOverride<'_, '_> {
    fn drop(&mut self) {
        // SAFETY: The device is live and still locked (`lock` outlives `self`) with no driver;
        // `old` is the mask it had, which the DMA API took before.
        unsafe { bindings::dma_set_mask(raw(self.lock.dev), self.old) };
    }
}

/// `DMA_BIT_MASK(bits)` for `bits` in [`Reach::BITS`].
fn bit_mask(bits: u32) -> u64 {
    u64::MAX.checked_shr(64 - bits).unwrap_or(0)
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

impl DmaAttachment {
    /// Maps the whole of `claim` for the PCI device `name`, which can address what `reach`
    /// says.
    pub(crate) fn new(
        name: &CStr,
        claim: &impl Claimed,
        reach: Reach,
    ) -> Result<Pin<KBox<Self>>, AttachError> {
        let range = claim.claimed_range();
        let dev = find_pci_device(name).ok_or(AttachError::NoDevice)?;
        let lock = DeviceLock::new(&dev);
        let stated = match reach {
            Reach::Mask => None,
            Reach::Bits(_) if lock.has_driver() => return Err(AttachError::HasDriver),
            Reach::Bits(bits) if Reach::BITS.contains(&bits) => Some(bit_mask(bits)),
            Reach::Bits(_) => return Err(AttachError::Failed(EINVAL)),
        };
        let translation = translation(&dev);
        let mask = stated.unwrap_or_else(|| dma_mask(&dev));
        if translation == Translation::Direct && range.last() > mask {
            return Err(AttachError::OutOfReach(mask));
        }
        let size = usize::try_from(range.size()).map_err(|_| AttachError::Failed(EINVAL))?;
        // The stated reach is the device's mask while it is mapped (the DMA API allocates an
        // IOVA below it, or checks the physical address against it); the old one comes back
        // after.
        let overridden = match stated {
            Some(mask) => Some(lock.override_mask(mask).ok_or(AttachError::ReachRefused)?),
            None => None,
        };
        // SAFETY: `dev` is a live device; the range is memory the caller claimed, given to the
        // device for both directions; x86 DMA is cache coherent, so no sync is needed.
        let bus_addr = unsafe {
            bindings::dma_map_phys(
                raw(&dev),
                range.base(),
                size,
                bindings::dma_data_direction::DMA_BIDIRECTIONAL,
                bindings::DMA_ATTR_SKIP_CPU_SYNC as c_ulong,
            )
        };
        drop(overridden);
        drop(lock);
        // `dma_mapping_error` is inline: the DMA API's error value is all ones.
        if bus_addr == !0 {
            return Err(AttachError::Refused);
        }
        let mapping = Mapping {
            dev,
            bus_addr,
            phys: range.base(),
            size,
            translation,
        };
        let bounced = translation == Translation::Direct && bus_addr != range.base();
        let beyond = bus_addr
            .checked_add(range.size() - 1)
            .is_none_or(|last| last > mask);
        if bounced || beyond {
            mapping.unmap();
            return Err(AttachError::WouldBounce);
        }
        let attachment = KBox::pin_init(
            try_pin_init!(Self {
                name: CString::try_from(name)?,
                translation,
                bus_addr,
                mapping <- new_mutex!(Some(mapping)),
                notifier <- Opaque::ffi_init(|nb: *mut bindings::notifier_block| {
                    // SAFETY: `nb` is the pinned, uninitialised slot; zeroed is a valid
                    // notifier block to fill in.
                    unsafe {
                        nb.write(bindings::notifier_block {
                            notifier_call: Some(Self::device_event),
                            ..pin_init::zeroed()
                        })
                    };
                }),
            }),
            GFP_KERNEL,
        );
        let attachment = match attachment {
            Ok(attachment) => attachment,
            Err(err) => return Err(AttachError::Failed(err)),
        };
        // SAFETY: The block is pinned in `attachment` until drop, which unregisters it.
        let ret = unsafe {
            bindings::bus_register_notifier(
                &raw const bindings::pci_bus_type,
                attachment.notifier.get(),
            )
        };
        if ret != 0 {
            // Dropping it unmaps the range; unregistering a block that is not registered finds
            // nothing and does nothing.
            return Err(AttachError::Failed(Error::from_errno(ret)));
        }
        // INVARIANT: Registered above.
        Ok(attachment)
    }

    /// The device's name.
    pub(crate) fn name(&self) -> &CStr {
        &self.name
    }

    /// The address the device must use for the range's first byte, while the device exists.
    pub(crate) fn bus_address(&self) -> Option<u64> {
        self.mapping.lock().as_ref().map(|_| self.bus_addr)
    }

    /// Whether an IOMMU translates the device's DMA.
    pub(crate) fn translation(&self) -> Translation {
        self.translation
    }

    /// Unmaps the range when the device is about to go.
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
        if action != bindings::bus_notifier_event_BUS_NOTIFY_DEL_DEVICE as c_ulong {
            return bindings::NOTIFY_DONE as c_int;
        }
        let nb = Opaque::cast_from(nb);
        // SAFETY: By the function's safety requirement `nb` is inside a live attachment.
        let this = unsafe { &*kernel::container_of!(nb, Self, notifier) };
        let mut mapping = this.mapping.lock();
        if mapping
            .as_ref()
            .is_some_and(|m| raw(&m.dev) == data.cast::<bindings::device>())
        {
            if let Some(mapping) = mapping.take() {
                pr_info!(
                    "{} is being removed: the carve-out is no longer mapped for it\n",
                    this.name.to_str().unwrap_or("?")
                );
                mapping.unmap();
            }
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
        if let Some(mapping) = self.mapping.lock().take() {
            mapping.unmap();
        }
    }
}
