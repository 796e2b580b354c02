//! edu-dma: moves known bytes between QEMU's `edu` device and a carveout region by DMA, and
//! checks the result from outside the driver (through `/dev/mem`) and through the mapping.
//!
//!   edu-dma to-carveout --seed S     the device writes into the region at several offsets
//!   edu-dma from-carveout --seed S   the CPU writes through the mapping, the device reads it
//!   edu-dma blocked --seed S         the device writes to the region's physical address, and
//!                                    nothing may arrive (an IOMMU stops it)
//!
//! All fill the whole region with the pattern for S first and, at the end, check every word
//! of it: the bytes the transfers should have changed hold what they should, and every other
//! word still holds the pattern (no transfer ran long, short or to the wrong place).
//!
//! By default the device is driven through sysfs (no driver bound) and given physical
//! addresses. With `--vfio` it is owned through VFIO (bound to vfio-pci): the program maps the
//! region's mmap into its container at `--iova` (default: the physical base) and gives the
//! device I/O virtual addresses. `--pages 4k` places the region's mapping so that the driver
//! maps it with 4 KiB entries (default `2m`: 2 MiB entries). A write-protected region (`wp`)
//! is mapped read-only, which VFIO maps for device reads only: `to-carveout` then checks that
//! MAP_DMA refuses device writes and that what the device writes does not arrive;
//! `from-carveout` has the device read the pattern (the region is filled while `wb`) and
//! write it to a buffer of the program's own, mapped at another iova.
//!
//! Exit status: 0 when the check holds, 1 when it does not, 2 on a usage or system error.

use std::{
    collections::HashMap,
    io,
    os::fd::{BorrowedFd, FromRawFd, OwnedFd, RawFd},
    process::ExitCode,
    ptr::NonNull,
};

use carveout::parse_u64;
use carveout::{
    devmem,
    edu::{self, Edu},
    pattern,
    vfio::{DMA_MAP_FLAG_READ, DMA_MAP_FLAG_WRITE},
    Access, Attr, Mapping, Region,
};
use clap::{Parser, Subcommand, ValueEnum};
use rustix::mm::{mmap_anonymous, munmap, MapFlags, ProtFlags};

#[derive(Parser)]
#[command(about = "DMA between QEMU's edu device and a carveout region")]
struct Cli {
    /// The region's device node.
    #[arg(long, default_value = "/dev/carveout0")]
    dev: String,
    /// Own the device through VFIO (bound to vfio-pci) and map the region into its container.
    #[arg(long, global = true)]
    vfio: bool,
    /// Drive the device through the VFIO device file inherited as fd $CARVEOUT_VFIO_DEVICE_FD
    /// from a parent that mapped the region at --iova in its container (carveout_vfio).
    #[arg(long, global = true)]
    vfio_device_fd: bool,
    /// With --vfio: the I/O virtual address the region is mapped at (default: its physical
    /// base).
    #[arg(long, global = true, value_parser = parse_u64)]
    iova: Option<u64>,
    /// Page size of the region's CPU mapping, the one VFIO follows.
    #[arg(long, global = true, value_enum, default_value_t = Pages::TwoM)]
    pages: Pages,
    /// The DMA mask QEMU gave edu (-device edu,dma_mask=...; default 28 bits).
    #[arg(long, global = true, value_parser = parse_u64)]
    dma_mask: Option<u64>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Pages {
    /// 4 KiB entries: the user address 4 KiB off the physical one's 2 MiB congruence.
    #[value(name = "4k")]
    FourK,
    /// 2 MiB entries: the driver places the mapping congruent to the physical address.
    #[value(name = "2m")]
    TwoM,
}

#[derive(Subcommand)]
enum Command {
    /// Device → region: the device's buffer lands at several offsets of the region.
    ToCarveout {
        #[arg(long, value_parser = parse_u64)]
        seed: u64,
    },
    /// Region → device: bytes the CPU wrote through the mapping are read by the device, which
    /// writes them back to a check area where /dev/mem reads them.
    FromCarveout {
        #[arg(long, value_parser = parse_u64)]
        seed: u64,
    },
    /// Device → physical address (no VFIO): nothing may arrive, the region keeps the pattern.
    Blocked {
        #[arg(long, value_parser = parse_u64)]
        seed: u64,
    },
}

const HUGE: u64 = 2 << 20;

const PAGE: u64 = 4096;

/// What the region should hold: the pattern, overlaid with the bytes transfers put there.
struct Expected {
    seed: u64,
    /// Word index → expected word, for every word a transfer touched.
    words: HashMap<u64, u64>,
}

impl Expected {
    fn new(seed: u64) -> Self {
        Self {
            seed,
            words: HashMap::new(),
        }
    }

