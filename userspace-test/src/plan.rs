//! The planner: from a [`FirmwareMap`], proposes a `memmap=SIZE$BASE` that lies in usable
//! RAM, away from the first MiB and from every range already reserved, or vets a range
//! already chosen.

use serde::Serialize;

use crate::{
    firmware_map::{interval, subtract, FirmwareMap, Interval, MapEntry},
    memmap::{format_addr, format_size, parse_size, Span},
};

const MIB: u64 = 1 << 20;
const PAGE: u64 = 4096;

/// Notes for ranges already in use (`(what, span)`: regions, `memmap=$` entries) that lie in
/// memory the firmware itself reserved.
pub fn firmware_reserved_notes(map: &FirmwareMap, held: &[(String, Span)]) -> Vec<String> {
    held.iter()
        .filter_map(|(what, span)| {
            map.firmware_reserved_note(span).map(|why| {
                format!(
                    "{what} ({}) {why}: firmware keeps ACPI tables, SMM or option ROMs in such \
                     ranges; move it into RAM (the proposal above is)",
                    span.display()
                )
            })
        })
        .collect()
}

/// What to ask the planner for.
#[derive(Debug, Clone)]
pub struct Request {
    pub size: u64,
    /// A power of two, at least a page. See [`default_align`].
    pub align: u64,
    /// Keep the whole range below this address (e.g. `4G` for a 32-bit DMA device).
    pub below: Option<u64>,
    /// Ranges to stay away from besides what the map marks unusable (the `memmap=` entries
    /// already on the running kernel's command line).
    pub avoid: Vec<Span>,
}

/// The default alignment: the largest power of two dividing the size, between a page and 1G,
/// so `64M` lands on a 64M boundary (huge-page friendly, easy to read).
pub fn default_align(size: u64) -> u64 {
    if size == 0 {
        return PAGE;
    }
    (1u64 << size.trailing_zeros()).clamp(PAGE, 1 << 30)
}

/// A proposed reservation.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub span: Span,
    /// The usable map entry it lies in.
    pub inside: Span,
    pub usable_total: u64,
    pub notes: Vec<String>,
}

impl Plan {
    /// `span`, inside the usable entry `inside` of `map`, with a note when it takes more than
    /// half the usable RAM.
    fn new(map: &FirmwareMap, span: Span, inside: Span) -> Self {
        let usable_total = map.usable_total();
        let mut notes = Vec::new();
        if span.size > usable_total / 2 {
            notes.push(format!(
                "this takes {} of {} usable RAM: more than half",
                format_size(span.size),
                format_size(usable_total)
            ));
        }
        Plan {
            span,
            inside,
            usable_total,
            notes,
        }
    }
}

/// Proposes the highest suitably aligned range of `size` bytes that lies wholly inside usable
/// RAM, above the first MiB, below `below`, and clear of every unusable entry and every range
/// in `avoid`. Refuses, saying why, when the request is malformed or nothing fits.
pub fn plan(map: &FirmwareMap, req: &Request) -> Result<Plan, String> {
    if req.size == 0 || req.size % PAGE != 0 {
        return Err(format!(
            "the size {} is not a positive multiple of the page size (4K)",
            format_size(req.size)
        ));
    }
    if !req.align.is_power_of_two() || req.align < PAGE {
        return Err(format!(
            "the alignment {} is not a power of two of at least 4K",
            format_size(req.align)
        ));
    }
    let usable: Vec<&MapEntry> = map.entries.iter().filter(|e| e.usable).collect();
    if usable.is_empty() {
        return Err(format!("{} lists no usable RAM", map.source));
    }
    let mut free: Vec<Interval> = usable.iter().map(|e| interval(&e.span)).collect();
    free = subtract(free, (0, u128::from(MIB)));
    if let Some(below) = req.below {
        free = subtract(free, (u128::from(below), u128::MAX));
    }
    for e in map.entries.iter().filter(|e| !e.usable) {
        free = subtract(free, interval(&e.span));
    }
    for span in &req.avoid {
        free = subtract(free, interval(span));
    }
    let align = u128::from(req.align);
    let size = u128::from(req.size);
    let best = free
        .iter()
        .filter_map(|&(s, e)| {
            let lo = s.div_ceil(align) * align;
            let top = e.checked_sub(size)? / align * align;
            (top >= lo).then_some(top)
        })
        .max();
    let Some(base) = best else {
        let largest = free.iter().map(|(s, e)| e - s).max().unwrap_or(0);
        return Err(format!(
            "no usable RAM above the first MiB{} has room for {} aligned to {} (the largest \
             free usable range is {})",
            req.below
                .map(|b| format!(" and below {}", format_addr(b)))
                .unwrap_or_default(),
            format_size(req.size),
            format_size(req.align),
            format_size(largest as u64)
        ));
    };
    let span = Span::new(base as u64, req.size)?;
    let inside = usable
        .iter()
        .find(|e| e.span.contains(&span))
        .map(|e| e.span)
        .ok_or("the chosen range straddles two usable entries")?;
    Ok(Plan::new(map, span, inside))
}

