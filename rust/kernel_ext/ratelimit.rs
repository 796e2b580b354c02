// SPDX-License-Identifier: GPL-2.0

//! A module-wide rate limit for the `dmesg` lines that say why a request was refused
//! (`__ratelimit` on a `DEFINE_RATELIMIT_STATE` in `helpers.c`): a loop of bad calls, or a
//! fuzzer, must not flood the log and push older lines out of it.
//!
//! C: [`include/linux/ratelimit.h`].

// Defined in `helpers.c`.
extern "C" {
    fn carveout_refusal_ratelimit() -> bool;
}

/// Whether a line about a refused request may be printed now: at most 10 in 5 seconds, as
/// `printk_ratelimit` allows; the kernel then says how many were suppressed.
pub(crate) fn refusal_may_print() -> bool {
    // SAFETY: `__ratelimit` takes the state's own lock; the state is a static in `helpers.c`.
    unsafe { carveout_refusal_ratelimit() }
}
