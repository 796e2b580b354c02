// SPDX-License-Identifier: GPL-2.0

//! The platform driver: binds to a `carveout` platform device, claims its memory resource and
//! publishes it as a misc device.

use kernel::{
    device::{
        Core,
        Device, //
    },
    miscdevice::{
        MiscDeviceOptions,
        MiscDeviceRegistration, //
    },
    platform,
    prelude::*,
    sync::{
        atomic::{
            Atomic,
            Relaxed, //
        },
        Arc, //
    },
};

use crate::{
    chardev::RegionFile,
    platform_device::{
        PROP_BASE,
        PROP_SIZE, //
    },
    region::Region, //
};

/// The name the driver and its devices match on.
pub(crate) const DRIVER_NAME: &CStr = c"carveout";

/// The device node of the region the module parameters describe.
pub(crate) const PARAM_REGION_NAME: &CStr = c"carveout0";

/// The errno of the last failed probe, so that the code that created the device can fail with
/// it (the driver core does not hand probe errors back to `platform_device_register`).
static LAST_PROBE_ERROR: Atomic<i32> = Atomic::new(0);

/// Takes the errno of the last failed probe, if any.
pub(crate) fn take_probe_error() -> Option<Error> {
    match LAST_PROBE_ERROR.xchg(0, Relaxed) {
        0 => None,
        errno => Some(Error::from_errno(errno)),
    }
}

/// What a bound device holds: the claimed region and its device node.
#[pin_data]
pub(crate) struct BoundRegion {
    region: Arc<Region>,
    #[pin]
    misc: MiscDeviceRegistration<RegionFile>,
}

impl BoundRegion {
    /// The bound region that owns `misc`.
    pub(crate) fn of_misc(misc: &MiscDeviceRegistration<RegionFile>) -> &Self {
        let misc: *const MiscDeviceRegistration<RegionFile> = misc;
        // SAFETY: Every `MiscDeviceRegistration<RegionFile>` is the `misc` field of a
        // `BoundRegion` (it is created nowhere else), and the container lives at least as long
        // as the borrowed field.
        unsafe { &*kernel::container_of!(misc, BoundRegion, misc) }
    }

    pub(crate) fn region(&self) -> &Arc<Region> {
        &self.region
    }
}

/// The base and size the device's properties give.
fn described_range(dev: &Device) -> Result<(u64, u64)> {
    let node = dev.fwnode().ok_or_else(|| {
        dev_err!(dev, "no firmware node: nothing describes the region\n");
        ENODEV
    })?;
    let base = node.property_read::<u64>(PROP_BASE).required_by(dev)?;
    let size = node.property_read::<u64>(PROP_SIZE).required_by(dev)?;
    Ok((base, size))
}

pub(crate) struct CarveoutDriver;

impl platform::Driver for CarveoutDriver {
    type IdInfo = ();
    type Data<'bound> = BoundRegion;

    fn probe<'bound>(
        pdev: &'bound platform::Device<Core<'_>>,
        _id_info: Option<&'bound Self::IdInfo>,
    ) -> impl PinInit<Self::Data<'bound>, Error> + 'bound {
        let claimed = described_range(pdev.as_ref())
            .and_then(|(base, size)| Region::claim(pdev.as_ref(), base, size, PARAM_REGION_NAME));
        if let Err(err) = &claimed {
            LAST_PROBE_ERROR.store(err.to_errno(), Relaxed);
        }
        try_pin_init!(BoundRegion {
            region: claimed?,
            misc <- MiscDeviceRegistration::register(MiscDeviceOptions {
                name: PARAM_REGION_NAME,
            }),
        })
    }
}
