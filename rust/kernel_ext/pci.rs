// SPDX-License-Identifier: GPL-2.0

//! PCI devices, as far as the iomem tree does not name them: which device's memory BAR a
//! physical range falls in.

use kernel::{
    bindings,
    prelude::*,
    str::CString, //
};

use crate::range::PhysRange;

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
