// SPDX-License-Identifier: GPL-2.0
/*
 * carveout_iommufd: hands a pages-mode carveout region to a PCI device through iommufd and
 * the VFIO device file (the cdev, no group or container), and checks with QEMU's edu device
 * that the device's DMA reaches the region. The README's IOMMU section names the sequence of
 * iommufd_map_region() below.
 *
 *   carveout_iommufd DEV BDF [IOVA] [-- COMMAND...]
 *
 * Opens /dev/iommu and allocates an IOAS, opens BDF's VFIO device file (BDF bound to
 * vfio-pci: /dev/vfio/devices/vfioN), binds it to the iommufd and attaches it to the IOAS,
 * maps all of region DEV (/dev/carveout0) and maps that mapping into the IOAS at IOVA
 * (default: the region's physical base) with IOMMU_IOAS_MAP, which pins its pages: only a
 * region loaded with pages=1 has pages to pin (a PFN-mode region fails EFAULT). Then, with
 * BDF an edu device, moves bytes between region offsets by DMA (device reads from IOVA +
 * offset, device writes to IOVA + another offset) and checks through /dev/mem, the physical
 * pages from outside the mapping, that they arrived and that the bytes around them did not
 * change. With COMMAND: runs it afterwards with the device file as file descriptor 3
 * (CARVEOUT_VFIO_DEVICE_FD=3) and waits for it.
 *
 * Exit status: 0 when the transfers check (and COMMAND's, if given), 1 when they do not, 2 on
 * a usage or system error (IOMMU_IOAS_MAP refused, say).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/iommufd.h>
#include <linux/pci_regs.h>
#include <linux/vfio.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "carveout.h"

#define CHECK(call, what)                                                      \
	do {                                                                   \
		if ((call) < 0) {                                              \
			fprintf(stderr, "carveout_iommufd: %s: %s\n", what,    \
				strerror(errno));                              \
			return -1;                                             \
		}                                                              \
	} while (0)

/* QEMU's edu device (QEMU docs/specs/edu.rst): its DMA registers in BAR 0. */
#define EDU_ID 0x00
#define EDU_DMA_SRC 0x80
#define EDU_DMA_DST 0x88
#define EDU_DMA_COUNT 0x90
#define EDU_DMA_CMD 0x98
#define EDU_CMD_START 0x1
#define EDU_CMD_TO_RAM 0x2 /* buffer -> memory; without it memory -> buffer */
/* The device's 4 KiB buffer, at this address of its own. QEMU 7.2 aborts on a transfer that
 * ends exactly at the buffer's end: every transfer ends before it. */
#define EDU_BUF 0x40000
#define EDU_BUF_LEN 4096

/* What iommufd_map_region() set up. */
struct mapped {
	int device;              /* the VFIO device file, bound and attached */
	uint8_t *mem;            /* the whole region, mapped shared */
	struct carveout_info info;
	uint64_t iova;           /* where the device sees the region's first byte */
};

/* The VFIO device file of PCI device bdf: /dev/vfio/devices/vfioN, with vfioN the one entry
 * of /sys/bus/pci/devices/BDF/vfio-dev/ (there while vfio-pci drives the device). */
static int vfio_cdev_path(const char *bdf, char *path, size_t len)
{
	char dir_path[PATH_MAX];
	struct dirent *entry;
	DIR *dir;
	int found = -1;

	snprintf(dir_path, sizeof(dir_path), "/sys/bus/pci/devices/%s/vfio-dev", bdf);
	dir = opendir(dir_path);
	if (!dir) {
		fprintf(stderr, "carveout_iommufd: %s: %s (not bound to vfio-pci? no cdev?)\n",
			dir_path, strerror(errno));
		return -1;
	}
	while ((entry = readdir(dir))) {
		if (strncmp(entry->d_name, "vfio", 4) == 0) {
			snprintf(path, len, "/dev/vfio/devices/%s", entry->d_name);
			found = 0;
			break;
		}
	}
	closedir(dir);
	if (found < 0)
		fprintf(stderr, "carveout_iommufd: %s holds no vfioN\n", dir_path);
	return found;
}

/*
 * Maps region `dev` for PCI device `bdf` (bound to vfio-pci) at `iova` through iommufd; fills
 * `m`, with the iommufd and the region's file left open for as long as the process lives.
 */
