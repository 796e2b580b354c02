//! carveout-test: the guest-side test tool for `/dev/carveout*`.
//!
//! Exit status: 0 when the check holds, 1 when it does not, 2 on a usage or system error.

use std::{io, process::ExitCode};

use carveout::parse_u64;
use carveout::{abi, devmem, Access, Attr, Mismatch, Region};
use clap::{Parser, Subcommand};
use rustix::{
    io::Errno,
    mm::{mmap_anonymous, MapFlags, ProtFlags},
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
    /// Print the attribute and flags CARVEOUT_GET_ATTR reports.
    AttrGet,
    /// Set the cache attribute: uc, wc, wt, wb or wp (or a raw flags word with --raw).
    AttrSet {
        name: String,
        /// NAME is a number, sent as the flags word as it is.
        #[arg(long)]
        raw: bool,
    },
    /// Check that a write-protected region refuses writable mappings and maps read-only.
    WpCheck,
    /// Eat anonymous memory until an allocation fails or the OOM killer ends this process
    /// (which it prefers: oom_score_adj 1000). Prints how far it got.
    Hog {
        /// Stop after this many MiB (default: no limit).
        #[arg(long)]
        max_mib: Option<u64>,
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

fn run(cli: &Cli) -> io::Result<Result<(), Failed>> {
    if let Some(user) = &cli.as_user {
        become_user(user)?;
    }
    if let Command::Hog { max_mib } = cli.command {
        return hog(max_mib.unwrap_or(u64::MAX)).map(Ok);
    }
    if let Command::DevmemVerify { phys, len, seed } = cli.command {
        return Ok(devmem::verify(phys, len, seed)?.map_err(|m| mismatch("/dev/mem", m)));
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
        Command::AttrSet { ref name, raw } => {
            let flags = if raw {
                parse_u64(name)
                    .ok()
                    .and_then(|v| u32::try_from(v).ok())
                    .ok_or_else(|| io::Error::other(format!("{name:?} is not a 32-bit number")))?
            } else {
                name.parse::<Attr>().map_err(io::Error::other)?.bit()
            };
            region.set_attr_flags(flags).map_err(|errno| {
                io::Error::other(format!("CARVEOUT_SET_ATTR {flags:#x}: {errno}"))
            })?;
            Ok(())
        }
        Command::WpCheck => wp_check(&region, info.size),
        Command::DevmemVerify { .. } | Command::Hog { .. } => unreachable!("handled above"),
    })
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
