// SPDX-License-Identifier: GPL-2.0

//! Memory the kernel set aside at boot by name (`reserve_mem=SIZE:ALIGN:NAME`), and the
//! module's string parameter that names it (declared in C, `reserve_mem_param.c`: the kernel
//! crate of 7.3 declares integer and bool parameters only).

use kernel::{
    bindings,
    prelude::*, //
};

extern "C" {
    static carveout_reserve_mem_name: [u8; 64];
}

/// The `reserve_mem=` module parameter, if given.
pub(crate) fn param() -> Option<&'static CStr> {
    // SAFETY: Only the module loader writes the parameter, before `init` runs; its mode 0444
    // allows no later writes through sysfs.
    let raw = unsafe { &carveout_reserve_mem_name };
    CStr::from_bytes_until_nul(raw)
        .ok()
        .filter(|name| !name.is_empty())
}

/// The range the kernel reserved at boot for `reserve_mem=SIZE:ALIGN:NAME`, if any: base and
/// size.
pub(crate) fn find(name: &CStr) -> Option<(u64, u64)> {
    let mut start: bindings::phys_addr_t = 0;
    let mut size: bindings::phys_addr_t = 0;
    // SAFETY: `name` is NUL-terminated; `start` and `size` are valid for writes.
    let found =
        unsafe { bindings::reserve_mem_find_by_name(name.as_char_ptr(), &mut start, &mut size) };
    (found != 0).then_some((start, size))
}
