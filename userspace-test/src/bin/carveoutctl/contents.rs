//! `fill`, `verify`, `dump`, `save` and `restore`: a region's contents.

use std::{fmt::Write as _, fs, io, path::Path, process::ExitCode};

use carveout::{
    memmap::{format_addr, format_size, Span},
    transfer, Access, Region,
};
use serde_json::json;

use crate::{
    output::{approx, fail, plural, print_json, Progress, Res},
    regions::{open_to_read, region_path, window},
};

pub fn cmd_fill(seed: u64, range: Option<Span>, spec: Option<&str>, json: bool) -> Res<ExitCode> {
    let path = region_path(spec)?;
    let region = Region::open_with(&path, Access::ReadWrite)?;
    let (_, span) = window(&region, range, true)?;
    let mapping = region.map(span.base..span.base + span.size, Access::ReadWrite)?;
    let bar = Progress::new(span.size, "fill", json);
    mapping.fill_pattern(seed, |done| bar.set(done));
    bar.finish();
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

pub fn cmd_verify(seed: u64, range: Option<Span>, spec: Option<&str>, json: bool) -> Res<ExitCode> {
    let path = region_path(spec)?;
    let region = open_to_read(&path)?;
    let (info, span) = window(&region, range, true)?;
    let mapping = region.map(span.base..span.base + span.size, Access::Read)?;
    let bar = Progress::new(span.size, "verify", json);
    let result = mapping.verify_pattern(seed, |done| bar.set(done));
    bar.finish();
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

pub fn cmd_dump(offset: u64, len: u64, spec: Option<&str>, json: bool) -> Res<ExitCode> {
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
pub fn cmd_save(
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
            let bar = Progress::new(span.size, "save", json);
            let summary = transfer::save(&region, span.base, span.size, &mut out, &name, |n| {
                bar.set(n)
            })?;
            bar.finish();
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

pub fn cmd_restore(file: &Path, offset: u64, spec: Option<&str>, json: bool) -> Res<ExitCode> {
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
    let bar = Progress::new(file_len.unwrap_or(0), "restore", json);
    let summary = transfer::restore(
        &region,
        offset,
        size - offset,
        &mut src,
        file_len,
        &name,
        |n| bar.set(n),
    )?;
    bar.finish();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hexdump_looks_like_hexdump_c() {
        let text = hexdump(0x10, b"carveout\x00\x01\x02\x03\x04\x05\x06\x07AB");
        assert_eq!(
            text,
            "00000010  63 61 72 76 65 6f 75 74  00 01 02 03 04 05 06 07  |carveout........|\n\
             00000020  41 42                                             |AB|\n"
        );
    }
}
