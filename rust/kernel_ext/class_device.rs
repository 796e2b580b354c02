// SPDX-License-Identifier: GPL-2.0

//! Devices of a [`Class`] with a device number (a `/dev` node), their node's name, mode and
//! group (`device_type.devnode`), and read-only sysfs attributes (`device_attribute` tables).
//!
//! A driver describes its devices with a `#[vtable]` [`ClassDeviceOps`] implementation (the
//! data each device carries) and its attributes with [`ShowAttribute`] implementations,
//! collected in `static` tables ([`DeviceAttribute`], [`AttributeList`], [`AttributeGroup`],
//! [`AttributeGroups`]) typed by the data, so an attribute only ever reads the data it is for.

use core::{
    fmt,
    marker::PhantomData,
    ptr::{
        null,
        null_mut,
        NonNull, //
    },
};

use kernel::{
    bindings,
    device::Device,
    error::to_result,
    page::PAGE_SIZE,
    prelude::*,
    str::Formatter,
    sync::Arc,
    types::Opaque, //
};

use super::class::Class;

/// What devtmpfs (and the uevent) give a device's node.
pub(crate) struct Devnode<'a> {
    /// The permission bits; `None` for the default (0600).
    pub(crate) mode: Option<u16>,
    /// The group, as seen from the initial user namespace; `None` for root.
    pub(crate) gid: Option<u32>,
    /// The path under `/dev`; `None` for the device name.
    pub(crate) path: Option<&'a CStr>,
}

/// The data a device of a class carries, and its callbacks.
#[vtable]
pub(crate) trait ClassDeviceOps: Send + Sync + Sized + 'static {
    /// The name of the device type (`DEVTYPE=` in the uevent).
    const TYPE_NAME: &'static CStr;

    /// The node's path, mode and group.
    fn devnode(&self) -> Devnode<'_> {
        build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }
}

/// A device's allocation: the `struct device` and the data its callbacks read. Freed by
/// [`release`] with the last reference to the device.
struct Inner<T> {
    dev: Opaque<bindings::device>,
    data: T,
}

impl<T> Inner<T> {
    /// The `Inner` whose device is `dev`.
    ///
    /// # Safety
    ///
    /// `dev` must be the `dev` of a live `Inner<T>`, alive for `'a`.
    unsafe fn of<'a>(dev: *const bindings::device) -> &'a Self {
        let dev = Opaque::cast_from(dev);
        // SAFETY: By the function's safety requirement.
        unsafe { &*kernel::container_of!(dev, Self, dev) }
    }
}

/// The C callbacks and tables of devices carrying a `T`.
struct Adapter<T>(PhantomData<T>);

impl<T: ClassDeviceOps> Adapter<T> {
    const TYPE: bindings::device_type = bindings::device_type {
        name: kernel::str::as_char_ptr_in_const_context(T::TYPE_NAME),
        devnode: if T::HAS_DEVNODE {
            Some(Self::devnode)
        } else {
            None
        },
        ..pin_init::zeroed()
    };

    /// Frees a device's `Inner` with the last reference to its device.
    ///
    /// # Safety
    ///
    /// Called by the driver core once, for the device of an `Inner<T>` that
    /// [`ClassDevice::register`] allocated.
    unsafe extern "C" fn release(dev: *mut bindings::device) {
        let dev = Opaque::cast_from(dev);
        // SAFETY: By the function's safety requirement.
        let inner = unsafe { kernel::container_of!(dev, Inner<T>, dev) }.cast_mut();
        // SAFETY: `inner` came from `KBox::into_raw` and nothing uses it any more.
        drop(unsafe { KBox::from_raw(inner) });
    }

    /// Tells devtmpfs (and the uevent) the node's path, mode and group.
    ///
    /// # Safety
    ///
    /// Called by the driver core for a device of [`Self::TYPE`]; `mode`, `uid` and `gid` are
    /// each null or writable.
    unsafe extern "C" fn devnode(
        dev: *const bindings::device,
        mode: *mut bindings::umode_t,
        _uid: *mut bindings::kuid_t,
        gid: *mut bindings::kgid_t,
    ) -> *mut c_char {
        // SAFETY: Only devices `ClassDevice::<T>::register` made have `Self::TYPE`; the driver
        // core holds the device.
        let inner = unsafe { Inner::<T>::of(dev) };
        let node = inner.data.devnode();
        if let (Some(value), false) = (node.mode, mode.is_null()) {
            // SAFETY: Writable by the function's safety requirement.
            unsafe { *mode = value };
        }
        if let (Some(value), false) = (node.gid, gid.is_null()) {
            // SAFETY: Writable by the function's safety requirement.
            unsafe { *gid = bindings::kgid_t { val: value } };
        }
        match node.path {
            // The caller frees the copy; null (no memory) makes it fall back to the device name.
            // SAFETY: `path` is a NUL-terminated string.
            Some(path) => unsafe { bindings::kstrdup(path.as_char_ptr(), bindings::GFP_KERNEL) },
            None => null_mut(),
        }
    }

