/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * carveout: the userspace ABI of /dev/carveout*.
 *
 * One source of truth for the ioctl interface: the C test program includes
 * this file, the kernel module (rust/abi.rs) and the Rust crate
 * (userspace-test/src/abi.rs) mirror it and are checked against it.
 *
 * Fixed-width types only, explicit padding, no implicit holes: the layout is
 * the same for every compiler and for 32- and 64-bit callers.
 *
 * Memory-range flags follow FreeBSD's mem(4) (<sys/memrange.h>): one cache
 * attribute bit plus state flags in a single 32-bit word.
 */
#ifndef CARVEOUT_H
#define CARVEOUT_H

#include <linux/ioctl.h>
#include <linux/types.h>

#define CARVEOUT_ABI_VERSION 1

/* Cache attribute of a region: exactly one of these is set in `flags`. */
#define CARVEOUT_MR_UNCACHEABLE  (1u << 0) /* UC: not cached */
#define CARVEOUT_MR_WRITECOMBINE (1u << 1) /* WC: writes combined, uncached reads */
#define CARVEOUT_MR_WRITETHROUGH (1u << 2) /* WT: writes committed synchronously */
#define CARVEOUT_MR_WRITEBACK    (1u << 3) /* WB: ordinary cached memory (default) */
#define CARVEOUT_MR_WRITEPROTECT (1u << 4) /* WP: cached, mappings are read-only */
#define CARVEOUT_MR_ATTR_MASK    0x1fu

/* State of a region. */
#define CARVEOUT_MR_FIXBASE (1u << 5)  /* base cannot change */
#define CARVEOUT_MR_FIXLEN  (1u << 6)  /* length cannot change */
/*
 * The range is not listed as reserved memory (no memmap=$, firmware Reserved, legacy
 * persistent memory, Soft Reserved or reserve_mem= entry covers it: a hole, memory behind a
 * bridge or an FPGA) and was claimed only because the region opted in (module parameter or
 * configfs attribute allow_unlisted=1). Such a region defaults to UC.
 */
#define CARVEOUT_MR_UNLISTED (1u << 7)
/*
 * Pages mode (module parameter or configfs attribute pages=1): the range has struct pages
 * (ZONE_DEVICE), so a mapping of it can be pinned by the kernel: O_DIRECT to and from it,
 * io_uring's registered buffers, vmsplice, iommufd. Write-back only: SET_ATTR to any other
 * type fails EOPNOTSUPP. Base and size are 2 MiB aligned. The memory map costs 64 bytes of
 * RAM a 4 KiB page. Mappings use 4 KiB entries. A pin may outlive its mapping and the file
 * (io_uring's registered buffers, an O_DIRECT in flight): while a page is mapped or pinned,
 * configfs enable=0 fails EBUSY, and rmdir of an enabled pages-mode directory fails EBUSY
 * until enable=0; module unload (rmmod) waits until the last pin is dropped, saying so in one
 * dmesg line. The memory is never freed, zeroed or touched under a pin.
 */
#define CARVEOUT_MR_PAGES    (1u << 8)
#define CARVEOUT_MR_ACTIVE  (1u << 27) /* claimed and usable */
#define CARVEOUT_MR_BUSY    (1u << 30) /* mapped by some process now */

/* CARVEOUT_GET_INFO: what the region is. 96 bytes. */
struct carveout_info {
	__u32 abi_version;   /* out: CARVEOUT_ABI_VERSION */
	__u32 info_size;     /* out: sizeof(struct carveout_info) the driver filled */
	__u64 base;          /* out: physical base address, page aligned */
	__u64 size;          /* out: length in bytes, page aligned */
	__u32 flags;         /* out: CARVEOUT_MR_* */
	__u32 __pad0;        /* zero */
	char name[32];       /* out: region name, NUL-terminated */
	__u64 __reserved[4]; /* zero: room to grow */
};

/*
 * CARVEOUT_GET_ATTR / CARVEOUT_SET_ATTR: the region as a mem(4) memory-range descriptor
 * (struct mem_range_desc, MEMRANGE_GET / MEMRANGE_SET). 32 bytes.
 *
 * GET fills every field; `flags` holds the attribute bit and the state flags.
 * SET reads only `flags`, which must hold exactly one attribute bit and nothing else
 * (state flags are the driver's to report; base and len cannot change: FIXBASE, FIXLEN);
 * `base`, `len`, `__pad0` and `owner` must be zero, so that they can be given a meaning
 * later (zero the whole struct, then set `flags`; do not send back what GET returned).
 * SET needs the device opened for writing. Errors:
 *   EINVAL      no, several or unknown bits in `flags`, or a non-zero base, len, __pad0
 *               or owner
 *   EBUSY       the region is mapped (changing the memory type under a mapping would
 *               alias two memory types for the same page), or a read or write of the
 *               node is under way
 *   EOPNOTSUPP  the CPU cannot give that attribute (never silently downgraded), or a
 *               pages-mode region (CARVEOUT_MR_PAGES) asked for anything but WB
 *   EBADF       the device is open read-only
 */
