// SPDX-License-Identifier: GPL-2.0
/*
 * The kernel calls of pages mode (kernel_ext/dev_pagemap.rs, kernel_ext/page_vma.rs) that are
 * inline functions or macros in C, or exist only in a kernel with CONFIG_ZONE_DEVICE: there
 * they fail with -EOPNOTSUPP, so the module still builds (and refuses pages mode) without it.
 */
#include <linux/fs.h>
#include <linux/fs_context.h>
#include <linux/huge_mm.h>
#include <linux/memory_hotplug.h>
#include <linux/memremap.h>
#include <linux/mm.h>
#include <linux/mount.h>
#include <linux/numa.h>
#include <linux/pseudo_fs.h>
#include <linux/sched.h>

int carveout_pgmap_check(u64 start, u64 size);
int carveout_folio_order_supported(unsigned int order);
int carveout_pgmap_add(struct dev_pagemap *pgmap, u64 start, u64 size, unsigned int order);
void carveout_pgmap_remove(struct dev_pagemap *pgmap);
size_t carveout_memmap_bytes(struct dev_pagemap *pgmap, size_t nr);
size_t carveout_pages_busy(unsigned long pfn, size_t nr, unsigned int order);
vm_fault_t carveout_insert_page(struct vm_fault *vmf, unsigned long pfn, bool write);
vm_fault_t carveout_insert_folio(struct vm_fault *vmf, unsigned long pfn, unsigned int order,
				 bool write);
int carveout_dax_space_new(struct vfsmount **mnt, struct inode **inode);
/* In helpers.c. */
bool carveout_cpu_has_gbpages(void);
void carveout_dax_space_free(struct vfsmount *mnt, struct inode *inode);
void carveout_file_set_mapping(struct file *file, struct inode *inode);

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
 * Whether folios of @order can be mapped whole by entries of their size: order 0 always; the
 * 2 MiB and 1 GiB orders through a DAX address space (CONFIG_FS_DAX) with transparent huge
 * pages, and for 1 GiB the CPU's 1 GiB pages.
 */
int carveout_folio_order_supported(unsigned int order)
{
	if (order == 0)
		return 1;
	if (!IS_ENABLED(CONFIG_FS_DAX) || !IS_ENABLED(CONFIG_TRANSPARENT_HUGEPAGE) ||
	    !has_transparent_hugepage())
		return 0;
	if (order == PMD_ORDER)
		return 1;
	return order == PUD_ORDER && IS_ENABLED(CONFIG_HAVE_ARCH_TRANSPARENT_HUGEPAGE_PUD) &&
	       carveout_cpu_has_gbpages();
}

/*
 * Gives [start, start + size) struct pages as MEMORY_DEVICE_GENERIC device memory, in folios of
 * @order (vmemmap_shift), as device-dax does for its alignment. @pgmap is zeroed and stays at
 * its address until carveout_pgmap_remove(); the range is a multiple of the folio size.
 */