/// A range the user already chose, as `memmap=` writes it: `SIZE@BASE` (or `SIZE$BASE`),
/// e.g. `512M@2G`.
pub fn parse_chosen(s: &str) -> Result<Span, String> {
    let (size, base) = s
        .split_once(['@', '$'])
        .ok_or_else(|| format!("{s:?} is not SIZE@BASE (e.g. 512M@2G)"))?;
    let size = parse_size(size).map_err(|e| e.to_string())?;
    let base = parse_size(base).map_err(|e| e.to_string())?;
    Span::new(base, size)
}

/// Vets a range the user chose: it must be page aligned, above the first MiB, wholly inside
/// one usable RAM entry of the map, and clear of every range in `req.avoid` (`req.size`,
/// `req.align` and `req.below` are not used). Refuses, naming what it hits.
pub fn vet(map: &FirmwareMap, span: &Span, req: &Request) -> Result<Plan, String> {
    if span.base % PAGE != 0 || span.size % PAGE != 0 {
        return Err(format!(
            "{} is not page aligned (base and size must be multiples of 4K)",
            span.display()
        ));
    }
    if span.base < MIB {
        return Err(format!(
            "{} starts inside the first MiB, which the kernel keeps for itself",
            span.display()
        ));
    }
    if let Some(hit) = map
        .entries
        .iter()
        .find(|e| !e.usable && e.span.overlaps(span))
    {
        return Err(format!(
            "{} overlaps {} {}: not usable RAM",
            span.display(),
            hit.kind,
            hit.span.display()
        ));
    }
    if let Some(hit) = req.avoid.iter().find(|a| a.overlaps(span)) {
        return Err(format!(
            "{} overlaps {}, already reserved (a memmap= on the command line or a region \
             carveout holds)",
            span.display(),
            hit.display()
        ));
    }
    let inside = map
        .entries
        .iter()
        .find(|e| e.usable && e.span.contains(span))
        .map(|e| e.span)
        .ok_or_else(|| {
            format!(
                "{} does not lie wholly inside one usable RAM entry of {} (a hole, or \
                 beyond the end of RAM)",
                span.display(),
                map.source
            )
        })?;
    Ok(Plan::new(map, *span, inside))
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;
    use crate::firmware_map::{entry, is_firmware_reserved};

    const G: u64 = 1 << 30;

    /// The 16 GiB server of the pmem guide ("How To Choose the Correct memmap Option").
    const PMEM_GUIDE: &str = "\
$ dmesg | grep BIOS-e820
[    0.000000] BIOS-e820: [mem 0x0000000000000000-0x000000000009fbff] usable
[    0.000000] BIOS-e820: [mem 0x000000000009fc00-0x000000000009ffff] reserved
[    0.000000] BIOS-e820: [mem 0x00000000000f0000-0x00000000000fffff] reserved
[    0.000000] BIOS-e820: [mem 0x0000000000100000-0x00000000bffdffff] usable
[    0.000000] BIOS-e820: [mem 0x00000000bffe0000-0x00000000bfffffff] reserved
[    0.000000] BIOS-e820: [mem 0x00000000feffc000-0x00000000feffffff] reserved
[    0.000000] BIOS-e820: [mem 0x00000000fffc0000-0x00000000ffffffff] reserved
[    0.000000] BIOS-e820: [mem 0x0000000100000000-0x00000003ffffffff] usable
";

    /// The test guest (QEMU pc, 512M) on kernel 7.3, with its two memmap= entries applied.
    const GUEST_7_3: &str = "\
[    0.000000] BIOS-provided physical RAM map:
[    0.000000] BIOS-e820: [mem 0x0000000000000000-0x000000000009fbff] System RAM
[    0.000000] BIOS-e820: [mem 0x000000000009fc00-0x000000000009ffff] device reserved
[    0.000000] BIOS-e820: [gap 0x00000000000a0000-0x00000000000effff]
[    0.000000] BIOS-e820: [mem 0x00000000000f0000-0x00000000000fffff] device reserved
[    0.000000] BIOS-e820: [mem 0x0000000000100000-0x000000001ffdffff] System RAM
[    0.000000] BIOS-e820: [mem 0x000000001ffe0000-0x000000001fffffff] device reserved
[    0.000000] BIOS-e820: [mem 0x00000000fffc0000-0x00000000ffffffff] device reserved
[    0.000000] user-defined physical RAM map:
[    0.000000] user: [mem 0x0000000000000000-0x000000000009fbff] System RAM
[    0.000000] user: [mem 0x000000000009fc00-0x000000000009ffff] device reserved
[    0.000000] user: [mem 0x00000000000f0000-0x00000000000fffff] device reserved
[    0.000000] user: [mem 0x0000000000100000-0x0000000007ffffff] System RAM
[    0.000000] user: [mem 0x0000000008000000-0x000000000bffffff] device reserved
[    0.000000] user: [mem 0x000000000c000000-0x000000000fffffff] System RAM
[    0.000000] user: [mem 0x0000000010000000-0x0000000010ffffff] persistent RAM (type 12)
[    0.000000] user: [mem 0x0000000011000000-0x000000001ffdffff] System RAM
[    0.000000] user: [mem 0x000000001ffe0000-0x000000001fffffff] device reserved
[    0.000000] user: [mem 0x00000000fffc0000-0x00000000ffffffff] device reserved
[    0.004000] e820: update [mem 0x00000000-0x00000fff] System RAM ==> device reserved
";

    fn req(size: u64) -> Request {
        Request {
            size,
            align: default_align(size),
            below: None,
            avoid: Vec::new(),
        }
    }

    #[test]
    fn pmem_guide_16g_server_yields_a_range_in_4g_to_16g() {
        let map = FirmwareMap::from_text(PMEM_GUIDE, "guide").expect("parses");
        assert_eq!(map.entries.len(), 8);
        let usable_high = Span::new(4 * G, 12 * G).unwrap();
        for size in [4 * G, 12 * G, 64 << 20, 1 << 30] {
            let plan = plan(&map, &req(size)).expect("fits");
            assert!(
                usable_high.contains(&plan.span),
                "{} not inside 4G..16G",
                plan.span.display()
            );
            assert_eq!(plan.inside, usable_high);
            assert_eq!(plan.span.base % default_align(size), 0);
        }
        // 4G lands where the guide puts it by hand: memmap=4G!12G.
        assert_eq!(plan(&map, &req(4 * G)).unwrap().span.base, 12 * G);
    }

    #[test]
    fn below_keeps_a_range_under_a_dma_limit_and_off_the_first_mib() {
        let map = FirmwareMap::from_text(PMEM_GUIDE, "guide").unwrap();
        let mut r = req(512 << 20);
        r.below = Some(4 * G);
        let p = plan(&map, &r).expect("fits below 4G");
        assert!(p.span.last() < 0xbffe_0000, "{}", p.span.display());
        assert!(p.span.base >= 1 << 20);
        // The low usable range is 0x100000-0xbffdffff: 3G - 128K. 3G does not fit.
        r.size = 3 * G;
        r.align = 1 << 21;
        let err = plan(&map, &r).expect_err("too big below 4G");
        assert!(
            err.contains("no usable RAM above the first MiB and below 0x100000000"),
            "{err}"
        );
        // Nothing may come from the first MiB, even if only that were usable.
        let low = FirmwareMap {
            source: "t".into(),
            entries: vec![entry(0, 0xfffff, "usable").unwrap()],
        };
        assert!(plan(&low, &req(64 << 10)).is_err());
    }

    #[test]
    fn the_last_table_of_a_listing_counts_and_existing_reservations_are_avoided() {
        let map = FirmwareMap::from_text(GUEST_7_3, "dmesg").expect("parses");
        // The "user:" table: 10 rows; gaps and "e820: update" lines are skipped.
        assert_eq!(map.entries.len(), 10);
        assert!(map
            .entries
            .iter()
            .any(|e| e.kind == "persistent RAM (type 12)"));
        let p = plan(&map, &req(64 << 20)).expect("fits");
        // Highest 64M-aligned 64M inside 0x11000000-0x1ffdffff.
        assert_eq!(p.span, Span::new(0x1800_0000, 64 << 20).unwrap());
        for taken in [
            Span::new(0x800_0000, 64 << 20).unwrap(),
            Span::new(0x1000_0000, 16 << 20).unwrap(),
        ] {
            assert!(!p.span.overlaps(&taken));
        }
        // Avoiding that one moves it down, still clear of the reserved ranges.
        let mut r = req(64 << 20);
        r.avoid.push(p.span);
        let q = plan(&map, &r).expect("fits");
        assert_eq!(q.span.base, 0x1400_0000);
    }

    #[test]
    fn iomem_listing_and_the_old_e820_format() {
        let iomem = "\
00000000-00000fff : Reserved
00001000-0009fbff : System RAM
00100000-3fffffff : System RAM
  3e000000-3fdfffff : Kernel code
  3fe00000-3fffffff : Kernel data
40000000-7fffffff : Reserved
";
        let map = FirmwareMap::from_text(iomem, "iomem").expect("parses");
        let p = plan(&map, &req(32 << 20)).expect("fits");
        // The kernel image at the top of RAM is avoided.
        assert_eq!(p.span, Span::new(0x3c00_0000, 32 << 20).unwrap());
        let old = "\
BIOS-e820: 0000000000000000 - 000000000009fc00 (usable)
BIOS-e820: 0000000000100000 - 0000000020000000 (usable)
BIOS-e820: 00000000fffc0000 - 0000000100000000 (reserved)
";
        let map = FirmwareMap::from_text(old, "old").expect("parses");
        assert_eq!(map.entries[1].span.last(), 0x1fff_ffff);
        assert_eq!(plan(&map, &req(1 << 28)).unwrap().span.base, 0x1000_0000);
    }

    #[test]
    fn sysfs_firmware_memmap_layout() {
        let dir = std::env::temp_dir().join(format!("carveout-plan-{}", std::process::id()));
        let rows = [
            ("0", "0x0", "0x9fbff", "System RAM"),
            ("1", "0x100000", "0x7fffffff", "System RAM"),
            ("2", "0xf0000", "0xfffff", "Reserved"),
        ];
        for (n, start, end, kind) in rows {
            let d = dir.join(n);
            fs::create_dir_all(&d).unwrap();
            fs::write(d.join("start"), format!("{start}\n")).unwrap();
            fs::write(d.join("end"), format!("{end}\n")).unwrap();
            fs::write(d.join("type"), format!("{kind}\n")).unwrap();
        }
        let map = FirmwareMap::from_sysfs(&dir);
        fs::remove_dir_all(&dir).unwrap();
        let map = map.expect("reads");
        assert_eq!(map.entries.len(), 3);
        assert_eq!(map.usable_total(), 0x9_fc00 + 0x7ff0_0000);
        let p = plan(&map, &req(1 << 30)).expect("fits");
        assert_eq!(p.span, Span::new(1 << 30, 1 << 30).unwrap());
    }

    #[test]
    fn bad_requests_and_bad_listings_are_refused_with_a_reason() {
        let map = FirmwareMap::from_text(PMEM_GUIDE, "guide").unwrap();
        let mut r = req(1000);
        assert!(plan(&map, &r)
            .unwrap_err()
            .contains("not a positive multiple of the page size"));
        r.size = 0;
        assert!(plan(&map, &r).is_err());
        r = req(64 << 20);
        r.align = 3 << 20;
        assert!(plan(&map, &r).unwrap_err().contains("not a power of two"));
        r = req(64 << 40);
        assert!(plan(&map, &r)
            .unwrap_err()
            .contains("the largest free usable range is 12G"));
        let err = FirmwareMap::from_text("hello\nworld\n", "notes.txt").unwrap_err();
        assert!(err.contains("notes.txt holds neither"), "{err}");
        let err = FirmwareMap::from_text("BIOS-e820: [mem 0xzz-0x10] usable", "x").unwrap_err();
        assert!(err.contains("not hex"), "{err}");
        let err = FirmwareMap::from_text("BIOS-e820: [mem 0x2000-0x1000] usable", "x").unwrap_err();
        assert!(err.contains("ends before it starts"), "{err}");
        let reserved_only =
            FirmwareMap::from_text("BIOS-e820: [mem 0x0-0xfff] reserved", "x").unwrap();
        assert!(plan(&reserved_only, &req(4096))
            .unwrap_err()
            .contains("lists no usable RAM"));
    }

    #[test]
    fn firmware_reserved_ranges_are_told_from_ram() {
        let map = FirmwareMap::from_text(PMEM_GUIDE, "guide").unwrap();
        // A memmap=$ range in RAM: the firmware's map lists it as usable.
        let ram = Span::new(0x800_0000, 64 << 20).unwrap();
        assert_eq!(map.firmware_reserved_note(&ram), None);
        assert!(!map.leaves_unlisted(&ram));
        // SeaBIOS's top-of-RAM range, and one reaching into it.
        let top = Span::new(0xbffe_0000, 0x2_0000).unwrap();
        let note = map.firmware_reserved_note(&top).expect("firmware reserved");
        assert_eq!(
            note,
            "lies in memory the firmware itself reserved (guide: reserved \
             0xbffe0000-0xbfffffff), not in RAM the command line set aside"
        );
        assert!(map
            .firmware_reserved_note(&Span::new(0xbff0_0000, 0x20_0000).unwrap())
            .is_some());
        // A hole (no entry) is not firmware reserved, but unlisted.
        let hole = Span::new(0xc000_0000, 0x20_0000).unwrap();
        assert_eq!(map.firmware_reserved_note(&hole), None);
        assert!(map.leaves_unlisted(&hole));
        let notes = firmware_reserved_notes(
            &map,
            &[
                ("/dev/carveout0".into(), ram),
                ("/dev/carveout/fw".into(), top),
            ],
        );
        assert_eq!(notes.len(), 1);
        assert!(notes[0].starts_with("/dev/carveout/fw (0xbffe0000-0xbfffffff) lies in"));
        for (kind, reserved) in [
            ("Reserved", true),
            ("ACPI Tables", true),
            ("ACPI Non-volatile Storage", true),
            ("device reserved", true),
            ("Unusable memory", true),
            ("System RAM", false),
            ("usable", false),
            ("Persistent Memory (legacy)", false),
            ("persistent RAM (type 12)", false),
            ("Soft Reserved", false),
        ] {
            assert_eq!(is_firmware_reserved(kind), reserved, "{kind}");
        }
    }

    #[test]
    fn default_alignment() {
        assert_eq!(default_align(64 << 20), 64 << 20);
        assert_eq!(default_align(12 * G), G);
        assert_eq!(default_align(3 << 20), 1 << 20);
        assert_eq!(default_align(4096), 4096);
    }

    #[test]
    fn a_chosen_range_is_vetted_against_the_map() {
        let map = FirmwareMap::from_text(PMEM_GUIDE, "guide").expect("parses");
        let chosen = parse_chosen("512M@2G").expect("parses");
        assert_eq!(chosen, Span::new(2 * G, 512 << 20).unwrap());
        assert_eq!(parse_chosen("512M$2G").unwrap(), chosen);
        let p = vet(&map, &chosen, &req(0)).expect("inside usable RAM");
        assert_eq!(
            p.inside,
            Span::new(0x100000, 0xbffe0000 - 0x100000).unwrap()
        );

        // Each refusal names what the range hits.
        let why = |s: &str| vet(&map, &parse_chosen(s).unwrap(), &req(0)).unwrap_err();
        assert!(why("1G@0xa0000000").contains("overlaps reserved 0xbffe0000-0xbfffffff"));
        assert!(why("512M@3G").contains("does not lie wholly inside one usable RAM entry"));
        assert!(why("64K@0x10000").contains("first MiB"));
        assert!(why("512M@0x80000800").contains("not page aligned"));
        assert!(why("1G@16G").contains("does not lie wholly inside"));
        // A memmap= already on the command line (or a region carveout holds).
        let mut taken = req(0);
        taken
            .avoid
            .push(Span::new(2 * G + (256 << 20), 16 << 20).unwrap());
        assert!(vet(&map, &chosen, &taken)
            .unwrap_err()
            .contains("already reserved"));
        // Malformed: no @, a bad size, a wrapping range.
        assert!(parse_chosen("512M").is_err());
        assert!(parse_chosen("lots@2G").is_err());
        assert!(parse_chosen("2G@0xffffffffffff0000").is_err());
    }
}
