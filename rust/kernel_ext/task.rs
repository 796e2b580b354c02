// SPDX-License-Identifier: GPL-2.0

//! The current task's scheduling points and fatal signals, for loops that run long in process
//! context (`cond_resched`, `fatal_signal_pending`).
//!
//! C: [`include/linux/sched.h`], [`include/linux/sched/signal.h`]; the inline functions are
//! called through `helpers.c`.

// Defined in `helpers.c`.
extern "C" {
    fn carveout_cond_resched();
    fn carveout_fatal_signal_pending() -> bool;
}

/// Gives the CPU to another task if one should run now (`cond_resched`; nothing on a
/// preemptible kernel, which switches tasks by itself). It may sleep: call it from process
/// context with no spinlock held (debug kernels report a violation through `might_sleep`).
pub(crate) fn cond_resched() {
    // SAFETY: `cond_resched` has no memory-safety preconditions; calling it in atomic
    // context is a bug the kernel reports (`might_sleep`), not undefined behaviour.
    unsafe { carveout_cond_resched() }
}

/// Whether the current task has a fatal signal pending (`SIGKILL`, or a signal whose
/// default action kills it and that it does not handle): it is about to die, and a long
/// operation should end now with what it has done.
pub(crate) fn fatal_signal_pending() -> bool {
    // SAFETY: `fatal_signal_pending(current)` only reads the current task's pending set.
    unsafe { carveout_fatal_signal_pending() }
}