struct carveout_range_desc {
	__u64 base;     /* out: physical base address */
	__u64 len;      /* out: length in bytes */
	__u32 flags;    /* CARVEOUT_MR_* */
	__u32 __pad0;   /* zero */
	char owner[8];  /* out: "carveout", NUL-padded, not NUL-terminated when 8 long */
};

/*
 * CARVEOUT_ATTACH / CARVEOUT_DETACH / CARVEOUT_BUS_ADDR: give a PCI device DMA access to the
 * whole region, take it back, or ask for the address it must use. 64 bytes.
 *
 * ATTACH maps the region for the device through the kernel's DMA API: where an IOMMU translates
 * the device's DMA (a DMA or DMA-FQ domain), that is an IOVA the kernel allocates below the
 * device's DMA mask; with no IOMMU or an identity (passthrough) domain, the physical address.
 * Never a bounce buffer. The driver keeps a reference to the device; detach, disabling the
 * region, unloading the module and removing the device each unmap it: afterwards no bus
 * address handed out reaches the region, whatever happened to the device's IOMMU group
 * meanwhile. ATTACH and DETACH need the device opened for writing and CAP_SYS_ADMIN; BUS_ADDR
 * reports an attached device.
 *
 * User drivers (VFIO, iommufd) and an attached device: a driver that manages DMA itself
 * (driver_managed_dma: vfio-pci, pci-stub, ...) binding to the device, or to any device of its
 * IOMMU group, revokes the attachment first: the region is unmapped before that driver's probe,
 * while the group is still on its default DMA domain, so VFIO can then take the group as usual
 * and the device never reaches the region through the old address again. The attachment stays
 * listed ("DEVICE - revoked" in sysfs dma_devices; BUS_ADDR gives ENODEV) until DETACH, which
 * returns 0. ATTACH is refused (EBUSY, one dmesg line naming the driver) while a device of the
 * group is bound to such a driver, or while the group is on a domain that is neither a DMA nor
 * an identity one (a user owns it). What makes this hold: the DMA API maps and unmaps in the
 * group's default domain; the kernel replaces that only through the group's sysfs `type` and
 * only while nothing holds the group; a user owner takes it only through
 * iommu_group_claim_dma_owner / iommu_device_claim_dma_owner, which only driver_managed_dma
 * drivers call; and the driver maps, unmaps and reads the group's domain under the group's
 * mutex (iommu_group_for_each_dev, iommu_driver_get_domain_for_dev). If root replaces the
 * default domain through sysfs while attached, the mapping went with the old domain (which the
 * kernel freed) and detach unmaps nothing in the new one.
 * `device` is the PCI name, "DDDD:BB:DD.F"; every other input field must be zero, but for
 * ATTACH's `reach_bits`.
 *
 * What the device can address is its DMA mask, which its driver sets. A device with no driver
 * (driven from userspace through its sysfs resource files) has the PCI default of 32 bits,
 * whatever it decodes: `reach_bits` (12 to 64) states what it does decode. The mask is set to
 * that while the region is mapped and put back after: an IOMMU's IOVA is allocated below it,
 * or without one the region must lie below it. 0: the device's mask. Errors:
 *   EINVAL   a malformed name, non-zero fields, a reach outside 12-64
 *   ENODEV   no such PCI device (BUS_ADDR: the device was removed while attached, or the
 *            attachment was revoked)
 *   EEXIST   ATTACH: already attached          ENOENT  DETACH, BUS_ADDR: not attached
 *   EBUSY    ATTACH: a reach stated for a device with a driver (its driver's mask rules); a
 *            device of its IOMMU group bound to a driver that manages DMA itself (vfio-pci);
 *            its group owned by a user driver
 *   ERANGE   ATTACH: the device cannot reach the region (DMA mask or reach, no IOMMU
 *            translating), or its transfers would be bounced
 *   EIO      ATTACH: the DMA API refuses the stated reach for the device
 *   ENOMEM   ATTACH: the DMA API refused (no IOVA space below the mask or reach)
 *   EBADF, EPERM  ATTACH/DETACH: opened read-only; no CAP_SYS_ADMIN
 */
struct carveout_attach {
	char device[32];        /* in: "0000:00:03.0", NUL-terminated */
	__u64 bus_addr;         /* out: the address the device must use for the region's base */
	__u32 flags;            /* out: CARVEOUT_ATTACH_TRANSLATED */
	__u32 reach_bits;       /* in, ATTACH: 0, or the address bits a driverless device decodes */
	__u64 __reserved[2];    /* zero */
};
#define CARVEOUT_ATTACH_TRANSLATED (1u << 0) /* an IOMMU translates the device's DMA */

/*
 * CARVEOUT_SYNC: cache maintenance for devices that do not snoop the CPU's caches (PCIe
 * No-Snoop, FPGA fabric ports). [offset, offset + len) of the region, page aligned, inside it;
 * no mapping needed. WB and WT regions: the range's cache lines are written back and
 * invalidated (x86 has no separate invalidate: both directions do both). UC and WC regions:
 * a full memory barrier, which also drains write-combining buffers. Errors: EINVAL (unaligned
 * or empty range, an offset + len that overflows, a direction other than the two, non-zero
 * __pad0), ENXIO (beyond the region).
 */
