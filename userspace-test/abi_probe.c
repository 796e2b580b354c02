// SPDX-License-Identifier: GPL-2.0
/* Prints include/carveout.h's layout and numbers as Rust constants (used by build.rs). */
#include <stddef.h>
#include <stdio.h>

#include "carveout.h"

#define SIZE(prefix, type) \
	printf("pub const SIZEOF_" #prefix ": usize = %zu;\n", sizeof(struct type))
#define FIELD(prefix, type, name) \
	printf("pub const OFFSET_" #prefix "_" #name ": usize = %zu;\n", offsetof(struct type, name))
#define U32(rust, c) printf("pub const " #rust ": u32 = %#x;\n", (unsigned int)(c))

int main(void)
{
	SIZE(INFO, carveout_info);
	FIELD(INFO, carveout_info, abi_version);
	FIELD(INFO, carveout_info, info_size);
	FIELD(INFO, carveout_info, base);
	FIELD(INFO, carveout_info, size);
	FIELD(INFO, carveout_info, flags);
	FIELD(INFO, carveout_info, __pad0);
	FIELD(INFO, carveout_info, name);
	FIELD(INFO, carveout_info, __reserved);
	SIZE(DESC, carveout_range_desc);
	FIELD(DESC, carveout_range_desc, base);
	FIELD(DESC, carveout_range_desc, len);
	FIELD(DESC, carveout_range_desc, flags);
	FIELD(DESC, carveout_range_desc, __pad0);
	FIELD(DESC, carveout_range_desc, owner);
	printf("pub const SIZEOF_DESC_OWNER: usize = %zu;\n",
	       sizeof(((struct carveout_range_desc *)0)->owner));
	printf("pub const SIZEOF_INFO_NAME: usize = %zu;\n",
	       sizeof(((struct carveout_info *)0)->name));
	SIZE(ATTACH, carveout_attach);
	FIELD(ATTACH, carveout_attach, device);
	FIELD(ATTACH, carveout_attach, bus_addr);
	FIELD(ATTACH, carveout_attach, flags);
	FIELD(ATTACH, carveout_attach, reach_bits);
	FIELD(ATTACH, carveout_attach, __reserved);
	SIZE(SYNC, carveout_sync);
	FIELD(SYNC, carveout_sync, offset);
	FIELD(SYNC, carveout_sync, len);
	FIELD(SYNC, carveout_sync, direction);
	FIELD(SYNC, carveout_sync, __pad0);
	U32(ATTACH, CARVEOUT_ATTACH);
	U32(DETACH, CARVEOUT_DETACH);
	U32(BUS_ADDR, CARVEOUT_BUS_ADDR);
	U32(SYNC, CARVEOUT_SYNC);
	U32(ATTACH_TRANSLATED, CARVEOUT_ATTACH_TRANSLATED);
	U32(SYNC_FOR_DEVICE, CARVEOUT_SYNC_FOR_DEVICE);
	U32(SYNC_FOR_CPU, CARVEOUT_SYNC_FOR_CPU);
	U32(ABI_VERSION, CARVEOUT_ABI_VERSION);
	U32(GET_INFO, CARVEOUT_GET_INFO);
	U32(GET_ATTR, CARVEOUT_GET_ATTR);
	U32(SET_ATTR, CARVEOUT_SET_ATTR);
	U32(MR_UNCACHEABLE, CARVEOUT_MR_UNCACHEABLE);
	U32(MR_WRITECOMBINE, CARVEOUT_MR_WRITECOMBINE);
	U32(MR_WRITETHROUGH, CARVEOUT_MR_WRITETHROUGH);
	U32(MR_WRITEBACK, CARVEOUT_MR_WRITEBACK);
	U32(MR_WRITEPROTECT, CARVEOUT_MR_WRITEPROTECT);
	U32(MR_ATTR_MASK, CARVEOUT_MR_ATTR_MASK);
	U32(MR_FIXBASE, CARVEOUT_MR_FIXBASE);
	U32(MR_FIXLEN, CARVEOUT_MR_FIXLEN);
	U32(MR_UNLISTED, CARVEOUT_MR_UNLISTED);
	U32(MR_PAGES, CARVEOUT_MR_PAGES);
	U32(MR_ACTIVE, CARVEOUT_MR_ACTIVE);
	U32(MR_BUSY, CARVEOUT_MR_BUSY);
	return 0;
}
