// SPDX-License-Identifier: GPL-2.0
/*
 * carveout_compat32: include/carveout.h from a 32-bit process (gcc -m32 -static), so that every
 * request goes through the driver's compat_ioctl and the 32-bit mmap2/pread64 system calls.
 * The guest suite (qemu/guest/47-compat.sh) checks each answer against the 64-bit tools.
 *
 *   carveout_compat32 info DEV             GET_INFO, printed as `carveout_test info` prints it
 *   carveout_compat32 ioctls DEV           GET_ATTR agrees with GET_INFO; SET_ATTR refuses
 *                                          non-zero base/len/pad/owner and bad flags (EINVAL);
 *                                          SYNC both ways, and its refusals (EINVAL, ENXIO); an
 *                                          unknown request (ENOTTY) and a bad pointer (EFAULT)
 *   carveout_compat32 set-attr DEV ATTR    SET_ATTR to uc, wc, wt, wb or wp; GET_ATTR shows it
 *   carveout_compat32 attach DEV PCI       ATTACH, then BUS_ADDR: prints "PCI BUS_ADDR FLAGS"
 *   carveout_compat32 detach DEV PCI       DETACH; then BUS_ADDR and DETACH say ENOENT
 *   carveout_compat32 fill DEV SEED        the test pattern through one mapping of the region
 *   carveout_compat32 verify DEV SEED      the pattern, through a mapping of the region, a
 *                                          mapping of its last 2 MiB (mmap2's page offset) and
 *                                          pread64 of its last page
 *
 * Exit status: 0 on success, 1 when a check does not hold, 2 on a usage or system error.
 */
#define _GNU_SOURCE
#define _FILE_OFFSET_BITS 64
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "carveout.h"

#define PROG "carveout_compat32"

_Static_assert(sizeof(void *) == 4, "carveout_compat32 is built with -m32");