struct carveout_sync {
	__u64 offset;     /* byte offset into the region, page aligned */
	__u64 len;        /* bytes, page aligned, not 0 */
	__u32 direction;  /* CARVEOUT_SYNC_FOR_DEVICE or CARVEOUT_SYNC_FOR_CPU */
	__u32 __pad0;     /* zero */
};
#define CARVEOUT_SYNC_FOR_DEVICE 1 /* before the device reads what the CPU wrote */
#define CARVEOUT_SYNC_FOR_CPU    2 /* before the CPU reads what the device wrote */

#define CARVEOUT_IOCTL_MAGIC 0xCA /* numbers 0x40-0x5f */
#define CARVEOUT_GET_INFO _IOR(CARVEOUT_IOCTL_MAGIC, 0x40, struct carveout_info)
#define CARVEOUT_GET_ATTR _IOR(CARVEOUT_IOCTL_MAGIC, 0x41, struct carveout_range_desc)
#define CARVEOUT_SET_ATTR _IOW(CARVEOUT_IOCTL_MAGIC, 0x42, struct carveout_range_desc)
#define CARVEOUT_ATTACH   _IOWR(CARVEOUT_IOCTL_MAGIC, 0x43, struct carveout_attach)
#define CARVEOUT_DETACH   _IOW(CARVEOUT_IOCTL_MAGIC, 0x44, struct carveout_attach)
#define CARVEOUT_BUS_ADDR _IOWR(CARVEOUT_IOCTL_MAGIC, 0x45, struct carveout_attach)
#define CARVEOUT_SYNC     _IOW(CARVEOUT_IOCTL_MAGIC, 0x46, struct carveout_sync)

/*
 * mmap(2) of /dev/carveout*:
 *   - offset is the byte offset into the region (page aligned);
 *   - MAP_SHARED only: a private copy of device memory is refused (EINVAL);
 *   - the mapping uses the region's cache attribute; a WP region refuses a writable
 *     mapping (EACCES);
 *   - [offset, offset + length) must lie inside the region: else ENXIO;
 *   - a mapping whose user address agrees with the physical address modulo 2 MiB (as the
 *     driver places an mmap(NULL, ...)) gets 2 MiB page-table entries where whole 2 MiB
 *     blocks fit, for UC, WC and WB; WT and WP always get 4 KiB entries (x86 keeps a 2 MiB
 *     entry's PAT bit at bit 12, which the kernel's huge PFN insertion does not set);
 *   - if the kernel would give the mapping another memory type than the region's (another
 *     mapping of the range, e.g. /dev/mem opened O_SYNC, recorded a type first): EBUSY, and
 *     dmesg names the type in force;
 *   - an offset + length that overflows is refused by the kernel's mmap core
 *     with EOVERFLOW before the driver sees it, or by the driver with EINVAL.
 */

/*
 * read(2), write(2), pread/pwrite, readv/writev and lseek(2) of /dev/carveout*, after
 * FreeBSD's mem(4): the node is a file whose byte offsets are offsets into the region
 * (offset 0 is its base, as for mmap), so dd, cmp, hexdump and cp work on it.
 *   - read: from the file position up to the end; a read that starts at or past the end
 *     returns 0 (end of file), one that crosses it returns the bytes up to it;
 *   - write: a write that starts at or past the end fails with ENOSPC, one that crosses it
 *     writes up to the end and returns that count; a WP region refuses every write (EPERM),
 *     a file opened read-only too (EBADF);
 *   - a negative offset is EINVAL (as is an offset + count that overflows);
 *   - lseek: SEEK_SET, SEEK_CUR and SEEK_END (the region's size); any other whence, or a
 *     resulting offset below 0, is EINVAL; a position past the end may be set;
 *   - the copies use the region's cache attribute (a kernel mapping of the whole region with
 *     the memory type user mappings get, made by the first read or write and kept until the
 *     last file that read or wrote closes or SET_ATTR changes the type), and SET_ATTR
 *     returns EBUSY while a read or write is under way;
 *   - long transfers go in pieces of at most 2 MiB, yield the CPU between them, and a fatal
 *     signal ends them with the bytes done so far (EINTR if none);
 *   - only write changes the contents: open, read, lseek and close never do.
 */

#ifndef __cplusplus
_Static_assert(sizeof(struct carveout_info) == 96, "carveout_info is 96 bytes");
_Static_assert(sizeof(struct carveout_range_desc) == 32, "carveout_range_desc is 32 bytes");
_Static_assert(sizeof(struct carveout_attach) == 64, "carveout_attach is 64 bytes");
_Static_assert(sizeof(struct carveout_sync) == 24, "carveout_sync is 24 bytes");
#endif

#endif /* CARVEOUT_H */