    /// A sysfs `show` for the attribute `F` of a device carrying a `T`.
    ///
    /// # Safety
    ///
    /// Called by sysfs for an attribute of an [`AttributeList<T, _>`], with `buf` a page.
    unsafe extern "C" fn show<F: ShowAttribute<T>>(
        dev: *mut bindings::device,
        _attr: *mut bindings::device_attribute,
        buf: *mut c_char,
    ) -> isize {
        // SAFETY: An `AttributeList<T, _>` reaches sysfs only through the `AttributeGroups<T>`
        // of devices `ClassDevice::<T>::register` made, whose attributes exist only while the
        // device is registered.
        let inner = unsafe { Inner::<T>::of(dev) };
        // SAFETY: sysfs hands `show` a buffer of one page that nothing else uses meanwhile.
        let page = unsafe { core::slice::from_raw_parts_mut(buf.cast::<u8>(), PAGE_SIZE) };
        let mut out = Formatter::new(page);
        match F::show(&inner.data, &mut out) {
            Ok(()) => out.bytes_written() as isize,
            Err(_) => EINVAL.to_errno() as isize,
        }
    }
}

/// A registered device of a class, carrying a `T`; unregistered on drop.
///
/// # Invariants
///
/// `inner` is an `Inner<T>` whose device is registered (`device_add` succeeded), of the class
/// `_class` holds.
pub(crate) struct ClassDevice<T: ClassDeviceOps> {
    inner: NonNull<Inner<T>>,
    _class: Arc<Class>,
}

// SAFETY: The device may be unregistered from any thread; `T` is `Send + Sync`.
unsafe impl<T: ClassDeviceOps> Send for ClassDevice<T> {}
// SAFETY: `&ClassDevice` gives `&T`, which is `Sync`.
unsafe impl<T: ClassDeviceOps> Sync for ClassDevice<T> {}

impl<T: ClassDeviceOps> ClassDevice<T> {
    /// Registers a device named `name` of `class`, a child of `parent`, with device number
    /// `devt` (devtmpfs makes its node), the sysfs attributes `groups`, and `data`.
    pub(crate) fn register(
        class: &Arc<Class>,
        parent: &Device,
        devt: u32,
        name: &CStr,
        groups: &'static AttributeGroups<T>,
        data: T,
    ) -> Result<Self> {
        let inner = KBox::new(
            Inner {
                dev: Opaque::zeroed(),
                data,
            },
            GFP_KERNEL,
        )?;
        // `Device` is a transparent wrapper of `struct device`; `device_add` takes a reference.
        let parent = core::ptr::from_ref(parent)
            .cast::<bindings::device>()
            .cast_mut();
        let inner = KBox::into_raw(inner);
        // SAFETY: `inner` is a fresh allocation nobody else knows of yet.
        let dev = unsafe { (*inner).dev.get() };
        // SAFETY: `dev` is zeroed; from here on its release function frees `inner`. The type,
        // the groups and the class outlive the device (`'static`, and `_class` below).
        unsafe {
            bindings::device_initialize(dev);
            (*dev).devt = devt;
            (*dev).class = class.as_raw();
            (*dev).type_ = const { &Adapter::<T>::TYPE };
            (*dev).parent = parent;
            (*dev).groups = groups.groups.as_ptr().cast_mut();
            (*dev).release = Some(Adapter::<T>::release);
        }
        // SAFETY: `dev` is initialised; the format takes one string, `name`.
        let named = to_result(unsafe {
            bindings::dev_set_name(dev, c"%s".as_char_ptr(), name.as_char_ptr())
        });
        // SAFETY: As above; `device_add` makes the node and the sysfs attributes.
        let added = named.and_then(|()| to_result(unsafe { bindings::device_add(dev) }));
        if let Err(err) = added {
            // SAFETY: Dropping the reference `device_initialize` gave frees `inner`.
            unsafe { bindings::put_device(dev) };
            return Err(err);
        }
        // INVARIANT: The device is registered, of `class`, which is kept.
        Ok(Self {
            // SAFETY: `KBox::into_raw` does not return null.
            inner: unsafe { NonNull::new_unchecked(inner) },
            _class: class.clone(),
        })
    }
}

