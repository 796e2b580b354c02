// SPDX-License-Identifier: GPL-2.0

//! The module's string parameters (declared in C, `string_params.c`: the kernel crate of 7.3
//! declares integer and bool parameters only), and the memory the kernel set aside at boot by
//! name (`reserve_mem=SIZE:ALIGN:NAME`) that one of them names.

use kernel::{
    bindings,
    prelude::*, //
};

extern "C" {
    static carveout_reserve_mem_name: [u8; 64];
    static carveout_attach_devices: [u8; 256];
}

/// A string parameter's value, if given.
fn value(raw: &'static [u8]) -> Option<&'static CStr> {
    CStr::from_bytes_until_nul(raw)
        .ok()
        .filter(|name| !name.is_empty())
}

/// The `reserve_mem=` module parameter, if given.
pub(crate) fn reserve_mem() -> Option<&'static CStr> {
    // SAFETY: Only the module loader writes the parameter, before `init` runs; its mode 0444
    // allows no later writes through sysfs.
    value(unsafe { &carveout_reserve_mem_name })
}

/// The `attach=` module parameter (comma-separated PCI device names), if given.
pub(crate) fn attach() -> Option<&'static CStr> {
    // SAFETY: As for `reserve_mem`.
    value(unsafe { &carveout_attach_devices })
}

/// The range the kernel reserved at boot for `reserve_mem=SIZE:ALIGN:NAME`, if any: base and
/// size.
pub(crate) fn find_reserve_mem(name: &CStr) -> Option<(u64, u64)> {
    let mut start: bindings::phys_addr_t = 0;
    let mut size: bindings::phys_addr_t = 0;
    // SAFETY: `name` is NUL-terminated; `start` and `size` are valid for writes.
    let found =
        unsafe { bindings::reserve_mem_find_by_name(name.as_char_ptr(), &mut start, &mut size) };
    (found != 0).then_some((start, size))
}
