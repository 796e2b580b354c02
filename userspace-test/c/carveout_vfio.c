// SPDX-License-Identifier: GPL-2.0
/*
 * carveout_vfio: hands a carveout region to a PCI device behind an IOMMU, through VFIO. The
 * README's IOMMU section shows vfio_map_region() without its checks and messages.
 *
 *   carveout_vfio DEV BDF -- COMMAND...
 *
 * Opens a VFIO type1 container, BDF's IOMMU group (BDF bound to vfio-pci) and the device,
 * maps all of region DEV (/dev/carveout0) into the container at iova = the region's physical
 * base, then runs COMMAND with the device file as file descriptor 3 (CARVEOUT_VFIO_DEVICE_FD=3)
 * and waits for it: the command drives the device, whose DMA to the iova reaches the region.
 *
 * Exit status: COMMAND's, or 2 on a usage or system error.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/vfio.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "carveout.h"

#define CHECK(call, what)                                                      \
	do {                                                                   \
		if ((call) < 0) {                                              \
			fprintf(stderr, "carveout_vfio: %s: %s\n", what,       \
				strerror(errno));                              \
			return -1;                                             \
		}                                                              \
	} while (0)

/* The IOMMU group number of PCI device bdf, from /sys/bus/pci/devices/BDF/iommu_group. */
static int iommu_group(const char *bdf)
{
	char link[PATH_MAX], target[PATH_MAX];
	ssize_t n;
	const char *slash;

	snprintf(link, sizeof(link), "/sys/bus/pci/devices/%s/iommu_group", bdf);
	n = readlink(link, target, sizeof(target) - 1);
	if (n < 0) {
		fprintf(stderr, "carveout_vfio: %s: %s (no IOMMU?)\n", link, strerror(errno));
		return -1;
	}
	target[n] = '\0';
	slash = strrchr(target, '/');
	return atoi(slash ? slash + 1 : target);
}

/*
 * Maps region `dev` for PCI device `bdf` at iova = its physical base; returns the device
 * file, with the container and group left open for as long as the process lives.
 */
static int vfio_map_region(const char *dev, const char *bdf, int group_id)
{
	struct vfio_group_status status = { .argsz = sizeof(status) };
	struct vfio_iommu_type1_dma_map map = { .argsz = sizeof(map) };
	struct carveout_info info = { 0 };
	char group_path[32];
	int container, group, region, device;
	void *mem;

	/* The container, with the type1 IOMMU backend. */
	CHECK(container = open("/dev/vfio/vfio", O_RDWR), "open /dev/vfio/vfio");
	if (ioctl(container, VFIO_GET_API_VERSION) != VFIO_API_VERSION ||
	    !ioctl(container, VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU)) {
		fprintf(stderr, "carveout_vfio: no VFIO type1v2 IOMMU\n");
		return -1;
	}

	/* The device's group: viable when all its devices are bound to vfio-pci. */
	snprintf(group_path, sizeof(group_path), "/dev/vfio/%d", group_id);
	CHECK(group = open(group_path, O_RDWR), group_path);
	CHECK(ioctl(group, VFIO_GROUP_GET_STATUS, &status), "VFIO_GROUP_GET_STATUS");
	if (!(status.flags & VFIO_GROUP_FLAGS_VIABLE)) {
		fprintf(stderr, "carveout_vfio: group %d is not viable\n", group_id);
		return -1;
	}
	CHECK(ioctl(group, VFIO_GROUP_SET_CONTAINER, &container), "VFIO_GROUP_SET_CONTAINER");
	CHECK(ioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU), "VFIO_SET_IOMMU");

	/* The region: its physical base and size, and a shared mapping of all of it. */
	CHECK(region = open(dev, O_RDWR), dev);
	CHECK(ioctl(region, CARVEOUT_GET_INFO, &info), "CARVEOUT_GET_INFO");
	mem = mmap(NULL, info.size, PROT_READ | PROT_WRITE, MAP_SHARED, region, 0);
	if (mem == MAP_FAILED) {
		fprintf(stderr, "carveout_vfio: mmap %s: %s\n", dev, strerror(errno));
		return -1;
	}

	/* The device sees the region at iova = physical base (any free iova would do). */
	map.vaddr = (uintptr_t)mem;
	map.iova = info.base;
	map.size = info.size;
	map.flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE;
	CHECK(ioctl(container, VFIO_IOMMU_MAP_DMA, &map), "VFIO_IOMMU_MAP_DMA");

	CHECK(device = ioctl(group, VFIO_GROUP_GET_DEVICE_FD, bdf), "VFIO_GROUP_GET_DEVICE_FD");
	printf("# %s: %" PRIu64 " MiB at iova 0x%" PRIx64 " for %s (group %d)\n", dev,
	       (uint64_t)info.size >> 20, (uint64_t)map.iova, bdf, group_id);
	fflush(stdout);
	return device;
}

int main(int argc, char **argv)
{
	int group, device, status;
	pid_t pid;

	if (argc < 5 || strcmp(argv[3], "--") != 0) {
		fprintf(stderr, "usage: carveout_vfio DEV BDF -- COMMAND...\n");
		return 2;
	}
	group = iommu_group(argv[2]);
	if (group < 0)
		return 2;
	device = vfio_map_region(argv[1], argv[2], group);
	if (device < 0)
		return 2;

	/* The command gets the device file as fd 3 (dup2 clears close-on-exec). */
	pid = fork();
	if (pid < 0) {
		perror("carveout_vfio: fork");
		return 2;
	}
	if (pid == 0) {
		if (dup2(device, 3) < 0 || setenv("CARVEOUT_VFIO_DEVICE_FD", "3", 1) < 0) {
			perror("carveout_vfio: dup2");
			_exit(2);
		}
		execvp(argv[4], argv + 4);
		fprintf(stderr, "carveout_vfio: %s: %s\n", argv[4], strerror(errno));
		_exit(2);
	}
	if (waitpid(pid, &status, 0) < 0) {
		perror("carveout_vfio: waitpid");
		return 2;
	}
	return WIFEXITED(status) ? WEXITSTATUS(status) : 2;
}
