//! The page tables as the CPU uses them: x86's page-table dump
//! (`/sys/kernel/debug/page_tables/current_kernel`, `CONFIG_PTDUMP_DEBUGFS`), parsed, and the
//! memory type each entry selects through the PAT.
//!
//! A line of the dump (`arch/x86/mm/dump_pagetables.c`) is a run of entries at one level with
//! the same flags:
//!
//! ```text
//! 0x00007f3a40000000-0x00007f3a40400000           4M USR RW     PCD PSE         NX pmd
//! 0x00007f3a40601000-0x00007f3a40a01000        4100K USR RW PWT PCD     PAT     NX pte
//! ```
//!
//! `PWT`, `PCD` and `PAT` pick one of the eight PAT slots: `PAT << 2 | PCD << 1 | PWT`. In a
//! 4 KiB entry the PAT bit is bit 7; in a 2 MiB or 1 GiB entry bit 7 is `PSE` and the PAT bit
//! is bit 12 (`_PAGE_PAT_LARGE`). Linux 7.3's dump masks every entry with `PTE_FLAGS_MASK`,
//! which keeps bits 0-11 only (bit 12 counts as part of the frame number), so it never prints
//! `PAT` for a large entry even when bit 12 is set: for `pmd` and `pud` lines the slot is read
//! with the PAT bit clear, and [`Entry::pat_visible`] says so. For UC- (`PCD`) and WB (neither
//! bit) the PAT bit changes nothing in Linux's layout; for the others it would.

use std::fmt;

use serde::Serialize;

use crate::attr::Attr;

/// Where a process reads its own page tables (user and kernel halves; `current_user`, the
/// user half alone, exists only with page-table isolation).
pub const CURRENT: &str = "/sys/kernel/debug/page_tables/current_kernel";

/// A memory type, as the PAT MSR and `dmesg` ("x86/PAT: Configuration [0-7]: ...") name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum MemType {
    #[serde(rename = "WB")]
    Wb,
    #[serde(rename = "WC")]
    Wc,
    #[serde(rename = "UC-")]
    UcMinus,
    #[serde(rename = "UC")]
    Uc,
    #[serde(rename = "WT")]
    Wt,
    #[serde(rename = "WP")]
    Wp,
}

impl MemType {
    pub fn name(self) -> &'static str {
        match self {
            MemType::Wb => "WB",
            MemType::Wc => "WC",
            MemType::UcMinus => "UC-",
            MemType::Uc => "UC",
            MemType::Wt => "WT",
            MemType::Wp => "WP",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [
            MemType::Wb,
            MemType::Wc,
            MemType::UcMinus,
            MemType::Uc,
            MemType::Wt,
            MemType::Wp,
        ]
        .into_iter()
        .find(|t| t.name() == s)
    }

    /// The memory types that give a region attribute exactly: UC- or UC for `uc` (the driver
    /// maps UC-, which an MTRR may make UC), the one type of the same name for the others.
    pub fn of_attr(attr: Attr) -> &'static [MemType] {
        match attr {
            Attr::Uc => &[MemType::UcMinus, MemType::Uc],
            Attr::Wc => &[MemType::Wc],
            Attr::Wt => &[MemType::Wt],
            Attr::Wb => &[MemType::Wb],
            Attr::Wp => &[MemType::Wp],
        }
    }
}

impl fmt::Display for MemType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The eight PAT slots, as the kernel programmed the PAT MSR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PatTable(pub [MemType; 8]);

impl PatTable {
    /// Linux's layout with full PAT support (`arch/x86/mm/pat/memtype.c`, `pat_bp_init`):
    /// WB WC UC- UC WB WP UC- WT.
    pub const LINUX: PatTable = PatTable([
        MemType::Wb,
        MemType::Wc,
        MemType::UcMinus,
        MemType::Uc,
        MemType::Wb,
        MemType::Wp,
        MemType::UcMinus,
        MemType::Wt,
    ]);

