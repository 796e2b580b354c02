// SPDX-License-Identifier: GPL-2.0
/*
 * carveout_test: a C program that uses /dev/carveout* through include/carveout.h only.
 *
 *   carveout_test info DEV              print what CARVEOUT_GET_INFO reports
 *   carveout_test roundtrip DEV SEED    write a pattern through mmap, read it back through the
 *                                       mapping and through /dev/mem at the physical address
 *   carveout_test attr DEV              CARVEOUT_GET_ATTR agrees with GET_INFO; SET_ATTR refuses
 *                                       bad flags (EINVAL), a mapped region (EBUSY) and a
 *                                       read-only open (EBADF), and changes the attribute and
 *                                       back when nothing maps the region
 *
 * Exit status: 0 on success, 1 on a mismatch or a check that does not hold, 2 on a usage or
 * system error, 3 when the driver has no attribute ioctls (ENOTTY).
 */
#define _GNU_SOURCE
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

/* The test pattern, shared with the Rust tool: word i of seed s (splitmix64). */
static uint64_t pattern_word(uint64_t seed, uint64_t index)
{
	uint64_t z = seed + (index + 1) * 0x9e3779b97f4a7c15ull;

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static int get_info(int fd, const char *dev, struct carveout_info *info)
{
	memset(info, 0, sizeof(*info));
	if (ioctl(fd, CARVEOUT_GET_INFO, info) < 0) {
		fprintf(stderr, "carveout_test: CARVEOUT_GET_INFO on %s: %s\n", dev, strerror(errno));
		return -1;
	}
	if (info->abi_version != CARVEOUT_ABI_VERSION) {
		fprintf(stderr, "carveout_test: %s speaks ABI %u, this program %u\n", dev,
			info->abi_version, CARVEOUT_ABI_VERSION);
		return -1;
	}
	return 0;
}

static int open_dev(const char *dev)
{
	int fd = open(dev, O_RDWR | O_CLOEXEC);

	if (fd < 0)
		fprintf(stderr, "carveout_test: open %s: %s\n", dev, strerror(errno));
	return fd;
}

static int cmd_info(const char *dev)
{
	struct carveout_info info;
	int fd = open_dev(dev);

	if (fd < 0 || get_info(fd, dev, &info) < 0)
		return 2;
	printf("base=0x%" PRIx64 " size=0x%" PRIx64 " flags=0x%" PRIx32 " name=%s\n",
	       (uint64_t)info.base, (uint64_t)info.size, (uint32_t)info.flags, info.name);
	close(fd);
	return 0;
}

/* Compares the region's bytes, read from /dev/mem at its physical address, with the pattern. */
static int verify_devmem(const struct carveout_info *info, uint64_t seed)
{
	enum { CHUNK = 1 << 16 };
	static uint64_t buf[CHUNK / 8];
	int fd = open("/dev/mem", O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		fprintf(stderr, "carveout_test: open /dev/mem: %s\n", strerror(errno));
		return 2;
	}
	for (uint64_t off = 0; off < info->size; off += CHUNK) {
		size_t want = info->size - off < CHUNK ? info->size - off : CHUNK;
		ssize_t got = pread(fd, buf, want, (off_t)(info->base + off));

		if (got != (ssize_t)want) {
			fprintf(stderr, "carveout_test: /dev/mem read at 0x%" PRIx64 ": %s\n",
				(uint64_t)(info->base + off), got < 0 ? strerror(errno) : "short read");
			close(fd);
			return 2;
		}
		for (size_t i = 0; i < want / 8; i++) {
			uint64_t expect = pattern_word(seed, off / 8 + i);

			if (buf[i] != expect) {
				fprintf(stderr, "carveout_test: /dev/mem differs at offset 0x%" PRIx64 "\n",
					off + i * 8);
				close(fd);
				return 1;
			}
		}
	}
	close(fd);
	return 0;
}

static int cmd_roundtrip(const char *dev, uint64_t seed)
{
	struct carveout_info info;
	volatile uint64_t *words;
	uint64_t n;
	int fd = open_dev(dev);

	if (fd < 0 || get_info(fd, dev, &info) < 0)
		return 2;
	words = mmap(NULL, info.size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (words == MAP_FAILED) {
		fprintf(stderr, "carveout_test: mmap %s: %s\n", dev, strerror(errno));
		return 2;
	}
	n = info.size / 8;
	for (uint64_t i = 0; i < n; i++)
		words[i] = pattern_word(seed, i);
	for (uint64_t i = 0; i < n; i++) {
		if (words[i] != pattern_word(seed, i)) {
			fprintf(stderr, "carveout_test: mapping differs at offset 0x%" PRIx64 "\n", i * 8);
			return 1;
		}
	}
	munmap((void *)words, info.size);
	close(fd);
	return verify_devmem(&info, seed);
}

static int set_attr(int fd, uint32_t flags)
{
	struct carveout_range_desc desc;

	memset(&desc, 0, sizeof(desc));
	desc.flags = flags;
	return ioctl(fd, CARVEOUT_SET_ATTR, &desc);
}

/* SET_ATTR with `flags` must fail with `want`. */
static int expect_refused(int fd, uint32_t flags, int want, const char *what)
{
	if (set_attr(fd, flags) == 0) {
		fprintf(stderr, "carveout_test: SET_ATTR with %s (0x%x) succeeded, expected %s\n",
			what, flags, strerror(want));
		return 1;
	}
	if (errno != want) {
		fprintf(stderr, "carveout_test: SET_ATTR with %s: %s, expected %s\n", what,
			strerror(errno), strerror(want));
		return 1;
	}
	printf("# SET_ATTR with %s: refused (%s)\n", what, strerror(errno));
	return 0;
}

/* GET_ATTR, and that its attribute is `want` in both GET_ATTR and GET_INFO. */
static int attr_is(int fd, const char *dev, uint32_t want)
{
	struct carveout_range_desc desc;
	struct carveout_info info;

	memset(&desc, 0, sizeof(desc));
	if (ioctl(fd, CARVEOUT_GET_ATTR, &desc) < 0 || get_info(fd, dev, &info) < 0) {
		fprintf(stderr, "carveout_test: GET_ATTR/GET_INFO on %s: %s\n", dev, strerror(errno));
		return 1;
	}
	if ((desc.flags & CARVEOUT_MR_ATTR_MASK) != want ||
	    (info.flags & CARVEOUT_MR_ATTR_MASK) != want) {
		fprintf(stderr, "carveout_test: attribute 0x%x (GET_ATTR) / 0x%x (GET_INFO), expected 0x%x\n",
			desc.flags & CARVEOUT_MR_ATTR_MASK, info.flags & CARVEOUT_MR_ATTR_MASK, want);
		return 1;
	}
	return 0;
}

static int cmd_attr(const char *dev)
{
	struct carveout_info info;
	struct carveout_range_desc desc;
	uint32_t attr, other;
	void *map;
	int fd = open_dev(dev), ro, bad = 0;

	if (fd < 0 || get_info(fd, dev, &info) < 0)
		return 2;
	memset(&desc, 0, sizeof(desc));
	if (ioctl(fd, CARVEOUT_GET_ATTR, &desc) < 0) {
		if (errno == ENOTTY) {
			printf("# CARVEOUT_GET_ATTR on %s: ENOTTY: the driver has no attribute ioctls\n", dev);
			return 3;
		}
		fprintf(stderr, "carveout_test: CARVEOUT_GET_ATTR on %s: %s\n", dev, strerror(errno));
		return 2;
	}
	attr = desc.flags & CARVEOUT_MR_ATTR_MASK;
	printf("# GET_ATTR: base=0x%" PRIx64 " len=0x%" PRIx64 " flags=0x%x owner=%.8s\n",
	       (uint64_t)desc.base, (uint64_t)desc.len, desc.flags, desc.owner);
	if (desc.base != info.base || desc.len != info.size) {
		fprintf(stderr, "carveout_test: GET_ATTR range differs from GET_INFO\n");
		bad = 1;
	}
	if (memcmp(desc.owner, "carveout", 8) != 0) {
		fprintf(stderr, "carveout_test: owner is not \"carveout\"\n");
		bad = 1;
	}
	if (attr == 0 || (attr & (attr - 1)) != 0 || attr != (info.flags & CARVEOUT_MR_ATTR_MASK)) {
		fprintf(stderr, "carveout_test: attribute bits 0x%x: not exactly one, or not GET_INFO's\n",
			attr);
		bad = 1;
	}
	if (bad)
		return 1;
	bad |= expect_refused(fd, 0, EINVAL, "no attribute bit");
	bad |= expect_refused(fd, CARVEOUT_MR_WRITEBACK | CARVEOUT_MR_UNCACHEABLE, EINVAL,
			      "two attribute bits");
	bad |= expect_refused(fd, attr | CARVEOUT_MR_ACTIVE, EINVAL, "a state flag");
	bad |= expect_refused(fd, attr | (1u << 12), EINVAL, "an unknown bit");

	/* UC is always available on x86; WB is the default. */
	other = attr == CARVEOUT_MR_WRITEBACK ? CARVEOUT_MR_UNCACHEABLE : CARVEOUT_MR_WRITEBACK;
	map = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED) {
		fprintf(stderr, "carveout_test: mmap %s: %s\n", dev, strerror(errno));
		return 2;
	}
	bad |= expect_refused(fd, other, EBUSY, "another attribute while mapped");
	munmap(map, 4096);

	ro = open(dev, O_RDONLY | O_CLOEXEC);
	if (ro < 0) {
		fprintf(stderr, "carveout_test: open %s read-only: %s\n", dev, strerror(errno));
		return 2;
	}
	bad |= expect_refused(ro, other, EBADF, "the device open read-only");
	close(ro);

	if (set_attr(fd, other) < 0) {
		fprintf(stderr, "carveout_test: SET_ATTR 0x%x with nothing mapped: %s\n", other,
			strerror(errno));
		return 1;
	}
	bad |= attr_is(fd, dev, other);
	if (set_attr(fd, attr) < 0) {
		fprintf(stderr, "carveout_test: SET_ATTR back to 0x%x: %s\n", attr, strerror(errno));
		return 1;
	}
	bad |= attr_is(fd, dev, attr);
	if (!bad)
		printf("# SET_ATTR 0x%x and back to 0x%x: both took effect\n", other, attr);
	close(fd);
	return bad;
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "info") == 0)
		return cmd_info(argv[2]);
	if (argc == 4 && strcmp(argv[1], "roundtrip") == 0)
		return cmd_roundtrip(argv[2], strtoull(argv[3], NULL, 0));
	if (argc == 3 && strcmp(argv[1], "attr") == 0)
		return cmd_attr(argv[2]);
	fprintf(stderr, "usage: carveout_test info DEV | roundtrip DEV SEED | attr DEV\n");
	return 2;
}
