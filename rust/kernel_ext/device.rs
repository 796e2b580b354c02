// SPDX-License-Identifier: GPL-2.0

//! `struct device`, as far as the kernel crate does not reach it: the C object behind a
//! [`Device`] (the crate keeps `Device::as_raw` to itself).

use kernel::{
    bindings,
    device::Device, //
};

/// The C `struct device` of `dev`.
pub(crate) fn as_raw(dev: &Device) -> *mut bindings::device {
    // `Device` is a transparent wrapper of `struct device`.
    core::ptr::from_ref(dev).cast_mut().cast()
}
