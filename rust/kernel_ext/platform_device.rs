// SPDX-License-Identifier: GPL-2.0

//! Platform devices a driver registers itself (`platform_device_register_full`), described by
//! software-node properties, with a value handed to the probe of each one.
//!
//! The kernel crate of 7.3 binds drivers to platform devices ([`kernel::platform`]) but does not
//! create them. [`Registration`] registers one and unregisters it on drop. [`Properties`] builds
//! its property list as `PROPERTY_ENTRY_U16/U32/U64/STRING` do in C; the driver reads them back
//! with [`kernel::device::property`], so a device-tree or ACPI node with the same properties
//! describes a device the same way. A [`Handoff`] is what the registering code gives the probe
//! of that very device (see [`handoff`]): the driver core hands probe results to nobody, and
//! with asynchronous probing the probe runs on another thread.

use core::{
    any::TypeId,
    marker::PhantomData,
    ops::Deref,
    ptr::NonNull, //
};

use kernel::{
    bindings,
    device::{
        Bound,
        Device, //
    },
    error::from_err_ptr,
    platform,
    prelude::*,
    sync::{
        Arc,
        ArcBorrow, //
    },
};

/// The property carrying a [`Handoff`]'s address. Only [`Registration::register`] sets it: a
/// software node is made only by kernel code, this property name belongs to this file, and
/// [`handoff`] trusts it on software nodes only.
const PROP_HANDOFF: &CStr = c"rust,platform-handoff";

/// The properties of a platform device being described, terminated for the C side.
///
/// Each string property borrows its value for `'a`; the registration copies everything.
pub(crate) struct Properties<'a> {
    /// Entries, each a complete inline property; no terminator (added on registration).
    entries: KVec<bindings::property_entry>,
    _strings: PhantomData<&'a CStr>,
}

impl<'a> Properties<'a> {
    /// An empty list.
    pub(crate) fn new() -> Self {
        Self {
            entries: KVec::new(),
            _strings: PhantomData,
        }
    }

    fn push(&mut self, entry: bindings::property_entry) -> Result {
        self.entries.push(entry, GFP_KERNEL)?;
        Ok(())
    }

    fn int(name: &'static CStr, length: usize) -> bindings::property_entry {
        bindings::property_entry {
            name: name.as_char_ptr(),
            length,
            is_inline: true,
            ..Default::default()
        }
    }

    /// A `u16` property (`PROPERTY_ENTRY_U16`).
    pub(crate) fn push_u16(&mut self, name: &'static CStr, value: u16) -> Result {
        let mut entry = Self::int(name, 2);
        entry.type_ = bindings::dev_prop_type_DEV_PROP_U16;
        entry.__bindgen_anon_1.value.u16_data = [value, 0, 0, 0];
        self.push(entry)
    }

    /// A `u32` property (`PROPERTY_ENTRY_U32`).
    pub(crate) fn push_u32(&mut self, name: &'static CStr, value: u32) -> Result {
        let mut entry = Self::int(name, 4);
        entry.type_ = bindings::dev_prop_type_DEV_PROP_U32;
        entry.__bindgen_anon_1.value.u32_data = [value, 0];
        self.push(entry)
    }

    /// A `u64` property (`PROPERTY_ENTRY_U64`).
    pub(crate) fn push_u64(&mut self, name: &'static CStr, value: u64) -> Result {
        let mut entry = Self::int(name, 8);
        entry.type_ = bindings::dev_prop_type_DEV_PROP_U64;
        entry.__bindgen_anon_1.value.u64_data = [value];
        self.push(entry)
    }

    /// A string property (`PROPERTY_ENTRY_STRING`).
    pub(crate) fn push_string(&mut self, name: &'static CStr, value: &'a CStr) -> Result {
        let mut entry = Self::int(name, core::mem::size_of::<*const c_char>());
        entry.type_ = bindings::dev_prop_type_DEV_PROP_STRING;
        entry.__bindgen_anon_1.value.str_ = [value.as_char_ptr()];
        self.push(entry)
    }
}

/// What [`Registration::register`] hands the probe of its device: a `T` shared between the
/// registering code and every probe of that device.
///
/// `type_id` comes first (`repr(C)`) so that [`handoff`] can check the type before it looks at
/// anything else.
#[repr(C)]
#[pin_data]
pub(crate) struct Handoff<T: 'static> {
    type_id: TypeId,
    #[pin]
    value: T,
}

impl<T> Deref for Handoff<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.value
    }
}

/// A registered platform device; unregistered (its driver unbound first) on drop.
///
/// # Invariants
///
/// `pdev` is a platform device registered by `platform_device_register_full` and not yet
/// unregistered. If its properties hold [`PROP_HANDOFF`], that is the address of `*handoff`,
/// which this value keeps alive until after the device is unregistered.
pub(crate) struct Registration<T: Send + Sync + 'static> {
    pdev: NonNull<bindings::platform_device>,
    handoff: Arc<Handoff<T>>,
}

