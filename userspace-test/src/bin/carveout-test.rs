//! carveout-test: the guest-side test tool for `/dev/carveout*`.
//!
//! Exit status: 0 when the check holds, 1 when it does not, 2 on a usage or system error.

use std::{io, process::ExitCode};

#[path = "carveout-test/files.rs"]
mod files;
#[path = "carveout-test/zerocopy.rs"]
mod zerocopy;

use carveout::parse_u64;
use carveout::{
    abi, devmem,
    memmap::format_size,
    pattern,
    ptdump::{self, Level, MemType, PatTable},
    Access, Attr, Mismatch, Placement, Region,
};
use clap::{Parser, Subcommand};
use rustix::{
    fs::{open, Mode, OFlags},
    io::Errno,
    mm::{mmap, mmap_anonymous, MapFlags, ProtFlags},
};

#[derive(Parser)]
#[command(about = "Exercise a carveout region from userspace")]
struct Cli {
    /// The region's device node.
    #[arg(long, default_value = "/dev/carveout0")]
    dev: String,
    /// Drop to UID:GID[:GROUP,...] (supplementary groups) before opening the device.
    #[arg(long, value_name = "UID:GID[:GROUPS]")]
    as_user: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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
    Pte {
        /// The attribute the region was given (uc, wc, wt, wb or wp): the type expected,
        /// whatever CARVEOUT_GET_ATTR says.
        #[arg(long)]
        attr: Attr,
        #[arg(long, value_enum, default_value = "huge")]
        placement: Placement,
        #[arg(long, value_parser = parse_u64, default_value = "0")]
        offset: u64,
        /// Bytes to map (default: the region from OFFSET to its end).
        #[arg(long, value_parser = parse_u64)]
        len: Option<u64>,
        /// Every entry must be at this level: pte (4 KiB), pmd (2 MiB) or pud (1 GiB).
        #[arg(long)]
        level: Option<Level>,
        /// The PAT layout, as dmesg's "x86/PAT: Configuration [0-7]:" line gives it (default:
        /// Linux's, WB WC UC- UC WB WP UC- WT).
        #[arg(long)]
        pat: Option<String>,
        /// Touch by writing each page's first byte back too (default: by reading it).
        #[arg(long)]
        write: bool,
        /// After the check, print "holding" and keep the mapping for SECONDS.
        #[arg(long)]
        hold: Option<u64>,
        /// Write the pattern for SEED's word at the start of every MiB of the mapping (and its
        /// last word) through the mapping, and check them through /dev/mem once it is gone.
        #[arg(long, value_parser = parse_u64)]
        stamp: Option<u64>,
    },
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

/// A check that did not hold.
struct Failed(String);

/// Becomes the user `spec` names (`uid:gid[:g1,g2]`), as an unprivileged caller would be.
/// The program is single-threaded here, so the per-thread calls change the whole process.
fn become_user(spec: &str) -> io::Result<()> {
    use rustix::thread::{set_thread_gid, set_thread_groups, set_thread_uid};
    let bad = || io::Error::other(format!("{spec:?} is not UID:GID[:GROUPS]"));
    let number = |s: &str| s.parse::<u32>().map_err(|_| bad());
    let mut parts = spec.split(':');
    let uid = number(parts.next().ok_or_else(bad)?)?;
    let gid = number(parts.next().ok_or_else(bad)?)?;
    let groups = match parts.next() {
        Some(list) if !list.is_empty() => list
            .split(',')
            .map(|g| number(g).map(rustix::fs::Gid::from_raw))
            .collect::<io::Result<Vec<_>>>()?,
        _ => Vec::new(),
    };
    set_thread_groups(&groups)?;
    set_thread_gid(rustix::fs::Gid::from_raw(gid))?;
    set_thread_uid(rustix::fs::Uid::from_raw(uid))?;
    Ok(())
}

/// `text` is one JSON value holding every `POINTER[=VALUE]` of `has`.
fn json_check(text: &str, has: &[String]) -> Result<(), Failed> {
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|err| Failed(format!("not one JSON value ({err}): {text:?}")))?;
    for want in has {
        let (pointer, expected) = match want.split_once('=') {
            Some((p, v)) => (p, Some(v)),
            None => (want.as_str(), None),
        };
        let found = value
            .pointer(pointer)
            .ok_or_else(|| Failed(format!("no {pointer} in {value}")))?;
        let found_text = match found {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        if let Some(expected) = expected.filter(|e| *e != found_text) {
            return Err(Failed(format!("{pointer} is {found}, expected {expected}")));
        }
    }
    Ok(())
}

fn run(cli: &Cli) -> io::Result<Result<(), Failed>> {
    if let Some(user) = &cli.as_user {
        become_user(user)?;
    }
    if let Command::Hog { max_mib } = cli.command {
        return hog(max_mib.unwrap_or(u64::MAX)).map(Ok);
    }
    if let Command::JsonCheck { has } = &cli.command {
        let mut text = String::new();
        io::Read::read_to_string(&mut io::stdin(), &mut text)?;
        return Ok(json_check(&text, has));
    }
    if let Command::DevmemVerify { phys, len, seed } = cli.command {
        return Ok(devmem::verify(phys, len, seed)?.map_err(|m| mismatch("/dev/mem", m)));
    }
    if let Command::DevmemHold {
        phys,
        len,
        sync,
        seconds,
    } = cli.command
    {
        return devmem_hold(phys, len, sync, seconds).map(Ok);
    }
    if let Command::File { check } = &cli.command {
        return files::run(&cli.dev, check);
    }
    if let Command::Zerocopy { check } = &cli.command {
        return zerocopy::run(&cli.dev, check);
    }
    let region = Region::open(&cli.dev)?;
    let info = region.info()?;
    let whole = 0..info.size;
    Ok(match cli.command {
        Command::Info => {
            println!(
                "base={:#x} size={:#x} flags={:#x} name={}",
                info.base,
                info.size,
                info.flags,
                info.name()
            );
            Ok(())
        }
        Command::Fill { seed } => {
            region
                .map(whole, Access::ReadWrite)?
                .fill_pattern(seed, |_| ());
            Ok(())
        }
        Command::Verify { seed, devmem } => {
            let result = if devmem {
                devmem::verify(info.base, info.size, seed)?
            } else {
                region
                    .map(whole, Access::Read)?
                    .verify_pattern(seed, |_| ())
            };
            result.map_err(|m| mismatch(if devmem { "/dev/mem" } else { "mapping" }, m))
        }
        Command::Roundtrip { seed } => {
            let mapping = region.map(whole, Access::ReadWrite)?;
            mapping.fill_pattern(seed, |_| ());
            match mapping.verify_pattern(seed, |_| ()) {
                Err(m) => Err(mismatch("mapping", m)),
                Ok(()) => {
                    devmem::verify(info.base, info.size, seed)?.map_err(|m| mismatch("/dev/mem", m))
                }
            }
        }
        Command::MmapBounds => mmap_bounds(&region, info.size),
        Command::Hold { seconds, read_only } => {
            let access = if read_only {
                Access::Read
            } else {
                Access::ReadWrite
            };
            let mapping = region.map(whole, access)?;
            drop(region);
            println!("holding a {}-byte mapping, device closed", mapping.len());
            std::thread::sleep(std::time::Duration::from_secs(seconds));
            Ok(())
        }
        Command::PinHold { len, seconds } => {
            let mapping = region.map(0..len, Access::ReadWrite)?;
            let (_read_end, write_end) = rustix::pipe::pipe()?;
            let want = usize::try_from(len).map_err(|_| io::Error::other("length too large"))?;
            rustix::pipe::fcntl_setpipe_size(&write_end, want)?;
            // SAFETY: The slice only describes the mapping to vmsplice (an iovec); nothing reads
            // or writes the memory through it, and it ends before the mapping is unmapped.
            let bytes = unsafe { std::slice::from_raw_parts(mapping.as_ptr(), mapping.len()) };
            // SAFETY: The pipe is ours and unread; without SPLICE_F_GIFT the kernel takes its
            // own references to the pages, so unmapping them afterwards is sound.
            let spliced = unsafe {
                rustix::pipe::vmsplice(
                    &write_end,
                    &[rustix::pipe::IoSliceRaw::from_slice(bytes)],
                    rustix::pipe::SpliceFlags::empty(),
                )
            }?;
            drop(mapping);
            drop(region);
            println!(
                "holding {spliced} bytes of the region's pages in a pipe, unmapped, device closed"
            );
            std::thread::sleep(std::time::Duration::from_secs(seconds));
            Ok(())
        }
        Command::AttrGet => {
            let desc = region.range_desc()?;
            println!(
                "base={:#x} len={:#x} flags={:#x} attr={} busy={} owner={}",
                desc.base,
                desc.len,
                desc.flags,
                Attr::from_flags(desc.flags).map_or("?", Attr::name),
                u8::from(desc.flags & abi::MR_BUSY != 0),
                desc.owner()
            );
            Ok(())
        }
        Command::SyncRaw {
            offset,
            len,
            direction,
            pad0,
        } => {
            let field = |v: u64| {
                u32::try_from(v).map_err(|_| io::Error::other(format!("{v:#x} is not 32-bit")))
            };
            let req = abi::Sync {
                offset,
                len,
                direction: field(direction)?,
                pad0: field(pad0)?,
            };
            match region.sync_request(req) {
                Ok(()) => println!("ok"),
                Err(errno) => println!("{}", carveout::errno_name(errno)),
            }
            Ok(())
        }
        Command::AttrSet {
            ref name,
            raw,
            pad0,
            base,
            len,
            ref owner,
        } => {
            let flags = if raw {
                parse_u64(name)
                    .ok()
                    .and_then(|v| u32::try_from(v).ok())
                    .ok_or_else(|| io::Error::other(format!("{name:?} is not a 32-bit number")))?
            } else {
                name.parse::<Attr>().map_err(io::Error::other)?.bit()
            };
            let mut desc = abi::RangeDesc {
                base,
                len,
                flags,
                pad0: u32::try_from(pad0)
                    .map_err(|_| io::Error::other(format!("--pad0 {pad0:#x}: over 32 bits")))?,
                owner: [0; 8],
            };
            if owner.len() > desc.owner.len() {
                return Err(io::Error::other(format!("--owner {owner:?}: over 8 bytes")));
            }
            desc.owner[..owner.len()].copy_from_slice(owner.as_bytes());
            region.set_attr_desc(desc).map_err(|errno| {
                io::Error::other(format!(
                    "CARVEOUT_SET_ATTR {flags:#x} (base {base:#x}, len {len:#x}, __pad0 \
                     {pad0:#x}, owner {owner:?}): {}: {errno}",
                    carveout::errno_name(errno)
                ))
            })?;
            Ok(())
        }
        Command::Pte {
            attr,
            placement,
            offset,
            len,
            level,
            ref pat,
            write,
            hold,
            stamp,
        } => {
            let pat = match pat {
                Some(text) => PatTable::parse(text).map_err(io::Error::other)?,
                None => PatTable::LINUX,
            };
            let len = match len {
                Some(len) => len,
                None => info.size.checked_sub(offset).ok_or_else(|| {
                    io::Error::other(format!("offset {offset:#x} is beyond the region"))
                })?,
            };
            let check = Pte {
                attr,
                placement,
                offset,
                len,
                level,
                pat,
                write,
                stamp,
            };
            let (verdict, mapping) = check.run(&region, &info)?;
            if let Some(seconds) = hold {
                println!("holding the mapping");
                std::thread::sleep(std::time::Duration::from_secs(seconds));
            }
            let stamped = mapping.is_writable();
            drop(mapping);
            match (verdict, stamp) {
                (Ok(()), Some(seed)) if stamped => check.stamps_in_memory(&info, seed)?,
                (verdict, _) => verdict,
            }
        }
        Command::WpCheck => wp_check(&region, info.size),
        Command::AttachFailNth {
            ref device,
            nth,
            reach_bits,
        } => attach_fail_nth(&region, device, nth, reach_bits)?,
        Command::AttachRounds {
            ref device,
            rounds,
            reach_bits,
            pause_ms,
        } => attach_rounds(&region, device, rounds, reach_bits, pause_ms),
        Command::DevmemVerify { .. }
        | Command::DevmemHold { .. }
        | Command::Hog { .. }
        | Command::File { .. }
        | Command::Zerocopy { .. }
        | Command::JsonCheck { .. } => {
            unreachable!("handled above")
        }
    })
}

/// What `pte` maps and checks.
struct Pte {
    /// The attribute the caller set: the memory type every entry must select.
    attr: Attr,
    placement: Placement,
    offset: u64,
    len: u64,
    level: Option<Level>,
    pat: PatTable,
    write: bool,
    stamp: Option<u64>,
}

/// Bytes between two of `pte --stamp`'s words.
const STAMP_STEP: usize = 1 << 20;

impl Pte {
    /// Maps, touches and checks; the verdict, and the mapping (for `--hold`).
    fn run(
        &self,
        region: &Region,
        info: &abi::Info,
    ) -> io::Result<(Result<(), Failed>, carveout::Mapping)> {
        let attr = self.attr;
        // For the record only: the check does not depend on what the driver reports.
        let reported = region
            .attr()
            .map_or_else(|err| err.to_string(), |a| a.to_string());
        let access = if attr == Attr::Wp {
            Access::Read
        } else {
            Access::ReadWrite
        };
        let mapping = region.map_placed(self.offset, self.len, access, self.placement)?;
        for off in (0..mapping.len()).step_by(4096) {
            let byte = mapping.read_u8(off);
            if self.write && mapping.is_writable() {
                mapping.write_u8(off, byte);
            }
        }
        let start = mapping.as_ptr() as u64;
        let end = start + mapping.len() as u64;
        let phys = info.base + self.offset;
        println!(
            "# {:?} placement: {:#x} bytes of {} at {start:#x}-{end:#x} (physical {phys:#x}, \
             {}), attr {attr} (CARVEOUT_GET_ATTR: {reported}), PAT slots {}",
            self.placement,
            self.len,
            region.path().display(),
            if (start ^ phys) % (1 << 30) == 0 {
                "congruent modulo 1 GiB"
            } else if (start ^ phys) % (2 << 20) == 0 {
                "congruent modulo 2 MiB, not 1 GiB"
            } else {
                "not congruent modulo 2 MiB"
            },
            self.pat
        );
        let text = std::fs::read_to_string(ptdump::CURRENT)
            .map_err(|err| io::Error::new(err.kind(), format!("{}: {err}", ptdump::CURRENT)))?;
        let entries = ptdump::parse(&text).map_err(io::Error::other)?;
        // After the dump, so that the words' dirty pages do not split its lines.
        if let Some(seed) = self.stamp.filter(|_| mapping.is_writable()) {
            for off in self.stamp_offsets() {
                let word = pattern::word(seed, (self.offset + off as u64) / 8);
                mapping.write_u64(off, word);
            }
        }
        let verdict = match ptdump::covering(&entries, start, end) {
            Err(why) => Err(Failed(format!("the page tables: {why}"))),
            Ok(covering) => self.judge(attr, &covering),
        };
        Ok((verdict, mapping))
    }

