// SPDX-License-Identifier: GPL-2.0
/*
 * host-tsc-khz: prints the host's TSC frequency in kHz, for the QEMU guests' tsc_early_khz=.
 *
 * Under TCG without -icount a guest's rdtsc returns the host's TSC (plus an offset), so the
 * guest's TSC runs at exactly the host's rate. The guest kernel would otherwise calibrate it
 * against QEMU's PIT and HPET, which follow the host's clock: each time the host deschedules
 * QEMU's vCPU thread the guest sees both jump, the calibration is thrown off or refused
 * ("tsc: Fast TSC calibration failed", "tsc: Unable to calibrate against PIT"), and the boot
 * depends on how loaded the host is.
 *
 * The TSC is read between two CLOCK_MONOTONIC_RAW reads, twice, 200 ms apart; of many tries
 * at each end the one with the narrowest bracket counts, so a preemption (which widens the
 * bracket) does not. Exit status 1, and nothing printed, when the CPU does not say its TSC
 * is invariant (CPUID 0x80000007 EDX bit 8): then the TSC's rate is no constant to hand on.
 */
#include <cpuid.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>
#include <x86intrin.h>

#define TRIES 200
/* A bracket wider than this was disturbed (preempted, migrated): the sample is refused. */
#define MAX_BRACKET_NS 20000

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_RAW, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* One TSC reading and the time it was taken; 0 when every try was disturbed. */
static int sample(uint64_t *tsc, uint64_t *ns)
{
	uint64_t best = MAX_BRACKET_NS;
	int found = 0;

	for (int i = 0; i < TRIES; i++) {
		uint64_t before = now_ns();
		uint64_t t = __rdtsc();
		uint64_t after = now_ns();

		if (after - before < best) {
			best = after - before;
			*tsc = t;
			*ns = before + (after - before) / 2;
			found = 1;
		}
	}
	return found;
}

int main(void)
{
	unsigned int eax, ebx, ecx, edx;
	uint64_t tsc0, ns0, tsc1, ns1;
	struct timespec pause = { .tv_sec = 0, .tv_nsec = 200000000 };

	if (!__get_cpuid(0x80000007, &eax, &ebx, &ecx, &edx) || !(edx & (1u << 8))) {
		fprintf(stderr, "host-tsc-khz: the TSC is not invariant\n");
		return 1;
	}
	if (!sample(&tsc0, &ns0))
		return 1;
	nanosleep(&pause, NULL);
	if (!sample(&tsc1, &ns1) || ns1 <= ns0)
		return 1;
	printf("%llu\n", (unsigned long long)((tsc1 - tsc0) * 1000000.0 / (double)(ns1 - ns0) + 0.5));
	return 0;
}
