# SPDX-License-Identifier: GPL-2.0
# carveout: build the module, run it in QEMU, test it.
#
#   make              build carveout.ko against KDIR (default: the project's test kernel)
#   make run          boot the QEMU guest with a reservation and show the region in use
#   make test         the QEMU test suite: KTAP, ending "N passed, N failed[, N skipped]"
#   make bench        carveout against anonymous memory and /dev/mem: bench/results.{json,md}
#   make test-debug   the same suite on a debug kernel (lockdep, KASAN, DEBUG_VM, ...; clang)
#   make lint         clippy with the kernel's settings, rustfmt, shellcheck
#   make install      build and install carveout.ko for KDIR (default: the running kernel),
#                     depmod, the udev rule, the modprobe.d example, carveout.h, and carveoutctl
#                     with its man page and bash/zsh/fish completions (install-tools)
#   make uninstall    remove exactly what make install put in place (its manifest), depmod
#   make tools        build carveoutctl (release); as yourself, before a sudo make install
#   make install-tools  only carveoutctl, its man page and completions
#   make dkms-source  the module's sources and dkms.conf to /usr/src/carveout-VERSION, then
#                     the same udev rule, modprobe.d example and header
#   make check-kernel whether KDIR can build carveout (CONFIG_RUST, Rust build files, rustc)
#   make sign KEY=key.pem CERT=cert.der   sign carveout.ko (Secure Boot, module.sig_enforce)
#                     with the kernel's scripts/sign-file; make install KEY=… CERT=… signs what
#                     it installs
#   make clean
#
# Your own Rust-enabled kernel: make KDIR=/lib/modules/$(uname -r)/build (Debian's stock kernel
# too: the Rust build files its headers lack are made once, scripts/debian-stock-kdir.sh).
# Install into a scratch root: make install DESTDIR=/tmp/root (modules: INSTALL_MOD_PATH,
# default DESTDIR). RUSTC=/path/to/rustc picks the kernel's compiler if it is not in PATH
# (BINDGEN=… its bindgen).
# Everything downloaded or built outside this tree goes to $CARVEOUT_CACHE
# (default ~/.cache/carveout).

SHELL := /bin/bash
ROOT := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
SCRIPTS := $(ROOT)/scripts
# rustup's tools, as in scripts/common.sh: DKMS builds run as root, often without them in PATH.
export PATH := $(HOME)/.cargo/bin:$(PATH)

.PHONY: all modules clippy setup kernel run test test-debug bench kernel-debug fmt check-fmt shellcheck lint clean \
	check-kernel install install-files install-tools tools uninstall dkms-source sign

VERSION := $(shell sed -n 's/^PACKAGE_VERSION="\(.*\)"/\1/p' $(ROOT)/dkms.conf)
DESTDIR ?=
INSTALL_MOD_PATH ?= $(DESTDIR)
PREFIX ?= /usr/local
# Only handed to the kernel's make when given: the kernel has its own default (versioned
# compilers: RUSTC=rustc-1.xx BINDGEN=bindgen-0.xx on Ubuntu).
KMAKE_RUSTC = $(if $(RUSTC),RUSTC="$(RUSTC)") $(if $(BINDGEN),BINDGEN="$(BINDGEN)")

all: modules

setup:
	@$(SCRIPTS)/setup-host.sh

kernel: setup
	@$(SCRIPTS)/build-kernel.sh

# The debug kernel: the test kernel's fragment plus qemu/kernel-debug.config, built with
# clang (KASAN with Rust needs it). Its guests are several times slower (about 20 and 5
# minutes): 40 minutes at most.
DEBUG_FRAGMENTS := $(ROOT)/qemu/kernel.config $(ROOT)/qemu/kernel-debug.config

kernel-debug: setup
	@CARVEOUT_LLVM=1 $(SCRIPTS)/build-kernel.sh $(DEBUG_FRAGMENTS)

ifeq ($(origin KDIR),undefined)
# No KDIR: build (once) and use the project's test kernel; install (and sign) for the running
# kernel.
modules clippy check-kernel: setup
	@$(MAKE) --no-print-directory $@ KDIR="$$($(SCRIPTS)/build-kernel.sh)"

install sign:
	@$(MAKE) --no-print-directory $@ KDIR="/lib/modules/$$(uname -r)/build"
else
check-kernel:
	@$(SCRIPTS)/check-kernel.sh "$(KDIR)"

# The kernel's make, through scripts/kmake.sh: for Debian's stock headers (Rust kernel, no Rust
# build files) it first makes them (scripts/debian-stock-kdir.sh) and builds with the kernel's
# own compilers.
KMAKE = MAKE="$(MAKE)" $(SCRIPTS)/kmake.sh "$(KDIR)" M="$(ROOT)" $(KMAKE_RUSTC)

modules: check-kernel
	+@$(KMAKE) modules

clippy: check-kernel
	+@$(KMAKE) CLIPPY=1 modules

