//! The test suite's 2 MiB mapping cases: `huge-used`, `huge-matches`, and `hold` (a mapping
//! kept while the case looks at it).

use std::{hint::black_box, time::Duration};

use carveout::{pattern, Region};
use rustix::mm::ProtFlags;

use crate::maps::{minor_faults, page_table_kib, Map, Source, HUGE, PAGE};

/// The `huge_mapping_used` (`used`) or `huge_mapping_matches` check, on the whole region.
pub fn huge_check(dev: &str, used: bool) -> Result<bool, String> {
    let region = Region::open(dev).map_err(|e| e.to_string())?;
    let info = region.info().map_err(|e| e.to_string())?;
    drop(region);
    let len = usize::try_from(info.size).map_err(|e| e.to_string())?;
    let blocks = len / HUGE;
    let rw = ProtFlags::READ | ProtFlags::WRITE;
    let mut ok = true;

    if used {
        // One fault per 2 MiB and no 4 KiB page tables for it; the 4 KiB path for contrast.
        return huge_used(dev, len, info.base);
    }

    // Matches: a pattern written through 4 KiB entries reads back through 2 MiB ones and the
    // other way round, including a window whose ends are not 2 MiB aligned.
    let small = Map::new(Source::Carveout { dev, huge: false }, 0, len, rw)?;
    let huge = Map::new(Source::Carveout { dev, huge: true }, 0, len, rw)?;
    for (seed, writer, reader) in [(0x4b1u64, &small, &huge), (0x2b2, &huge, &small)] {
        for off in (0..len).step_by(8) {
            writer.write_u64(off, pattern::word(seed, (off / 8) as u64));
        }
        let bad = (0..len)
            .step_by(8)
            .filter(|&off| reader.read_u64(off) != pattern::word(seed, (off / 8) as u64))
            .count();
        if bad != 0 {
            println!("# seed {seed:#x}: {bad} words differ between the mappings");
            ok = false;
        }
    }
    drop((small, huge));
    if blocks >= 4 {
        // A window from 1 MiB to 1 MiB before the end: 4 KiB entries at both ends.
        let edge = HUGE / 2;
        let window = Map::new(
            Source::Carveout { dev, huge: true },
            edge as u64,
            len - 2 * edge,
            rw,
        )?;
        let bad = (0..window.len)
            .step_by(8)
            .filter(|&off| window.read_u64(off) != pattern::word(0x2b2, ((edge + off) / 8) as u64))
            .count();
        if bad != 0 {
            println!("# the window at {edge:#x}: {bad} words differ");
            ok = false;
        }
    }
    match carveout::devmem::verify(info.base, info.size, 0x2b2) {
        Ok(Ok(())) => {}
        Ok(Err(mismatch)) => {
            println!("# /dev/mem differs: {mismatch:?}");
            ok = false;
        }
        Err(e) => return Err(format!("/dev/mem: {e}")),
    }
    Ok(ok)
}

fn huge_used(dev: &str, len: usize, base: u64) -> Result<bool, String> {
    let blocks = len / HUGE;
    let rw = ProtFlags::READ | ProtFlags::WRITE;
    let mut ok = true;
    for placement in ["2 MiB aligned", "4 KiB offset", "placed by the kernel"] {
        let faults = minor_faults();
        let ptes = page_table_kib();
        let map = match placement {
            "2 MiB aligned" => Map::new(Source::Carveout { dev, huge: true }, 0, len, rw)?,
            "4 KiB offset" => Map::new(Source::Carveout { dev, huge: false }, 0, len, rw)?,
            _ => Map::kernel_placed(dev, len, rw)?,
        };
        map.touch();
        let faults = minor_faults() - faults;
        let ptes = page_table_kib().saturating_sub(ptes);
        let addr = map.ptr.as_ptr() as usize;
        println!(
            "# {placement} mapping of {len:#x} bytes at {addr:#x}: {faults} faults, page tables +{ptes} KiB"
        );
        if placement == "4 KiB offset" {
            continue;
        }
        if (addr as u64 ^ base) % HUGE as u64 != 0 {
            println!(
                "# the address is not congruent with the physical base {base:#x} modulo 2 MiB"
            );
            ok = false;
        }
        if faults as usize > blocks + 4 || ptes as usize >= len / HUGE * 4 {
            println!("# expected about {blocks} faults and no 4 KiB page tables");
            ok = false;
        }
    }

    Ok(ok)
}

pub fn hold(dev: &str, seconds: u64, read_only: bool) -> Result<(), String> {
    let region = Region::open(dev).map_err(|e| e.to_string())?;
    let len = usize::try_from(region.info().map_err(|e| e.to_string())?.size)
        .map_err(|e| e.to_string())?;
    drop(region);
    let prot = if read_only {
        ProtFlags::READ
    } else {
        ProtFlags::READ | ProtFlags::WRITE
    };
    let map = Map::new(Source::Carveout { dev, huge: true }, 0, len, prot)?;
    let mut sum = 0u64;
    for off in (0..len).step_by(PAGE) {
        sum = sum.wrapping_add(map.read_u64(off));
    }
    black_box(sum);
    println!("holding {len:#x} bytes, 2 MiB aligned");
    std::thread::sleep(Duration::from_secs(seconds));
    Ok(())
}