    /// The mapping offsets `--stamp` writes a word at (8-aligned, inside the mapping).
    fn stamp_offsets(&self) -> impl Iterator<Item = usize> {
        let len = usize::try_from(self.len).unwrap_or(0) & !7;
        (0..len)
            .step_by(STAMP_STEP)
            .chain(len.checked_sub(8).filter(|&last| last % STAMP_STEP != 0))
    }

    /// The words `--stamp` wrote through the mapping, read through `/dev/mem` at the
    /// region's physical addresses (the mapping gone, so its memory type no longer holds the
    /// range).
    fn stamps_in_memory(&self, info: &abi::Info, seed: u64) -> io::Result<Result<(), Failed>> {
        let mut wrong = Vec::new();
        let mut count = 0;
        for off in self.stamp_offsets() {
            let offset = self.offset + off as u64;
            let mut buf = [0u8; 8];
            devmem::read(info.base + offset, &mut buf)?;
            let (want, got) = (pattern::word(seed, offset / 8), u64::from_ne_bytes(buf));
            if want != got {
                wrong.push(format!(
                    "{:#x}: {got:#018x}, not {want:#018x}",
                    info.base + offset
                ));
            }
            count += 1;
        }
        if wrong.is_empty() {
            println!("# /dev/mem holds the {count} words written through the mapping");
            Ok(Ok(()))
        } else {
            Ok(Err(Failed(format!(
                "/dev/mem: {} of {count} words written through the mapping differ: {}",
                wrong.len(),
                wrong.iter().take(4).cloned().collect::<Vec<_>>().join(", ")
            ))))
        }
    }