static int iommufd_map_region(const char *dev, const char *bdf, uint64_t iova, struct mapped *m)
{
	struct iommu_ioas_alloc alloc = { .size = sizeof(alloc) };
	struct vfio_device_bind_iommufd bind = { .argsz = sizeof(bind) };
	struct vfio_device_attach_iommufd_pt attach = { .argsz = sizeof(attach) };
	struct iommu_ioas_map map = { .size = sizeof(map) };
	char path[PATH_MAX];
	int iommufd, region;

	/* The iommufd and an I/O address space (IOAS) in it. */
	CHECK(iommufd = open("/dev/iommu", O_RDWR), "open /dev/iommu");
	CHECK(ioctl(iommufd, IOMMU_IOAS_ALLOC, &alloc), "IOMMU_IOAS_ALLOC");

	/* The device file, bound to the iommufd (which takes the device's DMA from the kernel's
	 * DMA API) and attached to the IOAS: its DMA reaches what the IOAS maps, nothing else. */
	if (vfio_cdev_path(bdf, path, sizeof(path)) < 0)
		return -1;
	CHECK(m->device = open(path, O_RDWR), path);
	bind.iommufd = iommufd;
	CHECK(ioctl(m->device, VFIO_DEVICE_BIND_IOMMUFD, &bind), "VFIO_DEVICE_BIND_IOMMUFD");
	attach.pt_id = alloc.out_ioas_id;
	CHECK(ioctl(m->device, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &attach),
	      "VFIO_DEVICE_ATTACH_IOMMUFD_PT");

	/* The region: its physical base and size, and a shared mapping of all of it. */
	CHECK(region = open(dev, O_RDWR), dev);
	CHECK(ioctl(region, CARVEOUT_GET_INFO, &m->info), "CARVEOUT_GET_INFO");
	m->mem = mmap(NULL, m->info.size, PROT_READ | PROT_WRITE, MAP_SHARED, region, 0);
	if (m->mem == MAP_FAILED) {
		fprintf(stderr, "carveout_iommufd: mmap %s: %s\n", dev, strerror(errno));
		return -1;
	}

	/* The mapping into the IOAS: iommufd pins its pages (a PFN mapping has none: EFAULT). */
	map.flags = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE;
	map.ioas_id = alloc.out_ioas_id;
	map.user_va = (uintptr_t)m->mem;
	map.length = m->info.size;
	map.iova = iova;
	if (ioctl(iommufd, IOMMU_IOAS_MAP, &map) < 0) {
		int err = errno;

		fprintf(stderr, "carveout_iommufd: IOMMU_IOAS_MAP: %s%s\n", strerror(err),
			err == EFAULT && !(m->info.flags & CARVEOUT_MR_PAGES) ?
				" (a PFN-mode region cannot be pinned: load it with pages=1)" : "");
		return -1;
	}
	m->iova = map.iova;
	printf("# %s: %" PRIu64 " MiB at 0x%" PRIx64 " (%s), iova 0x%" PRIx64
	       " in IOAS %u, %s attached to page table %u\n",
	       dev, (uint64_t)m->info.size >> 20, (uint64_t)m->info.base,
	       m->info.flags & CARVEOUT_MR_PAGES ? "pages mode" : "PFN mode", (uint64_t)m->iova,
	       alloc.out_ioas_id, bdf, attach.pt_id);
	fflush(stdout);
	return 0;
}

/* edu's registers (BAR 0 through the device file) with memory decoding and bus mastering on. */
static volatile uint8_t *edu_open(int device)
{
	struct vfio_region_info bar = { .argsz = sizeof(bar), .index = VFIO_PCI_BAR0_REGION_INDEX };
	struct vfio_region_info config = { .argsz = sizeof(config),
					   .index = VFIO_PCI_CONFIG_REGION_INDEX };
	uint16_t cmd;
	uint32_t id;
	void *regs;

	if (ioctl(device, VFIO_DEVICE_GET_REGION_INFO, &config) < 0 ||
	    ioctl(device, VFIO_DEVICE_GET_REGION_INFO, &bar) < 0) {
		perror("carveout_iommufd: VFIO_DEVICE_GET_REGION_INFO");
		return NULL;
	}
	if (pread(device, &cmd, sizeof(cmd), config.offset + PCI_COMMAND) != sizeof(cmd)) {
		perror("carveout_iommufd: config space read");
		return NULL;
	}
	cmd |= PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER;
	if (pwrite(device, &cmd, sizeof(cmd), config.offset + PCI_COMMAND) != sizeof(cmd)) {
		perror("carveout_iommufd: config space write");
		return NULL;
	}
	if (!(bar.flags & VFIO_REGION_INFO_FLAG_MMAP) || bar.size < 4096) {
		fprintf(stderr, "carveout_iommufd: BAR 0 (%llu bytes, flags 0x%x): no mmap\n",
			(unsigned long long)bar.size, bar.flags);
		return NULL;
	}
	regs = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, device, bar.offset);
	if (regs == MAP_FAILED) {
		perror("carveout_iommufd: mmap BAR 0");
		return NULL;
	}
	id = *(volatile uint32_t *)((uint8_t *)regs + EDU_ID);
	if ((id & 0xff) != 0xed) {
		fprintf(stderr, "carveout_iommufd: id register 0x%x: not an edu device\n", id);
		return NULL;
	}
	return regs;
}

