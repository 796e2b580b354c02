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
 * (state flags are the driver's to report; base and len cannot change: FIXBASE, FIXLEN).
 * SET needs the device opened for writing. Errors:
 *   EINVAL      no, several or unknown bits in `flags`
 *   EBUSY       the region is mapped (changing the memory type under a mapping would
 *               alias two memory types for the same page), or a read or write of the
 *               node is under way
 *   EOPNOTSUPP  the CPU cannot give that attribute (never silently downgraded)
 *   EBADF       the device is open read-only
 */
struct carveout_range_desc {
	__u64 base;     /* out: physical base address */
	__u64 len;      /* out: length in bytes */
	__u32 flags;    /* CARVEOUT_MR_* */
	__u32 __pad0;   /* zero */
	char owner[8];  /* out: "carveout", NUL-padded, not NUL-terminated when 8 long */
};

#define CARVEOUT_IOCTL_MAGIC 0xCA /* numbers 0x40-0x5f */
#define CARVEOUT_GET_INFO _IOR(CARVEOUT_IOCTL_MAGIC, 0x40, struct carveout_info)
#define CARVEOUT_GET_ATTR _IOR(CARVEOUT_IOCTL_MAGIC, 0x41, struct carveout_range_desc)
#define CARVEOUT_SET_ATTR _IOW(CARVEOUT_IOCTL_MAGIC, 0x42, struct carveout_range_desc)

/*
 * mmap(2) of /dev/carveout*:
 *   - offset is the byte offset into the region (page aligned);
 *   - MAP_SHARED only: a private copy of device memory is refused (EINVAL);
 *   - the mapping uses the region's cache attribute; a WP region refuses a writable
 *     mapping (EACCES);
 *   - [offset, offset + length) must lie inside the region: else ENXIO;
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
 *   - the copies use the region's cache attribute (a kernel mapping of the same memory type
 *     as user mappings get), and SET_ATTR returns EBUSY while a read or write is under way;
 *   - long transfers go in pieces of at most 2 MiB, yield the CPU between them, and a fatal
 *     signal ends them with the bytes done so far (EINTR if none);
 *   - only write changes the contents: open, read, lseek and close never do.
 */

#ifndef __cplusplus
_Static_assert(sizeof(struct carveout_info) == 96, "carveout_info is 96 bytes");
_Static_assert(sizeof(struct carveout_range_desc) == 32, "carveout_range_desc is 32 bytes");
#endif

#endif /* CARVEOUT_H */