    /// Every entry must select one of the attribute's memory types and sit at the level
    /// asked for.
    fn judge(&self, attr: Attr, covering: &[ptdump::Entry]) -> Result<(), Failed> {
        let want = MemType::of_attr(attr);
        let mut wrong = Vec::new();
        for e in covering {
            let got = e.memtype(&self.pat);
            println!(
                "# {:#x}-{:#x} {:>6} {} {:<11} slot {} = {got}{}",
                e.start,
                e.end,
                format_size(e.end - e.start),
                e.level,
                e.cache_bits(),
                e.pat_index(),
                if e.pat_visible() {
                    ""
                } else {
                    " (the dump hides bit 12, the PAT bit of large entries: read as clear)"
                }
            );
            if !want.contains(&got) {
                wrong.push(format!(
                    "{:#x}-{:#x} ({}) selects {got}, not {attr}",
                    e.start, e.end, e.level
                ));
            }
            if self.level.is_some_and(|level| level != e.level) {
                wrong.push(format!(
                    "{:#x}-{:#x} is mapped by {} entries, expected {}",
                    e.start,
                    e.end,
                    e.level,
                    self.level.map_or("", Level::name)
                ));
            }
        }
        if wrong.is_empty() {
            println!(
                "# every entry covering the mapping selects {}",
                want.iter()
                    .map(|t| t.name())
                    .collect::<Vec<_>>()
                    .join(" or ")
            );
            Ok(())
        } else {
            Err(Failed(wrong.join("; ")))
        }
    }
}

/// Maps `len` bytes of physical memory at `phys` through `/dev/mem` (`O_SYNC` if `sync`),
/// touches every page, says so, and keeps the mapping for `seconds`.
fn devmem_hold(phys: u64, len: u64, sync: bool, seconds: u64) -> io::Result<()> {
    let mut flags = OFlags::RDWR | OFlags::CLOEXEC;
    if sync {
        flags |= OFlags::SYNC;
    }
    let fd = open("/dev/mem", flags, Mode::empty())?;
    let window = usize::try_from(len).map_err(io::Error::other)?;
    // SAFETY: A new mapping at an address the kernel picks aliases no Rust object; it is
    // never unmapped (the process ends holding it).
    let ptr = unsafe {
        mmap(
            std::ptr::null_mut(),
            window,
            ProtFlags::READ | ProtFlags::WRITE,
            MapFlags::SHARED,
            &fd,
            phys,
        )
    }
    .map_err(|errno| {
        io::Error::other(format!(
            "/dev/mem: mmap of {len:#x} bytes at {phys:#x}: {}: {errno}",
            carveout::errno_name(errno)
        ))
    })?;
    for off in (0..window).step_by(4096) {
        // SAFETY: `off` lies inside the mapping just made; volatile, as for device memory.
        unsafe { ptr.cast::<u8>().add(off).read_volatile() };
    }
    println!(
        "holding a {len:#x}-byte /dev/mem mapping of {phys:#x}{}",
        if sync { " (O_SYNC)" } else { "" }
    );
    std::thread::sleep(std::time::Duration::from_secs(seconds));
    Ok(())
}

fn mismatch(via: &str, m: Mismatch) -> Failed {
    Failed(format!(
        "{via}: {} words differ, the first at offset {:#x}",
        m.words, m.offset
    ))
}

/// Each refused mapping must fail with its documented errno; the last page must map.
fn mmap_bounds(region: &Region, size: u64) -> Result<(), Failed> {
    const PAGE: u64 = 4096;
    let rw = ProtFlags::READ | ProtFlags::WRITE;
    let cases: [(&str, u64, u64, MapFlags, &[Errno]); 6] = [
        (
            "offset at the end",
            size,
            PAGE,
            MapFlags::SHARED,
            &[Errno::NXIO],
        ),
        (
            "window past the end",
            size - PAGE,
            2 * PAGE,
            MapFlags::SHARED,
            &[Errno::NXIO],
        ),
        (
            "far beyond the end",
            1 << 40,
            PAGE,
            MapFlags::SHARED,
            &[Errno::NXIO],
        ),
        (
            "offset near 2^63",
            0x7fff_ffff_ffff_f000,
            2 * PAGE,
            MapFlags::SHARED,
            &[Errno::NXIO, Errno::OVERFLOW],
        ),
        (
            "offset + length wraps 2^64",
            0xffff_ffff_ffff_f000,
            2 * PAGE,
            MapFlags::SHARED,
            &[Errno::OVERFLOW, Errno::INVAL],
        ),
        (
            "private mapping",
            0,
            PAGE,
            MapFlags::PRIVATE,
            &[Errno::INVAL],
        ),
    ];
    for (what, offset, len, flags, expected) in cases {
        match region.map_raw(offset, len, rw, flags) {
            Ok(_) => return Err(Failed(format!("{what}: mapped, expected {expected:?}"))),
            Err(err) => {
                let errno = err.errno();
                if !errno.is_some_and(|e| expected.contains(&e)) {
                    return Err(Failed(format!("{what}: {err}, expected {expected:?}")));
                }
                println!("# {what}: refused with {err}");
            }
        }
    }
    region
        .map(size - PAGE..size, Access::ReadWrite)
        .map(drop)
        .map_err(|err| Failed(format!("the last page: {err}, expected it to map")))
}

/// Touches anonymous memory 1 MiB at a time until mmap fails, the OOM killer strikes, or
/// `max_mib` is reached.
fn hog(max_mib: u64) -> io::Result<()> {
    use std::io::Write;
    const MIB: usize = 1 << 20;
    std::fs::write("/proc/self/oom_score_adj", "1000")?;
    let mut chunks = Vec::new();
    let mut out = io::stdout();
    while (chunks.len() as u64) < max_mib {
        // SAFETY: a fresh anonymous mapping aliases nothing; it is never unmapped (the process
        // exits or is killed holding it).
        let chunk = match unsafe {
            mmap_anonymous(
                std::ptr::null_mut(),
                MIB,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::PRIVATE,
            )
        } {
            Ok(chunk) => chunk.cast::<u8>(),
            Err(err) => {
                println!("hog: allocation failed after {} MiB: {err}", chunks.len());
                return Ok(());
            }
        };
        for page in (0..MIB).step_by(4096) {
            // SAFETY: inside the mapping just made; volatile so the store is not elided.
            unsafe { chunk.add(page).write_volatile(1) };
        }
        chunks.push(chunk as usize);
        if chunks.len() % 16 == 0 {
            // One line per 16 MiB: the last one printed is how far it got before a kill.
            let _ = writeln!(out, "hog: {} MiB", chunks.len());
            let _ = out.flush();
        }
    }
    println!("hog: stopped at the limit of {max_mib} MiB");
    Ok(())
}

/// A write-protected region: a writable shared mapping is refused with EACCES, a read-only one
/// maps and reads, and mprotect cannot make it writable.
fn wp_check(region: &Region, size: u64) -> Result<(), Failed> {
    match region.map(0..size, Access::ReadWrite) {
        Ok(_) => return Err(Failed("a writable mapping of a WP region succeeded".into())),
        Err(err) if err.errno() == Some(Errno::ACCESS) => {
            println!("# writable mapping refused: {err}")
        }
        Err(err) => return Err(Failed(format!("writable mapping: {err}, expected EACCES"))),
    }
    let mapping = region
        .map(0..size, Access::Read)
        .map_err(|err| Failed(format!("read-only mapping: {err}")))?;
    println!("# read-only mapping reads {:#x}", mapping.read_u64(0));
    match mapping.protect(rustix::mm::MprotectFlags::READ | rustix::mm::MprotectFlags::WRITE) {
        Ok(()) => Err(Failed(
            "mprotect(PROT_WRITE) on a WP mapping succeeded".into(),
        )),
        Err(err) => {
            println!("# mprotect(PROT_WRITE) refused: {err}");
            Ok(())
        }
    }
}

/// [`Command::AttachFailNth`]: fail-nth is opened before it is armed, so that only the ioctl
/// counts towards it, and disarmed after.
fn attach_fail_nth(
    region: &Region,
    device: &str,
    nth: u32,
    reach_bits: Option<u32>,
) -> io::Result<Result<(), Failed>> {
    // (The outer Result is the system's, the inner the check's: this one has no check.)
    use std::os::unix::fs::FileExt;
    let fail_nth = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/proc/thread-self/fail-nth")?;
    fail_nth.write_at(nth.to_string().as_bytes(), 0)?;
    let result = region.attach(device, reach_bits);
    let mut left = [0u8; 16];
    let n = fail_nth.read_at(&mut left, 0)?;
    fail_nth.write_at(b"0", 0)?;
    let injected = std::str::from_utf8(&left[..n]).map(str::trim) == Ok("0");
    let injected = if injected { "injected" } else { "not-injected" };
    match result {
        Ok(attach) => println!("attached {:#x} {injected}", attach.bus_addr),
        Err(errno) => println!("{} {injected}", carveout::errno_name(errno)),
    }
    Ok(Ok(()))
}

/// [`Command::AttachRounds`].
fn attach_rounds(
    region: &Region,
    device: &str,
    rounds: u32,
    reach_bits: Option<u32>,
    pause_ms: u64,
) -> Result<(), Failed> {
    let (mut attached, mut gone, mut removed) = (0u32, 0u32, 0u32);
    for round in 1..=rounds {
        match region.attach(device, reach_bits) {
            Ok(_) => attached += 1,
            Err(Errno::NODEV) => gone += 1,
            Err(errno) => {
                return Err(Failed(format!(
                    "round {round}: attach: {}",
                    carveout::errno_name(errno)
                )))
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(pause_ms));
        if region.bus_addr(device) == Err(Errno::NODEV) {
            removed += 1;
        }
        match region.detach(device) {
            Ok(()) | Err(Errno::NOENT) => {}
            Err(errno) => {
                return Err(Failed(format!(
                    "round {round}: detach: {}",
                    carveout::errno_name(errno)
                )))
            }
        }
    }
    println!("{attached} attached, {gone} found the device gone, {removed} removed while attached");
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(Failed(why))) => {
            eprintln!("carveout-test: {why}");
            ExitCode::from(1)
        }
        Err(err) => {
            eprintln!("carveout-test: {err}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_check_wants_one_value_and_the_keys_asked_for() {
        let failure = r#"{"op":"attr set","errno":16,"error":"EBUSY","reason":"mapped"}"#;
        let has = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(json_check(failure, &has(&["/op=attr set", "/errno=16", "/reason"])).is_ok());
        assert!(json_check(failure, &has(&["/errno=22"])).is_err());
        assert!(json_check(failure, &has(&["/path"])).is_err());
        assert!(json_check(
            r#"{"regions":[{"path":"/dev/carveout0"}]}"#,
            &has(&["/regions/0/path=/dev/carveout0"])
        )
        .is_ok());
        // Text around the value, two values, or nothing: not what carveoutctl --json promises.
        assert!(json_check("carveoutctl: oops\n{}", &[]).is_err());
        assert!(json_check("{}\n{}\n", &[]).is_err());
        assert!(json_check("", &[]).is_err());
        assert!(json_check("{\"a\":true}\n", &has(&["/a=true"])).is_ok());
    }
}
