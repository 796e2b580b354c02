// SPDX-License-Identifier: GPL-2.0
/*
 * The kernel calls of pages mode (kernel_ext/dev_pagemap.rs, kernel_ext/page_vma.rs) that are
 * inline functions or macros in C, or exist only in a kernel with CONFIG_ZONE_DEVICE: there
 * they fail with -EOPNOTSUPP, so the module still builds (and refuses pages mode) without it.
 */
#include <linux/memory_hotplug.h>
#include <linux/memremap.h>
#include <linux/mm.h>
#include <linux/numa.h>
#include <linux/sched.h>

size_t carveout_struct_page_size(void);
int carveout_pgmap_check(u64 start, u64 size);
int carveout_pgmap_add(struct dev_pagemap *pgmap, u64 start, u64 size);
void carveout_pgmap_remove(struct dev_pagemap *pgmap);
size_t carveout_pages_busy(unsigned long pfn, size_t nr);
vm_fault_t carveout_insert_page(struct vm_fault *vmf, unsigned long pfn, bool write);

/* What the memory map costs a page: the size of its struct page (64 bytes on x86-64). */
size_t carveout_struct_page_size(void)
{
	return sizeof(struct page);
}

/*
 * Whether memremap_pages() may be given [start, start + size) without warning: -EOPNOTSUPP
 * without ZONE_DEVICE, -ERANGE beyond what memory hotplug can map (mhp_range_allowed() would
 * print), -EBUSY if a page map already covers its first or last page ("Conflicting mapping in
 * same section" WARN).
 */
int carveout_pgmap_check(u64 start, u64 size)
{
#ifdef CONFIG_ZONE_DEVICE
	struct range pluggable = mhp_get_pluggable_range(true);
	struct dev_pagemap *conflict;
	u64 last = start + size - 1;

	if (!size || last < start || start < pluggable.start || last > pluggable.end)
		return -ERANGE;
	conflict = get_dev_pagemap(PHYS_PFN(start));
	if (!conflict)
		conflict = get_dev_pagemap(PHYS_PFN(last));
	if (conflict) {
		put_dev_pagemap(conflict);
		return -EBUSY;
	}
	return 0;
#else
	return -EOPNOTSUPP;
#endif
}

/*
 * Gives [start, start + size) struct pages as MEMORY_DEVICE_GENERIC device memory, one order-0
 * folio a page (vmemmap_shift 0), as device-dax does for an alignment of 4 KiB. @pgmap is
 * zeroed and stays at its address until carveout_pgmap_remove().
 */
int carveout_pgmap_add(struct dev_pagemap *pgmap, u64 start, u64 size)
{
#ifdef CONFIG_ZONE_DEVICE
	void *addr;

	pgmap->type = MEMORY_DEVICE_GENERIC;
	pgmap->range.start = start;
	pgmap->range.end = start + size - 1;
	pgmap->nr_range = 1;
	pgmap->vmemmap_shift = 0;
	addr = memremap_pages(pgmap, NUMA_NO_NODE);
	return PTR_ERR_OR_ZERO(addr);
#else
	return -EOPNOTSUPP;
#endif
}

void carveout_pgmap_remove(struct dev_pagemap *pgmap)
{
#ifdef CONFIG_ZONE_DEVICE
	memunmap_pages(pgmap);
#endif
}

/*
 * How many of the @nr pages from @pfn (of a live MEMORY_DEVICE_GENERIC page map) someone holds:
 * an idle page's count is 1 (memmap_init_zone_device() leaves it so, and
 * free_zone_device_folio() sets it back), and each mapping, reference or pin adds to it.
 */
size_t carveout_pages_busy(unsigned long pfn, size_t nr)
{
	size_t i, busy = 0;

	for (i = 0; i < nr; i++) {
		if (page_ref_count(pfn_to_page(pfn + i)) != 1)
			busy++;
		if ((i & 0xfff) == 0xfff)
			cond_resched();
	}
	return busy;
}

/* As device-dax's 4 KiB fault: the page itself, counted and in the rmap (not a PFN entry). */
vm_fault_t carveout_insert_page(struct vm_fault *vmf, unsigned long pfn, bool write)
{
	return vmf_insert_page_mkwrite(vmf, pfn_to_page(pfn), write);
}
