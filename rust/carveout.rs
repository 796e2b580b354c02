// SPDX-License-Identifier: GPL-2.0

//! carveout: hands userspace and devices a block of physical memory the kernel never touches.
//!
//! Boot with the range reserved (`memmap=64M$0x8000000`), then
//! `insmod carveout.ko base=0x8000000 size=0x4000000`. The module registers a platform device
//! carrying that memory resource; the `carveout` platform driver binds to it, refuses a range
//! that is not reserved or is already claimed, claims it (`/proc/iomem` shows `carveout`) and
//! publishes `/dev/carveout0`. The memory is never read, written or zeroed by the driver.
//!
//! The userspace ABI (ioctls and mmap rules) is `include/carveout.h`.

mod abi;
mod chardev;
mod driver;
mod platform_device;
mod range;
mod region;
mod sys;

use kernel::{
    driver::Registration,
    platform,
    prelude::*, //
};

use crate::{
    driver::CarveoutDriver,
    platform_device::PlatformDeviceRegistration,
    range::PhysRange, //
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
            description: "Size of the region in bytes (page aligned, not 0)",
        },
    },
}

#[pin_data]
struct CarveoutModule {
    /// Declared first so it is dropped (unbound and unregistered) before the driver.
    _device: PlatformDeviceRegistration,
    #[pin]
    _driver: Registration<platform::Adapter<CarveoutDriver>>,
}

impl kernel::InPlaceModule for CarveoutModule {
    fn init(module: &'static ThisModule) -> impl PinInit<Self, Error> {
        let range = param_range();
        try_pin_init!(Self {
            _driver <- Registration::new(driver::DRIVER_NAME, module),
            _device: register_region_device(range?)?,
        })
    }
}

/// The range the module parameters name, or `EINVAL` with the reason in `dmesg`.
fn param_range() -> Result<PhysRange> {
    let base = module_parameters::base.value();
    let size = module_parameters::size.value();
    PhysRange::new(base, size).map_err(|err| {
        pr_err!(
            "refusing base={:#x} size={:#x}: {}\n",
            base,
            size,
            err.reason()
        );
        EINVAL
    })
}

/// Registers the platform device for `range` and fails unless the driver bound to it.
fn register_region_device(range: PhysRange) -> Result<PlatformDeviceRegistration> {
    let device =
        PlatformDeviceRegistration::register(driver::DRIVER_NAME, 0, &range).inspect_err(|err| {
            pr_err!(
                "refusing {:#x}-{:#x}: cannot add it to the iomem tree ({:?}): it straddles an existing entry\n",
                range.base(),
                range.last(),
                err
            );
        })?;
    if device.is_bound() {
        return Ok(device);
    }
    Err(driver::take_probe_error().unwrap_or(ENODEV))
}