int carveout_pgmap_add(struct dev_pagemap *pgmap, u64 start, u64 size, unsigned int order)
{
#ifdef CONFIG_ZONE_DEVICE
	void *addr;

	pgmap->type = MEMORY_DEVICE_GENERIC;
	pgmap->range.start = start;
	pgmap->range.end = start + size - 1;
	pgmap->nr_range = 1;
	pgmap->vmemmap_shift = order;
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
 * What the memory map of @nr pages of the live page map @pgmap costs: a struct page each (64
 * bytes on x86-64), or, where the kernel shares the tail pages' memory map of each folio
 * (vmemmap_can_optimize(): large folios, no altmap), its first VMEMMAP_RESERVE_NR pages a folio.
 */
size_t carveout_memmap_bytes(struct dev_pagemap *pgmap, size_t nr)
{
#ifdef CONFIG_ZONE_DEVICE
	size_t per_folio = pgmap_vmemmap_nr(pgmap);

	if (vmemmap_can_optimize(NULL, pgmap))
		return nr / per_folio * VMEMMAP_RESERVE_NR * PAGE_SIZE;
#endif
	return nr * sizeof(struct page);
}

/*
 * How many of the @nr pages from @pfn (of a live MEMORY_DEVICE_GENERIC page map, in folios of
 * @order) someone holds: the pages of every folio whose count is not 1. An idle folio's count
 * is 1 (memmap_init_zone_device() leaves the head so, and free_zone_device_folio() sets it
 * back), and each mapping, reference or pin adds to it; a tail page's own count stays 0.
 */
size_t carveout_pages_busy(unsigned long pfn, size_t nr, unsigned int order)
{
	size_t step = 1UL << order, i, busy = 0;

	for (i = 0; i < nr; i += step) {
		if (folio_ref_count(page_folio(pfn_to_page(pfn + i))) != 1)
			busy += step;
		if ((i & 0xfff) == 0)
			cond_resched();
	}
	return busy;
}

/* As device-dax's 4 KiB fault: the page itself, counted and in the rmap (not a PFN entry). */
vm_fault_t carveout_insert_page(struct vm_fault *vmf, unsigned long pfn, bool write)
{
	return vmf_insert_page_mkwrite(vmf, pfn_to_page(pfn), write);
}

/*
 * As device-dax's 2 MiB and 1 GiB faults: the folio of @order whose first frame is @pfn, whole,
 * counted and in the rmap. SIGBUS (not the kernel's warning) if the frame does not start a
 * folio of that order.
 */
vm_fault_t carveout_insert_folio(struct vm_fault *vmf, unsigned long pfn, unsigned int order,
				 bool write)
{
#ifdef CONFIG_TRANSPARENT_HUGEPAGE
	struct folio *folio = page_folio(pfn_to_page(pfn));

	if (folio_pfn(folio) != pfn || folio_order(folio) != order)
		return VM_FAULT_SIGBUS;
	if (order == PMD_ORDER)
		return vmf_insert_folio_pmd(vmf, folio, write);
#ifdef CONFIG_HAVE_ARCH_TRANSPARENT_HUGEPAGE_PUD
	if (order == PUD_ORDER)
		return vmf_insert_folio_pud(vmf, folio, write);
#endif
#endif
	return VM_FAULT_SIGBUS;
}

#ifdef CONFIG_FS_DAX
#define CARVEOUT_DAX_MAGIC 0x63766478 /* "cvdx" */

static int carveout_dax_init_fs_context(struct fs_context *fc)
{
	return init_pseudo(fc, CARVEOUT_DAX_MAGIC) ? 0 : -ENOMEM;
}

/*
 * Not registered (nothing mounts it by name) and with no owner: each DAX space is a kernel
 * mount of its own, unmounted before the module can go, and a module reference would keep
 * rmmod from ever starting.
 */
static struct file_system_type carveout_dax_fs = {
	.name = "carveout_dax",
	.init_fs_context = carveout_dax_init_fs_context,
	.kill_sb = kill_anon_super,
};
#endif

/*
 * A DAX address space: an inode of its own with S_DAX, on a private pseudo-filesystem mount.
 * A file whose f_mapping is its mapping has VMAs the mm core treats as device-dax's
 * (vma_is_dax()): it offers them 2 MiB and 1 GiB faults whatever the transparent huge page
 * settings, and undoes 1 GiB folio entries with their references. -EOPNOTSUPP without
 * CONFIG_FS_DAX.
 */
int carveout_dax_space_new(struct vfsmount **mnt, struct inode **inode)
{
#ifdef CONFIG_FS_DAX
	*mnt = kern_mount(&carveout_dax_fs);
	if (IS_ERR(*mnt))
		return PTR_ERR(*mnt);
	*inode = alloc_anon_inode((*mnt)->mnt_sb);
	if (IS_ERR(*inode)) {
		kern_unmount(*mnt);
		return PTR_ERR(*inode);
	}
	(*inode)->i_flags |= S_DAX;
	return 0;
#else
	return -EOPNOTSUPP;
#endif
}

void carveout_dax_space_free(struct vfsmount *mnt, struct inode *inode)
{
	iput(inode);
	kern_unmount(mnt);
}

/* Gives @file (being opened) the address space of @inode, as device-dax's open does. */
void carveout_file_set_mapping(struct file *file, struct inode *inode)
{
	file->f_mapping = inode->i_mapping;
}