static volatile uint64_t *edu_reg(volatile uint8_t *regs, unsigned int offset)
{
	return (volatile uint64_t *)(regs + offset);
}

/* One DMA transfer of `count` bytes from device address `src` to `dst`; waits until the
 * device is done (about 100 ms of virtual time). */
static int edu_dma(volatile uint8_t *regs, uint64_t src, uint64_t dst, uint64_t count,
		   uint64_t dir)
{
	const struct timespec tick = { .tv_nsec = 5 * 1000 * 1000 };
	int polls;

	*edu_reg(regs, EDU_DMA_SRC) = src;
	*edu_reg(regs, EDU_DMA_DST) = dst;
	*edu_reg(regs, EDU_DMA_COUNT) = count;
	*edu_reg(regs, EDU_DMA_CMD) = EDU_CMD_START | dir;
	for (polls = 0; *edu_reg(regs, EDU_DMA_CMD) & EDU_CMD_START; polls++) {
		if (polls == 2000) {
			fprintf(stderr, "carveout_iommufd: edu DMA did not complete within 10 s\n");
			return -1;
		}
		nanosleep(&tick, NULL);
	}
	return 0;
}

/* Byte i of the test pattern for `seed`. */
static uint8_t pattern(uint64_t seed, uint64_t i)
{
	uint64_t x = (seed + i) * 0x9e3779b97f4a7c15ull;

	return (uint8_t)((x ^ (x >> 29)) >> 24);
}

/* Compares `len` bytes of physical memory at `phys` with `want`; says where they differ. */
static int devmem_check(int devmem, uint64_t phys, const uint8_t *want, size_t len,
			const char *what)
{
	uint8_t got[EDU_BUF_LEN + 64];
	size_t i;

	if (pread(devmem, got, len, (off_t)phys) != (ssize_t)len) {
		fprintf(stderr, "carveout_iommufd: /dev/mem at 0x%" PRIx64 ": %s\n", phys,
			strerror(errno));
		return -1;
	}
	for (i = 0; i < len; i++) {
		if (got[i] != want[i]) {
			printf("# %s: /dev/mem at 0x%" PRIx64 " holds 0x%02x, expected 0x%02x\n",
			       what, phys + i, got[i], want[i]);
			return 1;
		}
	}
	return 0;
}

/*
 * The device reads `count` bytes at region offset `src` into its buffer at `buf`, then writes
 * them to region offset `dst`, both through the IOVA. The source is written first (through
 * the mapping when `via_mapping`, else through /dev/mem) and checked through /dev/mem; the
 * destination and 16 bytes either side of it (within the region) are written with other bytes
 * through /dev/mem. Afterwards /dev/mem must show the source's bytes at the destination and
 * the bytes either side unchanged, and the mapping the same bytes.
 */
static int move(const struct mapped *m, volatile uint8_t *regs, int devmem, uint64_t seed,
		uint64_t src, uint64_t dst, uint64_t count, uint64_t buf, int via_mapping)
{
	uint8_t data[EDU_BUF_LEN], around[EDU_BUF_LEN + 32];
	uint64_t base = m->info.base, size = m->info.size;
	uint64_t lo = dst < 16 ? dst : 16;
	uint64_t hi = size - dst - count < 16 ? size - dst - count : 16;
	uint64_t i;
	int rc;

	printf("# region +0x%" PRIx64 " -> edu buffer +0x%" PRIx64 " -> region +0x%" PRIx64
	       ", %" PRIu64 " bytes (source written through %s)\n",
	       src, buf, dst, count, via_mapping ? "the mapping" : "/dev/mem");
	for (i = 0; i < count; i++)
		data[i] = pattern(seed, i);
	for (i = 0; i < lo + count + hi; i++)
		around[i] = (uint8_t)~pattern(seed ^ 0x5a5a, i);
	if (via_mapping) {
		memcpy(m->mem + src, data, count);
		rc = devmem_check(devmem, base + src, data, count, "the source");
		if (rc)
			return rc;
	} else if (pwrite(devmem, data, count, (off_t)(base + src)) != (ssize_t)count) {
		perror("carveout_iommufd: /dev/mem write");
		return -1;
	}
	if (pwrite(devmem, around, lo + count + hi, (off_t)(base + dst - lo)) !=
	    (ssize_t)(lo + count + hi)) {
		perror("carveout_iommufd: /dev/mem write");
		return -1;
	}

	if (edu_dma(regs, m->iova + src, EDU_BUF + buf, count, 0) < 0 ||
	    edu_dma(regs, EDU_BUF + buf, m->iova + dst, count, EDU_CMD_TO_RAM) < 0)
		return -1;

	memcpy(around + lo, data, count);
	rc = devmem_check(devmem, base + dst - lo, around, lo + count + hi, "the destination");
	if (rc)
		return rc;
	for (i = 0; i < count; i++) {
		if (((volatile uint8_t *)m->mem)[dst + i] != data[i]) {
			printf("# the mapping at +0x%" PRIx64 " differs from /dev/mem\n", dst + i);
			return 1;
		}
	}
	return 0;
}

