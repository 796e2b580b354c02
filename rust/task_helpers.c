// SPDX-License-Identifier: GPL-2.0
/*
 * The two scheduler calls a long file transfer needs between its pieces, which are inline
 * functions or macros in C (and, with PREEMPT_DYNAMIC, static calls) that Rust cannot call
 * directly. Wrapped safely in `kernel_ext/task.rs`.
 */
#include <linux/sched.h>
#include <linux/sched/signal.h>

void carveout_cond_resched(void);
bool carveout_fatal_signal_pending(void);

void carveout_cond_resched(void)
{
	cond_resched();
}

bool carveout_fatal_signal_pending(void)
{
	return fatal_signal_pending(current);
}
