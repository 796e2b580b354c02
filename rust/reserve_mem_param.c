// SPDX-License-Identifier: GPL-2.0
/*
 * The one module parameter Rust-for-Linux 7.3 cannot declare: a string.
 * `insmod carveout.ko reserve_mem=NAME` claims the memory the kernel reserved at boot for
 * `reserve_mem=SIZE:ALIGN:NAME`. Read once by the Rust module's init (`carveout.rs`).
 */
#include <linux/moduleparam.h>

char carveout_reserve_mem_name[64];
module_param_string(reserve_mem, carveout_reserve_mem_name, sizeof(carveout_reserve_mem_name), 0444);
MODULE_PARM_DESC(reserve_mem, "Claim the boot-time reserve_mem= region of this name instead of base/size");
