//! `memmap=` on the kernel command line: sizes, addresses and entries, parsed the way the
//! kernel parses them (`memparse()` and x86's `parse_memmap_one()`), and printed the way people
//! write them (`64M`, `2G`, `0x10000000`).
//!
//! Forms (Documentation/admin-guide/kernel-parameters.txt):
//!
//! | form | meaning |
//! | --- | --- |
//! | `nn[KMG]@ss[KMG]` | use this range as RAM |
//! | `nn[KMG]#ss[KMG]` | mark it ACPI data |
//! | `nn[KMG]$ss[KMG]` | reserve it: the kernel leaves it alone (what carveout uses) |
//! | `nn[KMG]!ss[KMG]` | persistent memory (type 12), for the pmem driver |
//! | `nn[KMG]%ss[KMG]-old+new` | change the e820 type of a range |
//! | `nn[KMG]` | limit usable RAM to nn (like `mem=`) |
//! | `exactmap` | start from an empty map |
//!
//! Several entries may share one option (`memmap=64M$1G,16M!2G`) and the option may appear
//! many times. Numbers follow `memparse()`: `0x` hex, a leading `0` octal, else decimal, then an
//! optional suffix K, M, G, T, P or E (either case).

use std::fmt;

use serde::Serialize;

/// A physical range `[base, base + size)`, never empty and never wrapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Span {
    pub base: u64,
    pub size: u64,
}

impl Span {
    /// `[base, base + size)`, or an error saying why it is not a range.
    pub fn new(base: u64, size: u64) -> Result<Self, String> {
        if size == 0 {
            return Err("the size is 0".into());
        }
        if base.checked_add(size - 1).is_none() {
            return Err(format!(
                "{} at {} wraps past the end of the address space",
                format_size(size),
                format_addr(base)
            ));
        }
        Ok(Self { base, size })
    }

    /// The last byte (inclusive), as `/proc/iomem` writes it.
    pub fn last(&self) -> u64 {
        self.base + (self.size - 1)
    }

    pub fn contains(&self, other: &Span) -> bool {
        self.base <= other.base && other.last() <= self.last()
    }

    pub fn overlaps(&self, other: &Span) -> bool {
        self.base <= other.last() && other.base <= self.last()
    }

    /// `0x8000000-0xbffffff`, inclusive like `/proc/iomem`.
    pub fn display(&self) -> String {
        format!("{}-{}", format_addr(self.base), format_addr(self.last()))
    }
}

/// What a `memmap=` entry asks the kernel to do with a range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// `@`: usable RAM.
    Ram,
    /// `#`: ACPI data.
    AcpiData,
    /// `$`: reserved; the kernel never touches it. carveout's regions live here.
    Reserved,
    /// `!`: persistent memory, claimed by the pmem driver.
    Persistent,
}

impl Kind {
    pub fn separator(self) -> char {
        match self {
            Kind::Ram => '@',
            Kind::AcpiData => '#',
            Kind::Reserved => '$',
            Kind::Persistent => '!',
        }
    }
}

/// One `memmap=` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "form", rename_all = "snake_case")]
pub enum Entry {
    /// `nn@ss`, `nn#ss`, `nn$ss`, `nn!ss`.
    Range { kind: Kind, span: Span },
    /// `nn%ss-old+new` (either type may be left out).
    Convert {
        span: Span,
        old_type: Option<u64>,
        new_type: Option<u64>,
    },
    /// `nn`: usable RAM limited to nn bytes.
    Limit { size: u64 },
    /// `exactmap`.
    ExactMap,
}

/// An entry with the text it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Memmap {
    /// As written, without `memmap=` (`64M$0x8000000`).
    pub text: String,
    pub entry: Entry,
}

impl Memmap {
    /// The range of a `$` entry.
    pub fn reserved(&self) -> Option<Span> {
        match self.entry {
            Entry::Range {
                kind: Kind::Reserved,
                span,
            } => Some(span),
            _ => None,
        }
    }

    pub fn span(&self) -> Option<Span> {
        match self.entry {
            Entry::Range { span, .. } | Entry::Convert { span, .. } => Some(span),
            _ => None,
        }
    }
}

