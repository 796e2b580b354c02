# SPDX-License-Identifier: GPL-2.0
# carveout: build the module, run it in QEMU, test it.
#
#   make            build carveout.ko against KDIR (default: the project's test kernel)
#   make run        boot the QEMU guest and show the region in use
#   make test       the whole QEMU test suite; ends with "N passed, N failed"
#   make clean
#
# A kernel of your own: make KDIR=/lib/modules/$(uname -r)/build

SHELL := /bin/bash
ROOT := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
export LIBCLANG_PATH ?= /usr/lib/llvm-19/lib

# The project's test kernel, built (once) on first use.
ifeq ($(origin KDIR),undefined)
KDIR = $(shell $(ROOT)/scripts/build-kernel.sh)
KDIR_DEPS := setup
endif

.PHONY: all modules setup kernel clean run test bench clippy fmt check-fmt lint

all: modules

setup:
	@$(ROOT)/scripts/setup-host.sh

kernel: setup
	@$(ROOT)/scripts/build-kernel.sh

modules: $(KDIR_DEPS)
	$(MAKE) -C "$(KDIR)" M="$(ROOT)" LLVM= modules

clippy: $(KDIR_DEPS)
	$(MAKE) -C "$(KDIR)" M="$(ROOT)" CLIPPY=1 modules

fmt: $(KDIR_DEPS)
	rustfmt --edition 2021 --config-path "$$(cat $(ROOT)/.kdir-src 2>/dev/null || echo .)" $(ROOT)/rust/*.rs

run: setup
	@$(ROOT)/qemu/run.sh demo

test: setup
	@$(ROOT)/qemu/run.sh test

clean:
	-$(MAKE) -C "$(KDIR)" M="$(ROOT)" clean 2>/dev/null
	rm -rf $(ROOT)/build
