//! Do the kernel command line, `/proc/iomem` and the regions carveout holds agree, and is
//! what they set aside RAM rather than memory the firmware itself reserved? And can the PCI
//! devices named reach the regions at their physical addresses, or does an IOMMU stand in
//! between?
//!
//! Pure: the caller reads the sources (the firmware's own map too, `/sys/firmware/memmap`,
//! where a `memmap=$` range is still `System RAM`), [`check`] compares them and says, in
//! words, what is wrong. The devices' half is [`pci`]'s; what a finding is, [`finding`]'s.

mod finding;
mod pci;

pub use finding::{Finding, Level, RegionView};
pub use pci::{pci_devices, Attachment, Attachments};

use crate::{
    firmware_map::FirmwareMap,
    iomem::Iomem,
    iommu::PciIommu,
    memmap::{self, format_addr, format_size, Entry, Kind, Memmap, Span},
};

/// The RAM the kernel's memory map of a pages-mode region of `size` bytes in folios of `folio`
/// bytes takes: a 64-byte `struct page` per 4 KiB page, or, for folios whose memory map spans
/// more than two pages (2 MiB and 1 GiB ones), two pages a folio: the kernel maps the rest of
/// the folio's tail pages onto those.
pub fn memmap_cost(size: u64, folio: u64) -> u64 {
    const PAGE: u64 = 4096;
    if folio / PAGE * 64 > 2 * PAGE {
        size.div_ceil(folio) * 2 * PAGE
    } else {
        size.div_ceil(PAGE) * 64
    }
}

/// What [`check`] compares.
#[derive(Debug, Clone)]
pub struct Input {
    pub cmdline: String,
    /// `/proc/iomem`, or why it could not be read.
    pub iomem: Result<Iomem, String>,
    pub regions: Vec<RegionView>,
    /// Region nodes that could not be asked (with the error, in words).
    pub region_errors: Vec<String>,
    /// The firmware's own memory map (`/sys/firmware/memmap`), or why it is missing.
    pub firmware: Result<FirmwareMap, String>,
    /// The PCI devices named (`--pci`), as sysfs describes them, or why they could not be
    /// read.
    pub pci: Vec<Result<PciIommu, String>>,
    /// The devices the regions are attached to.
    pub attachments: Attachments,
}

fn is_claim(name: &str) -> bool {
    name == "carveout" || name.starts_with("carveout")
}

fn insmod_hint(span: &Span) -> String {
    format!(
        "run `carveoutctl load`, or insmod carveout.ko base={} size={:#x}",
        format_addr(span.base),
        span.size
    )
}

