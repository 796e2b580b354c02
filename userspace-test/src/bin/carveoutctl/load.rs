//! `load`: a region for every `memmap=` entry on the kernel command line.

use std::{path::Path, process::ExitCode};

use carveout::{
    configfs,
    memmap::{self, format_addr, format_size, Memmap, Span},
    Access, Failure, Region,
};
use rustix::io::Errno;
use serde_json::{json, Value};

use crate::{
    boot::{firmware_memmap, read_cmdline},
    output::{failures_json, print_json, Res},
    regions::region_views,
};

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

/// With `--pages`: the folio size and what the region's memory map costs (64 bytes a 4 KiB
/// page; at most that with large folios, whose tail pages the kernel may share).
fn pages_note(opts: &configfs::Options, span: &Span) -> String {
    if opts.pages {
        let folio = opts.pages_align.unwrap_or(4096);
        format!(
            ", with pages in {} folios: its memory map takes {} of RAM",
            format_size(folio),
            format_size(carveout::check::memmap_cost(span.size, folio))
        )
    } else {
        String::new()
    }
}

pub fn cmd_load(
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
                "{name}: would create {}/{name} for {entry} ({} at {}){}",
                root.display(),
                format_size(span.size),
                format_addr(span.base),
                pages_note(opts, span)
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
                    "{name}: created {} for {entry} ({} at {}){}",
                    node.display(),
                    format_size(span.size),
                    format_addr(span.base),
                    pages_note(opts, span)
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
            "pages": opts.pages,
            "pages_align": opts.pages.then(|| opts.pages_align.unwrap_or(4096)),
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
