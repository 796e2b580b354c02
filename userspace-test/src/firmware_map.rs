//! A firmware memory map: which physical ranges are usable RAM and which the firmware itself
//! reserved.
//!
//! Sources: `/sys/firmware/memmap` (the firmware's table, as the kernel got it), a saved
//! `dmesg` listing of the e820 table (`BIOS-e820: [mem 0x...-0x...] usable`; the last table
//! in the listing wins, since it includes what `memmap=` already changed), or a saved
//! `/proc/iomem` (top-level `System RAM`, less what is nested in it: the kernel's own image).

use std::{fs, io, path::Path};

use serde::Serialize;

use crate::{
    iomem::{self, Iomem},
    memmap::Span,
};

/// One entry of a firmware memory map.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MapEntry {
    pub span: Span,
    /// The type as the source names it (`usable`, `System RAM`, `reserved`, ...).
    pub kind: String,
    /// Whether the kernel may use it as RAM (and so `memmap=$` may reserve it).
    pub usable: bool,
}

/// A firmware memory map and where it came from.
#[derive(Debug, Clone, Serialize)]
pub struct FirmwareMap {
    pub source: String,
    pub entries: Vec<MapEntry>,
}

fn is_usable(kind: &str) -> bool {
    matches!(kind, "usable" | "System RAM")
}

/// Whether a map entry's type is memory the firmware itself set aside: `Reserved`, ACPI tables
/// and NVS, unusable memory (`/sys/firmware/memmap` names; `reserved`, `device reserved`,
/// `ACPI data`, `ACPI NVS`, `unusable` in a dmesg listing). Not RAM, and not persistent or
/// soft-reserved memory, which the firmware hands to drivers.
pub fn is_firmware_reserved(kind: &str) -> bool {
    let kind = kind.to_ascii_lowercase();
    !is_usable(&kind)
        && kind != "system ram"
        && !kind.contains("persistent")
        && !kind.contains("soft reserved")
}

/// The entry `[start, last]` of type `kind`.
pub(crate) fn entry(start: u64, last: u64, kind: &str) -> Result<MapEntry, String> {
    if last < start {
        return Err(format!("{start:#x}-{last:#x} ends before it starts"));
    }
    let span = Span::new(start, last - start + 1)?;
    Ok(MapEntry {
        span,
        kind: kind.to_string(),
        usable: is_usable(kind),
    })
}

fn hex(s: &str) -> Option<u64> {
    let s = s.trim();
    u64::from_str_radix(s.strip_prefix("0x").unwrap_or(s), 16).ok()
}

impl FirmwareMap {
    /// Reads `/sys/firmware/memmap`-style directories: `N/start`, `N/end` (inclusive), `N/type`.
    pub fn from_sysfs(dir: &Path) -> io::Result<Self> {
        let mut entries = Vec::new();
        for dirent in fs::read_dir(dir)? {
            let path = dirent?.path();
            let read = |name: &str| fs::read_to_string(path.join(name));
            let (start, end, kind) = (read("start")?, read("end")?, read("type")?);
            let bad = || {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "{}: start {start:?} / end {end:?} are not hex",
                        path.display()
                    ),
                )
            };
            let (start, last) = (hex(&start).ok_or_else(bad)?, hex(&end).ok_or_else(bad)?);
            entries.push(
                entry(start, last, kind.trim())
                    .map_err(|why| io::Error::new(io::ErrorKind::InvalidData, why))?,
            );
        }
        if entries.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{} holds no entries", dir.display()),
            ));
        }
        entries.sort_by_key(|e| e.span.base);
        Ok(Self {
            source: dir.display().to_string(),
            entries,
        })
    }

    /// A saved `dmesg` e820 listing or `/proc/iomem`, told apart by their lines.
    pub fn from_text(text: &str, source: &str) -> Result<Self, String> {
        let entries = if let Some(entries) = parse_e820(text)? {
            entries
        } else if iomem::looks_like_iomem(text) {
            from_iomem(&Iomem::parse(text)?)
        } else {
            return Err(format!(
                "{source} holds neither a dmesg e820 listing (lines like \
                 \"BIOS-e820: [mem 0x0000000000100000-0x00000000bffdffff] usable\") \
                 nor /proc/iomem lines (\"00100000-bffdffff : System RAM\")"
            ));
        };
        Ok(Self {
            source: source.to_string(),
            entries,
        })
    }

    /// The entries the firmware itself reserved (see [`is_firmware_reserved`]) that `span`
    /// overlaps.
    pub fn firmware_reserved(&self, span: &Span) -> Vec<&MapEntry> {
        self.entries
            .iter()
            .filter(|e| e.span.overlaps(span) && is_firmware_reserved(&e.kind))
            .collect()
    }

    /// "lies in memory the firmware itself reserved (SOURCE: Reserved 0x...-0x...)" when
    /// `span` overlaps such an entry: the firmware keeps ACPI tables, SMM or option ROMs
    /// there, unlike RAM that `memmap=SIZE$BASE` set aside.
    pub fn firmware_reserved_note(&self, span: &Span) -> Option<String> {
        let entries = self.firmware_reserved(span);
        if entries.is_empty() {
            return None;
        }
        let list = entries
            .iter()
            .map(|e| format!("{} {}", e.kind, e.span.display()))
            .collect::<Vec<_>>()
            .join(", ");
        Some(format!(
            "lies in memory the firmware itself reserved ({}: {list}), not in RAM the command \
             line set aside",
            self.source
        ))
    }

    /// Whether some part of `span` is in no entry of the map at all: a hole, or device
    /// memory the firmware does not list.
    pub fn leaves_unlisted(&self, span: &Span) -> bool {
        let mut rest = vec![interval(span)];
        for e in &self.entries {
            rest = subtract(rest, interval(&e.span));
        }
        !rest.is_empty()
    }

    pub fn usable_total(&self) -> u64 {
        self.entries
            .iter()
            .filter(|e| e.usable)
            .map(|e| e.span.size)
            .sum()
    }
}