/// Compares the sources; every finding is a sentence. Any [`Level::Problem`] means they do
/// not agree.
pub fn check(input: &Input) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut say = |level, message: String| out.push(Finding { level, message });

    let entries = match memmap::parse_cmdline(&input.cmdline) {
        Ok(entries) => entries,
        Err(err) => {
            say(
                Level::Problem,
                format!("the command line's memmap= is wrong: {err}"),
            );
            Vec::new()
        }
    };
    let iomem = match &input.iomem {
        Ok(iomem) => Some(iomem),
        Err(why) => {
            say(Level::Problem, format!("cannot read /proc/iomem: {why}"));
            None
        }
    };
    for err in &input.region_errors {
        say(Level::Problem, err.clone());
    }
    let reserved: Vec<&Memmap> = entries.iter().filter(|e| e.reserved().is_some()).collect();
    if reserved.is_empty() && input.regions.is_empty() {
        say(
            Level::Note,
            "no memmap=SIZE$BASE on the command line and no carveout regions: nothing to \
             compare (see `carveoutctl plan` to choose a range)"
                .into(),
        );
    }

    for e in &entries {
        match e.entry {
            Entry::Range {
                kind: Kind::Persistent,
                span,
            } => say(
                Level::Note,
                format!(
                    "{e} ({}) is persistent memory for the kernel's pmem driver; carveout cannot \
                     use it (use $ instead of ! to reserve a range for carveout)",
                    span.display()
                ),
            ),
            Entry::Range {
                kind: Kind::Reserved,
                span,
            } => {
                if let Some(iomem) = iomem {
                    if iomem.reserved_covering(&span).is_none() {
                        say(
                            Level::Problem,
                            format!(
                                "{e} is on the command line, but /proc/iomem shows no Reserved \
                                 range covering {}: the kernel did not reserve it (does it lie \
                                 in usable RAM? see `carveoutctl plan`)",
                                span.display()
                            ),
                        );
                    }
                }
                let holders: Vec<&RegionView> = input
                    .regions
                    .iter()
                    .filter(|r| r.span.overlaps(&span))
                    .collect();
                let held: u64 = holders.iter().map(|r| r.span.size).sum();
                let names = holders
                    .iter()
                    .map(|r| r.path.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ");
                if holders.is_empty() {
                    say(
                        Level::Problem,
                        format!(
                            "no carveout region holds {e} ({}): {}",
                            span.display(),
                            insmod_hint(&span)
                        ),
                    );
                } else if holders.iter().any(|r| !span.contains(&r.span)) {
                    say(
                        Level::Problem,
                        format!(
                            "{names} reaches outside {e} ({}): part of it is not reserved by \
                             this entry",
                            span.display()
                        ),
                    );
                } else if held == span.size {
                    say(
                        Level::Ok,
                        format!("{e} ({}) is reserved and held by {names}", span.display()),
                    );
                } else {
                    say(
                        Level::Note,
                        format!(
                            "{e} ({}) is held only in part: {names} hold {} of its {}",
                            span.display(),
                            format_size(held),
                            format_size(span.size)
                        ),
                    );
                }
            }
            _ => {}
        }
    }

    firmware_findings(input, &reserved, &mut say);

    for r in input.regions.iter().filter(|r| r.pages) {
        say(
            Level::Note,
            format!(
                "{} ({}) has pages: O_DIRECT, io_uring and vmsplice can use its mappings; \
                 write-back only; its memory map takes {} of RAM",
                r.path.display(),
                r.span.display(),
                format_size(memmap_cost(r.span.size, r.pages_align))
            ),
        );
    }
    for r in &input.regions {
        let covered = reserved
            .iter()
            .filter_map(|e| e.reserved())
            .any(|s| s.contains(&r.span));
        if !covered {
            say(
                Level::Note,
                format!(
                    "{} ({}) is reserved by no memmap=SIZE$BASE on the command line: it must be \
                     reserved some other way (firmware), or a reboot may hand it to the kernel \
                     as RAM; to reserve it: {}",
                    r.path.display(),
                    r.span.display(),
                    memmap::reserve_arg(&r.span)
                ),
            );
        }
        if let Some(iomem) = iomem {
            let claimed = iomem.resources.iter().enumerate().any(|(i, res)| {
                is_claim(&res.name) && res.span == r.span && iomem.is_inside(i, "Reserved")
            });
            if !claimed {
                say(
                    Level::Problem,
                    format!(
                        "{} says it holds {}, but /proc/iomem shows no carveout claim there \
                         inside a Reserved range",
                        r.path.display(),
                        r.span.display()
                    ),
                );
            }
        }
    }

    if let Some(iomem) = iomem {
        for res in iomem.resources.iter().filter(|res| is_claim(&res.name)) {
            if !input.regions.iter().any(|r| r.span == res.span) {
                say(
                    Level::Problem,
                    format!(
                        "/proc/iomem shows a carveout claim at {} but no region node answers for \
                         it (is devtmpfs mounted on /dev? see `carveoutctl list`)",
                        res.span.display()
                    ),
                );
            }
        }
    }
    out.extend(pci::findings(
        &input.pci,
        &input.attachments,
        &input.regions,
    ));
    out
}

/// Regions and `memmap=$` entries in memory the firmware itself reserved are problems (the
/// firmware keeps ACPI tables, SMM or option ROMs there); regions in no entry of the firmware
/// map are noted.
fn firmware_findings(input: &Input, reserved: &[&Memmap], say: &mut impl FnMut(Level, String)) {
    let held: Vec<(String, Span)> = reserved
        .iter()
        .filter_map(|e| e.reserved().map(|s| (e.to_string(), s)))
        .chain(
            input
                .regions
                .iter()
                .map(|r| (r.path.display().to_string(), r.span)),
        )
        .collect();
    if held.is_empty() {
        return;
    }
    let map = match &input.firmware {
        Ok(map) => map,
        Err(why) => {
            say(
                Level::Note,
                format!(
                    "cannot tell memory the firmware reserved from RAM the command line set \
                     aside: {why}"
                ),
            );
            return;
        }
    };
    for (what, span) in &held {
        if let Some(why) = map.firmware_reserved_note(span) {
            say(
                Level::Problem,
                format!(
                    "{what} ({}) {why}: the firmware keeps ACPI tables, SMM or option ROMs in \
                     such ranges; use RAM set aside with memmap=SIZE$BASE instead (see \
                     `carveoutctl plan`)",
                    span.display()
                ),
            );
        } else if map.leaves_unlisted(span) {
            say(
                Level::Note,
                format!(
                    "{what} ({}) lies, at least in part, in no entry of the firmware's map \
                     ({}): not memory the firmware knows of (a hole, or memory behind a bridge)",
                    span.display(),
                    map.source
                ),
            );
        }
    }
}