impl<T: Send + Sync + 'static> Registration<T> {
    /// Registers a platform device named `name` (`id`: `None` for an automatic one) with
    /// `properties`, whose probes get `value` through [`handoff`].
    ///
    /// If the driver is registered, probing synchronous and the device matches, the driver
    /// core probes it before this returns; asynchronous probing runs later, on another thread
    /// (see [`Registration::wait_for_probe`]).
    pub(crate) fn register(
        name: &'static CStr,
        id: Option<i32>,
        properties: Properties<'_>,
        value: impl PinInit<T, Error>,
    ) -> Result<Self> {
        let handoff = Arc::pin_init(
            try_pin_init!(Handoff {
                type_id: TypeId::of::<T>(),
                value <- value,
            }),
            GFP_KERNEL,
        )?;
        let mut properties = properties;
        properties.push_u64(
            PROP_HANDOFF,
            Arc::as_ptr(&handoff).expose_provenance() as u64,
        )?;
        // The terminator.
        properties.push(bindings::property_entry::default())?;
        let info = bindings::platform_device_info {
            name: name.as_char_ptr(),
            id: id.unwrap_or(bindings::PLATFORM_DEVID_AUTO),
            properties: properties.entries.as_ptr(),
            ..Default::default()
        };
        // SAFETY: `info` and the terminated `properties` (and the strings they point to, which
        // `Properties` borrows) are valid for the call; the function copies all of them.
        let pdev = from_err_ptr(unsafe { bindings::platform_device_register_full(&info) })?;
        // INVARIANT: Registration succeeded, so `pdev` is a registered device (never NULL),
        // and its handoff property is the address of `handoff`, kept in `Self`.
        Ok(Self {
            pdev: NonNull::new(pdev).ok_or(ENOMEM)?,
            handoff,
        })
    }

    /// The value the device's probes get.
    pub(crate) fn handoff(&self) -> &T {
        &self.handoff.value
    }

    /// Whether a driver is bound to the device (its probe succeeded).
    pub(crate) fn is_bound(&self) -> bool {
        // SAFETY: `pdev` is a registered device by the type invariant, so its `dev` is valid.
        unsafe { bindings::device_is_bound(&raw mut (*self.pdev.as_ptr()).dev) }
    }

    /// Waits until every probe the driver core has started or scheduled so far has finished,
    /// this device's included (`wait_for_device_probe`). Sleeps.
    pub(crate) fn wait_for_probe(&self) {
        // SAFETY: No precondition; called from process context (the registration sleeps too).
        unsafe { bindings::wait_for_device_probe() };
    }
}

impl<T: Send + Sync + 'static> Drop for Registration<T> {
    fn drop(&mut self) {
        // SAFETY: `pdev` is registered by the type invariant and is unregistered only here.
        // This unbinds the driver and takes the device off the bus, so no probe starts any
        // more; `handoff` is dropped after this.
        unsafe { bindings::platform_device_unregister(self.pdev.as_ptr()) };
    }
}

// SAFETY: The platform device is reference counted by the driver core and may be unregistered
// from any thread; `T` is `Send + Sync`.
unsafe impl<T: Send + Sync + 'static> Send for Registration<T> {}
// SAFETY: `&self` reads the device's binding state, which the driver core keeps coherent, and
// gives `&T`, which is `Sync`.
unsafe impl<T: Send + Sync + 'static> Sync for Registration<T> {}

/// The value the [`Registration`] of `pdev` hands its probes, if `pdev` was registered by one
/// with a `T`: `None` for a device described by firmware or registered otherwise.
///
/// `pdev` is bound (its probe is running or has succeeded), so it is registered.
pub(crate) fn handoff<T: Send + Sync + 'static>(
    pdev: &platform::Device<Bound>,
) -> Option<Arc<Handoff<T>>> {
    let dev: &Device<Bound> = pdev.as_ref();
    let node = dev.fwnode()?;
    // `FwNode` is a transparent wrapper of `struct fwnode_handle` (its `as_raw` is private to
    // the kernel crate).
    let raw = core::ptr::from_ref(node).cast::<bindings::fwnode_handle>();
    // SAFETY: `raw` is a valid firmware node for the call. Only kernel code makes software
    // nodes: device-tree and ACPI nodes (overlays included) never pass this check.
    if !unsafe { bindings::is_software_node(raw) } {
        return None;
    }
    let address = node.property_read::<u64>(PROP_HANDOFF).optional()?;
    let handoff = core::ptr::with_exposed_provenance::<Handoff<T>>(usize::try_from(address).ok()?);
    // SAFETY: Only `Registration::register` sets `PROP_HANDOFF`, to the address of a live
    // `Handoff<U>` (`repr(C)`, `type_id` first) that it keeps alive until the device is
    // unregistered; `pdev` is bound, and a bound device is not unregistered (unregistering
    // unbinds it first, waiting for its probe). Reading the `TypeId` is therefore valid
    // whatever `U` is.
    let type_id = unsafe { (&raw const (*handoff).type_id).read() };
    if type_id != TypeId::of::<T>() {
        return None;
    }
    // SAFETY: As above, and `U` is `T`: `handoff` points into a live `Arc<Handoff<T>>`.
    let borrowed = unsafe { ArcBorrow::from_raw(handoff) };
    Some(borrowed.into())
}
