// SPDX-License-Identifier: GPL-2.0
/* Prints include/carveout.h's layout and numbers as Rust constants (used by build.rs). */
#include <stddef.h>
#include <stdio.h>

#include "carveout.h"

#define FIELD(name) \
	printf("pub const OFFSET_" #name ": usize = %zu;\n", offsetof(struct carveout_info, name))

#define DESC(name) \
	printf("pub const OFFSET_DESC_" #name ": usize = %zu;\n", offsetof(struct carveout_range_desc, name))

int main(void)
{
	printf("pub const SIZEOF_INFO: usize = %zu;\n", sizeof(struct carveout_info));
	FIELD(abi_version);
	FIELD(info_size);
	FIELD(base);
	FIELD(size);
	FIELD(flags);
	FIELD(name);
	FIELD(__reserved);
	printf("pub const SIZEOF_RANGE_DESC: usize = %zu;\n", sizeof(struct carveout_range_desc));
	DESC(base);
	DESC(len);
	DESC(flags);
	DESC(owner);
	printf("pub const GET_ATTR: u32 = %#x;\n", (unsigned int)CARVEOUT_GET_ATTR);
	printf("pub const SET_ATTR: u32 = %#x;\n", (unsigned int)CARVEOUT_SET_ATTR);
	printf("pub const MR_UNCACHEABLE: u32 = %#x;\n", CARVEOUT_MR_UNCACHEABLE);
	printf("pub const MR_WRITECOMBINE: u32 = %#x;\n", CARVEOUT_MR_WRITECOMBINE);
	printf("pub const MR_WRITETHROUGH: u32 = %#x;\n", CARVEOUT_MR_WRITETHROUGH);
	printf("pub const MR_WRITEPROTECT: u32 = %#x;\n", CARVEOUT_MR_WRITEPROTECT);
	printf("pub const ABI_VERSION: u32 = %u;\n", CARVEOUT_ABI_VERSION);
	printf("pub const GET_INFO: u32 = %#x;\n", (unsigned int)CARVEOUT_GET_INFO);
	printf("pub const MR_ATTR_MASK: u32 = %#x;\n", CARVEOUT_MR_ATTR_MASK);
	printf("pub const MR_WRITEBACK: u32 = %#x;\n", CARVEOUT_MR_WRITEBACK);
	printf("pub const MR_FIXBASE: u32 = %#x;\n", CARVEOUT_MR_FIXBASE);
	printf("pub const MR_FIXLEN: u32 = %#x;\n", CARVEOUT_MR_FIXLEN);
	printf("pub const MR_ACTIVE: u32 = %#x;\n", CARVEOUT_MR_ACTIVE);
	printf("pub const MR_BUSY: u32 = %#x;\n", CARVEOUT_MR_BUSY);
	return 0;
}
