//! `file sendfile` and `file splice-in`: the node as the source of sendfile() and the
//! destination of splice(), at odd offsets, checked through /dev/mem.

use std::fs::File;

use carveout::{abi, pattern, Access, Region};
use rustix::{
    fs::{seek, sendfile, SeekFrom},
    io::write,
    pipe::{pipe, splice, SpliceFlags},
};

use super::{position, same, sys, via_devmem, PAGE};
use crate::{fail, Failed};

/// The piece of the region the splice checks move: from an odd offset, several MiB (more than
/// a pipe holds), ending short of the region's end.
fn splice_span(info: &abi::Info, start: u64) -> Result<usize, Failed> {
    let room = info
        .size
        .checked_sub(start + PAGE)
        .ok_or_else(|| fail("the region is too small for the splice checks"))?;
    Ok(room.min((4 << 20) + 13) as usize)
}

pub fn check_sendfile(
    region: &Region,
    info: &abi::Info,
    seed: u64,
    sink: &str,
) -> Result<(), Failed> {
    region
        .map(0..info.size, Access::ReadWrite)
        .map_err(|e| fail(e.to_string()))?
        .fill_pattern(seed, |_| ());
    let start = PAGE + 3;
    let len = splice_span(info, start)?;
    sys("lseek(0)", seek(region, SeekFrom::Start(0)))?;
    let out = File::create(sink).map_err(|e| fail(format!("{sink}: {e}")))?;
    let (mut offset, mut done, mut calls) = (start, 0, 0);
    while done < len {
        let n = sys(
            "sendfile()",
            sendfile(&out, region, Some(&mut offset), len - done),
        )?;
        if n == 0 {
            break;
        }
        done += n;
        calls += 1;
    }
    drop(out);
    if done != len || offset != start + len as u64 {
        return Err(fail(format!(
            "sendfile() moved {done} bytes to offset {offset:#x}, expected {len} to {:#x}",
            start + len as u64
        )));
    }
    if position(region)? != 0 {
        return Err(fail("sendfile() with an offset moved the node's position"));
    }
    let got = std::fs::read(sink).map_err(|e| fail(format!("{sink}: {e}")))?;
    let _ = std::fs::remove_file(sink);
    same(
        "sendfile()'s output against /dev/mem",
        start,
        &got,
        &via_devmem(info, start, len)?,
    )?;
    same(
        "sendfile()'s output against the pattern",
        start,
        &got,
        &pattern::bytes(seed, start, len),
    )?;
    println!("# sendfile(): {len} bytes from {start:#x} in {calls} calls match /dev/mem");
    Ok(())
}

pub fn check_splice_in(region: &Region, info: &abi::Info, seed: u64) -> Result<(), Failed> {
    let under = seed ^ 0x5eed;
    region
        .map(0..info.size, Access::ReadWrite)
        .map_err(|e| fail(e.to_string()))?
        .fill_pattern(under, |_| ());
    let start = 2 * PAGE + 7;
    let len = splice_span(info, start)?;
    let data = pattern::bytes(seed, start, len);
    let (from, into) = sys("pipe()", pipe())?;
    // Pieces a pipe takes whole (its default capacity is 64 KiB), so a write never waits.
    const PIECE: usize = 32 << 10;
    let (mut offset, mut calls) = (start, 0);
    for piece in data.chunks(PIECE) {
        let mut written = 0;
        while written < piece.len() {
            written += sys("write() to the pipe", write(&into, &piece[written..]))?;
        }
        let mut moved = 0;
        while moved < piece.len() {
            let n = sys(
                "splice() into the node",
                splice(
                    &from,
                    None,
                    region,
                    Some(&mut offset),
                    piece.len() - moved,
                    SpliceFlags::empty(),
                ),
            )?;
            if n == 0 {
                return Err(fail("splice() into the node moved nothing"));
            }
            moved += n;
            calls += 1;
        }
    }
    if offset != start + len as u64 {
        return Err(fail(format!(
            "splice() left the offset at {offset:#x}, expected {:#x}",
            start + len as u64
        )));
    }
    same(
        "/dev/mem after splice()",
        start,
        &via_devmem(info, start, len)?,
        &data,
    )?;
    let end = start + len as u64;
    same(
        "/dev/mem before the spliced bytes",
        start - 64,
        &via_devmem(info, start - 64, 64)?,
        &pattern::bytes(under, start - 64, 64),
    )?;
    same(
        "/dev/mem after the spliced bytes",
        end,
        &via_devmem(info, end, 64)?,
        &pattern::bytes(under, end, 64),
    )?;
    println!("# splice(): {len} bytes to {start:#x} in {calls} calls, seen through /dev/mem");
    Ok(())
}