impl fmt::Display for Memmap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "memmap={}", self.text)
    }
}

/// A `memmap=` value or a size that does not parse, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(pub String);

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ParseError {}

/// Parses a number the way `simple_strtoull(s, &end, 0)` does; returns it and the rest.
fn strtoull(s: &str) -> Option<Result<(u64, &str), String>> {
    let (radix, digits) = if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        if hex.starts_with(|c: char| c.is_ascii_hexdigit()) {
            (16, hex)
        } else {
            (8, s) // "0x" with no hex digit: the kernel reads the 0 and stops at x
        }
    } else if s.starts_with('0') {
        (8, s)
    } else {
        (10, s)
    };
    let len = digits
        .find(|c: char| !c.is_digit(radix))
        .unwrap_or(digits.len());
    if len == 0 {
        return None;
    }
    let (num, rest) = digits.split_at(len);
    Some(
        u64::from_str_radix(num, radix)
            .map(|n| (n, rest))
            .map_err(|_| format!("{num:?} is too large for 64 bits")),
    )
}

/// `memparse()`: a number and an optional K/M/G/T/P/E suffix; returns it and the rest.
fn memparse(s: &str) -> Result<(u64, &str), String> {
    let (n, rest) = strtoull(s).ok_or_else(|| {
        if s.is_empty() {
            "a size or address is missing".to_string()
        } else {
            format!("{s:?} does not start with a number")
        }
    })??;
    let mut chars = rest.chars();
    let shift = match chars.next().map(|c| c.to_ascii_uppercase()) {
        Some('K') => 10,
        Some('M') => 20,
        Some('G') => 30,
        Some('T') => 40,
        Some('P') => 50,
        Some('E') => 60,
        _ => return Ok((n, rest)),
    };
    let scaled = n.checked_mul(1 << shift).ok_or_else(|| {
        format!(
            "{} is too large for 64 bits",
            &s[..s.len() - chars.as_str().len()]
        )
    })?;
    Ok((scaled, chars.as_str()))
}

/// A whole string as a size or address: `64M`, `0x10000000`, `2G`, `4096`.
pub fn parse_size(s: &str) -> Result<u64, ParseError> {
    let t = s.trim();
    let (n, rest) = memparse(t).map_err(|why| ParseError(format!("{s:?}: {why}")))?;
    if !rest.is_empty() {
        return Err(ParseError(format!(
            "{s:?} is not a size: {rest:?} after the number (suffixes: K, M, G, T, P, E)"
        )));
    }
    Ok(n)
}

/// A size the way `memmap=` writes it: the largest exact suffix (`64M`, `2G`), else hex.
pub fn format_size(n: u64) -> String {
    for (shift, suffix) in [
        (60, 'E'),
        (50, 'P'),
        (40, 'T'),
        (30, 'G'),
        (20, 'M'),
        (10, 'K'),
    ] {
        if n != 0 && n % (1u64 << shift) == 0 {
            return format!("{}{suffix}", n >> shift);
        }
    }
    format!("{n:#x}")
}

/// An address: hex, `0x10000000`.
pub fn format_addr(n: u64) -> String {
    format!("{n:#x}")
}

/// `memmap=SIZE$BASE` for a range.
pub fn reserve_arg(span: &Span) -> String {
    format!(
        "memmap={}${}",
        format_size(span.size),
        format_addr(span.base)
    )
}