/* Transfers through the IOVA, each checked through /dev/mem. */
static int edu_check(const struct mapped *m, volatile uint8_t *regs)
{
	uint64_t size = m->info.size;
	/* (source, destination, count, buffer offset): the region's first bytes, odd offsets
	 * across a page boundary, both across 2 MiB boundaries, the source ending at the
	 * region's last byte, the destination ending there. */
	const uint64_t moves[][4] = {
		{ 0, 0x2000, 64, 0 },
		{ 0x5003, 0x10000 - 100, 1000, 3 },
		{ 0x200000 - 1000, size / 2 + 0x200000 - 1500, 3999, 0 },
		{ size - 777, 0x3001, 777, 1 },
		{ 0x4000, size - 600, 600, 100 },
	};
	unsigned int i;
	int devmem, rc = 0;

	if (size < (8u << 20)) {
		fprintf(stderr, "carveout_iommufd: the check needs a region of 8 MiB or more\n");
		return -1;
	}
	CHECK(devmem = open("/dev/mem", O_RDWR | O_SYNC), "open /dev/mem");
	for (i = 0; i < sizeof(moves) / sizeof(moves[0]) && rc == 0; i++)
		rc = move(m, regs, devmem, (uint64_t)(i + 1) << 32, moves[i][0], moves[i][1],
			  moves[i][2], moves[i][3], i % 2 == 0);
	close(devmem);
	if (rc == 0)
		printf("# %u transfers through iova 0x%" PRIx64
		       " arrived, checked through /dev/mem\n", i, m->iova);
	return rc;
}

int main(int argc, char **argv)
{
	struct mapped m = { .device = -1 };
	volatile uint8_t *regs;
	uint64_t iova = 0;
	int args, status, rc;
	pid_t pid;

	/* DEV BDF [IOVA], then "--" and the command, if any. */
	for (args = 1; args < argc && strcmp(argv[args], "--") != 0; args++)
		;
	if (args < 3 || args > 4 || args == argc - 1) {
		fprintf(stderr, "usage: carveout_iommufd DEV BDF [IOVA] [-- COMMAND...]\n");
		return 2;
	}
	if (args == 4) {
		char *end;

		errno = 0;
		iova = strtoull(argv[3], &end, 0);
		if (errno || *end || end == argv[3]) {
			fprintf(stderr, "carveout_iommufd: bad IOVA %s\n", argv[3]);
			return 2;
		}
	}
	/* The region's physical base unless told otherwise: the device then uses the same
	 * addresses with and without an IOMMU. */
	if (args == 3) {
		int region = open(argv[1], O_RDONLY);

		if (region < 0 || ioctl(region, CARVEOUT_GET_INFO, &m.info) < 0) {
			fprintf(stderr, "carveout_iommufd: %s: %s\n", argv[1], strerror(errno));
			return 2;
		}
		iova = m.info.base;
		close(region);
	}
	if (iommufd_map_region(argv[1], argv[2], iova, &m) < 0)
		return 2;
	regs = edu_open(m.device);
	if (!regs)
		return 2;
	rc = edu_check(&m, regs);
	if (rc)
		return rc < 0 ? 2 : 1;
	if (args >= argc - 1)
		return 0;

	/* The command gets the device file as fd 3 (dup2 clears close-on-exec). */
	fflush(stdout);
	pid = fork();
	if (pid < 0) {
		perror("carveout_iommufd: fork");
		return 2;
	}
	if (pid == 0) {
		if (dup2(m.device, 3) < 0 || setenv("CARVEOUT_VFIO_DEVICE_FD", "3", 1) < 0) {
			perror("carveout_iommufd: dup2");
			_exit(2);
		}
		execvp(argv[args + 1], argv + args + 1);
		fprintf(stderr, "carveout_iommufd: %s: %s\n", argv[args + 1], strerror(errno));
		_exit(2);
	}
	if (waitpid(pid, &status, 0) < 0) {
		perror("carveout_iommufd: waitpid");
		return 2;
	}
	return WIFEXITED(status) ? WEXITSTATUS(status) : 2;
}