    /// Records that `bytes` now lie at region offset `offset`.
    fn put(&mut self, offset: u64, bytes: &[u8]) {
        for (i, &byte) in bytes.iter().enumerate() {
            let o = offset + i as u64;
            let word = self
                .words
                .entry(o / 8)
                .or_insert_with(|| pattern::word(self.seed, o / 8));
            let mut b = word.to_ne_bytes();
            b[(o % 8) as usize] = byte;
            *word = u64::from_ne_bytes(b);
        }
    }

    fn word(&self, index: u64) -> u64 {
        self.words
            .get(&index)
            .copied()
            .unwrap_or_else(|| pattern::word(self.seed, index))
    }

    /// Checks every word of a view of the region; `read(index)` reads word `index`.
    fn check(
        &self,
        via: &str,
        size: u64,
        mut read: impl FnMut(u64) -> io::Result<u64>,
    ) -> io::Result<Result<(), String>> {
        let mut bad = 0u64;
        let mut first = None;
        for index in 0..size / 8 {
            let got = read(index)?;
            let want = self.word(index);
            if got != want {
                bad += 1;
                first.get_or_insert((index * 8, got, want));
            }
        }
        Ok(match first {
            None => {
                println!("# {via}: all {} words as expected ({} changed by DMA)", size / 8, self.words.len());
                Ok(())
            }
            Some((offset, got, want)) => Err(format!(
                "{via}: {bad} words differ, the first at offset {offset:#x}: {got:#018x}, expected {want:#018x}"
            )),
        })
    }
}

/// Checks the whole region through /dev/mem and through the mapping.
fn check_region(
    expected: &Expected,
    base: u64,
    size: u64,
    map: &Mapping,
) -> io::Result<Result<(), String>> {
    const CHUNK: u64 = 1 << 16;
    let mut chunk = vec![0u8; CHUNK as usize];
    let mut chunk_start = u64::MAX;
    let via_devmem = expected.check("/dev/mem", size, |index| {
        let offset = index * 8;
        if chunk_start == u64::MAX || offset < chunk_start || offset >= chunk_start + CHUNK {
            chunk_start = offset - offset % CHUNK;
            let n = CHUNK.min(size - chunk_start) as usize;
            devmem::read(base + chunk_start, &mut chunk[..n])?;
        }
        let at = (offset - chunk_start) as usize;
        Ok(u64::from_ne_bytes(
            chunk[at..at + 8].try_into().expect("8 bytes"),
        ))
    })?;
    if via_devmem.is_err() {
        return Ok(via_devmem);
    }
    expected.check(
        "mapping",
        size,
        |index| Ok(map.read_u64(index as usize * 8)),
    )
}

/// Reads `len` bytes of the region at `offset` through /dev/mem and compares them with `want`.
fn devmem_equals(base: u64, offset: u64, want: &[u8]) -> io::Result<Result<(), String>> {
    let mut got = vec![0u8; want.len()];
    devmem::read(base + offset, &mut got)?;
    Ok(match got.iter().zip(want).position(|(g, w)| g != w) {
        None => Ok(()),
        Some(i) => Err(format!(
            "/dev/mem at region offset {:#x}: {:#04x}, expected {:#04x}",
            offset + i as u64,
            got[i],
            want[i]
        )),
    })
}

/// The device, the region mapped for the CPU (and, with VFIO, for the device), and the
/// address the device reaches the region's first byte at.
struct Setup {
    edu: Edu,
    base: u64,
    size: u64,
    /// The region's first byte as the device addresses it: the physical base, or the iova.
    dev_base: u64,
    map: Mapping,
    attr: Attr,
}

impl Setup {
    fn new(cli: &Cli, region: &Region, seed: u64) -> io::Result<Self> {
        let info = region.info()?;
        let (base, size) = (info.base, info.size);
        let attr = region.attr()?;
        // The pattern first: a write-protected region is filled while write-back.
        let access = if attr == Attr::Wp {
            region.set_attr(Attr::Wb)?;
            let filled = map(cli.pages, region, size, Access::ReadWrite)
                .map(|map| map.fill_pattern(seed, |_| ()));
            region.set_attr(Attr::Wp)?;
            filled?;
            Access::Read
        } else {
            Access::ReadWrite
        };
        if access == Access::Read && !cli.vfio {
            return Err(io::Error::other(
                "the region is write-protected: only VFIO keeps the device from writing it \
                 (--vfio)",
            ));
        }
        let map = map(cli.pages, region, size, access)?;
        if access == Access::ReadWrite {
            map.fill_pattern(seed, |_| ());
        }
        let congruent = (map.as_ptr() as u64 ^ base) % HUGE == 0;
        println!(
            "# region {attr}, {size:#x} bytes at {base:#x}, mapped {} at {:p} ({})",
            if access == Access::Read {
                "read-only"
            } else {
                "read-write"
            },
            map.as_ptr(),
            if congruent {
                "2 MiB entries"
            } else {
                "4 KiB entries"
            }
        );
        if congruent != (cli.pages == Pages::TwoM) {
            return Err(io::Error::other(
                "the mapping's placement is not what --pages asked for",
            ));
        }
        let mut edu = if cli.vfio_device_fd {
            Edu::inherit_vfio(inherited_device_fd()?)?
        } else if cli.vfio {
            Edu::open_vfio()?
        } else {
            Edu::open()?
        };
        if let Some(mask) = cli.dma_mask {
            edu.set_dma_mask(mask);
        }
        let dev_base = match edu.vfio() {
            None => base,
            Some(vfio) if !vfio.owns_container() => {
                let iova = cli.iova.unwrap_or(base);
                println!(
                    "# VFIO: {} through an inherited device file, iova {iova:#x}",
                    vfio.bdf()
                );
                iova
            }
            Some(vfio) => {
                let iova = cli.iova.unwrap_or(base);
                if access == Access::Read {
                    // Device writes to a read-only mapping: VFIO must refuse them.
                    match vfio.map_region(&map, iova, DMA_MAP_FLAG_READ | DMA_MAP_FLAG_WRITE) {
                        Ok(()) => {
                            return Err(io::Error::other(
                                "VFIO_IOMMU_MAP_DMA let the device write a read-only mapping",
                            ))
                        }
                        Err(err) => println!("# device writes refused, as they must be: {err}"),
                    }
                }
                let flags = match access {
                    Access::Read => DMA_MAP_FLAG_READ,
                    Access::ReadWrite => DMA_MAP_FLAG_READ | DMA_MAP_FLAG_WRITE,
                };
                vfio.map_region(&map, iova, flags)?;
                println!(
                    "# VFIO: {} (group {}) sees the region at iova {iova:#x}",
                    vfio.bdf(),
                    vfio.group_id()
                );
                iova
            }
        };
        println!("# edu at {}", edu.sysfs().display());
        Ok(Self {
            edu,
            base,
            size,
            dev_base,
            map,
            attr,
        })
    }

