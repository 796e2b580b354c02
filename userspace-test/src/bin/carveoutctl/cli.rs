//! carveoutctl's command line: the clap definition, its value parsers, and the subcommand's
//! name for a failure's `op`.

use std::path::PathBuf;

use carveout::{
    memmap::{parse_size, Span},
    parse_u64, plan, Attr,
};
use clap::{ArgMatches, CommandFactory, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "carveoutctl",
    version,
    about = "Manage carveout regions: reserved physical memory handed to a device",
    after_help = "REGION is a path (/dev/carveout0) or a name (carveout0, or NAME for \
                  /dev/carveout/NAME); by default /dev/carveout0, or the only region there is.\n\
                  Sizes and addresses are written as memmap= writes them: 64M, 2G, 0x10000000."
)]
pub struct Cli {
    /// Print one JSON object on standard output, a failure too, as
    /// {"op","errno","error","reason"}, with the same exit status.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// List the regions: /dev/carveout0 and /dev/carveout/*.
    List,
    /// Show what a region is (CARVEOUT_GET_INFO).
    Info { region: Option<String> },
    /// Get or set a region's cache attribute (uc, wc, wt, wb, wp).
    Attr {
        #[command(subcommand)]
        op: AttrOp,
    },
    /// Write the test pattern for SEED into a region (or a range of it).
    Fill {
        /// The pattern's seed: decimal, or hex with 0x.
        #[arg(long, value_parser = parse_u64)]
        seed: u64,
        /// SIZE[@OFFSET] inside the region, e.g. 4M@16M (default: all of it).
        #[arg(long, value_parser = parse_range)]
        range: Option<Span>,
        region: Option<String>,
    },
    /// Check a region (or a range) against the pattern for SEED; exit 1 on a mismatch, naming
    /// the first differing offset and how many bytes differ.
    Verify {
        /// The pattern's seed: decimal, or hex with 0x.
        #[arg(long, value_parser = parse_u64)]
        seed: u64,
        /// SIZE[@OFFSET] inside the region (default: all of it).
        #[arg(long, value_parser = parse_range)]
        range: Option<Span>,
        region: Option<String>,
    },
    /// Hexdump part of a region (--raw: the bytes themselves, to standard output).
    Dump {
        #[arg(long, default_value = "0", value_parser = parse_sz)]
        offset: u64,
        /// Bytes to show (default 256; with --raw, the rest of the region).
        #[arg(long, value_parser = parse_sz)]
        len: Option<u64>,
        /// Write the raw bytes to standard output (read through the node's read()).
        #[arg(long)]
        raw: bool,
        region: Option<String>,
    },
    /// Save a region (or part of it) to FILE, raw bytes, through the node's read().
    Save {
        file: PathBuf,
        #[arg(long, default_value = "0", value_parser = parse_sz)]
        offset: u64,
        /// Bytes to save (default: the rest of the region).
        #[arg(long, value_parser = parse_sz)]
        len: Option<u64>,
        region: Option<String>,
    },
    /// Write FILE's raw bytes into a region at OFFSET through the node's write(); a file
    /// larger than the space left from OFFSET is refused.
    Restore {
        file: PathBuf,
        #[arg(long, default_value = "0", value_parser = parse_sz)]
        offset: u64,
        region: Option<String>,
    },
    /// Create a region (configfs, named memmap<N>) for every memmap=SIZE$BASE on the kernel
    /// command line that no region holds yet. An entry in memory the firmware itself reserved
    /// (/sys/firmware/memmap) is skipped unless --force.
    Load {
        /// Read the command line from FILE instead of /proc/cmdline.
        #[arg(long)]
        cmdline: Option<PathBuf>,
        /// Say what would be done, do nothing.
        #[arg(long)]
        dry_run: bool,
        /// Cache attribute of the new regions.
        #[arg(long)]
        attr: Option<Attr>,
        /// Mode of the new nodes, octal (e.g. 0660).
        #[arg(long, value_parser = parse_mode)]
        mode: Option<u32>,
        /// Group of the new nodes.
        #[arg(long)]
        gid: Option<u32>,
        /// Also load entries in memory the firmware itself reserved.
        #[arg(long)]
        force: bool,
        /// Give the regions struct pages (pages mode), so that O_DIRECT, io_uring and vmsplice
        /// can use their mappings: write-back only, 2 MiB aligned, 64 bytes of RAM per 4 KiB.
        #[arg(long)]
        pages: bool,
        /// With --pages: the size of the pages' folios, 4K, 2M or 1G (and so of every mapping
        /// entry; mappings must then be aligned to it). The region's base and size must be
        /// multiples of it.
        #[arg(long, requires = "pages", value_parser = parse_folio_size)]
        pages_align: Option<u64>,
    },
    /// Compare the kernel command line, /proc/iomem and the regions carveout holds; say what
    /// is wrong. Exit 1 on a problem.
    Check {
        /// Read the command line from FILE instead of /proc/cmdline.
        #[arg(long)]
        cmdline: Option<PathBuf>,
        /// Read /proc/iomem from FILE.
        #[arg(long)]
        iomem: Option<PathBuf>,
        /// Also say whether this PCI device (e.g. 0000:00:03.0) reaches the regions at their
        /// physical addresses or through an IOMMU (repeatable).
        #[arg(long = "pci", value_name = "DEVICE")]
        pci: Vec<String>,
    },
    /// Map the whole region for PCI DEVICE's DMA (CARVEOUT_ATTACH) and print the bus address
    /// the device must use: an IOVA where its IOMMU translates, else the physical address.
    Attach {
        device: String,
        region: Option<String>,
        /// The address bits the device decodes, for a device with no driver bound (whose DMA
        /// mask is the PCI default, 32 bits): its IOMMU maps the region below 2^BITS, or
        /// without one the region must lie below it. A device with a driver is refused
        /// (EBUSY): its driver's DMA mask rules.
        #[arg(long, value_name = "BITS", value_parser = clap::value_parser!(u32).range(12..=64))]
        reach_bits: Option<u32>,
    },
    /// Unmap the region for PCI DEVICE (CARVEOUT_DETACH).
    Detach {
        device: String,
        region: Option<String>,
    },
    /// Cache maintenance for a device that does not snoop (CARVEOUT_SYNC): write back before
    /// the device reads, invalidate before the CPU reads. Page-aligned; default: all of it.
    Sync {
        #[arg(long = "for", value_enum)]
        for_: carveout::attach::SyncFor,
        #[arg(long, value_parser = parse_sz)]
        offset: Option<u64>,
        #[arg(long, value_parser = parse_sz)]
        len: Option<u64>,
        region: Option<String>,
    },
    /// Propose a memmap=SIZE$BASE inside usable RAM, from the firmware memory map, or vet a
    /// range already chosen (SIZE@BASE).
    Plan {
        /// A range already chosen, as SIZE@BASE (e.g. 512M@2G): checked against the map
        /// instead of proposing one.
        #[arg(value_parser = plan::parse_chosen, conflicts_with_all = ["size", "align", "below"])]
        range: Option<Span>,
        /// Size of the range to reserve (e.g. 512M).
        #[arg(long, value_parser = parse_sz, required_unless_present = "range")]
        size: Option<u64>,
        /// Alignment of the base (default: the largest power of two dividing SIZE, 4K..1G).
        #[arg(long, value_parser = parse_sz)]
        align: Option<u64>,
        /// Keep the range below this address (e.g. 4G for a 32-bit DMA device).
        #[arg(long, value_parser = parse_sz)]
        below: Option<u64>,
        /// A saved `dmesg` e820 listing, a saved /proc/iomem, or a /sys/firmware/memmap-style
        /// directory (default: /sys/firmware/memmap, else /proc/iomem).
        #[arg(long)]
        from: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
pub enum AttrOp {
    /// Show the cache attribute (CARVEOUT_GET_ATTR).
    Get { region: Option<String> },
    /// Change the cache attribute (CARVEOUT_SET_ATTR); the region must not be mapped.
    Set { attr: Attr, region: Option<String> },
}

/// A folio size for --pages-align: 4K, 2M or 1G (or the same in bytes).
fn parse_folio_size(s: &str) -> Result<u64, String> {
    let size = parse_size(s).map_err(|e| e.to_string())?;
    match size {
        0x1000 | 0x20_0000 | 0x4000_0000 => Ok(size),
        _ => Err(format!("{s}: not 4K, 2M or 1G")),
    }
}

pub fn parse_sz(s: &str) -> Result<u64, String> {
    parse_size(s).map_err(|e| e.to_string())
}

/// `SIZE[@OFFSET]`.
pub fn parse_range(s: &str) -> Result<Span, String> {
    let (size, offset) = match s.split_once('@') {
        Some((size, offset)) => (parse_sz(size)?, parse_sz(offset)?),
        None => (parse_sz(s)?, 0),
    };
    Span::new(offset, size)
}

/// Permission bits, octal, refused in the driver's words when they are not (the module
/// parameter says "refusing mode=…: not permission bits (0 to 0777)", configfs "mode must be
/// octal permission bits").
pub fn parse_mode(s: &str) -> Result<u32, String> {
    let mode = u32::from_str_radix(s, 8)
        .map_err(|_| format!("mode must be octal permission bits (e.g. 0660), not {s:?}"))?;
    if mode > 0o777 {
        return Err(format!(
            "refusing mode=0{mode:o}: not permission bits (0 to 0777)"
        ));
    }
    Ok(mode)
}

/// The subcommand as people type it (`attr set`), the `op` of a JSON failure.
pub fn op_name(matches: &ArgMatches) -> String {
    let mut words = Vec::new();
    let mut m = matches;
    while let Some((name, sub)) = m.subcommand() {
        words.push(name);
        m = sub;
    }
    words.join(" ")
}

/// The subcommand words in arguments clap refused: the known subcommand names before the
/// first that is not one, options skipped.
pub fn op_from_args(args: &[String]) -> String {
    let mut cmd = Cli::command();
    let mut words = Vec::new();
    for arg in args.iter().skip(1).filter(|a| !a.starts_with('-')) {
        let Some(sub) = cmd.find_subcommand(arg).cloned() else {
            break;
        };
        words.push(sub.get_name().to_string());
        cmd = sub;
    }
    if words.is_empty() {
        "carveoutctl".into()
    } else {
        words.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_and_modes_parse() {
        assert_eq!(
            parse_range("4M@16M"),
            Ok(Span {
                base: 16 << 20,
                size: 4 << 20
            })
        );
        assert_eq!(
            parse_range("64K"),
            Ok(Span {
                base: 0,
                size: 64 << 10
            })
        );
        assert!(parse_range("0@4K").is_err());
        assert!(parse_range("4Q@0")
            .unwrap_err()
            .contains("after the number"));
        assert_eq!(parse_mode("0660"), Ok(0o660));
        assert_eq!(parse_mode("777"), Ok(0o777));
        assert!(parse_mode("0999")
            .unwrap_err()
            .contains("mode must be octal permission bits"));
        // The driver's limit and words (rust/carveout.rs): no setuid, setgid or sticky bits.
        assert_eq!(
            parse_mode("01777"),
            Err("refusing mode=01777: not permission bits (0 to 0777)".into())
        );
    }

    #[test]
    fn plan_takes_a_chosen_range_or_a_size() {
        let parse = |line: &str| Cli::try_parse_from(args(line)).map(|cli| cli.command);
        match parse("carveoutctl plan 512M@2G --from e820.txt") {
            Ok(Command::Plan {
                range: Some(span),
                size: None,
                ..
            }) => assert_eq!(span, Span::new(2 << 30, 512 << 20).unwrap()),
            _ => panic!("plan 512M@2G did not parse as a chosen range"),
        }
        assert!(matches!(
            parse("carveoutctl plan --size 512M"),
            Ok(Command::Plan {
                range: None,
                size: Some(_),
                ..
            })
        ));
        // One or the other: neither, both, or a chosen range with --below, are usage errors.
        for bad in [
            "carveoutctl plan",
            "carveoutctl plan 512M@2G --size 512M",
            "carveoutctl plan 512M@2G --below 4G",
            "carveoutctl plan 512M",
        ] {
            assert!(parse(bad).is_err(), "{bad} parsed");
        }
    }

    #[test]
    fn the_cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn failures_name_the_subcommand() {
        let m = Cli::command()
            .try_get_matches_from(args("carveoutctl --json attr set wc carveout0"))
            .unwrap();
        assert_eq!(op_name(&m), "attr set");
        assert_eq!(
            op_from_args(&args("carveoutctl attr --json set bogus")),
            "attr set"
        );
        assert_eq!(op_from_args(&args("carveoutctl load --mode 01777")), "load");
        assert_eq!(
            op_from_args(&args("carveoutctl --json frob")),
            "carveoutctl"
        );
    }

    fn args(line: &str) -> Vec<String> {
        line.split_whitespace().map(String::from).collect()
    }
}
