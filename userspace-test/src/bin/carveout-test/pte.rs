//! `pte`: a mapping placed as asked, checked against the page tables: every entry covering it
//! must select the attribute's memory type through the PAT.

use std::io;

use carveout::{
    abi, devmem,
    memmap::format_size,
    parse_u64, pattern,
    ptdump::{self, Level, MemType, PatTable},
    Access, Attr, Placement, Region,
};
use clap::Args;

use crate::Failed;

// The arguments of `pte` (a plain comment: the variant's documentation in cli.rs is its help).
#[derive(Args)]
pub struct PteArgs {
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
}

/// [`crate::cli::Command::Pte`]: map, touch and check, hold the mapping if asked, then check
/// the stamped words through `/dev/mem`.
pub fn cmd_pte(
    region: &Region,
    info: &abi::Info,
    args: &PteArgs,
) -> io::Result<Result<(), Failed>> {
    let PteArgs {
        attr,
        placement,
        offset,
        len,
        level,
        ref pat,
        write,
        hold,
        stamp,
    } = *args;
    let pat = match pat {
        Some(text) => PatTable::parse(text).map_err(io::Error::other)?,
        None => PatTable::LINUX,
    };
    let len = match len {
        Some(len) => len,
        None => info
            .size
            .checked_sub(offset)
            .ok_or_else(|| io::Error::other(format!("offset {offset:#x} is beyond the region")))?,
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
    let (verdict, mapping) = check.run(region, info)?;
    if let Some(seconds) = hold {
        println!("holding the mapping");
        std::thread::sleep(std::time::Duration::from_secs(seconds));
    }
    let stamped = mapping.is_writable();
    drop(mapping);
    Ok(match (verdict, stamp) {
        (Ok(()), Some(seed)) if stamped => check.stamps_in_memory(info, seed)?,
        (verdict, _) => verdict,
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