    fn check(&self, expected: &Expected) -> io::Result<Result<(), String>> {
        check_region(expected, self.base, self.size, &self.map)
    }
}

/// The device file a parent left open for us: fd $CARVEOUT_VFIO_DEVICE_FD.
fn inherited_device_fd() -> io::Result<OwnedFd> {
    let fd: RawFd = std::env::var("CARVEOUT_VFIO_DEVICE_FD")
        .ok()
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| io::Error::other("--vfio-device-fd needs CARVEOUT_VFIO_DEVICE_FD=N"))?;
    // The fd must be open; then it is ours: the parent handed it over for this process.
    rustix::io::fcntl_getfd(
        // SAFETY: borrowed only for this call; an invalid fd fails with EBADF.
        unsafe { BorrowedFd::borrow_raw(fd) },
    )
    .map_err(|e| io::Error::other(format!("fd {fd}: {e}")))?;
    // SAFETY: fd is open (checked) and handed to this process to own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn map(pages: Pages, region: &Region, size: u64, access: Access) -> io::Result<Mapping> {
    Ok(match pages {
        Pages::TwoM => region.map(0..size, access)?,
        Pages::FourK => region.map_small_pages(0..size, access)?,
    })
}

/// A page of the program's own memory that the device writes into (through VFIO); read with
/// volatile accesses only. Unmapped on drop.
struct Scratch {
    ptr: NonNull<u8>,
}

