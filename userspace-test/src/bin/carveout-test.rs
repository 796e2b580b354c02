//! carveout-test: the guest-side test tool for `/dev/carveout*`.
//!
//! Exit status: 0 when the check holds, 1 when it does not, 2 on a usage or system error.

use std::{io, process::ExitCode};

use carveout::{devmem, Mismatch, Region};
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
    },
    /// Eat anonymous memory until an allocation fails or the OOM killer ends this process
    /// (which it prefers: oom_score_adj 1000). Prints how far it got.
    Hog {
        /// Stop after this many MiB (default: no limit).
        #[arg(long)]
        max_mib: Option<u64>,
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

fn parse_u64(s: &str) -> Result<u64, String> {
    let parsed = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => s.parse(),
    };
    parsed.map_err(|err| format!("{s:?} is not a number: {err}"))
}

/// A check that did not hold.
struct Failed(String);

fn run(cli: &Cli) -> io::Result<Result<(), Failed>> {
    if let Command::Hog { max_mib } = cli.command {
        return hog(max_mib.unwrap_or(u64::MAX)).map(Ok);
    }
    if let Command::DevmemVerify { phys, len, seed } = cli.command {
        return Ok(devmem::verify(phys, len, seed)?.map_err(|m| mismatch("/dev/mem", m)));
    }
    let region = Region::open(&cli.dev)?;
    let info = region.info()?;
    let size = usize::try_from(info.size).map_err(io::Error::other)?;
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
            region.map(0, size)?.fill(seed);
            Ok(())
        }
        Command::Verify { seed, devmem } => {
            let result = if devmem {
                devmem::verify(info.base, info.size, seed)?
            } else {
                region.map(0, size)?.verify(seed)
            };
            result.map_err(|m| mismatch(if devmem { "/dev/mem" } else { "mapping" }, m))
        }
        Command::Roundtrip { seed } => {
            let mapping = region.map(0, size)?;
            mapping.fill(seed);
            match mapping.verify(seed) {
                Err(m) => Err(mismatch("mapping", m)),
                Ok(()) => {
                    devmem::verify(info.base, info.size, seed)?.map_err(|m| mismatch("/dev/mem", m))
                }
            }
        }
        Command::MmapBounds => mmap_bounds(&region, info.size),
        Command::Hold { seconds } => {
            let mapping = region.map(0, size)?;
            drop(region);
            println!("holding a {}-byte mapping, device closed", mapping.len());
            std::thread::sleep(std::time::Duration::from_secs(seconds));
            Ok(())
        }
        Command::DevmemVerify { .. } | Command::Hog { .. } => unreachable!("handled above"),
    })
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

fn mismatch(via: &str, m: Mismatch) -> Failed {
    Failed(format!(
        "{via}: {} words differ, the first at offset {:#x}",
        m.count, m.offset
    ))
}

/// Each refused mapping must fail with its documented errno; the last page must map.
fn mmap_bounds(region: &Region, size: u64) -> Result<(), Failed> {
    const PAGE: u64 = 4096;
    let rw = ProtFlags::READ | ProtFlags::WRITE;
    let cases: [(&str, u64, usize, MapFlags, &[Errno]); 6] = [
        (
            "offset at the end",
            size,
            PAGE as usize,
            MapFlags::SHARED,
            &[Errno::NXIO],
        ),
        (
            "window past the end",
            size - PAGE,
            2 * PAGE as usize,
            MapFlags::SHARED,
            &[Errno::NXIO],
        ),
        (
            "far beyond the end",
            1 << 40,
            PAGE as usize,
            MapFlags::SHARED,
            &[Errno::NXIO],
        ),
        (
            "offset near 2^63",
            0x7fff_ffff_ffff_f000,
            2 * PAGE as usize,
            MapFlags::SHARED,
            &[Errno::NXIO, Errno::OVERFLOW],
        ),
        (
            "offset + length wraps 2^64",
            0xffff_ffff_ffff_f000,
            2 * PAGE as usize,
            MapFlags::SHARED,
            &[Errno::OVERFLOW, Errno::INVAL],
        ),
        (
            "private mapping",
            0,
            PAGE as usize,
            MapFlags::PRIVATE,
            &[Errno::INVAL],
        ),
    ];
    for (what, offset, len, flags, expected) in cases {
        match region.map_with(offset, len, rw, flags) {
            Ok(_) => return Err(Failed(format!("{what}: mapped, expected {expected:?}"))),
            Err(err) => {
                let errno = Errno::from_io_error(&err);
                if !errno.is_some_and(|e| expected.contains(&e)) {
                    return Err(Failed(format!("{what}: {err}, expected {expected:?}")));
                }
                println!("# {what}: refused with {err}");
            }
        }
    }
    region
        .map(size - PAGE, PAGE as usize)
        .map(drop)
        .map_err(|err| Failed(format!("the last page: {err}, expected it to map")))
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