impl<T: ClassDeviceOps> Drop for ClassDevice<T> {
    fn drop(&mut self) {
        // SAFETY: The device is registered by the type invariant, and unregistered only here;
        // its last reference frees it.
        unsafe { bindings::device_unregister((*self.inner.as_ptr()).dev.get()) };
    }
}

/// One read-only attribute of devices carrying a `T`.
pub(crate) trait ShowAttribute<T> {
    /// Writes the attribute's text (a line) for the device carrying `data`.
    fn show(data: &T, out: &mut Formatter<'_>) -> fmt::Result;
}

/// A read-only sysfs attribute of devices carrying a `T`, in a `static`.
#[repr(transparent)]
pub(crate) struct DeviceAttribute<T>(bindings::device_attribute, PhantomData<T>);

// SAFETY: Never written after initialisation; sysfs only reads it.
unsafe impl<T> Sync for DeviceAttribute<T> {}

impl<T: ClassDeviceOps> DeviceAttribute<T> {
    /// The attribute `name` (mode 0444), whose text `F` writes.
    // The update fills the lockdep fields `struct attribute` has in debug kernels.
    #[allow(clippy::needless_update)]
    pub(crate) const fn read_only<F: ShowAttribute<T>>(name: &'static CStr) -> Self {
        Self(
            bindings::device_attribute {
                attr: bindings::attribute {
                    name: kernel::str::as_char_ptr_in_const_context(name),
                    mode: 0o444,
                    ..pin_init::zeroed()
                },
                __bindgen_anon_1: bindings::device_attribute__bindgen_ty_1 {
                    show: Some(Adapter::<T>::show::<F>),
                },
                ..pin_init::zeroed()
            },
            PhantomData,
        )
    }
}

/// `N` attributes of devices carrying a `T`, NULL-terminated for sysfs, in a `static`.
#[repr(C)]
pub(crate) struct AttributeList<T, const N: usize> {
    attrs: [*const bindings::attribute; N],
    /// The terminator: `attrs` and it are one array of `N + 1` pointers (`repr(C)`, no
    /// padding between pointers).
    end: *const bindings::attribute,
    _data: PhantomData<T>,
}

// SAFETY: The pointers are to `static` attributes that are never written; sysfs only reads
// them.
unsafe impl<T, const N: usize> Sync for AttributeList<T, N> {}

impl<T: ClassDeviceOps, const N: usize> AttributeList<T, N> {
    /// The list of `attrs`.
    pub(crate) const fn new(attrs: [&'static DeviceAttribute<T>; N]) -> Self {
        let mut list = [null(); N];
        let mut i = 0;
        while i < N {
            list[i] = &raw const attrs[i].0.attr;
            i += 1;
        }
        Self {
            attrs: list,
            end: null(),
            _data: PhantomData,
        }
    }
}

/// An attribute group of devices carrying a `T`, in a `static`.
#[repr(transparent)]
pub(crate) struct AttributeGroup<T>(bindings::attribute_group, PhantomData<T>);

// SAFETY: Never written after initialisation; sysfs only reads it.
unsafe impl<T> Sync for AttributeGroup<T> {}

impl<T: ClassDeviceOps> AttributeGroup<T> {
    /// The unnamed group (attributes in the device's own directory) of `list`.
    pub(crate) const fn new<const N: usize>(list: &'static AttributeList<T, N>) -> Self {
        Self(
            bindings::attribute_group {
                __bindgen_anon_2: bindings::attribute_group__bindgen_ty_2 {
                    attrs_const: list.attrs.as_ptr(),
                },
                ..pin_init::zeroed()
            },
            PhantomData,
        )
    }
}

/// The attribute groups of devices carrying a `T` (one group), NULL-terminated, in a
/// `static`.
pub(crate) struct AttributeGroups<T> {
    groups: [*const bindings::attribute_group; 2],
    _data: PhantomData<T>,
}

// SAFETY: The pointers are to a `static` group that is never written; sysfs only reads it.
unsafe impl<T> Sync for AttributeGroups<T> {}

impl<T: ClassDeviceOps> AttributeGroups<T> {
    /// The groups: `group`.
    pub(crate) const fn new(group: &'static AttributeGroup<T>) -> Self {
        Self {
            groups: [&raw const group.0, null()],
            _data: PhantomData,
        }
    }
}
