//! edu-dma: moves known bytes between QEMU's `edu` device and a carveout region by DMA, and
//! checks the result from outside the driver (through `/dev/mem`) and through the mapping.
//!
//!   edu-dma to-carveout --seed S     the device writes into the region at several offsets
//!   edu-dma from-carveout --seed S   the CPU writes through the mapping, the device reads it
//!
//! Both fill the whole region with the pattern for S first and, at the end, check every word
//! of it: the bytes the transfers should have changed hold what they should, and every other
//! word still holds the pattern (no transfer ran long, short or to the wrong place).
//!
//! Exit status: 0 when the check holds, 1 when it does not, 2 on a usage or system error.

use std::{collections::HashMap, io, process::ExitCode};

use carveout::parse_u64;
use carveout::{devmem, edu::Edu, pattern, Access, Mapping, Region};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "DMA between QEMU's edu device and a carveout region")]
struct Cli {
    /// The region's device node.
    #[arg(long, default_value = "/dev/carveout0")]
    dev: String,
    #[command(subcommand)]
    command: Command,
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
}

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

fn to_carveout(edu: &Edu, region: &Region, seed: u64) -> io::Result<Result<(), String>> {
    let info = region.info()?;
    let (base, size) = (info.base, info.size);
    let map = region.map(0..size, Access::ReadWrite)?;
    map.fill_pattern(seed, |_| ());
    let mut expected = Expected::new(seed);

    // The device's buffer is not visible to the CPU: load it by DMA from a staging page.
    let stage = PAGE;
    let data = pattern::bytes(seed ^ 0xd3a_5eed, 0, 4000);
    map.copy_from_slice(stage as usize, &data);
    expected.put(stage, &data);
    edu.from_ram(base + stage, 0, data.len() as u64)?;

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
        edu.to_ram(buf_off, base + offset, count)?;
        let want = &data[buf_off as usize..(buf_off + count) as usize];
        expected.put(offset, want);
        if let Err(why) = devmem_equals(base, offset, want)? {
            return Ok(Err(why));
        }
    }
    check_region(&expected, base, size, &map)
}

fn from_carveout(edu: &Edu, region: &Region, seed: u64) -> io::Result<Result<(), String>> {
    let info = region.info()?;
    let (base, size) = (info.base, info.size);
    let map = region.map(0..size, Access::ReadWrite)?;
    map.fill_pattern(seed, |_| ());
    let mut expected = Expected::new(seed);

    // Where the device writes back what it read, for /dev/mem to check.
    let check_area = 2 * PAGE;
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
        let data = pattern::bytes(seed ^ (0xf00d << 8 | i as u64), 0, count as usize);
        map.copy_from_slice(offset as usize, &data);
        expected.put(offset, &data);
        edu.from_ram(base + offset, buf_off, count)?;
        edu.to_ram(buf_off, base + check_area, count)?;
        expected.put(check_area, &data);
        if let Err(why) = devmem_equals(base, check_area, &data)? {
            return Ok(Err(format!("what the device read: {why}")));
        }
    }
    check_region(&expected, base, size, &map)
}

fn run(cli: &Cli) -> io::Result<Result<(), String>> {
    let edu = Edu::open()?;
    println!("# edu at {}", edu.sysfs().display());
    let region = Region::open(&cli.dev)?;
    match cli.command {
        Command::ToCarveout { seed } => to_carveout(&edu, &region, seed),
        Command::FromCarveout { seed } => from_carveout(&edu, &region, seed),
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
