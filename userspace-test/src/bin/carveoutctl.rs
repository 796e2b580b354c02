//! carveoutctl: list, inspect, fill, verify and plan carveout regions.
//!
//! Exit status: 0 when the command did what it says (or the check holds), 1 when a check does
//! not hold (`verify` mismatch, `check` problems, `load` or `plan` could not do all it was
//! asked), 2 on a usage or system error.

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
    memmap::{self, format_addr, format_size, parse_size, Kind, Span},
    plan::{self, FirmwareMap},
    resolve, transfer, Access, Attr, Region,
};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use serde_json::json;

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
    /// Print JSON (list, info, attr get, verify, dump, save, restore, check, plan).
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
    /// Propose a memmap=SIZE$BASE inside usable RAM, from the firmware memory map.
    Plan {
        #[arg(long, value_parser = parse_sz)]
        size: u64,
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

fn parse_mode(s: &str) -> Result<u32, String> {
    u32::from_str_radix(s, 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| format!("{s:?} is not an octal mode like 0660"))
}

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn fail(msg: impl Into<String>) -> Box<dyn std::error::Error> {
    msg.into().into()
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
        0 => Err(fail(
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

fn attr_name(flags: u32) -> String {
    Attr::from_flags(flags).map_or_else(
        || format!("? ({:#x})", flags & abi::MR_ATTR_MASK),
        |a| a.to_string(),
    )
}

fn cmd_list(json: bool) -> Res<ExitCode> {
    let mut rows = Vec::new();
    let mut errors = 0;
    for path in discover() {
        match Region::open_with(&path, Access::Read).and_then(|r| r.info()) {
            Ok(info) => rows.push(info_json(&path, &info)),
            Err(err) => {
                eprintln!("carveoutctl: {err}");
                errors += 1;
            }
        }
    }
    if json {
        print_json(&rows)?;
    } else if rows.is_empty() && errors == 0 {
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
    Ok(if errors > 0 {
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
    if json {
        print_json(&j)?;
    } else {
        println!("{}: {}", j.path, j.name);
        println!("  base    {}", format_addr(j.base));
        println!("  size    {} ({:#x})", format_size(j.size), j.size);
        println!("  range   {}-{}", format_addr(j.base), format_addr(j.last));
        println!("  attr    {}", attr_name(j.flags));
        println!("  flags   {:#x} ({})", j.flags, j.flag_names.join(" "));
        println!("  mapped  {}", if j.mapped { "yes" } else { "no" });
        println!("  memmap  {}", j.memmap);
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
            println!("{}: attribute set to {attr}", path.display());
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
    println!(
        "{}: filled {} at offset {} with the pattern for seed {seed:#x}",
        path.display(),
        format_size(span.size),
        format_addr(span.base)
    );
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
    fs::read_to_string(path).map_err(|e| fail(format!("{}: {e}", path.display())))
}

/// Every region node, asked what it holds; the ones that cannot be asked, in words.
fn region_views() -> (Vec<RegionView>, Vec<String>) {
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
                Err(why) => errors.push(format!("{}: reports {why}", path.display())),
            },
            Err(err) => errors.push(err.to_string()),
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

fn cmd_load(
    cmdline: Option<&Path>,
    dry_run: bool,
    force: bool,
    opts: &configfs::Options,
) -> Res<ExitCode> {
    let entries = memmap::parse_cmdline(&read_cmdline(cmdline)?)?;
    let reserved: Vec<_> = entries
        .iter()
        .filter_map(|e| e.reserved().map(|s| (e, s)))
        .collect();
    if reserved.is_empty() {
        println!("no memmap=SIZE$BASE on the kernel command line: nothing to load (see `carveoutctl plan`)");
        return Ok(ExitCode::SUCCESS);
    }
    let (regions, errors) = region_views();
    for err in &errors {
        eprintln!("carveoutctl: {err}");
    }
    let root = Path::new(configfs::ROOT);
    let firmware = firmware_memmap();
    if let Err(why) = &firmware {
        println!("note: cannot tell memory the firmware reserved from RAM: {why}");
    }
    let mut failed = 0;
    for (n, (entry, span)) in reserved.iter().enumerate() {
        let name = format!("memmap{n}");
        if let Some(r) = regions.iter().find(|r| r.span == *span) {
            println!(
                "{name}: {entry} is already held by {}: skipped",
                r.path.display()
            );
            continue;
        }
        if let Some(why) = firmware
            .as_ref()
            .ok()
            .and_then(|m| m.firmware_reserved_note(span))
        {
            if !force {
                println!(
                    "{name}: {entry} ({}) {why}: not loading it without --force",
                    span.display()
                );
                failed += 1;
                continue;
            }
            println!(
                "{name}: {entry} ({}) {why}: loading it anyway (--force)",
                span.display()
            );
        }
        if let Some(r) = regions.iter().find(|r| r.span.overlaps(span)) {
            println!(
                "{name}: {entry} ({}) overlaps {} ({}): not touching it",
                span.display(),
                r.path.display(),
                r.span.display()
            );
            failed += 1;
            continue;
        }
        if dry_run {
            println!(
                "{name}: would create {}/{name} for {entry} ({} at {})",
                root.display(),
                format_size(span.size),
                format_addr(span.base)
            );
            continue;
        }
        match configfs::create(root, &name, span, opts) {
            Ok(configfs::Created::AlreadyEnabled(node)) => {
                println!("{name}: exists and is enabled already ({})", node.display());
            }
            Ok(configfs::Created::New(node)) => {
                let info = Region::open_with(&node, Access::Read)?.info()?;
                if info.base != span.base || info.size != span.size {
                    eprintln!(
                        "carveoutctl: {name}: {} reports {} at {}, not {entry}",
                        node.display(),
                        format_size(info.size),
                        format_addr(info.base)
                    );
                    failed += 1;
                    continue;
                }
                println!(
                    "{name}: created {} for {entry} ({} at {})",
                    node.display(),
                    format_size(span.size),
                    format_addr(span.base)
                );
            }
            Err(err) => {
                eprintln!("carveoutctl: {name}: cannot create a region for {entry}: {err}");
                failed += 1;
                if matches!(err, carveout::Error::Unavailable { .. }) {
                    break;
                }
            }
        }
    }
    Ok(if failed > 0 {
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
    let input = check::Input {
        cmdline: read_cmdline(cmdline)?,
        iomem,
        regions,
        region_errors,
        firmware: firmware_memmap(),
        pci: pci
            .iter()
            .map(|bdf| PciIommu::read(bdf).map_err(|e| e.to_string()))
            .collect(),
    };
    let findings = check::check(&input);
    let ok = check::consistent(&findings);
    if json {
        print_json(&json!({
            "consistent": ok,
            "findings": findings,
            "regions": input.regions,
            "pci": input.pci.iter().flatten().collect::<Vec<_>>(),
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
            let text =
                fs::read_to_string(from).map_err(|e| fail(format!("{}: {e}", from.display())))?;
            FirmwareMap::from_text(&text, &from.display().to_string()).map_err(fail)?
        };
        return Ok((map, Vec::new()));
    }
    // The live system: /sys/firmware/memmap is the firmware's table before memmap= changed
    // it, so the command line's own entries are avoided too.
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
        .collect();
    let sysfs = Path::new("/sys/firmware/memmap");
    if sysfs.is_dir() {
        return Ok((FirmwareMap::from_sysfs(sysfs)?, avoid));
    }
    let text = fs::read_to_string("/proc/iomem")?;
    let map = FirmwareMap::from_text(&text, "/proc/iomem").map_err(|why| {
        fail(format!(
            "/sys/firmware/memmap is missing (CONFIG_FIRMWARE_MEMMAP) and /proc/iomem cannot \
             be used: {why}; save a listing and pass it with --from \
             (dmesg | grep e820 > e820.txt)"
        ))
    })?;
    Ok((map, avoid))
}

fn cmd_plan(
    size: u64,
    align: Option<u64>,
    below: Option<u64>,
    from: Option<&Path>,
    json: bool,
) -> Res<ExitCode> {
    let (map, avoid) = firmware_map(from)?;
    let req = plan::Request {
        size,
        align: align.unwrap_or_else(|| plan::default_align(size)),
        below,
        avoid,
    };
    let mut p = match plan::plan(&map, &req) {
        Ok(p) => p,
        Err(why) => {
            eprintln!("carveoutctl: no plan from {}: {why}", map.source);
            return Ok(ExitCode::from(1));
        }
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
    let insmod = format!(
        "insmod carveout.ko base={} size={:#x}",
        format_addr(p.span.base),
        p.span.size
    );
    let kaslr = "with KASLR (CONFIG_RANDOMIZE_BASE) the kernel may unpack itself into the range \
                 before memmap= takes effect; boot with nokaslr if its contents must survive a \
                 reboot";
    if json {
        print_json(&json!({
            "source": map.source,
            "base": p.span.base,
            "size": p.span.size,
            "last": p.span.last(),
            "align": req.align,
            "inside": p.inside,
            "usable_total": p.usable_total,
            "memmap": raw,
            "grub_prompt": prompt,
            "etc_default_grub": default_grub,
            "grubby": grubby,
            "insmod": insmod,
            "notes": p.notes,
        }))?;
    } else {
        println!(
            "source:   {} ({} of usable RAM)",
            map.source,
            approx(p.usable_total)
        );
        println!(
            "proposal: {} at {}, aligned to {}, inside usable {}",
            format_size(p.span.size),
            p.span.display(),
            format_size(req.align),
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
        for note in &p.notes {
            println!("note: {note}");
        }
        println!("note: {kaslr}");
    }
    Ok(ExitCode::SUCCESS)
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
        ),
        Command::Check {
            cmdline,
            iomem,
            pci,
        } => cmd_check(cmdline.as_deref(), iomem.as_deref(), pci, json),
        Command::Plan {
            size,
            align,
            below,
            from,
        } => cmd_plan(*size, *align, *below, from.as_deref(), json),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("carveoutctl: {err}");
            ExitCode::from(2)
        }
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
        assert!(parse_mode("0999").is_err());
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
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
