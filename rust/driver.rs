// SPDX-License-Identifier: GPL-2.0

//! The platform driver: binds to a `carveout` platform device, claims the region its
//! properties describe, and publishes it as a device node.
//!
//! Whoever creates a region (module init, a configfs `enable`) registers its platform device
//! with a [`ProbeHandoff`] of its own, which the device's probe finds through the device
//! ([`platform_device::handoff`]) and fills with its outcome; the creator waits for the probe
//! (which, with asynchronous probing, runs on another thread) and reads it there. Each region's
//! outcome belongs to its device: parallel `enable`s and a sysfs `bind` of another device at
//! the same moment each get their own.

use kernel::{
    device::{
        Core,
        Device, //
    },
    new_mutex, platform,
    prelude::*,
    str::CString,
    sync::{
        Arc,
        Mutex, //
    },
};

use crate::{
    kernel_ext::{
        configfs_item::GroupLink,
        platform_device, //
    },
    node::{
        NodeSpec,
        RegionNode, //
    },
    platform_device::{
        RegionSpec,
        DRIVER_NAME, //
    },
    region::Region,
};

pub(crate) struct CarveoutDriver;

impl platform::Driver for CarveoutDriver {
    type IdInfo = ();
    type Data<'bound> = RegionNode;

    fn probe<'bound>(
        pdev: &'bound platform::Device<Core<'_>>,
        _id_info: Option<&'bound Self::IdInfo>,
    ) -> impl PinInit<Self::Data<'bound>, Error> + 'bound {
        // `None` for a device that firmware describes: nobody waits for its outcome.
        let handoff = platform_device::handoff::<ProbeHandoff>(pdev);
        let config_item = handoff
            .as_ref()
            .and_then(|handoff| handoff.config_item.clone());
        let bound = describe_and_claim(pdev.as_ref()).and_then(|(spec, region)| {
            let node = RegionNode::register(pdev.as_ref(), spec, region.clone(), config_item)?;
            Ok((node, region))
        });
        if let Some(handoff) = &handoff {
            let mut outcome = handoff.outcome.lock();
            // A later probe (after a sysfs `unbind`, `bind`) finds nobody waiting, and keeps
            // no reference to the region.
            if outcome.waiting {
                outcome.result = Some(match &bound {
                    Ok((_, region)) => Ok(region.clone()),
                    Err(err) => Err(*err),
                });
            }
        }
        bound.map(|(node, _)| node)
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
        spec.pages,
    )?;
    let node = NodeSpec {
        name: spec.name,
        path: spec.path,
        mode: spec.mode,
        gid: spec.gid,
    };
    Ok((node, region))
}

/// A region's registered platform device; unregistered on drop. Its probes get the
/// [`ProbeHandoff`] the region's creator made.
pub(crate) type PlatformDeviceRegistration = platform_device::Registration<ProbeHandoff>;

/// What the creator of a region and the probes of its platform device share.
#[pin_data]
pub(crate) struct ProbeHandoff {
    /// The configfs directory the region is made from, if it is, for the node.
    config_item: Option<GroupLink>,
    #[pin]
    outcome: Mutex<Outcome>,
}

/// A probe's outcome, for the creator.
struct Outcome {
    /// The creator has not read the outcome yet.
    waiting: bool,
    /// The claimed region, or the probe's errno.
    result: Option<Result<Arc<Region>>>,
}

/// Registers the platform device for `spec`, waits for the driver to probe it, and fails, with
/// the probe's errno, unless the driver bound to it: for the caller, creating a region either
/// succeeds whole or not at all. `config_item` is the configfs directory the region is made
/// from, if it is.
pub(crate) fn create_region(
    spec: &RegionSpec,
    id: Option<i32>,
    config_item: Option<GroupLink>,
) -> Result<(PlatformDeviceRegistration, Arc<Region>)> {
    let handoff = try_pin_init!(ProbeHandoff {
        config_item,
        outcome <- new_mutex!(Outcome {
            waiting: true,
            result: None,
        }),
    });
    let device = PlatformDeviceRegistration::register(DRIVER_NAME, id, spec.properties()?, handoff)
        .inspect_err(|err| {
            pr_err!(
                "cannot register the platform device for region {}: {:?}\n",
                spec.name.to_str().unwrap_or("?"),
                err
            );
        })?;
    if device.handoff().outcome.lock().result.is_none() {
        // Asynchronous probing (`async_probe=1`, `driver_async_probe=carveout`): the probe
        // runs on another thread, after the registration returned.
        device.wait_for_probe();
    }
    let result = {
        let mut outcome = device.handoff().outcome.lock();
        outcome.waiting = false;
        outcome.result.take()
    };
    match result {
        Some(Ok(region)) if device.is_bound() => Ok((device, region)),
        // The probe said why in `dmesg`.
        Some(Err(err)) => Err(err),
        _ => {
            pr_err!(
                "region {}: the driver did not bind to its device; unregistering it\n",
                spec.name.to_str().unwrap_or("?")
            );
            // Dropping `device` unregisters it (and unbinds a probe that bound meanwhile).
            Err(ENODEV)
        }
    }
}