/// One entry (the text between commas of a `memmap=` value).
pub fn parse_entry(text: &str) -> Result<Memmap, ParseError> {
    let fail = |why: String| ParseError(format!("memmap={text}: {why}"));
    if text == "exactmap" {
        return Ok(Memmap {
            text: text.into(),
            entry: Entry::ExactMap,
        });
    }
    let (size, rest) = memparse(text).map_err(fail)?;
    let Some(sep) = rest.chars().next() else {
        if size == 0 {
            return Err(fail("a memory limit of 0".into()));
        }
        return Ok(Memmap {
            text: text.into(),
            entry: Entry::Limit { size },
        });
    };
    let kind = match sep {
        '@' => Some(Kind::Ram),
        '#' => Some(Kind::AcpiData),
        '$' => Some(Kind::Reserved),
        '!' => Some(Kind::Persistent),
        '%' => None,
        _ => {
            return Err(fail(format!(
                "{rest:?} after the size: expected @, #, $, ! or % and an address"
            )))
        }
    };
    let (base, mut rest) = memparse(&rest[1..]).map_err(fail)?;
    let span = Span::new(base, size).map_err(fail)?;
    let entry = match kind {
        Some(kind) => Entry::Range { kind, span },
        None => {
            let mut types = [None, None];
            for (i, prefix) in ['-', '+'].into_iter().enumerate() {
                if let Some(after) = rest.strip_prefix(prefix) {
                    let (n, r) = strtoull(after)
                        .ok_or_else(|| fail(format!("no type number after {prefix:?}")))?
                        .map_err(fail)?;
                    types[i] = Some(n);
                    rest = r;
                }
            }
            if types == [None, None] {
                return Err(fail("% needs -OLDTYPE, +NEWTYPE or both".into()));
            }
            Entry::Convert {
                span,
                old_type: types[0],
                new_type: types[1],
            }
        }
    };
    if !rest.is_empty() {
        return Err(fail(format!("{rest:?} left over after the address")));
    }
    Ok(Memmap {
        text: text.into(),
        entry,
    })
}

