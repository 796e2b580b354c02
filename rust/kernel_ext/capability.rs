// SPDX-License-Identifier: GPL-2.0

//! The current task's capabilities.

use kernel::{
    bindings,
    prelude::*, //
};

/// Whether the current task may administer the system (`CAP_SYS_ADMIN`); an audited check, as
/// `capable()` does.
pub(crate) fn sys_admin() -> bool {
    // SAFETY: `capable` only reads the current task's credentials.
    unsafe { bindings::capable(bindings::CAP_SYS_ADMIN as c_int) }
}