    /// The layout from the kernel's boot line `x86/PAT: Configuration [0-7]: WB  WC  UC- UC
    /// WB  WP  UC- WT` (the whole line, or the eight names alone).
    pub fn parse(text: &str) -> Result<Self, String> {
        let names = text
            .split_once("[0-7]:")
            .map_or(text, |(_, rest)| rest)
            .split_whitespace()
            .collect::<Vec<_>>();
        let types = names
            .iter()
            .map(|n| MemType::parse(n).ok_or_else(|| format!("{n:?} is not a PAT memory type")))
            .collect::<Result<Vec<_>, _>>()?;
        let slots: [MemType; 8] = types
            .try_into()
            .map_err(|v: Vec<_>| format!("{} PAT slots in {text:?}, expected 8", v.len()))?;
        Ok(PatTable(slots))
    }

    pub fn slot(&self, index: u8) -> MemType {
        self.0[usize::from(index & 7)]
    }
}

impl fmt::Display for PatTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<_> = self.0.iter().map(|t| t.name()).collect();
        f.write_str(&names.join(" "))
    }
}

/// The level of a page-table entry, as the dump names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Pgd,
    P4d,
    Pud,
    Pmd,
    Pte,
}

impl Level {
    pub fn name(self) -> &'static str {
        match self {
            Level::Pgd => "pgd",
            Level::P4d => "p4d",
            Level::Pud => "pud",
            Level::Pmd => "pmd",
            Level::Pte => "pte",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [Level::Pgd, Level::P4d, Level::Pud, Level::Pmd, Level::Pte]
            .into_iter()
            .find(|l| l.name() == s)
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Level {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Level::parse(s).ok_or_else(|| format!("{s:?} is not a level: pgd, p4d, pud, pmd or pte"))
    }
}

/// One line of the dump: entries at one level with the same flags, covering `start..end`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    pub start: u64,
    pub end: u64,
    pub level: Level,
    /// Not present: the flags below are all clear.
    pub present: bool,
    pub user: bool,
    pub writable: bool,
    pub pwt: bool,
    pub pcd: bool,
    pub pse: bool,
    /// The PAT bit as the dump shows it (never for large entries in 7.3: see the module
    /// documentation).
    pub pat: bool,
    pub global: bool,
    pub nx: bool,
}

impl Entry {
    /// Whether the dump can show this entry's PAT bit: only for 4 KiB entries.
    pub fn pat_visible(&self) -> bool {
        self.level == Level::Pte
    }

    /// The PAT slot the entry selects: `PAT << 2 | PCD << 1 | PWT`.
    pub fn pat_index(&self) -> u8 {
        u8::from(self.pat) << 2 | u8::from(self.pcd) << 1 | u8::from(self.pwt)
    }

    pub fn memtype(&self, pat: &PatTable) -> MemType {
        pat.slot(self.pat_index())
    }

    /// The cache bits in the dump's words: `PWT PCD PAT`, `-` for none.
    pub fn cache_bits(&self) -> String {
        let bits: Vec<&str> = [(self.pwt, "PWT"), (self.pcd, "PCD"), (self.pat, "PAT")]
            .into_iter()
            .filter_map(|(set, name)| set.then_some(name))
            .collect();
        if bits.is_empty() {
            "-".into()
        } else {
            bits.join(" ")
        }
    }

    /// Where the entry ends; the dump's last line ends at 0 (the top of the address space).
    fn top(&self) -> u64 {
        if self.end == 0 {
            u64::MAX
        } else {
            self.end
        }
    }

    /// This entry cut to `start..end`.
    fn clipped(&self, start: u64, end: u64) -> Entry {
        Entry {
            start: self.start.max(start),
            end: self.top().min(end),
            ..self.clone()
        }
    }
}

