// SPDX-License-Identifier: GPL-2.0
/*
 * The module parameters Rust-for-Linux 7.3 cannot declare: strings. Read once by the Rust
 * module's init (`carveout.rs`, through `kernel_ext/string_params.rs`).
 *   reserve_mem=NAME   claim the memory the kernel reserved at boot for
 *                      `reserve_mem=SIZE:ALIGN:NAME`
 *   attach=BDF[,BDF]   map the region for these PCI devices' DMA (0000:00:03.0)
 */
#include <linux/moduleparam.h>

char carveout_reserve_mem_name[64];
module_param_string(reserve_mem, carveout_reserve_mem_name, sizeof(carveout_reserve_mem_name), 0444);
MODULE_PARM_DESC(reserve_mem, "Claim the boot-time reserve_mem= region of this name instead of base/size");

char carveout_attach_devices[256];
module_param_string(attach, carveout_attach_devices, sizeof(carveout_attach_devices), 0444);
MODULE_PARM_DESC(attach, "PCI devices to map the region for, comma-separated (0000:00:03.0,...)");