impl Scratch {
    const LEN: usize = PAGE as usize;

    fn new() -> io::Result<Self> {
        // SAFETY: a new anonymous mapping at an address the kernel picks aliases nothing.
        let ptr = unsafe {
            mmap_anonymous(
                std::ptr::null_mut(),
                Self::LEN,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::PRIVATE | MapFlags::POPULATE,
            )
        }?;
        Ok(Self {
            ptr: NonNull::new(ptr.cast()).ok_or_else(|| io::Error::other("mmap gave NULL"))?,
        })
    }

    fn read(&self, len: usize) -> Vec<u8> {
        (0..len.min(Self::LEN))
            // SAFETY: inside our mapping; volatile, since the device writes it.
            .map(|i| unsafe { self.ptr.as_ptr().add(i).read_volatile() })
            .collect()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // SAFETY: our own mapping; nothing refers to it after the drop. (VFIO pinned its page
        // and unpins it when the container closes.)
        let _ = unsafe { munmap(self.ptr.as_ptr().cast(), Self::LEN) };
    }
}

fn to_carveout(s: &Setup, seed: u64) -> io::Result<Result<(), String>> {
    let (base, size, dev) = (s.base, s.size, s.dev_base);
    let mut expected = Expected::new(seed);
    let writable = s.map.is_writable();

    // The device's buffer is not visible to the CPU: load it by DMA from a staging page.
    let stage = PAGE;
    let data = if writable {
        let data = pattern::bytes(seed ^ 0xd3a_5eed, 0, 4000);
        s.map.copy_from_slice(stage as usize, &data);
        expected.put(stage, &data);
        data
    } else {
        pattern::bytes(seed, stage, 4000)
    };
    s.edu.from_ram(dev + stage, 0, data.len() as u64)?;

    // (region offset, buffer offset, count): the first bytes, odd alignment, across a page
    // boundary, the middle, ending exactly at the region's last byte, a few bytes near the end.
    let cases = [
        (0, 0, 64),
        (0x3001, 3, 1000),
        (0x10000 - 100, 100, 200),
        (size / 2 + 0x123, 0, 3999),
        (size - 500, 7, 500),
        (size - PAGE - 8, 16, 16),
    ];
    for (offset, buf_off, count) in cases {
        println!("# device buffer +{buf_off:#x} -> region +{offset:#x}, {count} bytes");
        s.edu.to_ram(buf_off, dev + offset, count)?;
        if !writable {
            // Read-only for the device: nothing may arrive.
            continue;
        }
        let want = &data[buf_off as usize..(buf_off + count) as usize];
        expected.put(offset, want);
        if let Err(why) = devmem_equals(base, offset, want)? {
            return Ok(Err(why));
        }
    }
    if !writable {
        println!("# {}: the region is read-only for the device", s.attr);
    }
    s.check(&expected)
}