fn hex(s: &str) -> Option<u64> {
    u64::from_str_radix(s.strip_prefix("0x")?, 16).ok()
}

/// One line, or `None` for the markers (`---[ User Space ]---`) and the `... N entries
/// skipped ...` lines.
pub fn parse_line(line: &str) -> Option<Result<Entry, String>> {
    let mut words = line.split_whitespace();
    let range = words.next()?;
    let (start, end) = range.split_once('-')?;
    let (Some(start), Some(end)) = (hex(start), hex(end)) else {
        return None;
    };
    let bad = |why: &str| Some(Err(format!("{line:?}: {why}")));
    // The size ("4M", "4100K"), then the flags, then the level.
    let rest: Vec<&str> = words.skip(1).collect();
    let Some((level, flags)) = rest.split_last() else {
        return bad("no level");
    };
    let Some(level) = Level::parse(level) else {
        return bad("the last word is not a level");
    };
    let has = |flag: &str| flags.contains(&flag);
    let present = has("RW") || has("ro");
    if !present && !flags.is_empty() {
        return bad("flags without RW or ro");
    }
    if end <= start && end != 0 {
        return bad("the range ends before it starts");
    }
    Some(Ok(Entry {
        start,
        end,
        level,
        present,
        user: has("USR"),
        writable: has("RW"),
        pwt: has("PWT"),
        pcd: has("PCD"),
        pse: has("PSE"),
        pat: has("PAT"),
        global: has("GLB"),
        nx: has("NX"),
    }))
}

/// Every entry line of a dump.
pub fn parse(text: &str) -> Result<Vec<Entry>, String> {
    text.lines().filter_map(parse_line).collect()
}