/* The test pattern, shared with the Rust tool: word i of seed s (splitmix64). */
static uint64_t pattern_word(uint64_t seed, uint64_t index)
{
	uint64_t z = seed + (index + 1) * 0x9e3779b97f4a7c15ull;

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static int fail(const char *what)
{
	fprintf(stderr, PROG ": %s\n", what);
	return 1;
}

/* expect_errno WHAT, RC, ERRNO: the request returned -1 with errno ERRNO. */
static int expect_errno(const char *what, int rc, int want)
{
	if (rc == 0) {
		fprintf(stderr, PROG ": %s succeeded, expected %s\n", what, strerror(want));
		return 1;
	}
	if (errno != want) {
		fprintf(stderr, PROG ": %s: %s, expected %s\n", what, strerror(errno), strerror(want));
		return 1;
	}
	printf("%s: %s\n", what, strerror(want));
	return 0;
}

static int open_dev(const char *dev, struct carveout_info *info)
{
	int fd = open(dev, O_RDWR | O_CLOEXEC);

	if (fd < 0) {
		fprintf(stderr, PROG ": open %s: %s\n", dev, strerror(errno));
		exit(2);
	}
	memset(info, 0, sizeof(*info));
	if (ioctl(fd, CARVEOUT_GET_INFO, info) < 0) {
		fprintf(stderr, PROG ": CARVEOUT_GET_INFO on %s: %s\n", dev, strerror(errno));
		exit(2);
	}
	if (info->abi_version != CARVEOUT_ABI_VERSION || info->info_size != sizeof(*info)) {
		fprintf(stderr, PROG ": %s reports ABI %u, %u bytes; this program ABI %u, %zu\n", dev,
			info->abi_version, info->info_size, CARVEOUT_ABI_VERSION, sizeof(*info));
		exit(1);
	}
	return fd;
}

static int get_attr(int fd, struct carveout_range_desc *desc)
{
	memset(desc, 0, sizeof(*desc));
	if (ioctl(fd, CARVEOUT_GET_ATTR, desc) < 0) {
		fprintf(stderr, PROG ": CARVEOUT_GET_ATTR: %s\n", strerror(errno));
		return -1;
	}
	return 0;
}

static int cmd_info(int fd, const struct carveout_info *info)
{
	(void)fd;
	printf("base=0x%" PRIx64 " size=0x%" PRIx64 " flags=0x%" PRIx32 " name=%s\n",
	       (uint64_t)info->base, (uint64_t)info->size, (uint32_t)info->flags, info->name);
	return 0;
}

static int cmd_ioctls(int fd, const struct carveout_info *info)
{
	struct carveout_range_desc desc, bad;
	struct carveout_sync sync = { 0 };
	int errors = 0;

	if (get_attr(fd, &desc) < 0)
		return 2;
	if (desc.base != info->base || desc.len != info->size ||
	    (desc.flags & CARVEOUT_MR_ATTR_MASK) != (info->flags & CARVEOUT_MR_ATTR_MASK) ||
	    memcmp(desc.owner, "carveout", 8) != 0 || desc.__pad0 != 0) {
		fprintf(stderr, PROG ": GET_ATTR base 0x%" PRIx64 " len 0x%" PRIx64 " flags 0x%x owner %.8s"
			" disagrees with GET_INFO\n", (uint64_t)desc.base, (uint64_t)desc.len,
			desc.flags, desc.owner);
		errors++;
	}
	printf("GET_ATTR: base=0x%" PRIx64 " len=0x%" PRIx64 " flags=0x%x owner=%.8s\n",
	       (uint64_t)desc.base, (uint64_t)desc.len, desc.flags, desc.owner);

	/* SET_ATTR reads flags alone; everything else must be zero. */
	memset(&bad, 0, sizeof(bad));
	bad.flags = desc.flags & CARVEOUT_MR_ATTR_MASK;
	bad.base = info->base;
	errors += expect_errno("SET_ATTR with base set", ioctl(fd, CARVEOUT_SET_ATTR, &bad), EINVAL);
	bad.base = 0;
	bad.len = info->size;
	errors += expect_errno("SET_ATTR with len set", ioctl(fd, CARVEOUT_SET_ATTR, &bad), EINVAL);
	bad.len = 0;
	bad.__pad0 = 1;
	errors += expect_errno("SET_ATTR with __pad0 set", ioctl(fd, CARVEOUT_SET_ATTR, &bad), EINVAL);
	bad.__pad0 = 0;
	memcpy(bad.owner, "x", 1);
	errors += expect_errno("SET_ATTR with owner set", ioctl(fd, CARVEOUT_SET_ATTR, &bad), EINVAL);
	memset(&bad, 0, sizeof(bad));
	bad.flags = CARVEOUT_MR_WRITEBACK | CARVEOUT_MR_UNCACHEABLE;
	errors += expect_errno("SET_ATTR with two attributes", ioctl(fd, CARVEOUT_SET_ATTR, &bad),
			       EINVAL);
	bad.flags = 0;
	errors += expect_errno("SET_ATTR with no attribute", ioctl(fd, CARVEOUT_SET_ATTR, &bad), EINVAL);

	/* SYNC: both directions of the first page; its refusals. */
	sync.len = 4096;
	sync.direction = CARVEOUT_SYNC_FOR_DEVICE;
	if (ioctl(fd, CARVEOUT_SYNC, &sync) < 0) {
		fprintf(stderr, PROG ": SYNC for device: %s\n", strerror(errno));
		errors++;
	}
	sync.direction = CARVEOUT_SYNC_FOR_CPU;
	if (ioctl(fd, CARVEOUT_SYNC, &sync) < 0) {
		fprintf(stderr, PROG ": SYNC for cpu: %s\n", strerror(errno));
		errors++;
	}
	printf("SYNC for device, for cpu: done\n");
	sync.direction = 3;
	errors += expect_errno("SYNC with direction 3", ioctl(fd, CARVEOUT_SYNC, &sync), EINVAL);
	sync.direction = CARVEOUT_SYNC_FOR_CPU;
	sync.len = 100;
	errors += expect_errno("SYNC of 100 bytes", ioctl(fd, CARVEOUT_SYNC, &sync), EINVAL);
	sync.len = 4096;
	sync.offset = info->size;
	errors += expect_errno("SYNC past the end", ioctl(fd, CARVEOUT_SYNC, &sync), ENXIO);

	/* A request the driver does not know, and a pointer no 32-bit process owns. */
	errors += expect_errno("unknown request 0x5f", ioctl(fd, _IO(CARVEOUT_IOCTL_MAGIC, 0x5f)),
			       ENOTTY);
	errors += expect_errno("GET_INFO into address 16", ioctl(fd, CARVEOUT_GET_INFO, (void *)16),
			       EFAULT);
	errors += expect_errno("GET_ATTR into 0xfffff000",
			       ioctl(fd, CARVEOUT_GET_ATTR, (void *)0xfffff000u), EFAULT);
	return errors ? 1 : 0;
}

static const struct {
	const char *name;
	uint32_t flag;
} attrs[] = {
	{ "uc", CARVEOUT_MR_UNCACHEABLE },  { "wc", CARVEOUT_MR_WRITECOMBINE },
	{ "wt", CARVEOUT_MR_WRITETHROUGH }, { "wb", CARVEOUT_MR_WRITEBACK },
	{ "wp", CARVEOUT_MR_WRITEPROTECT },
};

static int cmd_set_attr(int fd, const char *name)
{
	struct carveout_range_desc desc = { 0 };
	size_t i;

	for (i = 0; i < sizeof(attrs) / sizeof(attrs[0]); i++)
		if (strcmp(attrs[i].name, name) == 0)
			break;
	if (i == sizeof(attrs) / sizeof(attrs[0])) {
		fprintf(stderr, PROG ": unknown attribute %s\n", name);
		return 2;
	}
	desc.flags = attrs[i].flag;
	if (ioctl(fd, CARVEOUT_SET_ATTR, &desc) < 0) {
		fprintf(stderr, PROG ": SET_ATTR %s: %s\n", name, strerror(errno));
		return 1;
	}
	if (get_attr(fd, &desc) < 0)
		return 2;
	if ((desc.flags & CARVEOUT_MR_ATTR_MASK) != attrs[i].flag)
		return fail("GET_ATTR after SET_ATTR shows another attribute");
	printf("SET_ATTR %s: GET_ATTR flags=0x%x\n", name, desc.flags);
	return 0;
}

static void attach_request(struct carveout_attach *req, const char *pci)
{
	memset(req, 0, sizeof(*req));
	snprintf(req->device, sizeof(req->device), "%s", pci);
}

static int cmd_attach(int fd, const char *pci)
{
	struct carveout_attach req;
	uint64_t bus;

	attach_request(&req, pci);
	if (ioctl(fd, CARVEOUT_ATTACH, &req) < 0) {
		fprintf(stderr, PROG ": ATTACH %s: %s\n", pci, strerror(errno));
		return 1;
	}
	bus = req.bus_addr;
	attach_request(&req, pci);
	if (ioctl(fd, CARVEOUT_BUS_ADDR, &req) < 0) {
		fprintf(stderr, PROG ": BUS_ADDR %s: %s\n", pci, strerror(errno));
		return 1;
	}
	if (req.bus_addr != bus)
		return fail("BUS_ADDR reports another address than ATTACH");
	attach_request(&req, pci);
	if (expect_errno("ATTACH again", ioctl(fd, CARVEOUT_ATTACH, &req), EEXIST))
		return 1;
	attach_request(&req, pci);
	req.__reserved[1] = 1;
	if (expect_errno("BUS_ADDR with __reserved set", ioctl(fd, CARVEOUT_BUS_ADDR, &req), EINVAL))
		return 1;
	printf("%s 0x%" PRIx64 " 0x%x\n", pci, bus, req.flags);
	return 0;
}

static int cmd_detach(int fd, const char *pci)
{
	struct carveout_attach req;

	attach_request(&req, pci);
	if (ioctl(fd, CARVEOUT_DETACH, &req) < 0) {
		fprintf(stderr, PROG ": DETACH %s: %s\n", pci, strerror(errno));
		return 1;
	}
	attach_request(&req, pci);
	if (expect_errno("BUS_ADDR after DETACH", ioctl(fd, CARVEOUT_BUS_ADDR, &req), ENOENT))
		return 1;
	attach_request(&req, pci);
	return expect_errno("DETACH again", ioctl(fd, CARVEOUT_DETACH, &req), ENOENT);
}

/* check_words WHAT, P, FIRST, N, SEED: words FIRST.. FIRST+N-1 of the pattern are at P. */
static int check_words(const char *what, const volatile uint64_t *p, uint64_t first, uint64_t n,
		       uint64_t seed)
{
	for (uint64_t i = 0; i < n; i++) {
		uint64_t want = pattern_word(seed, first + i), have = p[i];

		if (have != want) {
			fprintf(stderr, PROG ": %s: word at offset 0x%" PRIx64 " is 0x%016" PRIx64
				", the pattern says 0x%016" PRIx64 "\n", what, (first + i) * 8, have, want);
			return 1;
		}
	}
	return 0;
}

static int cmd_pattern(int fd, const struct carveout_info *info, uint64_t seed, int fill)
{
	uint64_t words = info->size / 8, tail = 2 << 20, page[512];
	volatile uint64_t *p;
	int errors = 0;

	if (info->size > (1u << 30) || info->size < tail)
		return fail("the region is not between 2 MiB and 1 GiB: too large or small for this test");
	p = mmap(NULL, info->size, fill ? PROT_READ | PROT_WRITE : PROT_READ, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		fprintf(stderr, PROG ": mmap of 0x%" PRIx64 " bytes: %s\n", (uint64_t)info->size,
			strerror(errno));
		return 2;
	}
	if (fill) {
		for (uint64_t i = 0; i < words; i++)
			p[i] = pattern_word(seed, i);
		printf("filled 0x%" PRIx64 " bytes through a mapping at %p\n", (uint64_t)info->size,
		       (void *)p);
	} else {
		errors += check_words("the whole mapping", p, 0, words, seed);
	}
	munmap((void *)p, info->size);
	if (fill)
		return 0;

	/* The last 2 MiB by offset: mmap2 passes it in pages. */
	p = mmap(NULL, tail, PROT_READ, MAP_SHARED, fd, info->size - tail);
	if (p == MAP_FAILED) {
		fprintf(stderr, PROG ": mmap of the last 2 MiB: %s\n", strerror(errno));
		return 2;
	}
	errors += check_words("the mapping of the last 2 MiB", p, (info->size - tail) / 8, tail / 8,
			      seed);
	munmap((void *)p, tail);
	/* The last page through pread64. */
	if (pread(fd, page, sizeof(page), info->size - sizeof(page)) != sizeof(page)) {
		fprintf(stderr, PROG ": pread of the last page: %s\n", strerror(errno));
		return 2;
	}
	errors += check_words("pread of the last page", page, (info->size - sizeof(page)) / 8, 512,
			      seed);
	if (!errors)
		printf("the pattern of seed 0x%" PRIx64 " is there: whole mapping, last 2 MiB, pread\n",
		       seed);
	return errors ? 1 : 0;
}

int main(int argc, char **argv)
{
	struct carveout_info info;
	const char *cmd = argc > 2 ? argv[1] : "";
	int fd;

	if (argc < 3) {
		fprintf(stderr, "usage: " PROG " info|ioctls|set-attr|attach|detach|fill|verify DEV [ARG]\n");
		return 2;
	}
	fd = open_dev(argv[2], &info);
	if (strcmp(cmd, "info") == 0)
		return cmd_info(fd, &info);
	if (strcmp(cmd, "ioctls") == 0)
		return cmd_ioctls(fd, &info);
	if (argc != 4) {
		fprintf(stderr, PROG ": %s needs an argument\n", cmd);
		return 2;
	}
	if (strcmp(cmd, "set-attr") == 0)
		return cmd_set_attr(fd, argv[3]);
	if (strcmp(cmd, "attach") == 0)
		return cmd_attach(fd, argv[3]);
	if (strcmp(cmd, "detach") == 0)
		return cmd_detach(fd, argv[3]);
	if (strcmp(cmd, "fill") == 0 || strcmp(cmd, "verify") == 0)
		return cmd_pattern(fd, &info, strtoull(argv[3], NULL, 0), cmd[0] == 'f');
	fprintf(stderr, PROG ": unknown command %s\n", cmd);
	return 2;
}