/// Splits a kernel command line into parameters the way the kernel's `next_arg()` does:
/// whitespace separates, double quotes group (and are dropped), `--` ends the kernel's part.
pub fn split_cmdline(cmdline: &str) -> Vec<String> {
    let mut params = Vec::new();
    let mut cur = String::new();
    let mut in_quote = false;
    let mut any = false;
    for c in cmdline.chars() {
        match c {
            '"' => {
                in_quote = !in_quote;
                any = true;
            }
            c if c.is_whitespace() && !in_quote => {
                if any {
                    if cur == "--" {
                        return params;
                    }
                    params.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            c => {
                cur.push(c);
                any = true;
            }
        }
    }
    if any && cur != "--" {
        params.push(cur);
    }
    params
}

/// Every `memmap=` entry of a kernel command line, in order. Fails, saying which, on an entry
/// that does not parse or on two ranges that overlap.
pub fn parse_cmdline(cmdline: &str) -> Result<Vec<Memmap>, ParseError> {
    let mut entries = Vec::new();
    for param in split_cmdline(cmdline) {
        let Some(value) = param.strip_prefix("memmap=") else {
            continue;
        };
        if value.is_empty() {
            return Err(ParseError("memmap= with no value".into()));
        }
        for text in value.split(',') {
            entries.push(parse_entry(text)?);
        }
    }
    check_overlaps(&entries)?;
    Ok(entries)
}

/// Two ranges that overlap make the result depend on the order the kernel applies them in.
pub fn check_overlaps(entries: &[Memmap]) -> Result<(), ParseError> {
    for (i, a) in entries.iter().enumerate() {
        for b in &entries[i + 1..] {
            if let (Some(sa), Some(sb)) = (a.span(), b.span()) {
                if sa.overlaps(&sb) {
                    return Err(ParseError(format!(
                        "{a} ({}) overlaps {b} ({})",
                        sa.display(),
                        sb.display()
                    )));
                }
            }
        }
    }
    Ok(())
}

/// Escapes a kernel parameter for GRUB's command line (the GRUB prompt, `grub.cfg`, grubby):
/// GRUB expands `$` and treats quotes and backslashes specially.
pub fn grub_escape(param: &str) -> String {
    let mut out = String::with_capacity(param.len() + 4);
    for c in param.chars() {
        if matches!(c, '$' | '\\' | '"' | '\'') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The value for `GRUB_CMDLINE_LINUX="..."` in `/etc/default/grub`: that file is shell,
/// sourced by `grub-mkconfig`, so the GRUB escape is escaped again for a double-quoted
/// shell string: `memmap=64M$0x8000000` becomes `memmap=64M\\\$0x8000000`.
pub fn etc_default_grub_escape(param: &str) -> String {
    let mut out = String::new();
    for c in grub_escape(param).chars() {
        if matches!(c, '$' | '\\' | '"' | '`') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// `grubby --args='...' --update-kernel=ALL`: single-quoted shell around the GRUB escape.
pub fn grubby_command(param: &str) -> String {
    let quoted = grub_escape(param).replace('\'', r"'\''");
    format!("grubby --args='{quoted}' --update-kernel=ALL")
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: u64 = 1 << 20;
    const G: u64 = 1 << 30;

    fn range(kind: Kind, base: u64, size: u64) -> Entry {
        Entry::Range {
            kind,
            span: Span { base, size },
        }
    }

    #[test]
    fn sizes_follow_memparse() {
        assert_eq!(parse_size("64M"), Ok(64 * M));
        assert_eq!(parse_size("64m"), Ok(64 * M));
        assert_eq!(parse_size("2G"), Ok(2 * G));
        assert_eq!(parse_size("4k"), Ok(4096));
        assert_eq!(parse_size("1T"), Ok(1 << 40));
        assert_eq!(parse_size("0x10000000"), Ok(0x1000_0000));
        assert_eq!(parse_size("0X1f"), Ok(0x1f));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("0"), Ok(0));
        // A leading 0 is octal, as in the kernel.
        assert_eq!(parse_size("010"), Ok(8));
        // Hex digits swallow what would be a suffix, as in the kernel: 0x1E is 30.
        assert_eq!(parse_size("0x1E"), Ok(0x1e));
        assert_eq!(parse_size("0x1M"), Ok(M));
    }

    #[test]
    fn garbage_sizes_are_rejected_with_a_reason() {
        for (bad, says) in [
            ("", "missing"),
            ("M", "does not start with a number"),
            ("64Q", "\"Q\" after the number"),
            ("64MB", "\"B\" after the number"),
            ("0x", "\"x\" after the number"),
            ("12 34", "after the number"),
            ("-1", "does not start with a number"),
            ("99999999999999999999", "too large"),
            ("16E", "too large"),
            ("08", "\"8\" after the number"),
        ] {
            let err = parse_size(bad).expect_err(bad);
            assert!(err.0.contains(says), "{bad:?}: {err}");
        }
    }

    #[test]
    fn sizes_print_like_memmap() {
        assert_eq!(format_size(64 * M), "64M");
        assert_eq!(format_size(2 * G), "2G");
        assert_eq!(format_size(1536 * M), "1536M");
        assert_eq!(format_size(4096), "4K");
        assert_eq!(format_size(1 << 40), "1T");
        assert_eq!(format_size(1000), "0x3e8");
        assert_eq!(format_addr(0x1000_0000), "0x10000000");
        for n in [64 * M, 2 * G, 4096, 0x1234_5000, 1000] {
            assert_eq!(parse_size(&format_size(n)), Ok(n), "round trip of {n:#x}");
        }
    }

    #[test]
    fn every_entry_form_parses() {
        let cases = [
            ("64M$0x8000000", range(Kind::Reserved, 0x800_0000, 64 * M)),
            ("512M$2G", range(Kind::Reserved, 2 * G, 512 * M)),
            ("4G!12G", range(Kind::Persistent, 12 * G, 4 * G)),
            ("100M@2G", range(Kind::Ram, 2 * G, 100 * M)),
            ("100M#3G", range(Kind::AcpiData, 3 * G, 100 * M)),
            ("16k$0x1000", range(Kind::Reserved, 0x1000, 16 << 10)),
            (
                "1G%2G-1+12",
                Entry::Convert {
                    span: Span {
                        base: 2 * G,
                        size: G,
                    },
                    old_type: Some(1),
                    new_type: Some(12),
                },
            ),
            (
                "1G%2G+2",
                Entry::Convert {
                    span: Span {
                        base: 2 * G,
                        size: G,
                    },
                    old_type: None,
                    new_type: Some(2),
                },
            ),
            ("2G", Entry::Limit { size: 2 * G }),
            ("exactmap", Entry::ExactMap),
        ];
        for (text, want) in cases {
            let got = parse_entry(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(got.entry, want, "{text}");
            assert_eq!(got.text, text);
        }
    }

    #[test]
    fn several_entries_on_one_line() {
        let line = "BOOT_IMAGE=/vmlinuz root=/dev/sda1 memmap=64M$0x8000000 quiet \
                    memmap=16M!0x10000000 memmap=100M@2G,100M#3G,1G!1024G \"memmap=1M$0x20000000\"";
        let got = parse_cmdline(line).expect("parses");
        let texts: Vec<_> = got.iter().map(|e| e.text.as_str()).collect();
        assert_eq!(
            texts,
            [
                "64M$0x8000000",
                "16M!0x10000000",
                "100M@2G",
                "100M#3G",
                "1G!1024G",
                "1M$0x20000000"
            ]
        );
        let reserved: Vec<_> = got.iter().filter_map(Memmap::reserved).collect();
        assert_eq!(
            reserved,
            [
                Span {
                    base: 0x800_0000,
                    size: 64 * M
                },
                Span {
                    base: 0x2000_0000,
                    size: M
                }
            ]
        );
        assert_eq!(got[4].entry, range(Kind::Persistent, 1 << 40, G));
    }

    #[test]
    fn the_kernel_part_of_the_line_ends_at_double_dash() {
        let got = parse_cmdline("memmap=1M$16M -- memmap=garbage").expect("init's part ignored");
        assert_eq!(got.len(), 1);
        assert_eq!(
            split_cmdline("a=\"b c\" d  e"),
            ["a=b c", "d", "e"].map(String::from)
        );
    }

    #[test]
    fn bad_entries_are_rejected_with_a_reason() {
        for (line, says) in [
            (
                "memmap=64Q$0x1000",
                "memmap=64Q$0x1000: \"Q$0x1000\" after the size",
            ),
            ("memmap=64M$", "a size or address is missing"),
            ("memmap=64M$zz", "\"zz\" does not start with a number"),
            ("memmap=$0x1000", "does not start with a number"),
            ("memmap=0$0x1000", "the size is 0"),
            ("memmap=64M$0x1000junk", "\"junk\" left over"),
            ("memmap=8K$0xfffffffffffff000", "wraps"),
            ("memmap=1G%2G", "needs -OLDTYPE"),
            ("memmap=", "no value"),
            ("memmap=64M$1G,", "missing"),
            ("memmap=0", "limit of 0"),
        ] {
            let err = parse_cmdline(line).expect_err(line);
            assert!(err.0.contains(says), "{line}: {err}");
        }
    }

    #[test]
    fn overlapping_entries_are_rejected() {
        let err = parse_cmdline("memmap=64M$0x8000000 memmap=16M!0xb000000").expect_err("overlap");
        assert_eq!(
            err.0,
            "memmap=64M$0x8000000 (0x8000000-0xbffffff) overlaps memmap=16M!0xb000000 \
             (0xb000000-0xbffffff)"
        );
        assert!(parse_cmdline("memmap=1G$1G,1G$1536M").is_err());
        // Touching is not overlapping.
        assert!(parse_cmdline("memmap=1G$1G memmap=1G$2G").is_ok());
    }

    #[test]
    fn grub_forms_escape_the_dollar() {
        let arg = "memmap=512M$2G";
        assert_eq!(grub_escape(arg), r"memmap=512M\$2G");
        assert_eq!(etc_default_grub_escape(arg), r"memmap=512M\\\$2G");
        assert_eq!(
            grubby_command(arg),
            r"grubby --args='memmap=512M\$2G' --update-kernel=ALL"
        );
        // Nothing else in a memmap value needs escaping.
        assert_eq!(grub_escape("memmap=4G!12G"), "memmap=4G!12G");
        assert_eq!(
            reserve_arg(&Span {
                base: 2 * G,
                size: 512 * M
            }),
            "memmap=512M$0x80000000"
        );
    }
}
