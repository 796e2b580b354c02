//! `plan`: where a new `memmap=` reservation can go, from the firmware's memory map.

use std::{fs, path::Path, process::ExitCode};

use carveout::{
    firmware_map::FirmwareMap,
    memmap::{self, format_addr, format_size, Kind, Span},
    plan, Failure,
};
use rustix::io::Errno;
use serde_json::json;

use crate::{
    boot::running_memmaps,
    output::{approx, fail, print_json, Res},
    regions::region_views,
};

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
    let avoid = running_memmaps()
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

pub fn cmd_plan(
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
                running_memmaps()
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
