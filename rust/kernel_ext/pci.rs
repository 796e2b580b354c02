// SPDX-License-Identifier: GPL-2.0

//! PCI devices, as far as the kernel crate does not reach them: a device found by name, whether
//! its driver manages its DMA itself, and which device's memory BAR a physical range falls in.

use core::ptr::NonNull;

use kernel::{
    bindings,
    device::Device,
    prelude::*,
    str::CString,
    sync::aref::ARef, //
};

use crate::range::PhysRange;

/// The PCI device called `name` (`0000:00:03.0`), with a reference held.
pub(crate) fn find_device(name: &CStr) -> Option<ARef<Device>> {
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

/// The name of `dev`'s driver if that driver manages the device's DMA itself
/// (`driver_managed_dma`: vfio-pci and its variants, pci-stub, the PCIe port driver), so that it
/// may take the device's IOMMU group from the DMA API and hand it to userspace
/// (`iommu_group_claim_dma_owner`, `iommu_device_claim_dma_owner`). A driver of a device that
/// is not on the PCI bus counts too, since its bus's flag is not looked at.
///
/// # Safety
///
/// `dev` is a live device whose driver cannot change meanwhile (its lock is held, or the driver
/// core is binding it); the name is used only meanwhile.
pub(crate) unsafe fn dma_managing_driver<'a>(dev: *mut bindings::device) -> Option<&'a CStr> {
    // SAFETY: `dev` is live and its driver stays as it is (the function's requirement).
    let driver = unsafe { (*dev).driver };
    if driver.is_null() {
        return None;
    }
    // SAFETY: As above; the bus is set when the device is registered.
    let on_pci = unsafe { (*dev).bus } == &raw const bindings::pci_bus_type;
    let managed = !on_pci || {
        // SAFETY: A driver bound to a device on the PCI bus is the `driver` of a `pci_driver`.
        let pci_driver = unsafe { kernel::container_of!(driver, bindings::pci_driver, driver) };
        // SAFETY: The driver stays registered while bound to `dev`.
        unsafe { (*pci_driver).driver_managed_dma }
    };
    // SAFETY: A bound driver's name is a string that lives as long as the driver.
    managed.then(|| unsafe { CStr::from_char_ptr((*driver).name) })
}

/// A memory BAR of a PCI device that a range overlaps.
pub(crate) struct Bar {
    /// The device's name (`0000:00:03.0`).
    pub(crate) device: CString,
    /// The BAR's number (6 is the expansion ROM).
    pub(crate) index: usize,
}

/// The standard BARs and the ROM: `PCI_STD_NUM_BARS` + 1.
const BARS: usize = bindings::PCI_STD_NUM_BARS as usize + 1;

/// The first memory BAR of any PCI device that overlaps `range`, if one does.
pub(crate) fn bar_overlapping(range: &PhysRange) -> Result<Option<Bar>> {
    let mut dev: *mut bindings::pci_dev = core::ptr::null_mut();
    loop {
        // SAFETY: `dev` is null or a device this loop holds a reference to, which
        // `pci_get_device` drops; it returns the next device with a reference taken, or null.
        dev = unsafe { bindings::pci_get_device(!0, !0, dev) };
        if dev.is_null() {
            return Ok(None);
        }
        let hit = (0..BARS).find(|&index| {
            // SAFETY: `dev` is a live device this loop holds a reference to; its resources are
            // plain values set up when it was enumerated.
            let bar = unsafe { &(*dev).resource[index] };
            bar.flags & bindings::IORESOURCE_MEM as c_ulong != 0
                && bar.end > bar.start
                && bar.start <= range.last()
                && bar.end >= range.base()
        });
        if let Some(index) = hit {
            // SAFETY: As above; the name lives as long as the device, which is held here.
            let name = unsafe { CStr::from_char_ptr(bindings::dev_name(&raw const (*dev).dev)) };
            let device = CString::try_from(name);
            // SAFETY: Drops the reference `pci_get_device` took; `dev` is not used after.
            unsafe { bindings::pci_dev_put(dev) };
            return Ok(Some(Bar {
                device: device?,
                index,
            }));
        }
    }
}