# modules_install puts carveout.ko in lib/modules/RELEASE/updates; the kernel runs depmod
# only with a System.map, which headers packages lack: then depmod runs here. Everything
# installed is listed in the install manifest, for make uninstall (scripts/manifest.sh).
# One step after the other: they share the manifest. With KEY and CERT the module is signed
# first (make sign).
install: modules
	$(if $(KEY)$(CERT),@$(SCRIPTS)/sign-module.sh "$(KDIR)" "$(KEY)" "$(CERT)" "$(ROOT)/carveout.ko")
	@DESTDIR="$(DESTDIR)" PREFIX="$(PREFIX)" $(SCRIPTS)/install-files.sh
	@DESTDIR="$(DESTDIR)" PREFIX="$(PREFIX)" $(SCRIPTS)/install-tools.sh
	+@INSTALL_MOD_PATH="$(INSTALL_MOD_PATH)" DESTDIR="$(DESTDIR)" PREFIX="$(PREFIX)" \
		MAKE="$(MAKE)" $(SCRIPTS)/install-module.sh "$(KDIR)"

# The module signed with KEY (a PEM file or a pkcs11: URI) and its certificate CERT: the key
# enrolled with `mokutil --import CERT` (README, "Secure Boot"), or the kernel's own.
# SIGN_MODULE: another copy of the module to sign (the tests sign copies).
SIGN_MODULE ?= $(ROOT)/carveout.ko
sign: modules
	@$(SCRIPTS)/sign-module.sh "$(KDIR)" "$(KEY)" "$(CERT)" "$(SIGN_MODULE)"
endif

# The udev rule, the modprobe.d example and the userspace header (scripts/install-files.sh).
install-files:
	@DESTDIR="$(DESTDIR)" PREFIX="$(PREFIX)" $(SCRIPTS)/install-files.sh

# carveoutctl, release build, to $(PREFIX)/bin; its man page and completions, generated from
# its clap definition (scripts/install-tools.sh).
tools:
	cd $(ROOT)/userspace-test && cargo build --release --locked --bin carveoutctl

install-tools:
	@DESTDIR="$(DESTDIR)" PREFIX="$(PREFIX)" $(SCRIPTS)/install-tools.sh

# Everything make install (and install-tools, dkms-source's files) recorded; same DESTDIR and
# PREFIX as the install.
uninstall:
	@DESTDIR="$(DESTDIR)" PREFIX="$(PREFIX)" $(SCRIPTS)/uninstall.sh

# What DKMS builds from: the module's sources, its Makefile and the kernel check.
DKMS_FILES := dkms.conf Kbuild Makefile include/carveout.h scripts/check-kernel.sh \
	scripts/common.sh scripts/kmake.sh scripts/debian-stock-kdir.sh $(patsubst $(ROOT)/%,%,$(wildcard $(ROOT)/rust/*.rs $(ROOT)/rust/*/*.rs \
	$(ROOT)/rust/*.c))
dkms-source: install-files
	rm -rf "$(DESTDIR)/usr/src/carveout-$(VERSION)"
	cd "$(ROOT)" && for f in $(DKMS_FILES); do \
		install -D -m 0644 "$$f" "$(DESTDIR)/usr/src/carveout-$(VERSION)/$$f" || exit 1; \
	done
	chmod 0755 "$(DESTDIR)/usr/src/carveout-$(VERSION)/scripts/"*.sh
	@echo "[carveout] sources in $(DESTDIR)/usr/src/carveout-$(VERSION); now: dkms install carveout/$(VERSION)"

run: setup
	@$(ROOT)/qemu/run.sh demo

test: setup
	@$(ROOT)/qemu/run.sh test

bench: setup
	@$(ROOT)/qemu/bench.sh

# The debug run stays within CI's time (docs/testing.md): the fuzzer at 30,000 operations
# (200,000 in make test), and these cases, which move the whole region through the same read,
# write, mapping and DMA paths quicker cases take there, left out (reported skipped): the
# whole-region copies, the uncached file I/O (attr_uc_maps and read_matches_mmap take its
# paths), two of the five attr_*_maps, the second mapping round trip and DMA direction (the
# IOMMU guest moves both), and memory pressure (the mm's, not the driver's).
DEBUG_FUZZ_OPS := 30000
DEBUG_LIGHT := cli_save_restore,dd_save_restore_roundtrip,cli_json_everywhere,cli_fill_verify
DEBUG_LIGHT := $(DEBUG_LIGHT),wp_region_write_refused,cli_restore_too_large_refused
DEBUG_LIGHT := $(DEBUG_LIGHT),uc_region_read_write,attr_wt_maps,attr_wc_maps,write_seen_in_mmap
DEBUG_LIGHT := $(DEBUG_LIGHT),mmap_roundtrip_c,edu_dma_to_carveout,survives_memory_pressure

test-debug: setup
	@kdir=$$(CARVEOUT_LLVM=1 $(SCRIPTS)/build-kernel.sh $(DEBUG_FRAGMENTS)) && \
		CARVEOUT_KDIR="$$kdir" CARVEOUT_TIMEOUT="$${CARVEOUT_TIMEOUT:-2400}" \
		CARVEOUT_GUEST_ARGS="cvt_fuzz_ops=$(DEBUG_FUZZ_OPS) cvt_light=$(DEBUG_LIGHT) $${CARVEOUT_GUEST_ARGS:-}" \
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