/// The entries covering `start..end`, each cut to it, in address order; fails, naming the
/// first address, if some part of the range has no present entry.
pub fn covering(entries: &[Entry], start: u64, end: u64) -> Result<Vec<Entry>, String> {
    let mut out: Vec<Entry> = entries
        .iter()
        .filter(|e| e.start < end && e.top() > start)
        .map(|e| e.clipped(start, end))
        .collect();
    out.sort_by_key(|e| e.start);
    let mut at = start;
    for e in &out {
        if e.start != at {
            return Err(format!("nothing in the dump covers {at:#x}-{:#x}", e.start));
        }
        if !e.present {
            return Err(format!(
                "{:#x}-{:#x} is not mapped ({} entries not present)",
                e.start, e.end, e.level
            ));
        }
        at = e.end;
    }
    if at != end {
        return Err(format!("nothing in the dump covers {at:#x}-{end:#x}"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The issue's observation, written as the 7.3 dump prints it, with a 4 KiB WT mapping and
    /// neighbours around.
    const DUMP: &str = "\
---[ User Space ]---
0x0000000000000000-0x0000000000400000           4M                               pte
0x0000000000400000-0x0000000000401000           4K USR ro                 GLB x  pte
0x00007f0000000000-0x00007f0000400000           4M USR RW     PCD PSE         NX pmd
0x00007f0000400000-0x00007f0000800000           4M USR RW PWT     PSE         NX pmd
0x00007f0000800000-0x00007f0000c00000           4M USR RW PWT PCD PSE         NX pmd
0x00007f0000c00000-0x00007f0001000000           4M USR RW         PSE         NX pmd
0x00007f0001000000-0x00007f0001400000           4M USR ro PWT     PSE         NX pmd
0x00007f0001601000-0x00007f0001a01000        4100K USR RW PWT PCD     PAT     NX pte
0x00007f0001a01000-0x00007f0001a02000           4K USR ro PWT         PAT     NX pte
0x00007f0001a02000-0x0000800000000000   131047896K                               pte
---[ Kernel Space ]---
0xffff800000000000-0xffff888000000000      8704G                               pud
... 3 entries skipped ... 
";

    fn entries() -> Vec<Entry> {
        parse(DUMP).expect("parses")
    }

    #[test]
    fn lines_parse_into_levels_and_bits() {
        let e = entries();
        assert_eq!(e.len(), 11);
        assert!(!e[0].present && e[0].level == Level::Pte);
        assert!(e[1].present && !e[1].writable && e[1].global && !e[1].nx);
        let wt = &e[4];
        assert_eq!((wt.start, wt.end), (0x7f00_0080_0000, 0x7f00_00c0_0000));
        assert_eq!(wt.level, Level::Pmd);
        assert!(wt.pwt && wt.pcd && wt.pse && !wt.pat && wt.user && wt.nx);
        assert!(!wt.pat_visible());
        assert_eq!(wt.cache_bits(), "PWT PCD");
        assert_eq!(e[10].level, Level::Pud);
    }

    #[test]
    fn the_pat_table_picks_the_type() {
        let e = entries();
        let pat = PatTable::LINUX;
        let types: Vec<_> = e[2..9].iter().map(|e| e.memtype(&pat)).collect();
        // uc, wc, wt (as 2 MiB entries it selects UC), wb, wp (selects WC), 4K WT, 4K WP.
        assert_eq!(
            types,
            [
                MemType::UcMinus,
                MemType::Wc,
                MemType::Uc,
                MemType::Wb,
                MemType::Wc,
                MemType::Wt,
                MemType::Wp
            ]
        );
        assert_eq!(e[7].pat_index(), 7);
        assert!(e[7].pat_visible());
        assert!(MemType::of_attr(Attr::Wt).contains(&e[7].memtype(&pat)));
        assert!(!MemType::of_attr(Attr::Wt).contains(&e[4].memtype(&pat)));
        assert!(MemType::of_attr(Attr::Uc).contains(&MemType::Uc));
    }

    #[test]
    fn the_dmesg_configuration_line_parses() {
        let line = "[    0.000000] x86/PAT: Configuration [0-7]: WB  WC  UC- UC  WB  WP  UC- WT  ";
        assert_eq!(PatTable::parse(line), Ok(PatTable::LINUX));
        assert_eq!(
            PatTable::parse("WB WT UC- UC WB WT UC- UC").map(|p| p.slot(7)),
            Ok(MemType::Uc)
        );
        assert!(PatTable::parse("WB WC")
            .unwrap_err()
            .contains("2 PAT slots"));
        assert!(PatTable::parse("WB WC UC- UC WB WP UC- XX")
            .unwrap_err()
            .contains("\"XX\""));
        assert_eq!(PatTable::LINUX.to_string(), "WB WC UC- UC WB WP UC- WT");
    }

    #[test]
    fn covering_cuts_entries_to_the_range_and_finds_holes() {
        let e = entries();
        let got = covering(&e, 0x7f00_0020_0000, 0x7f00_0060_0000).expect("covered");
        assert_eq!(got.len(), 2);
        assert_eq!(
            (got[0].start, got[0].end, got[1].start, got[1].end),
            (
                0x7f00_0020_0000,
                0x7f00_0040_0000,
                0x7f00_0040_0000,
                0x7f00_0060_0000
            )
        );
        // 0x7f0001400000-0x7f0001601000 is in no line.
        let err = covering(&e, 0x7f00_0100_0000, 0x7f00_0170_0000).unwrap_err();
        assert!(err.contains("0x7f0001400000-0x7f0001601000"), "{err}");
        let err = covering(&e, 0x7f00_01a0_2000, 0x7f00_01a0_4000).unwrap_err();
        assert!(err.contains("not mapped"), "{err}");
    }

    #[test]
    fn garbage_lines_are_refused() {
        assert!(parse("0x1000-0x2000 4K USR RW pxx\n").is_err());
        assert!(parse("0x1000-0x2000 4K USR PWT pte\n").is_err());
        assert_eq!(parse("---[ Modules ]---\nhello\n"), Ok(Vec::new()));
    }
}
