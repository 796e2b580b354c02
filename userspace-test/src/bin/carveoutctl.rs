//! carveoutctl: list, inspect, fill, verify and plan carveout regions.
//!
//! Exit status: 0 when the command did what it says (or the check holds), 1 when a check does
//! not hold (`verify` mismatch, `check` problems, `load` or `plan` could not do all it was
//! asked), 2 on a usage or system error.
//!
//! Every command prints JSON under `--json`, its failure too: a command returns its exit status
//! or a [`Failure`], and `main` alone renders the failure (text on standard error, or the JSON
//! object `{"op","errno","error","reason"}` on standard output), whatever the command.

use std::{
    fmt::Write as _,
    fs,
    io::{self, IsTerminal},
    path::{Path, PathBuf},
    process::ExitCode,
};

use carveout::parse_u64;
use carveout::{
    abi,
    check::{self, Level, RegionView},
    configfs, discover, flag_names,
    iomem::Iomem,
    iommu::PciIommu,
    memmap::{self, format_addr, format_size, parse_size, Kind, Memmap, Span},
    plan::{self, FirmwareMap},
    resolve, transfer, Access, Attr, Failure, Region,
};
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rustix::io::Errno;
use serde::Serialize;
use serde_json::{json, Value};

#[derive(Parser)]
#[command(
    name = "carveoutctl",
    version,
    about = "Manage carveout regions: reserved physical memory handed to a device",
    after_help = "REGION is a path (/dev/carveout0) or a name (carveout0, or NAME for \
                  /dev/carveout/NAME); by default /dev/carveout0, or the only region there is.\n\
                  Sizes and addresses are written as memmap= writes them: 64M, 2G, 0x10000000."
)]
struct Cli {
    /// Print one JSON object on standard output, a failure too, as
    /// {"op","errno","error","reason"}, with the same exit status.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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
        #[arg(value_parser = parse_chosen, conflicts_with_all = ["size", "align", "below"])]
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
enum AttrOp {
    /// Show the cache attribute (CARVEOUT_GET_ATTR).
    Get { region: Option<String> },
    /// Change the cache attribute (CARVEOUT_SET_ATTR); the region must not be mapped.
    Set { attr: Attr, region: Option<String> },
}

fn parse_sz(s: &str) -> Result<u64, String> {
    parse_size(s).map_err(|e| e.to_string())
}

/// `SIZE[@OFFSET]`.
fn parse_range(s: &str) -> Result<Span, String> {
    let (size, offset) = match s.split_once('@') {
        Some((size, offset)) => (parse_sz(size)?, parse_sz(offset)?),
        None => (parse_sz(s)?, 0),
    };
    Span::new(offset, size)
}

/// Permission bits, octal, refused in the driver's words when they are not (the module
/// parameter says "refusing mode=…: not permission bits (0 to 0777)", configfs "mode must be
/// octal permission bits").
fn parse_mode(s: &str) -> Result<u32, String> {
    let mode = u32::from_str_radix(s, 8)
        .map_err(|_| format!("mode must be octal permission bits (e.g. 0660), not {s:?}"))?;
    if mode > 0o777 {
        return Err(format!(
            "refusing mode=0{mode:o}: not permission bits (0 to 0777)"
        ));
    }
    Ok(mode)
}

type Res<T> = Result<T, Failure>;

/// A request carveoutctl refuses (`EINVAL`).
fn fail(msg: impl Into<String>) -> Failure {
    Failure::invalid(msg)
}

/// The region named on the command line, else /dev/carveout0, else the only region.
fn region_path(spec: Option<&str>) -> Res<PathBuf> {
    if let Some(spec) = spec {
        return Ok(resolve(spec));
    }
    let default = PathBuf::from("/dev/carveout0");
    if default.exists() {
        return Ok(default);
    }
    let mut found = discover();
    match found.len() {
        0 => Err(Failure::new(
            Errno::NOENT,
            "no carveout region: /dev/carveout0 and /dev/carveout/ are absent (is the module \
             loaded? `carveoutctl load` makes regions for memmap= entries)",
        )),
        1 => Ok(found.remove(0)),
        n => Err(fail(format!(
            "{n} regions ({}): name one",
            found
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

#[derive(Serialize)]
struct InfoJson {
    path: String,
    name: String,
    base: u64,
    size: u64,
    last: u64,
    flags: u32,
    flag_names: Vec<String>,
    attr: Option<Attr>,
    mapped: bool,
    abi_version: u32,
    memmap: String,
}

fn info_json(path: &Path, info: &abi::Info) -> InfoJson {
    let span = Span {
        base: info.base,
        size: info.size.max(1),
    };
    InfoJson {
        path: path.display().to_string(),
        name: info.name().to_string(),
        base: info.base,
        size: info.size,
        last: span.last(),
        flags: info.flags,
        flag_names: flag_names(info.flags),
        attr: Attr::from_flags(info.flags),
        mapped: info.flags & abi::MR_BUSY != 0,
        abi_version: info.abi_version,
        memmap: memmap::reserve_arg(&span),
    }
}

fn print_json(value: &impl Serialize) -> Res<()> {
    println!("{}", serde_json::to_string(value)?);
    Ok(())
}

/// Prints `value` as JSON or as its text.
fn print_or_json(value: &(impl Serialize + std::fmt::Display), json: bool) -> Res<ExitCode> {
    if json {
        print_json(value)?;
    } else {
        println!("{value}");
    }
    Ok(ExitCode::SUCCESS)
}

fn attr_name(flags: u32) -> String {
    Attr::from_flags(flags).map_or_else(
        || format!("? ({:#x})", flags & abi::MR_ATTR_MASK),
        |a| a.to_string(),
    )
}

/// The failures of a command that went on past them, as JSON (`op` is the command's).
fn failures_json(op: &str, failures: &[Failure]) -> Vec<Value> {
    failures.iter().map(|f| f.to_json(op)).collect()
}

fn cmd_list(json: bool) -> Res<ExitCode> {
    let mut rows = Vec::new();
    let mut errors = Vec::new();
    for path in discover() {
        match Region::open_with(&path, Access::Read).and_then(|r| r.info()) {
            Ok(info) => rows.push(info_json(&path, &info)),
            Err(err) => errors.push(Failure::from(err)),
        }
    }
    for err in errors.iter().filter(|_| !json) {
        eprintln!("carveoutctl: {err}");
    }
    if json {
        // A struct, not json!: the regions keep their fields in InfoJson's order.
        #[derive(Serialize)]
        struct List<'a> {
            regions: &'a [InfoJson],
            errors: Vec<Value>,
        }
        print_json(&List {
            regions: &rows,
            errors: failures_json("list", &errors),
        })?;
    } else if rows.is_empty() && errors.is_empty() {
        println!("no carveout regions (/dev/carveout0 and /dev/carveout/* are absent)");
    } else {
        println!(
            "{:<12} {:<24} {:<12} {:>8}  {:<4} MAPPED",
            "NAME", "PATH", "BASE", "SIZE", "ATTR"
        );
        for r in &rows {
            println!(
                "{:<12} {:<24} {:<12} {:>8}  {:<4} {}",
                r.name,
                r.path,
                format_addr(r.base),
                format_size(r.size),
                attr_name(r.flags),
                if r.mapped { "yes" } else { "no" }
            );
        }
    }
    Ok(if !errors.is_empty() {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

fn cmd_info(spec: Option<&str>, json: bool) -> Res<ExitCode> {
    let path = region_path(spec)?;
    let region = Region::open_with(&path, Access::Read)?;
    let info = region.info()?;
    let j = info_json(&path, &info);
    let devices = carveout::attach::attached_devices(&region).map_err(|e| e.to_string());
    if json {
        let mut v = serde_json::to_value(&j)?;
        v["dma_devices"] = match &devices {
            Ok(devices) => serde_json::to_value(devices)?,
            Err(why) => json!({ "error": why }),
        };
        print_json(&v)?;
    } else {
        println!("{}: {}", j.path, j.name);
        println!("  base    {}", format_addr(j.base));
        println!("  size    {} ({:#x})", format_size(j.size), j.size);
        println!("  range   {}-{}", format_addr(j.base), format_addr(j.last));
        println!("  attr    {}", attr_name(j.flags));
        println!("  flags   {:#x} ({})", j.flags, j.flag_names.join(" "));
        println!("  mapped  {}", if j.mapped { "yes" } else { "no" });
        println!("  memmap  {}", j.memmap);
        match &devices {
            Ok(devices) if devices.is_empty() => println!("  dma     no device attached"),
            Ok(devices) => devices.iter().for_each(|d| println!("  dma     {d}")),
            Err(why) => println!("  dma     cannot tell: {why}"),
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn cmd_attr(op: &AttrOp, json: bool) -> Res<ExitCode> {
    match op {
        AttrOp::Get { region } => {
            let path = region_path(region.as_deref())?;
            let region = Region::open_with(&path, Access::Read)?;
            let desc = region.range_desc()?;
            let attr = Attr::from_flags(desc.flags);
            if json {
                print_json(&json!({
                    "path": path.display().to_string(),
                    "attr": attr,
                    "flags": desc.flags,
                    "flag_names": flag_names(desc.flags),
                    "base": desc.base,
                    "len": desc.len,
                    "owner": desc.owner(),
                }))?;
            } else {
                println!("{}", attr_name(desc.flags));
                println!(
                    "# {}: {} at {}, flags {:#x} ({}), owner {}",
                    path.display(),
                    format_size(desc.len),
                    format_addr(desc.base),
                    desc.flags,
                    flag_names(desc.flags).join(" "),
                    desc.owner()
                );
            }
        }
        AttrOp::Set { attr, region } => {
            let path = region_path(region.as_deref())?;
            let region = Region::open_with(&path, Access::ReadWrite)?;
            region.set_attr(*attr)?;
            if json {
                // What the region says now, not what was asked.
                let desc = region.range_desc()?;
                print_json(&json!({
                    "path": path.display().to_string(),
                    "attr": Attr::from_flags(desc.flags),
                    "flags": desc.flags,
                    "flag_names": flag_names(desc.flags),
                }))?;
            } else {
                println!("{}: attribute set to {attr}", path.display());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The part of the region a command works on, checked against its size.
fn window(region: &Region, range: Option<Span>, words: bool) -> Res<(abi::Info, Span)> {
    let info = region.info()?;
    let whole = Span::new(0, info.size).map_err(fail)?;
    let span = range.unwrap_or(whole);
    if !whole.contains(&span) {
        return Err(fail(format!(
            "{}: {} at offset {} is outside the region ({} long)",
            region.path().display(),
            format_size(span.size),
            format_addr(span.base),
            format_size(info.size)
        )));
    }
    if words && (span.base % 8 != 0 || span.size % 8 != 0) {
        return Err(fail(format!(
            "the pattern is made of 64-bit words: offset {} and size {} must be multiples of 8",
            format_addr(span.base),
            format_size(span.size)
        )));
    }
    Ok((info, span))
}

/// Opens a region to map it read-only. Opened for writing when allowed: the kernel clears
/// `VM_SHARED` on a shared mapping of a read-only open file, and the driver (which tests
/// `VM_SHARED`, not `VM_MAYSHARE`) then refuses it as private (`EINVAL`). Read-only when
/// writing is not permitted.
fn open_to_read(path: &Path) -> carveout::Result<Region> {
    use rustix::io::Errno;
    match Region::open_with(path, Access::ReadWrite) {
        Err(err) if matches!(err.errno(), Some(Errno::ACCESS | Errno::PERM | Errno::ROFS)) => {
            Region::open_with(path, Access::Read)
        }
        other => other,
    }
}

/// A progress bar on stdout when it is a terminal and the work is large.
fn progress(len: u64, what: &str, json: bool) -> Option<ProgressBar> {
    if json || len < 16 << 20 || !io::stdout().is_terminal() {
        return None;
    }
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stdout());
    let style = ProgressStyle::with_template(
        "{msg} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style.progress_chars("=> "));
    bar.set_message(what.to_string());
    Some(bar)
}

fn cmd_fill(seed: u64, range: Option<Span>, spec: Option<&str>, json: bool) -> Res<ExitCode> {
    let path = region_path(spec)?;
    let region = Region::open_with(&path, Access::ReadWrite)?;
    let (_, span) = window(&region, range, true)?;
    let mapping = region.map(span.base..span.base + span.size, Access::ReadWrite)?;
    let bar = progress(span.size, "fill", json);
    mapping.fill_pattern(seed, |done| {
        if let Some(bar) = &bar {
            bar.set_position(done);
        }
    });
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    if json {
        print_json(&json!({
            "path": path.display().to_string(),
            "offset": span.base,
            "len": span.size,
            "seed": seed,
        }))?;
    } else {
        println!(
            "{}: filled {} at offset {} with the pattern for seed {seed:#x}",
            path.display(),
            format_size(span.size),
            format_addr(span.base)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// An amount for people: exact (`64M`) when it is, else rounded (`about 15.0G`).
fn approx(n: u64) -> String {
    let exact = format_size(n);
    if !exact.starts_with("0x") && exact.len() <= 6 {
        return exact;
    }
    for (shift, suffix) in [(40, 'T'), (30, 'G'), (20, 'M'), (10, 'K')] {
        if n >= 1 << shift {
            return format!("about {:.1}{suffix}", n as f64 / (1u64 << shift) as f64);
        }
    }
    format!("{n} bytes")
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn cmd_verify(seed: u64, range: Option<Span>, spec: Option<&str>, json: bool) -> Res<ExitCode> {
    let path = region_path(spec)?;
    let region = open_to_read(&path)?;
    let (info, span) = window(&region, range, true)?;
    let mapping = region.map(span.base..span.base + span.size, Access::Read)?;
    let bar = progress(span.size, "verify", json);
    let result = mapping.verify_pattern(seed, |done| {
        if let Some(bar) = &bar {
            bar.set_position(done);
        }
    });
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    if json {
        let mut j = json!({
            "path": path.display().to_string(),
            "offset": span.base,
            "len": span.size,
            "seed": seed,
            "match": result.is_ok(),
        });
        if let Err(m) = &result {
            j["first_offset"] = json!(m.offset);
            j["first_physical"] = json!(info.base + m.offset);
            j["differing_bytes"] = json!(m.bytes);
            j["differing_words"] = json!(m.words);
            j["expected"] = json!(m.expected);
            j["found"] = json!(m.found);
        }
        print_json(&j)?;
    }
    match result {
        Ok(()) => {
            if !json {
                println!(
                    "{}: {} at offset {} match the pattern for seed {seed:#x}",
                    path.display(),
                    format_size(span.size),
                    format_addr(span.base)
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(m) => {
            if !json {
                println!(
                    "{}: MISMATCH against the pattern for seed {seed:#x}: {} (in {}); \
                     the first at offset {} (physical {}): the word at {} is {:#018x}, \
                     expected {:#018x}",
                    path.display(),
                    plural(m.bytes, "byte differs", "bytes differ"),
                    plural(m.words, "word", "words"),
                    format_addr(m.offset),
                    format_addr(info.base + m.offset),
                    format_addr(m.offset & !7),
                    m.found,
                    m.expected
                );
            }
            Ok(ExitCode::from(1))
        }
    }
}

fn hexdump(base: u64, bytes: &[u8]) -> String {
    let mut out = String::new();
    for (i, line) in bytes.chunks(16).enumerate() {
        let _ = write!(out, "{:08x} ", base + i as u64 * 16);
        for j in 0..16 {
            if j == 8 {
                out.push(' ');
            }
            match line.get(j) {
                Some(b) => {
                    let _ = write!(out, " {b:02x}");
                }
                None => out.push_str("   "),
            }
        }
        out.push_str("  |");
        out.extend(line.iter().map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '.'
            }
        }));
        out.push_str("|\n");
    }
    out
}

fn cmd_dump(offset: u64, len: u64, spec: Option<&str>, json: bool) -> Res<ExitCode> {
    let path = region_path(spec)?;
    let region = open_to_read(&path)?;
    let span = Span::new(offset, len).map_err(fail)?;
    let (_, span) = window(&region, Some(span), false)?;
    let mapping = region.map(span.base..span.base + span.size, Access::Read)?;
    let mut buf = vec![0u8; mapping.len()];
    mapping.copy_to_slice(0, &mut buf);
    if json {
        let hex: String = buf.iter().fold(String::new(), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        });
        print_json(&json!({
            "path": path.display().to_string(),
            "offset": span.base,
            "len": span.size,
            "hex": hex,
        }))?;
    } else {
        print!("{}", hexdump(span.base, &buf));
    }
    Ok(ExitCode::SUCCESS)
}

/// `save FILE` (or `dump --raw` to standard output when `file` is `None`).
fn cmd_save(
    file: Option<&Path>,
    offset: u64,
    len: Option<u64>,
    spec: Option<&str>,
    json: bool,
) -> Res<ExitCode> {
    let path = region_path(spec)?;
    let region = Region::open_with(&path, Access::Read)?;
    let size = region.info()?.size;
    let len = len.unwrap_or(size.saturating_sub(offset));
    let span = Span::new(offset, len).map_err(fail)?;
    let (_, span) = window(&region, Some(span), false)?;
    let summary = match file {
        None => {
            let mut out = io::stdout().lock();
            transfer::save(&region, span.base, span.size, &mut out, "-", |_| {})?
        }
        Some(file) => {
            let name = file.display().to_string();
            let mut out = fs::File::create(file).map_err(|e| fail(format!("{name}: {e}")))?;
            let bar = progress(span.size, "save", json);
            let summary = transfer::save(&region, span.base, span.size, &mut out, &name, |n| {
                if let Some(bar) = &bar {
                    bar.set_position(n);
                }
            })?;
            if let Some(bar) = bar {
                bar.finish_and_clear();
            }
            summary
        }
    };
    if file.is_none() {
        // Standard output holds the bytes; the summary goes nowhere.
    } else if json {
        print_json(&summary)?;
    } else {
        println!(
            "{}: saved {} from offset {} to {} (sha256 {})",
            path.display(),
            approx(summary.bytes),
            format_addr(summary.offset),
            summary.file,
            summary.checksum
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn cmd_restore(file: &Path, offset: u64, spec: Option<&str>, json: bool) -> Res<ExitCode> {
    let path = region_path(spec)?;
    let region = Region::open_with(&path, Access::ReadWrite)?;
    let size = region.info()?.size;
    if offset >= size {
        return Err(fail(format!(
            "{}: offset {} is not inside the region ({} long)",
            path.display(),
            format_addr(offset),
            format_size(size)
        )));
    }
    let name = file.display().to_string();
    let mut src = fs::File::open(file).map_err(|e| fail(format!("{name}: {e}")))?;
    let meta = src.metadata().map_err(|e| fail(format!("{name}: {e}")))?;
    let file_len = meta.is_file().then_some(meta.len());
    let bar = progress(file_len.unwrap_or(0), "restore", json);
    let summary = transfer::restore(
        &region,
        offset,
        size - offset,
        &mut src,
        file_len,
        &name,
        |n| {
            if let Some(bar) = &bar {
                bar.set_position(n);
            }
        },
    )?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    if json {
        print_json(&summary)?;
    } else {
        println!(
            "{}: restored {} from {} at offset {} (sha256 {})",
            path.display(),
            approx(summary.bytes),
            summary.file,
            format_addr(summary.offset),
            summary.checksum
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn read_cmdline(file: Option<&Path>) -> Res<String> {
    let path = file.unwrap_or(Path::new("/proc/cmdline"));
    fs::read_to_string(path).map_err(|e| Failure::io(path.display(), &e))
}

/// Every region node, asked what it holds; the ones that cannot be asked, and why.
fn region_views() -> (Vec<RegionView>, Vec<Failure>) {
    let mut views = Vec::new();
    let mut errors = Vec::new();
    for path in discover() {
        match Region::open_with(&path, Access::Read).and_then(|r| r.info()) {
            Ok(info) => match Span::new(info.base, info.size) {
                Ok(span) => views.push(RegionView {
                    path,
                    name: info.name().to_string(),
                    span,
                }),
                Err(why) => errors.push(Failure::new(
                    Errno::IO,
                    format!("{}: reports {why}", path.display()),
                )),
            },
            Err(err) => errors.push(err.into()),
        }
    }
    (views, errors)
}

/// The firmware's own memory map, or why it cannot be read.
fn firmware_memmap() -> Result<FirmwareMap, String> {
    let dir = Path::new("/sys/firmware/memmap");
    FirmwareMap::from_sysfs(dir)
        .map_err(|e| format!("{}: {e} (CONFIG_FIRMWARE_MEMMAP)", dir.display()))
}

/// What `load` did with each `memmap=` entry: a line each in text, an object each in JSON.
struct LoadReport {
    json: bool,
    entries: Vec<Value>,
    failed: usize,
}

impl LoadReport {
    /// One entry's outcome: `action` names it (`skipped`, `would_create`, `enabled_already`,
    /// `created`, `overlaps`, `failed`); a failure makes `load` exit 1.
    fn entry(
        &mut self,
        (name, entry, span): (&str, &Memmap, &Span),
        action: &str,
        node: Option<&Path>,
        failure: Option<&Failure>,
        text: String,
    ) {
        if failure.is_some() {
            self.failed += 1;
        }
        if !self.json {
            match failure {
                Some(_) => eprintln!("carveoutctl: {text}"),
                None => println!("{text}"),
            }
            return;
        }
        let mut j = json!({
            "name": name,
            "memmap": entry.to_string(),
            "base": span.base,
            "size": span.size,
            "action": action,
            "node": node.map(|n| n.display().to_string()),
        });
        if let Some(failure) = failure {
            j["error"] = failure.to_json("load");
        }
        self.entries.push(j);
    }
}

fn cmd_load(
    cmdline: Option<&Path>,
    dry_run: bool,
    force: bool,
    opts: &configfs::Options,
    json: bool,
) -> Res<ExitCode> {
    let entries = memmap::parse_cmdline(&read_cmdline(cmdline)?)?;
    let reserved: Vec<_> = entries
        .iter()
        .filter_map(|e| e.reserved().map(|s| (e, s)))
        .collect();
    let (regions, errors) = if reserved.is_empty() {
        (Vec::new(), Vec::new())
    } else {
        region_views()
    };
    let mut report = LoadReport {
        json,
        entries: Vec::new(),
        failed: 0,
    };
    if reserved.is_empty() && !json {
        println!("no memmap=SIZE$BASE on the kernel command line: nothing to load (see `carveoutctl plan`)");
    }
    for err in errors.iter().filter(|_| !json) {
        eprintln!("carveoutctl: {err}");
    }
    let root = Path::new(configfs::ROOT);
    let firmware = firmware_memmap();
    if let (Err(why), false) = (&firmware, json) {
        println!("note: cannot tell memory the firmware reserved from RAM: {why}");
    }
    for (n, (entry, span)) in reserved.iter().enumerate() {
        let name = format!("memmap{n}");
        let item = (name.as_str(), *entry, span);
        if let Some(r) = regions.iter().find(|r| r.span == *span) {
            let text = format!(
                "{name}: {entry} is already held by {}: skipped",
                r.path.display()
            );
            report.entry(item, "skipped", Some(&r.path), None, text);
            continue;
        }
        if let Some(why) = firmware
            .as_ref()
            .ok()
            .and_then(|m| m.firmware_reserved_note(span))
        {
            if !force {
                let text = format!(
                    "{name}: {entry} ({}) {why}: not loading it without --force",
                    span.display()
                );
                let failure = Failure::new(Errno::PERM, text.clone()).with_status(1);
                report.entry(item, "firmware_reserved", None, Some(&failure), text);
                continue;
            }
            if !json {
                println!(
                    "{name}: {entry} ({}) {why}: loading it anyway (--force)",
                    span.display()
                );
            }
        }
        if let Some(r) = regions.iter().find(|r| r.span.overlaps(span)) {
            let text = format!(
                "{name}: {entry} ({}) overlaps {} ({}): not touching it",
                span.display(),
                r.path.display(),
                r.span.display()
            );
            let failure = Failure::new(Errno::BUSY, text.clone());
            report.entry(item, "overlaps", None, Some(&failure), text);
            continue;
        }
        if dry_run {
            let text = format!(
                "{name}: would create {}/{name} for {entry} ({} at {})",
                root.display(),
                format_size(span.size),
                format_addr(span.base)
            );
            report.entry(item, "would_create", None, None, text);
            continue;
        }
        match configfs::create(root, &name, span, opts) {
            Ok(configfs::Created::AlreadyEnabled(node)) => {
                let text = format!("{name}: exists and is enabled already ({})", node.display());
                report.entry(item, "enabled_already", Some(&node), None, text);
            }
            Ok(configfs::Created::New(node)) => {
                let info = Region::open_with(&node, Access::Read)?.info()?;
                if info.base != span.base || info.size != span.size {
                    let text = format!(
                        "{name}: {} reports {} at {}, not {entry}",
                        node.display(),
                        format_size(info.size),
                        format_addr(info.base)
                    );
                    let failure = Failure::new(Errno::IO, text.clone());
                    report.entry(item, "failed", Some(&node), Some(&failure), text);
                    continue;
                }
                let text = format!(
                    "{name}: created {} for {entry} ({} at {})",
                    node.display(),
                    format_size(span.size),
                    format_addr(span.base)
                );
                report.entry(item, "created", Some(&node), None, text);
            }
            Err(err) => {
                let stop = matches!(err, carveout::Error::Unavailable { .. });
                let text = format!("{name}: cannot create a region for {entry}: {err}");
                let failure = Failure::from(err);
                report.entry(item, "failed", None, Some(&failure), text);
                if stop {
                    break;
                }
            }
        }
    }
    if json {
        print_json(&json!({
            "dry_run": dry_run,
            "entries": report.entries,
            "errors": failures_json("load", &errors),
        }))?;
    }
    Ok(if report.failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn cmd_check(
    cmdline: Option<&Path>,
    iomem: Option<&Path>,
    pci: &[String],
    json: bool,
) -> Res<ExitCode> {
    let iomem_path = iomem.unwrap_or(Path::new("/proc/iomem"));
    let iomem = fs::read_to_string(iomem_path)
        .map_err(|e| format!("{}: {e}", iomem_path.display()))
        .and_then(|text| Iomem::parse(&text));
    let (regions, region_errors) = region_views();
    let attachments = check::Attachments::read(&regions);
    let pci = check::pci_devices(pci, &attachments);
    let input = check::Input {
        cmdline: read_cmdline(cmdline)?,
        iomem,
        regions,
        region_errors: region_errors.iter().map(Failure::to_string).collect(),
        firmware: firmware_memmap(),
        pci: pci
            .iter()
            .map(|bdf| PciIommu::read(bdf).map_err(|e| e.to_string()))
            .collect(),
        attachments,
    };
    let findings = check::check(&input);
    let ok = check::consistent(&findings);
    if json {
        print_json(&json!({
            "consistent": ok,
            "findings": findings,
            "regions": input.regions,
            "pci": input.pci.iter().flatten().collect::<Vec<_>>(),
            "attachments": input.attachments,
        }))?;
    } else {
        for f in &findings {
            let level = match f.level {
                Level::Ok => "ok",
                Level::Note => "note",
                Level::Warning => "warning",
                Level::Problem => "problem",
            };
            println!("{level}: {}", f.message);
        }
        let problems = findings
            .iter()
            .filter(|f| f.level == Level::Problem)
            .count() as u64;
        if ok {
            println!("carveout check: consistent");
        } else {
            println!(
                "carveout check: {}",
                plural(problems, "problem", "problems")
            );
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The firmware map to plan from, and the ranges the running kernel already set aside.
fn firmware_map(from: Option<&Path>) -> Res<(FirmwareMap, Vec<Span>)> {
    if let Some(from) = from {
        let map = if from.is_dir() {
            FirmwareMap::from_sysfs(from)?
        } else {
            let text = fs::read_to_string(from).map_err(|e| Failure::io(from.display(), &e))?;
            FirmwareMap::from_text(&text, &from.display().to_string()).map_err(fail)?
        };
        return Ok((map, Vec::new()));
    }
    // The live system: /sys/firmware/memmap is the firmware's table before memmap= changed
    // it, so the command line's own entries are avoided too, and so are the regions carveout
    // holds: RAM that reserve_mem= set aside shows as usable in both maps.
    let held = region_views().0.into_iter().map(|r| r.span);
    let avoid = fs::read_to_string("/proc/cmdline")
        .ok()
        .and_then(|c| memmap::parse_cmdline(&c).ok())
        .unwrap_or_default()
        .iter()
        .filter(|e| {
            !matches!(
                e.entry,
                memmap::Entry::Range {
                    kind: Kind::Ram,
                    ..
                }
            )
        })
        .filter_map(|e| e.span())
        .chain(held)
        .collect();
    let sysfs = Path::new("/sys/firmware/memmap");
    if sysfs.is_dir() {
        return Ok((FirmwareMap::from_sysfs(sysfs)?, avoid));
    }
    let text = fs::read_to_string("/proc/iomem").map_err(|e| Failure::io("/proc/iomem", &e))?;
    let map = FirmwareMap::from_text(&text, "/proc/iomem").map_err(|why| {
        fail(format!(
            "/sys/firmware/memmap is missing (CONFIG_FIRMWARE_MEMMAP) and /proc/iomem cannot \
             be used: {why}; save a listing and pass it with --from \
             (dmesg | grep e820 > e820.txt)"
        ))
    })?;
    Ok((map, avoid))
}

fn parse_chosen(s: &str) -> Result<Span, String> {
    plan::parse_chosen(s)
}

fn cmd_plan(
    chosen: Option<Span>,
    size: Option<u64>,
    align: Option<u64>,
    below: Option<u64>,
    from: Option<&Path>,
    json: bool,
) -> Res<ExitCode> {
    let (map, avoid) = firmware_map(from)?;
    let size = chosen.map_or(size.unwrap_or(0), |c| c.size);
    let req = plan::Request {
        size,
        align: align.unwrap_or_else(|| plan::default_align(size)),
        below,
        avoid,
    };
    let mut p = match chosen {
        // A range the user chose: it holds or it does not, saying what it hits.
        Some(span) => plan::vet(&map, &span, &req).map_err(|why| {
            Failure::new(
                Errno::INVAL,
                format!("{} does not do: {why}", memmap::reserve_arg(&span)),
            )
            .with_status(1)
        })?,
        None => plan::plan(&map, &req).map_err(|why| {
            // A request no map could satisfy, or one this map has no room for.
            let malformed = size == 0 || size % 4096 != 0 || !req.align.is_power_of_two();
            let errno = if malformed || req.align < 4096 {
                Errno::INVAL
            } else {
                Errno::NOSPC
            };
            Failure::new(errno, format!("no plan from {}: {why}", map.source)).with_status(1)
        })?,
    };
    // What the base is aligned to: as asked for a proposal, as it happens for a chosen range.
    let (verb, align) = match chosen {
        Some(span) => ("vetted:  ", 1u64 << span.base.trailing_zeros().min(30)),
        None => ("proposal:", req.align),
    };
    if from.is_none() && map.source == "/sys/firmware/memmap" {
        // What is in use already, in memory the firmware itself reserved (only the firmware's
        // own map tells: in /proc/iomem a memmap=$ range is Reserved too).
        let held: Vec<(String, Span)> = region_views()
            .0
            .into_iter()
            .map(|r| (r.path.display().to_string(), r.span))
            .chain(
                fs::read_to_string("/proc/cmdline")
                    .ok()
                    .and_then(|c| memmap::parse_cmdline(&c).ok())
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|e| e.reserved().map(|s| (e.to_string(), s))),
            )
            .collect();
        p.notes.extend(plan::firmware_reserved_notes(&map, &held));
    }
    let raw = memmap::reserve_arg(&p.span);
    let prompt = memmap::grub_escape(&raw);
    let default_grub = format!(
        "GRUB_CMDLINE_LINUX=\"... {}\"",
        memmap::etc_default_grub_escape(&raw)
    );
    let grubby = memmap::grubby_command(&raw);
    // What /etc/modprobe.d/carveout.conf (make install) takes, for modprobe at every boot.
    let options = format!(
        "options carveout base={} size={:#x}",
        format_addr(p.span.base),
        p.span.size
    );
    let insmod = format!(
        "insmod carveout.ko base={} size={:#x}",
        format_addr(p.span.base),
        p.span.size
    );
    // Where KASLR puts the kernel (7.3): the EFI stub turns physical randomisation off when
    // memmap= is on the command line; the decompressor (legacy boot) avoids up to four
    // memmap= ranges and with more does not randomise at all.
    let kaslr = "KASLR keeps out of the range: an EFI boot with memmap= does not randomise the \
                 kernel's physical address, and a legacy boot avoids up to four memmap= ranges \
                 (with more, the kernel stays where the boot loader put it)";
    if json {
        print_json(&json!({
            "source": map.source,
            "base": p.span.base,
            "size": p.span.size,
            "last": p.span.last(),
            "align": align,
            "inside": p.inside,
            "usable_total": p.usable_total,
            "memmap": raw,
            "grub_prompt": prompt,
            "etc_default_grub": default_grub,
            "grubby": grubby,
            "insmod": insmod,
            "modprobe_options": options,
            "notes": p.notes,
        }))?;
    } else {
        println!(
            "source:   {} ({} of usable RAM)",
            map.source,
            approx(p.usable_total)
        );
        println!(
            "{verb} {} at {}, aligned to {}, inside usable {}",
            format_size(p.span.size),
            p.span.display(),
            format_size(align),
            p.inside.display()
        );
        println!();
        println!("{raw}");
        println!();
        println!("kernel command line:     {raw}");
        println!("GRUB prompt (one boot):  {prompt}");
        println!("/etc/default/grub:       {default_grub}");
        println!(
            "                         then update-grub (or grub2-mkconfig -o /boot/grub2/grub.cfg)"
        );
        println!("grubby:                  {grubby}");
        println!("after the reboot:        carveoutctl load   (or {insmod})");
        println!("at every boot:           {options}   in /etc/modprobe.d/carveout.conf");
        for note in &p.notes {
            println!("note: {note}");
        }
        println!("note: {kaslr}");
    }
    Ok(ExitCode::SUCCESS)
}

/// What the man page says beyond the clap definition (roff).
const MAN_EXIT_STATUS: &str = r#".SH "EXIT STATUS"
.TP
0
the command did what it says, or the check holds
.TP
1
a check does not hold: a \fBverify\fR mismatch, a \fBcheck\fR problem, a \fBload\fR or \fBplan\fR
that could not do all it was asked
.TP
2
a usage or system error
.SH JSON
With \fB\-\-json\fR every command prints one JSON value on standard output, and a failure too,
with the same exit status:
.PP
.nf
{"op":"attr set","errno":16,"error":"EBUSY","reason":"/dev/carveout0: CARVEOUT_SET_ATTR to uc refused with EBUSY ..."}
.fi
.PP
\fBop\fR is the subcommand, \fBerrno\fR the number and \fBerror\fR the name of the errno that
names the failure (the kernel's, when the kernel refused), \fBreason\fR the sentence the text
output prints.
.SH FILES
.TP
/dev/carveout0, /dev/carveout/NAME
the region nodes
.TP
/sys/kernel/config/carveout/NAME
regions made at run time (\fBload\fR)
.TP
/proc/cmdline, /proc/iomem, /sys/firmware/memmap
what \fBcheck\fR, \fBload\fR and \fBplan\fR read
"#;

/// Each command under `parent` (depth first, as `attr set`): its synopsis, description and
/// options.
fn man_commands(out: &mut dyn io::Write, prefix: &str, parent: &clap::Command) -> io::Result<()> {
    for sub in parent.get_subcommands().filter(|s| s.get_name() != "help") {
        let name = format!("{prefix}{}", sub.get_name());
        if sub.has_subcommands() {
            man_commands(out, &format!("{name} "), sub)?;
            continue;
        }
        // The global --json and --help are the page's own options, not each command's.
        let sub = sub
            .clone()
            .bin_name(format!("carveoutctl {name}"))
            .mut_arg("json", |a| a.hide(true))
            .mut_arg("help", |a| a.hide(true));
        let sub_man = clap_mangen::Man::new(sub.clone());
        let mut synopsis = Vec::new();
        let mut description = Vec::new();
        let mut options = Vec::new();
        sub_man.render_synopsis_section(&mut synopsis)?;
        sub_man.render_description_section(&mut description)?;
        if sub.get_arguments().any(|a| !a.is_hide_set()) {
            sub_man.render_options_section(&mut options)?;
        }
        writeln!(out, ".SS \"{name}\"")?;
        for (i, part) in [synopsis, description, options].iter().enumerate() {
            if i > 0 {
                writeln!(out, ".PP")?;
            }
            for line in String::from_utf8_lossy(part).lines() {
                if !line.starts_with(".SH ") {
                    writeln!(out, "{line}")?;
                }
            }
        }
    }
    Ok(())
}

/// The man page: clap_mangen's sections for carveoutctl, then every subcommand's synopsis,
/// description and options under COMMANDS.
fn man_page(out: &mut dyn io::Write) -> io::Result<()> {
    let mut page = Vec::new();
    man_sections(&mut page)?;
    // Each clap_mangen render starts with the same two lines (the Aq string): once is enough.
    let page = String::from_utf8_lossy(&page);
    let mut seen = Vec::new();
    for line in page.lines() {
        if line.starts_with(".ie \\n(.g .ds Aq") || line.starts_with(".el .ds Aq") {
            if seen.contains(&line) {
                continue;
            }
            seen.push(line);
        }
        writeln!(out, "{line}")?;
    }
    Ok(())
}

fn man_sections(out: &mut dyn io::Write) -> io::Result<()> {
    let mut cmd = Cli::command();
    cmd.build();
    let man = clap_mangen::Man::new(cmd.clone());
    man.render_title(out)?;
    man.render_name_section(out)?;
    man.render_synopsis_section(out)?;
    man.render_description_section(out)?;
    man.render_options_section(out)?;
    writeln!(out, ".SH COMMANDS")?;
    man_commands(out, "", &cmd)?;
    let mut extra = Vec::new();
    man.render_extra_section(&mut extra)?;
    let extra = String::from_utf8_lossy(&extra).replacen(
        ".SH EXTRA",
        ".SH \"REGIONS, SIZES AND ADDRESSES\"",
        1,
    );
    out.write_all(extra.as_bytes())?;
    out.write_all(MAN_EXIT_STATUS.as_bytes())?;
    man.render_version_section(out)
}

/// `CARVEOUTCTL_GENERATE=man|bash|zsh|fish carveoutctl`: the man page or a shell's
/// completions on standard output, generated from the clap definition (for `make install`).
/// An environment variable rather than a subcommand, so that neither lists it.
fn generate(what: &str) -> ExitCode {
    let mut out = io::stdout().lock();
    let shell = match what {
        "man" => {
            return match man_page(&mut out) {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => report("generate", &Failure::io("the man page", &err), false),
            };
        }
        "bash" => clap_complete::Shell::Bash,
        "zsh" => clap_complete::Shell::Zsh,
        "fish" => clap_complete::Shell::Fish,
        _ => {
            let failure = Failure::invalid(format!(
                "CARVEOUTCTL_GENERATE={what:?}: man, bash, zsh or fish"
            ));
            return report("generate", &failure, false);
        }
    };
    clap_complete::generate(shell, &mut Cli::command(), "carveoutctl", &mut out);
    ExitCode::SUCCESS
}

fn run(cli: &Cli) -> Res<ExitCode> {
    let json = cli.json;
    match &cli.command {
        Command::List => cmd_list(json),
        Command::Info { region } => cmd_info(region.as_deref(), json),
        Command::Attr { op } => cmd_attr(op, json),
        Command::Fill {
            seed,
            range,
            region,
        } => cmd_fill(*seed, *range, region.as_deref(), json),
        Command::Verify {
            seed,
            range,
            region,
        } => cmd_verify(*seed, *range, region.as_deref(), json),
        Command::Dump {
            offset,
            len,
            raw: false,
            region,
        } => cmd_dump(*offset, len.unwrap_or(256), region.as_deref(), json),
        Command::Dump {
            offset,
            len,
            raw: true,
            region,
        } => cmd_save(None, *offset, *len, region.as_deref(), json),
        Command::Save {
            file,
            offset,
            len,
            region,
        } => cmd_save(Some(file), *offset, *len, region.as_deref(), json),
        Command::Restore {
            file,
            offset,
            region,
        } => cmd_restore(file, *offset, region.as_deref(), json),
        Command::Load {
            cmdline,
            dry_run,
            attr,
            mode,
            gid,
            force,
        } => cmd_load(
            cmdline.as_deref(),
            *dry_run,
            *force,
            &configfs::Options {
                attr: *attr,
                mode: *mode,
                gid: *gid,
            },
            json,
        ),
        Command::Check {
            cmdline,
            iomem,
            pci,
        } => cmd_check(cmdline.as_deref(), iomem.as_deref(), pci, json),
        Command::Plan {
            range,
            size,
            align,
            below,
            from,
        } => cmd_plan(*range, *size, *align, *below, from.as_deref(), json),
        Command::Attach {
            device,
            region,
            reach_bits,
        } => {
            let region = Region::open(region_path(region.as_deref())?)?;
            let done = carveout::attach::attach(&region, device, *reach_bits)?;
            print_or_json(&done, json)
        }
        Command::Detach { device, region } => {
            let done =
                carveout::attach::detach(&Region::open(region_path(region.as_deref())?)?, device)?;
            print_or_json(&done, json)
        }
        Command::Sync {
            for_,
            offset,
            len,
            region,
        } => {
            let region = Region::open(region_path(region.as_deref())?)?;
            print_or_json(
                &carveout::attach::sync(&region, *offset, *len, *for_)?,
                json,
            )
        }
    }
}

/// The subcommand as people type it (`attr set`), the `op` of a JSON failure.
fn op_name(matches: &ArgMatches) -> String {
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
fn op_from_args(args: &[String]) -> String {
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

/// Prints a failure: `carveoutctl: REASON` on standard error, or under `--json` the object
/// `{"op","errno","error","reason"}` on standard output. Every command's failure ends here.
fn report(op: &str, failure: &Failure, json: bool) -> ExitCode {
    if json {
        println!("{}", failure.to_json(op));
    } else {
        eprintln!("carveoutctl: {failure}");
    }
    ExitCode::from(failure.status)
}

fn main() -> ExitCode {
    if let Some(what) = std::env::var_os("CARVEOUTCTL_GENERATE") {
        return generate(&what.to_string_lossy());
    }
    let args: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let json = args
        .iter()
        .skip(1)
        .take_while(|a| *a != "--")
        .any(|a| a == "--json");
    let parsed = Cli::command()
        .try_get_matches_from(&args)
        .and_then(|m| Ok((Cli::from_arg_matches(&m)?, op_name(&m))));
    let (cli, op) = match parsed {
        Ok(parsed) => parsed,
        Err(err) if !json || !err.use_stderr() => err.exit(),
        Err(err) => {
            // clap's message without its "error: " and its hints.
            let text = err.render().to_string();
            let reason = text
                .lines()
                .next()
                .unwrap_or_default()
                .trim_start_matches("error: ");
            let status = u8::try_from(err.exit_code()).unwrap_or(2);
            let failure = Failure::invalid(reason).with_status(status);
            return report(&op_from_args(&args), &failure, true);
        }
    };
    match run(&cli) {
        Ok(code) => code,
        Err(failure) => report(&op, &failure, cli.json),
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
    fn hexdump_looks_like_hexdump_c() {
        let text = hexdump(0x10, b"carveout\x00\x01\x02\x03\x04\x05\x06\x07AB");
        assert_eq!(
            text,
            "00000010  63 61 72 76 65 6f 75 74  00 01 02 03 04 05 06 07  |carveout........|\n\
             00000020  41 42                                             |AB|\n"
        );
    }

    #[test]
    fn the_cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    fn args(line: &str) -> Vec<String> {
        line.split_whitespace().map(String::from).collect()
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

    #[test]
    fn the_man_page_and_completions_cover_every_subcommand() {
        let mut man = Vec::new();
        man_page(&mut man).unwrap();
        let man = String::from_utf8(man).unwrap();
        assert!(man.contains(".TH carveoutctl 1"), "{man}");
        // Each command's own options are on the page, once each.
        for option in [r"\-\-seed", r"\-\-dry\-run", r"\-\-below"] {
            assert!(man.contains(option), "man: no {option}");
        }
        assert!(man.contains(".SS \"attr set\""), "{man}");
        // --json: the synopsis, the options and the JSON section; no command repeats it.
        assert_eq!(man.matches(r"\fB\-\-json\fR").count(), 3, "{man}");
        for shell in [
            clap_complete::Shell::Bash,
            clap_complete::Shell::Zsh,
            clap_complete::Shell::Fish,
        ] {
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "carveoutctl", &mut out);
            let out = String::from_utf8(out).unwrap();
            assert!(
                out.contains("--json") || out.contains("-l json"),
                "{shell}: no --json"
            );
            for sub in Cli::command().get_subcommands() {
                let name = sub.get_name();
                assert!(out.contains(name), "{shell}: no {name}");
                assert!(man.contains(&format!(".SS \"{name}")), "man: no {name}");
            }
        }
    }
}
