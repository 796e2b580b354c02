// SPDX-License-Identifier: GPL-2.0

//! The platform driver: binds to a `carveout` platform device, claims the region its
//! properties describe, and publishes it as a device node.

use kernel::{
    device::{
        Core,
        Device, //
    },
    miscdevice::MiscDeviceRegistration,
    platform,
    prelude::*,
    str::CString,
    sync::Arc,
};

use crate::{
    chardev::RegionFile,
    node::{
        NodeSpec,
        RegionNode, //
    },
    platform_device::{
        PlatformDeviceRegistration,
        RegionSpec, //
    },
    region::Region, //
};

/// What a bound device holds: its device node, what the node was made from, and the region.
///
/// Fields drop in declaration order: the node goes before the strings it points to.
#[pin_data]
pub(crate) struct BoundRegion {
    #[pin]
    node: RegionNode,
    spec: NodeSpec,
    region: Arc<Region>,
}

impl BoundRegion {
    /// The bound region that owns `misc`.
    pub(crate) fn of_misc(misc: &MiscDeviceRegistration<RegionFile>) -> &Self {
        // SAFETY: The misc core only hands `open` registrations it has, and every miscdevice
        // with `RegionFile`'s operations is the node of a `BoundRegion`, alive while the misc
        // core can open it.
        unsafe { Self::of_node(RegionNode::from_registration(misc)) }
    }

    /// The bound region whose `node` field `node` is.
    ///
    /// # Safety
    ///
    /// `node` must point to the `node` field of a live `BoundRegion`, which must stay alive for
    /// `'a`.
    pub(crate) unsafe fn of_node<'a>(node: *const RegionNode) -> &'a Self {
        // SAFETY: By the function's safety requirement.
        unsafe { &*kernel::container_of!(node, BoundRegion, node) }
    }

    pub(crate) fn region(&self) -> &Arc<Region> {
        &self.region
    }

    pub(crate) fn node_spec(&self) -> &NodeSpec {
        &self.spec
    }
}

pub(crate) struct CarveoutDriver;

impl platform::Driver for CarveoutDriver {
    type IdInfo = ();
    type Data<'bound> = BoundRegion;

    fn probe<'bound>(
        pdev: &'bound platform::Device<Core<'_>>,
        _id_info: Option<&'bound Self::IdInfo>,
    ) -> impl PinInit<Self::Data<'bound>, Error> + 'bound {
        let (spec, region, node) = match describe_and_claim(pdev.as_ref()) {
            Ok((spec, region)) => {
                record_probe(Ok(region.clone()));
                // SAFETY: the node keeps pointers to `spec`'s strings, whose buffers move with
                // `spec` into the same `BoundRegion`, where they are dropped after the node.
                let node = unsafe { RegionNode::register(&spec) };
                (Ok(spec), Ok(region), Ok(node))
            }
            Err(err) => {
                record_probe(Err(err));
                (Err(err), Err(err), Err(err))
            }
        };
        // The region and its description first: the node can be opened as soon as it exists.
        try_pin_init!(BoundRegion {
            spec: spec?,
            region: region?,
            node <- node?,
        })
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
    outcome: Option<Result<Arc<Region>>>,
}

kernel::sync::global_lock! {
    // SAFETY: Initialised in the module's `init` (`init_locks`) before any registration.
    unsafe(uninit) static PROBED: SpinLock<ProbeSlot> = ProbeSlot { waiting: false, outcome: None };
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
pub(crate) fn create_region(
    spec: &RegionSpec,
    id: Option<i32>,
) -> Result<(PlatformDeviceRegistration, Arc<Region>)> {
    let _serialised = REGISTRATION.lock();
    *PROBED.lock() = ProbeSlot {
        waiting: true,
        outcome: None,
    };
    let registered = PlatformDeviceRegistration::register(spec, id);
    let outcome = core::mem::replace(
        &mut *PROBED.lock(),
        ProbeSlot {
            waiting: false,
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
