//! `list`, `info` and `attr`: what the regions are.

use std::{path::Path, process::ExitCode};

use carveout::{
    abi, discover, flag_names,
    memmap::{self, format_addr, format_size, Span},
    Access, Attr, Failure, Region,
};
use serde::Serialize;
use serde_json::{json, Value};

use crate::{
    cli::AttrOp,
    output::{failures_json, print_json, Res},
    regions::region_path,
};

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
    /// Pages mode (`CARVEOUT_MR_PAGES`): its mappings can be pinned (O_DIRECT, io_uring).
    pages: bool,
    /// The size of a pages-mode region's folios (sysfs `pages_align`), 0 without pages.
    pages_align: u64,
    abi_version: u32,
    memmap: String,
}

fn info_json(path: &Path, region: &Region, info: &abi::Info) -> InfoJson {
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
        pages: info.flags & abi::MR_PAGES != 0,
        pages_align: region.pages_align(),
        abi_version: info.abi_version,
        memmap: memmap::reserve_arg(&span),
    }
}

fn attr_name(flags: u32) -> String {
    Attr::from_flags(flags).map_or_else(
        || format!("? ({:#x})", flags & abi::MR_ATTR_MASK),
        |a| a.to_string(),
    )
}

pub fn cmd_list(json: bool) -> Res<ExitCode> {
    let mut rows = Vec::new();
    let mut errors = Vec::new();
    for path in discover() {
        let opened = Region::open_with(&path, Access::Read);
        match opened.and_then(|region| region.info().map(|info| (region, info))) {
            Ok((region, info)) => rows.push(info_json(&path, &region, &info)),
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

pub fn cmd_info(spec: Option<&str>, json: bool) -> Res<ExitCode> {
    let path = region_path(spec)?;
    let region = Region::open_with(&path, Access::Read)?;
    let info = region.info()?;
    let j = info_json(&path, &region, &info);
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
        println!(
            "  pages   {}",
            if !j.pages {
                "no (mapped by PFN: O_DIRECT from a mapping fails EFAULT)".to_string()
            } else if j.pages_align > 4096 {
                format!(
                    "yes, {} folios (O_DIRECT, io_uring and vmsplice can use its mappings, \
                     which map whole folios: offset and length multiples of {:#x})",
                    format_size(j.pages_align),
                    j.pages_align
                )
            } else {
                "yes (O_DIRECT, io_uring and vmsplice can use its mappings)".to_string()
            }
        );
        println!("  memmap  {}", j.memmap);
        match &devices {
            Ok(devices) if devices.is_empty() => println!("  dma     no device attached"),
            Ok(devices) => devices.iter().for_each(|d| println!("  dma     {d}")),
            Err(why) => println!("  dma     cannot tell: {why}"),
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn cmd_attr(op: &AttrOp, json: bool) -> Res<ExitCode> {
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
