// SPDX-License-Identifier: GPL-2.0

//! The platform driver: binds to a `carveout` platform device, claims the region its
//! properties describe, and publishes it as a device node.

use kernel::{
    device::{
        Core,
        Device, //
    },
    platform,
    prelude::*,
    str::CString,
    sync::Arc,
};

use crate::{
    node::{
        NodeSpec,
        RegionNode, //
    },
    platform_device::{
        PlatformDeviceRegistration,
        RegionSpec, //
    },
    region::Region,
    sys::ConfigItem, //
};

pub(crate) struct CarveoutDriver;

impl platform::Driver for CarveoutDriver {
    type IdInfo = ();
    type Data<'bound> = RegionNode;

    fn probe<'bound>(
        pdev: &'bound platform::Device<Core<'_>>,
        _id_info: Option<&'bound Self::IdInfo>,
    ) -> impl PinInit<Self::Data<'bound>, Error> + 'bound {
        let config_item = PROBED.lock().config_item.take();
        let bound = describe_and_claim(pdev.as_ref()).and_then(|(spec, region)| {
            let node = RegionNode::register(pdev.as_ref(), spec, region.clone(), config_item)?;
            Ok((node, region))
        });
        match bound {
            Ok((node, region)) => {
                record_probe(Ok(region));
                Ok(node)
            }
            Err(err) => {
                record_probe(Err(err));
                Err(err)
            }
        }
    }
}

/// Reads `dev`'s description and claims the region it names.
fn describe_and_claim(dev: &Device) -> Result<(NodeSpec, Arc<Region>)> {
    let spec = RegionSpec::from_device(dev)?;
    let region = Region::claim(
        dev,
        &spec.memory,
        CString::try_from(&*spec.name)?,
        spec.attr,
        spec.allow_unlisted,
    )?;
    let node = NodeSpec {
        name: spec.name,
        path: spec.path,
        mode: spec.mode,
        gid: spec.gid,
    };
    Ok((node, region))
}

/// What the last probe made, handed to [`create_region`], which waits for it: the driver core
/// does not hand probe results back to whoever registered the device.
struct ProbeSlot {
    /// A `create_region` is registering a device now.
    waiting: bool,
    /// The configfs directory of the region it registers, if any, for the node.
    config_item: Option<ConfigItem>,
    outcome: Option<Result<Arc<Region>>>,
}

kernel::sync::global_lock! {
    // SAFETY: Initialised in the module's `init` (`init_locks`) before any registration.
    unsafe(uninit) static PROBED: SpinLock<ProbeSlot> = ProbeSlot {
        waiting: false,
        config_item: None,
        outcome: None,
    };
}

kernel::sync::global_lock! {
    // SAFETY: Initialised in the module's `init` (`init_locks`) before any registration.
    unsafe(uninit) static REGISTRATION: Mutex<()> = ();
}

/// Hands a probe's outcome to the `create_region` waiting for it, if one is.
fn record_probe(outcome: Result<Arc<Region>>) {
    let mut slot = PROBED.lock();
    if slot.waiting {
        slot.outcome = Some(outcome);
    }
}

/// Registers the platform device for `spec` and fails, with the probe's errno, unless the
/// driver bound to it: for the caller, creating a region either succeeds whole or not at all.
/// `config_item` is the configfs directory the region is made from, if it is.
pub(crate) fn create_region(
    spec: &RegionSpec,
    id: Option<i32>,
    config_item: Option<ConfigItem>,
) -> Result<(PlatformDeviceRegistration, Arc<Region>)> {
    let _serialised = REGISTRATION.lock();
    *PROBED.lock() = ProbeSlot {
        waiting: true,
        config_item,
        outcome: None,
    };
    let registered = PlatformDeviceRegistration::register(spec, id);
    let outcome = core::mem::replace(
        &mut *PROBED.lock(),
        ProbeSlot {
            waiting: false,
            config_item: None,
            outcome: None,
        },
    )
    .outcome;
    let device = registered.inspect_err(|err| {
        pr_err!(
            "cannot register the platform device for a region: {:?}\n",
            err
        );
    })?;
    match outcome {
        Some(Ok(region)) if device.is_bound() => Ok((device, region)),
        Some(Err(err)) => Err(err),
        _ => Err(ENODEV),
    }
}

/// Sets up the locks [`create_region`] needs; call once before the first region is created.
pub(crate) fn init_locks() {
    // SAFETY: Called once, from the module's `init`, before any other use of the locks.
    unsafe {
        PROBED.init();
        REGISTRATION.init();
    }
}
