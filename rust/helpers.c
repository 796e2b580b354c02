// SPDX-License-Identifier: GPL-2.0
/*
 * Kernel calls the Rust module needs that are inline functions, macros or static objects in C
 * (and, with PREEMPT_DYNAMIC, static calls), which Rust cannot call or define directly:
 * the scheduling point and fatal-signal test of long file transfers (`kernel_ext/task.rs`)
 * the rate limit of the lines that say why a request was refused
 * (`kernel_ext/ratelimit.rs`), whether the DMA API bounces a device's direct mappings, whether
 * the driver core has finished adding a device and whether the DMA API goes through an IOMMU
 * for it (`kernel_ext/dma_mapping.rs`).
 */
#include <linux/device.h>
#include <linux/ratelimit.h>
#include <linux/sched.h>
#include <linux/sched/signal.h>
#include <linux/swiotlb.h>
#include <asm/cpufeature.h>

void carveout_cond_resched(void);
bool carveout_fatal_signal_pending(void);
bool carveout_refusal_ratelimit(void);
bool carveout_dma_force_bounce(void *dev);
bool carveout_dev_added(void *dev);
bool carveout_dev_dma_iommu(void *dev);
bool carveout_cpu_has_gbpages(void);

void carveout_cond_resched(void)
{
	cond_resched();
}

bool carveout_fatal_signal_pending(void)
{
	return fatal_signal_pending(current);
}

/* printk's own default: 10 lines in 5 s, then "N callbacks suppressed". */
static DEFINE_RATELIMIT_STATE(carveout_refusals, DEFAULT_RATELIMIT_INTERVAL, DEFAULT_RATELIMIT_BURST);

bool carveout_refusal_ratelimit(void)
{
	return __ratelimit(&carveout_refusals);
}

bool carveout_dma_force_bounce(void *dev)
{
	return is_swiotlb_force_bounce(dev);
}

/*
 * Whether device_add() is done with the device: its bus's notifiers (the IOMMU core's probe,
 * BUS_NOTIFY_ADD_DEVICE) have run. Set under the device's lock, never cleared.
 */
bool carveout_dev_added(void *dev)
{
	return dev_ready_to_probe(dev);
}

/* Whether the DMA API maps for the device through its IOMMU domain (iommu-dma). */
bool carveout_dev_dma_iommu(void *dev)
{
	return dev_dma_iommu(dev);
}

/* Whether the CPU walks 1 GiB page-table entries (`kernel_ext/pfn_vma.rs`). */
bool carveout_cpu_has_gbpages(void)
{
	return boot_cpu_has(X86_FEATURE_GBPAGES);
}
