# SPDX-License-Identifier: GPL-2.0
# carveout: build the module, run it in QEMU, test it.
#
#   make              build carveout.ko against KDIR (default: the project's test kernel)
#   make run          boot the QEMU guest with a reservation and show the region in use
#   make test         the QEMU test suite: KTAP, ending "N passed, N failed"
#   make test-debug   the same suite on a debug kernel (lockdep, KASAN, DEBUG_VM, ...; clang)
#   make lint         clippy with the kernel's settings, rustfmt, shellcheck
#   make clean
#
# Your own Rust-enabled kernel: make KDIR=/lib/modules/$(uname -r)/build
# Everything downloaded or built outside this tree goes to $CARVEOUT_CACHE
# (default ~/.cache/carveout).

SHELL := /bin/bash
ROOT := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
SCRIPTS := $(ROOT)/scripts

.PHONY: all modules clippy setup kernel kernel-debug run test test-debug fmt check-fmt shellcheck lint clean

all: modules

setup:
	@$(SCRIPTS)/setup-host.sh

kernel: setup
	@$(SCRIPTS)/build-kernel.sh

# The debug kernel: the test kernel's fragment plus qemu/kernel-debug.config, built with
# clang (KASAN with Rust needs it). Its guest is several times slower: 20 minutes at most.
DEBUG_FRAGMENTS := $(ROOT)/qemu/kernel.config $(ROOT)/qemu/kernel-debug.config

kernel-debug: setup
	@CARVEOUT_LLVM=1 $(SCRIPTS)/build-kernel.sh $(DEBUG_FRAGMENTS)

ifeq ($(origin KDIR),undefined)
# No KDIR: build (once) and use the project's test kernel.
modules clippy: setup
	@$(MAKE) --no-print-directory $@ KDIR="$$($(SCRIPTS)/build-kernel.sh)"
else
modules:
	$(MAKE) -C "$(KDIR)" M="$(ROOT)" modules

clippy:
	$(MAKE) -C "$(KDIR)" M="$(ROOT)" CLIPPY=1 modules
endif

run: setup
	@$(ROOT)/qemu/run.sh demo

test: setup
	@$(ROOT)/qemu/run.sh test

test-debug: setup
	@kdir=$$(CARVEOUT_LLVM=1 $(SCRIPTS)/build-kernel.sh $(DEBUG_FRAGMENTS)) && \
		CARVEOUT_KDIR="$$kdir" CARVEOUT_TIMEOUT="$${CARVEOUT_TIMEOUT:-1200}" \
		$(ROOT)/qemu/run.sh test

# rustfmt with the kernel's own settings.
RUSTFMT = rustfmt --edition 2021 --config-path "$$($(SCRIPTS)/fetch-kernel.sh)/.rustfmt.toml"

fmt: setup
	$(RUSTFMT) $(ROOT)/rust/carveout.rs
	cd $(ROOT)/userspace-test && cargo fmt

check-fmt: setup
	$(RUSTFMT) --check $(ROOT)/rust/carveout.rs
	cd $(ROOT)/userspace-test && cargo fmt --check

shellcheck:
	shellcheck -x $(SCRIPTS)/*.sh $(ROOT)/qemu/*.sh $(ROOT)/.ci/run
	cd $(ROOT) && shellcheck -x -s sh qemu/guest/init qemu/guest/*.sh

lint: clippy check-fmt shellcheck

clean:
	rm -rf $(ROOT)/build
	rm -f $(ROOT)/*.ko $(ROOT)/*.o $(ROOT)/*.mod $(ROOT)/*.mod.c $(ROOT)/.*.cmd \
		$(ROOT)/Module.symvers $(ROOT)/modules.order \
		$(ROOT)/rust/*.o $(ROOT)/rust/.*.cmd
