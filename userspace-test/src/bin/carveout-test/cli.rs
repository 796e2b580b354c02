//! carveout-test's command line: the clap definition of its subcommands.

use carveout::parse_u64;
use clap::{Parser, Subcommand};

use crate::{files, pte, zerocopy};

#[derive(Parser)]
#[command(about = "Exercise a carveout region from userspace")]
pub struct Cli {
    /// The region's device node.
    #[arg(long, default_value = "/dev/carveout0")]
    pub dev: String,
    /// Drop to UID:GID[:GROUP,...] (supplementary groups) before opening the device.
    #[arg(long, value_name = "UID:GID[:GROUPS]")]
    pub as_user: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Print what CARVEOUT_GET_INFO reports.
    Info,
    /// Write the pattern for SEED through a mapping of the whole region.
    Fill {
        #[arg(long, value_parser = parse_u64)]
        seed: u64,
    },
    /// Check the region against the pattern for SEED.
    Verify {
        #[arg(long, value_parser = parse_u64)]
        seed: u64,
        /// Read through /dev/mem at the physical address instead of a mapping.
        #[arg(long)]
        devmem: bool,
    },
    /// Fill through a mapping, read back through it, then through /dev/mem.
    Roundtrip {
        #[arg(long, value_parser = parse_u64)]
        seed: u64,
    },
    /// Check that mappings outside the region, or private ones, are refused.
    MmapBounds,
    /// Check that a pages-mode region of large folios (pages_align) maps whole folios only:
    /// offsets, lengths and addresses off a folio boundary refused (EINVAL), no part of a folio
    /// unmapped or mprotected; sysfs pages_in_use counts the pages of every folio mapped.
    FolioMaps,
    /// Map the whole region, close the device, and keep the mapping for SECONDS.
    Hold {
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Map it read-only (the only way a write-protected region maps).
        #[arg(long)]
        read_only: bool,
    },
    /// Map LEN bytes from the region's start, hand them to a pipe with vmsplice (the pipe then
    /// holds references to their pages: only a region with struct pages, pages mode, allows it;
    /// a PFN mapping fails EFAULT), unmap them, close the device, say "holding", and keep the
    /// pipe unread for SECONDS.
    PinHold {
        #[arg(long, value_parser = parse_u64, default_value = "0x10000")]
        len: u64,
        #[arg(long, default_value_t = 60)]
        seconds: u64,
    },
    /// Print the attribute and flags CARVEOUT_GET_ATTR reports.
    AttrGet,
    /// Set the cache attribute: uc, wc, wt, wb or wp (or a raw flags word with --raw).
    AttrSet {
        name: String,
        /// NAME is a number, sent as the flags word as it is.
        #[arg(long)]
        raw: bool,
        /// Send this in `__pad0` (the ABI asks for zero: a test of the refusal).
        #[arg(long, value_parser = parse_u64, default_value = "0")]
        pad0: u64,
        /// Send this in `base` (the ABI asks for zero).
        #[arg(long, value_parser = parse_u64, default_value = "0")]
        base: u64,
        /// Send this in `len` (the ABI asks for zero).
        #[arg(long, value_parser = parse_u64, default_value = "0")]
        len: u64,
        /// Send this in `owner`, up to 8 bytes (the ABI asks for zero).
        #[arg(long, default_value = "")]
        owner: String,
    },
    /// Map the region (or LEN bytes at OFFSET) placed as asked, touch every page, read this
    /// process's page tables (/sys/kernel/debug/page_tables/current_kernel) and check that
    /// every entry covering the mapping selects ATTR's memory type through the PAT (and, with
    /// --level, is at that level). Read-only for ATTR wp.
    Pte(pte::PteArgs),
    /// Map LEN bytes of physical memory at PHYS through /dev/mem (O_SYNC with --sync: the
    /// kernel records uncached-minus for the range), touch it, say "holding", keep it.
    DevmemHold {
        #[arg(long, value_parser = parse_u64)]
        phys: u64,
        #[arg(long, value_parser = parse_u64)]
        len: u64,
        #[arg(long)]
        sync: bool,
        #[arg(long, default_value_t = 120)]
        seconds: u64,
    },
    /// Check that a write-protected region refuses writable mappings and maps read-only.
    WpCheck,
    /// CARVEOUT_ATTACH of DEVICE with the NTH fault-injection point the call reaches failing
    /// (/proc/thread-self/fail-nth; needs CONFIG_FAULT_INJECTION, and failslab told to fail
    /// sleeping allocations too). Prints "attached BUS" or the errno, then "injected" when the
    /// fault was injected or "not-injected" when the call reached fewer than NTH points.
    AttachFailNth {
        device: String,
        #[arg(long)]
        nth: u32,
        #[arg(long)]
        reach_bits: Option<u32>,
    },
    /// CARVEOUT_ATTACH then CARVEOUT_DETACH of DEVICE, ROUNDS times, pausing PAUSE_MS while
    /// attached: a race against the device's removal. An attach may find the device gone
    /// (ENODEV), a detach may find nothing attached (ENOENT); any other errno fails. Prints how
    /// many attaches succeeded, found the device gone, and were removed before their detach.
    AttachRounds {
        device: String,
        #[arg(long)]
        rounds: u32,
        #[arg(long)]
        reach_bits: Option<u32>,
        #[arg(long, default_value_t = 0)]
        pause_ms: u64,
    },
    /// Eat anonymous memory until an allocation fails or the OOM killer ends this process
    /// (which it prefers: oom_score_adj 1000). Prints how far it got.
    Hog {
        /// Stop after this many MiB (default: no limit).
        #[arg(long)]
        max_mib: Option<u64>,
    },
    /// The region as a file: read, write, pread/pwrite, readv/writev and lseek, checked
    /// through a mapping and /dev/mem.
    File {
        #[command(subcommand)]
        check: files::FileCheck,
    },
    /// Zero copy with a mapping of a pages-mode region as the buffer (issue 22): O_DIRECT,
    /// io_uring's registered buffers, vmsplice, against a block device; checked through
    /// /dev/mem.
    Zerocopy {
        #[command(subcommand)]
        check: zerocopy::ZeroCopyCheck,
    },
    /// Send CARVEOUT_SYNC as given, with any direction and __pad0 (bad input included), and
    /// print "ok" or the errno's name (exit 0 either way; 2 if the ioctl cannot be sent).
    SyncRaw {
        #[arg(long, value_parser = parse_u64)]
        offset: u64,
        #[arg(long, value_parser = parse_u64)]
        len: u64,
        #[arg(long, value_parser = parse_u64)]
        direction: u64,
        #[arg(long, value_parser = parse_u64, default_value = "0")]
        pad0: u64,
    },
    /// Check physical memory at PHYS against the pattern through /dev/mem (no region needed).
    DevmemVerify {
        #[arg(long, value_parser = parse_u64)]
        phys: u64,
        #[arg(long, value_parser = parse_u64)]
        len: u64,
        #[arg(long, value_parser = parse_u64)]
        seed: u64,
    },
    /// Check that standard input is exactly one JSON value (busybox has no jq); with
    /// --has POINTER[=VALUE], that it holds POINTER (a JSON pointer: /op, /regions/0/path),
    /// equal to VALUE when given (a string's text, or the JSON text of anything else).
    JsonCheck {
        #[arg(long, value_name = "POINTER[=VALUE]")]
        has: Vec<String>,
    },
}