/// The last e820 table in a dmesg listing, or `None` when the text has no e820 lines.
/// Understands today's `who: [mem 0xSTART-0xLAST] type` and the old
/// `BIOS-e820: START - END (type)` (END exclusive).
fn parse_e820(text: &str) -> Result<Option<Vec<MapEntry>>, String> {
    let mut tables: Vec<(String, Vec<MapEntry>)> = Vec::new();
    for line in text.lines() {
        let (who, start, last, kind) = if let Some(at) = line.find(": [mem ") {
            let who = line[..at]
                .rsplit([' ', ']'])
                .next()
                .unwrap_or("")
                .to_string();
            let rest = &line[at + ": [mem ".len()..];
            let Some((range, kind)) = rest.split_once(']') else {
                continue;
            };
            let Some((s, l)) = range.split_once('-') else {
                continue;
            };
            match (hex(s), hex(l)) {
                (Some(s), Some(l)) => (who, s, l, kind.trim().to_string()),
                _ => return Err(format!("{line:?}: the range is not hex")),
            }
        } else if let Some(at) = line.find("BIOS-e820: ") {
            // 2.6-era: "BIOS-e820: 0000000000000000 - 000000000009fc00 (usable)"
            let rest = &line[at + "BIOS-e820: ".len()..];
            let Some((range, kind)) = rest.split_once('(') else {
                continue;
            };
            let Some((s, e)) = range.split_once(" - ") else {
                continue;
            };
            match (hex(s), hex(e)) {
                (Some(s), Some(e)) if e > s => (
                    "BIOS-e820".to_string(),
                    s,
                    e - 1,
                    kind.trim_end().trim_end_matches(')').to_string(),
                ),
                _ => return Err(format!("{line:?}: the range is not hex")),
            }
        } else {
            continue;
        };
        // "e820: [mem ...] ..." lines that are not table rows (e.g. "e820: register RAM
        // buffer resource", "e820: update [mem ...] usable ==> reserved") are skipped.
        if who == "e820" || kind.contains("==>") {
            continue;
        }
        // A new table starts when the prefix changes or addresses go back down.
        let new_table = match tables.last() {
            None => true,
            Some((w, entries)) => {
                *w != who
                    || entries
                        .last()
                        .is_some_and(|e: &MapEntry| e.span.base > start)
            }
        };
        if new_table {
            tables.push((who, Vec::new()));
        }
        let e = entry(start, last, &kind).map_err(|why| format!("{line:?}: {why}"))?;
        tables.last_mut().expect("pushed above").1.push(e);
    }
    Ok(tables.pop().map(|(_, entries)| entries))
}

/// Top-level `System RAM` is usable, less anything nested in it (the kernel's code and data,
/// a crash kernel); every other top-level entry is not.
fn from_iomem(iomem: &Iomem) -> Vec<MapEntry> {
    let mut entries = Vec::new();
    for (i, r) in iomem.resources.iter().enumerate() {
        let top = r.parent.is_none();
        let in_ram = iomem.is_inside(i, "System RAM");
        if top
            || (in_ram
                && r.parent
                    .is_some_and(|p| iomem.resources[p].parent.is_none()))
        {
            entries.push(MapEntry {
                span: r.span,
                kind: r.name.clone(),
                usable: top && r.name == "System RAM",
            });
        }
    }
    entries
}

/// `[start, end)` as u128, so the top of the address space needs no special case.
pub(crate) type Interval = (u128, u128);

/// What is left of `pieces` once `cut` is taken out.
pub(crate) fn subtract(pieces: Vec<Interval>, cut: Interval) -> Vec<Interval> {
    let mut out = Vec::new();
    for (s, e) in pieces {
        if cut.1 <= s || e <= cut.0 {
            out.push((s, e));
            continue;
        }
        if s < cut.0 {
            out.push((s, cut.0));
        }
        if cut.1 < e {
            out.push((cut.1, e));
        }
    }
    out
}

/// `span` as an [`Interval`].
pub(crate) fn interval(span: &Span) -> Interval {
    (u128::from(span.base), u128::from(span.last()) + 1)
}