fn from_carveout(s: &Setup, seed: u64) -> io::Result<Result<(), String>> {
    let (base, size, dev) = (s.base, s.size, s.dev_base);
    let mut expected = Expected::new(seed);
    // Where the device writes back what it read, for the program to check: the region's third
    // page (checked through /dev/mem), or, when the device may not write the region, a page
    // of the program's own mapped at an iova of its own (just below the region's).
    let check_area = 2 * PAGE;
    let scratch = if s.map.is_writable() {
        None
    } else {
        let vfio = s
            .edu
            .vfio()
            .ok_or_else(|| io::Error::other("a read-only region needs --vfio"))?;
        let scratch = Scratch::new()?;
        let iova = dev
            .checked_sub(HUGE)
            .ok_or_else(|| io::Error::other("no room below the iova for the check page"))?;
        // SAFETY: the page is reached only with volatile reads (`Scratch::read`) and unmapped
        // only after the container closes or on exit.
        unsafe {
            vfio.map_dma(
                scratch.ptr.as_ptr(),
                Scratch::LEN as u64,
                iova,
                DMA_MAP_FLAG_READ | DMA_MAP_FLAG_WRITE,
            )
        }?;
        Some((scratch, iova))
    };
    // (region offset, buffer offset, count), as in to-carveout.
    let cases = [
        (0x5003, 0, 1000),
        (0, 64, 8),
        (0x100000 - 50, 500, 100),
        (size / 2, 0, 3999),
        (size - 777, 1, 777),
    ];
    for (i, (offset, buf_off, count)) in cases.into_iter().enumerate() {
        println!("# region +{offset:#x} -> device buffer +{buf_off:#x}, {count} bytes");
        let data = if scratch.is_none() {
            let data = pattern::bytes(seed ^ (0xf00d << 8 | i as u64), 0, count as usize);
            s.map.copy_from_slice(offset as usize, &data);
            expected.put(offset, &data);
            data
        } else {
            pattern::bytes(seed, offset, count as usize)
        };
        s.edu.from_ram(dev + offset, buf_off, count)?;
        match &scratch {
            None => {
                s.edu.to_ram(buf_off, dev + check_area, count)?;
                expected.put(check_area, &data);
                if let Err(why) = devmem_equals(base, check_area, &data)? {
                    return Ok(Err(format!("what the device read: {why}")));
                }
            }
            Some((scratch, iova)) => {
                s.edu.to_ram(buf_off, *iova, count)?;
                let got = scratch.read(count as usize);
                if let Some(at) = got.iter().zip(&data).position(|(g, w)| g != w) {
                    return Ok(Err(format!(
                        "what the device read at region offset {:#x}: {:#04x}, expected {:#04x}",
                        offset + at as u64,
                        got[at],
                        data[at]
                    )));
                }
            }
        }
    }
    s.check(&expected)
}

/// Device writes to the region's physical address, with the device driven through sysfs: an
/// IOMMU with a translating domain must stop every one of them.
fn blocked(s: &Setup, seed: u64) -> io::Result<Result<(), String>> {
    let expected = Expected::new(seed);
    let (base, size) = (s.base, s.size);
    // What the device reads from the region (stopped too: the buffer keeps what it had).
    println!("# device reads {:#x}+4000", base + PAGE);
    s.edu.from_ram(base + PAGE, 0, 4000)?;
    for (offset, count) in [(0, 4000), (size / 2, 64), (size - 4000, 4000)] {
        println!("# device writes {:#x}+{count}", base + offset);
        s.edu.to_ram(0, base + offset, count)?;
    }
    s.check(&expected)
}

fn run(cli: &Cli) -> io::Result<Result<(), String>> {
    let region = Region::open(&cli.dev)?;
    let seed = match cli.command {
        Command::ToCarveout { seed }
        | Command::FromCarveout { seed }
        | Command::Blocked { seed } => seed,
    };
    if cli.vfio && matches!(cli.command, Command::Blocked { .. }) {
        return Err(io::Error::other(format!(
            "blocked drives edu through sysfs, without --vfio (edu is {})",
            edu::find_bdf()?
        )));
    }
    let setup = Setup::new(cli, &region, seed)?;
    match cli.command {
        Command::ToCarveout { .. } => to_carveout(&setup, seed),
        Command::FromCarveout { .. } => from_carveout(&setup, seed),
        Command::Blocked { .. } => blocked(&setup, seed),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(why)) => {
            eprintln!("edu-dma: {why}");
            ExitCode::from(1)
        }
        Err(err) => {
            eprintln!("edu-dma: {err}");
            ExitCode::from(2)
        }
    }
}