/// Whether the findings hold no problem.
pub fn consistent(findings: &[Finding]) -> bool {
    findings.iter().all(|f| f.level != Level::Problem)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{attach::DmaDevice, iommu::Domain};

    const CMDLINE: &str = "console=ttyS0 memmap=64M$0x8000000 memmap=16M!0x10000000 quiet";
    const IOMEM_FREE: &str = "\
00100000-07ffffff : System RAM
08000000-0bffffff : Reserved
0c000000-0fffffff : System RAM
10000000-10ffffff : Persistent Memory (legacy)
  10000000-10ffffff : namespace0.0
";
    const IOMEM_HELD: &str = "\
00100000-07ffffff : System RAM
08000000-0bffffff : Reserved
  08000000-0bffffff : carveout
0c000000-0fffffff : System RAM
10000000-10ffffff : Persistent Memory (legacy)
  10000000-10ffffff : namespace0.0
";

    fn region(base: u64, size: u64) -> RegionView {
        RegionView {
            path: "/dev/carveout0".into(),
            name: "carveout0".into(),
            span: Span::new(base, size).unwrap(),
            pages: false,
            pages_align: 0,
        }
    }

    /// The guest's /sys/firmware/memmap: SeaBIOS, 512M; memmap= does not change it.
    const FIRMWARE: &str = "\
BIOS-e820: [mem 0x0000000000000000-0x000000000009fbff] System RAM
BIOS-e820: [mem 0x000000000009fc00-0x000000000009ffff] Reserved
BIOS-e820: [mem 0x00000000000f0000-0x00000000000fffff] Reserved
BIOS-e820: [mem 0x0000000000100000-0x000000001ffdffff] System RAM
BIOS-e820: [mem 0x000000001ffe0000-0x000000001fffffff] Reserved
BIOS-e820: [mem 0x00000000fffc0000-0x00000000ffffffff] Reserved
";

    fn input(cmdline: &str, iomem: &str, regions: Vec<RegionView>) -> Input {
        Input {
            cmdline: cmdline.into(),
            iomem: Iomem::parse(iomem),
            regions,
            region_errors: Vec::new(),
            firmware: FirmwareMap::from_text(FIRMWARE, "/sys/firmware/memmap"),
            pci: Vec::new(),
            attachments: Attachments::default(),
        }
    }

    fn problems(f: &[Finding]) -> Vec<&str> {
        f.iter()
            .filter(|f| f.level == Level::Problem)
            .map(|f| f.message.as_str())
            .collect()
    }

    #[test]
    fn all_in_place_is_consistent() {
        let f = check(&input(
            CMDLINE,
            IOMEM_HELD,
            vec![region(0x800_0000, 64 << 20)],
        ));
        assert!(consistent(&f), "{f:#?}");
        assert!(f.iter().any(|f| f.level == Level::Ok
            && f.message == "memmap=64M$0x8000000 (0x8000000-0xbffffff) is reserved and held by /dev/carveout0"));
        // The pmem entry is explained, not flagged.
        assert!(f
            .iter()
            .any(|f| f.level == Level::Note && f.message.contains("pmem driver")));
    }

    #[test]
    fn a_reserved_range_nobody_holds_is_reported() {
        let f = check(&input(CMDLINE, IOMEM_FREE, Vec::new()));
        assert_eq!(
            problems(&f),
            [
                "no carveout region holds memmap=64M$0x8000000 (0x8000000-0xbffffff): run \
              `carveoutctl load`, or insmod carveout.ko base=0x8000000 size=0x4000000"
            ]
        );
    }

    #[test]
    fn an_entry_the_kernel_did_not_reserve_is_reported() {
        let f = check(&input(
            "memmap=64M$0x8000000",
            "00100000-0fffffff : System RAM\n",
            Vec::new(),
        ));
        let p = problems(&f);
        assert_eq!(p.len(), 2, "{p:#?}");
        assert!(
            p[0].contains("shows no Reserved range covering 0x8000000-0xbffffff"),
            "{}",
            p[0]
        );
    }

    #[test]
    fn claims_and_regions_must_match() {
        // A region the driver reports but iomem does not show, and a claim nobody answers for.
        let f = check(&input(
            CMDLINE,
            IOMEM_HELD,
            vec![region(0x800_0000, 32 << 20)],
        ));
        let p = problems(&f);
        assert!(
            p.iter().any(|m| m.contains("no carveout claim there")),
            "{p:#?}"
        );
        assert!(
            p.iter()
                .any(|m| m.contains("claim at 0x8000000-0xbffffff but no region node")),
            "{p:#?}"
        );
        // Half held: a note, not a problem, for the entry itself.
        assert!(f
            .iter()
            .any(|f| f.level == Level::Note && f.message.contains("held only in part")));
    }

    #[test]
    fn a_region_without_a_memmap_entry_is_noted() {
        let f = check(&input(
            "quiet",
            IOMEM_HELD,
            vec![region(0x800_0000, 64 << 20)],
        ));
        assert!(consistent(&f), "{f:#?}");
        assert!(f
            .iter()
            .any(|f| f.message.contains("reserved by no memmap=SIZE$BASE")
                && f.message.contains("memmap=64M$0x8000000")));
    }

    #[test]
    fn a_region_with_pages_is_noted_with_its_memory_map() {
        assert_eq!(memmap_cost(1 << 30, 4096), 16 << 20);
        assert_eq!(memmap_cost(4097, 4096), 128);
        assert_eq!(memmap_cost(1 << 30, 2 << 20), 4 << 20);
        assert_eq!(memmap_cost(1 << 30, 1 << 30), 8 << 10);
        let mut with_pages = region(0x800_0000, 64 << 20);
        with_pages.pages = true;
        let f = check(&input("quiet", IOMEM_HELD, vec![with_pages]));
        assert!(consistent(&f), "{f:#?}");
        let notes: Vec<_> = f
            .iter()
            .filter(|f| f.message.contains("has pages"))
            .collect();
        assert_eq!(notes.len(), 1, "{f:#?}");
        assert_eq!(notes[0].level, Level::Note);
        assert!(notes[0].message.contains("takes 1M of RAM"), "{notes:#?}");
        assert!(!notes[0].message.contains("  "), "{notes:#?}");
        let without = check(&input(
            "quiet",
            IOMEM_HELD,
            vec![region(0x800_0000, 64 << 20)],
        ));
        assert!(!without.iter().any(|f| f.message.contains("has pages")));
    }

    #[test]
    fn memory_the_firmware_reserved_is_a_problem() {
        // SeaBIOS's top-of-RAM range (its ACPI tables), reserved again with memmap=$ and held.
        let iomem = "\
00100000-1ffdffff : System RAM
1ffe0000-1fffffff : Reserved
  1ffe0000-1fffffff : carveout
";
        let mut fw = region(0x1ffe_0000, 0x2_0000);
        fw.path = "/dev/carveout/memmap0".into();
        let f = check(&input("memmap=128K$0x1ffe0000", iomem, vec![fw]));
        let p = problems(&f);
        assert_eq!(p.len(), 2, "{f:#?}");
        assert!(p[0].starts_with(
            "memmap=128K$0x1ffe0000 (0x1ffe0000-0x1fffffff) lies in memory the firmware itself \
             reserved (/sys/firmware/memmap: Reserved 0x1ffe0000-0x1fffffff), not in RAM the \
             command line set aside"
        ));
        assert!(p[1].starts_with("/dev/carveout/memmap0 (0x1ffe0000-0x1fffffff) lies in"));
        // The usual guest: the memmap=$ range is RAM in the firmware's map.
        let ok = check(&input(
            CMDLINE,
            IOMEM_HELD,
            vec![region(0x800_0000, 64 << 20)],
        ));
        assert!(consistent(&ok), "{ok:#?}");
        assert!(
            !ok.iter().any(|f| f.message.contains("firmware")),
            "{ok:#?}"
        );
        // A region in a hole: noted, not a problem.
        let mut hole = input("quiet", "40000000-401fffff : carveout\n", Vec::new());
        hole.regions = vec![region(0x4000_0000, 2 << 20)];
        let f = check(&hole);
        assert!(f
            .iter()
            .any(|f| f.level == Level::Note && f.message.contains("in no entry of the firmware")));
        // Without the firmware's map: said, not guessed.
        let mut blind = input(CMDLINE, IOMEM_HELD, vec![region(0x800_0000, 64 << 20)]);
        blind.firmware = Err("/sys/firmware/memmap is missing".into());
        assert!(check(&blind)
            .iter()
            .any(|f| f.level == Level::Note && f.message.starts_with("cannot tell")));
    }

    #[test]
    fn bad_command_lines_and_unreadable_iomem_are_problems() {
        let f = check(&input(
            "memmap=64M$0x8000000 memmap=1M$0x9000000",
            IOMEM_HELD,
            vec![region(0x800_0000, 64 << 20)],
        ));
        assert!(problems(&f)
            .iter()
            .any(|m| m.contains("memmap= is wrong") && m.contains("overlaps")));
        let mut i = input(CMDLINE, IOMEM_HELD, Vec::new());
        i.iomem = Err("every address in /proc/iomem is 0".into());
        assert!(problems(&check(&i))
            .iter()
            .any(|m| m.starts_with("cannot read /proc/iomem")));
    }

    #[test]
    fn pci_devices_behind_a_translating_iommu_are_warned_about() {
        let dev = |group, domain| {
            Ok(PciIommu {
                bdf: "0000:00:03.0".into(),
                group,
                domain,
            })
        };
        let mut i = input(CMDLINE, IOMEM_HELD, vec![region(0x800_0000, 64 << 20)]);
        i.pci = vec![
            dev(Some(3), Domain::Translated("DMA-FQ".into())),
            dev(Some(3), Domain::Identity),
            dev(None, Domain::NoIommu),
            Err("no PCI device 0000:00:1f.7".into()),
        ];
        let f = check(&i);
        let about: Vec<&Finding> = f
            .iter()
            .filter(|f| f.message.contains("0000:00:"))
            .collect();
        assert_eq!(about.len(), 4, "{f:#?}");
        assert_eq!(about[0].level, Level::Warning);
        assert!(about[0].message.contains("domain type DMA-FQ"));
        assert!(about[0].message.contains("/sys/kernel/iommu_groups/3/type"));
        assert_eq!(about[1].level, Level::Ok);
        assert!(about[1].message.contains("identity"));
        assert_eq!(about[2].level, Level::Ok);
        assert_eq!(about[3].level, Level::Problem);
        // A warning is no inconsistency; the missing device is.
        i.pci.truncate(3);
        assert!(consistent(&check(&i)));
    }

    #[test]
    fn attached_devices_are_reported_with_their_bus_address() {
        let attachment = |region: &str, bus_addr, removed| Attachment {
            region: region.into(),
            device: DmaDevice {
                device: "0000:00:03.0".into(),
                bus_addr,
                translated: true,
                removed,
                revoked: false,
            },
        };
        let mut second = region(0x1000_0000, 16 << 20);
        second.path = "/dev/carveout/b".into();
        let mut i = input(
            CMDLINE,
            IOMEM_HELD,
            vec![region(0x800_0000, 64 << 20), second],
        );
        i.attachments.devices = vec![attachment("/dev/carveout0", Some(0xbc00_0000), false)];
        assert_eq!(pci_devices(&[], &i.attachments), ["0000:00:03.0"]);
        assert_eq!(
            pci_devices(&["0000:00:03.0".into()], &i.attachments),
            ["0000:00:03.0"]
        );
        i.pci = vec![Ok(PciIommu {
            bdf: "0000:00:03.0".into(),
            group: Some(3),
            domain: Domain::Translated("DMA-FQ".into()),
        })];
        let f = check(&i);
        let about: Vec<&Finding> = f
            .iter()
            .filter(|f| f.message.starts_with("0000:00:03.0"))
            .collect();
        assert_eq!(about.len(), 3, "{about:#?}");
        assert_eq!(about[0].level, Level::Ok);
        assert!(about[1]
            .message
            .contains("/dev/carveout0 is attached to it"));
        assert!(about[1].message.contains("bus address 0xbc000000 (an IOVA"));
        assert_eq!(about[2].level, Level::Warning);
        assert!(about[2].message.contains("/dev/carveout/b is not attached"));
        // Removed while attached: a warning, and not looked for on the bus.
        i.attachments.devices = vec![attachment("/dev/carveout0", None, true)];
        assert!(pci_devices(&[], &i.attachments).is_empty());
        i.pci.clear();
        let f = check(&i);
        assert!(f.iter().any(|f| f.level == Level::Warning
            && f.message
                .contains("removed while /dev/carveout0 was attached")));
    }
}
