// SPDX-License-Identifier: GPL-2.0

//! The region as a file, after FreeBSD's `mem(4)`: `read`, `write` (and `pread`/`pwrite`,
//! `readv`/`writev`, through `read_iter`/`write_iter`) and `lseek`, where a file offset is an
//! offset into the region (0 is its base), as for `mmap`.
//!
//! - A read that starts at or past the end returns 0 (end of file); one that crosses the end
//!   returns the bytes up to it. A write that starts at or past the end fails with `ENOSPC`;
//!   one that crosses it writes up to the end and returns that count. A negative offset is
//!   `EINVAL` (the VFS refuses most before they get here). `SEEK_END` is the region's size;
//!   seeking past the end is allowed (then read gives 0 and write `ENOSPC`), other `whence`
//!   values are `EINVAL`.
//! - A write-protected (`wp`) region refuses `write` with `EPERM`; a file opened read-only
//!   is refused with `EBADF` by the VFS before the driver sees the call.
//! - The cache attribute holds for these accesses too. The bytes are copied through a kernel
//!   mapping of the whole region that has the region's own memory type (`ioremap_prot` with
//!   the type's page protection; PAT records the type while it is mapped): never through a
//!   write-back alias of a UC, WC or WT region, which PAT forbids. `reserve_mem` RAM is
//!   write-back only, and is copied through the kernel's direct map (also write-back). The
//!   attribute cannot change during a transfer: `CARVEOUT_SET_ATTR` returns `EBUSY`
//!   meanwhile. The first transfer makes the mapping; it is kept for the next ones (mapping
//!   and unmapping per call cost a vmap area, page-table entries, a PAT record and a flush of
//!   the whole TLB each time) until the last open file that read or wrote the region closes,
//!   or the attribute changes (`kernel_ext::phys_window::ClaimWindow`).
//! - A transfer proceeds in pieces of at most [`PIECE`] bytes, ending at physical 2 MiB
//!   boundaries: nothing proportional to the request is allocated. Between pieces the task
//!   yields the CPU if another should run, and a fatal signal ends the transfer with the bytes
//!   done so far (or `EINTR` when none were).
//! - Nothing but a `write` changes the contents: opening, reading, seeking and closing never
//!   touch them.

use kernel::{
    iov::{
        IovIterDest,
        IovIterSource, //
    },
    prelude::*,
};

use crate::{
    kernel_ext::{
        phys_window::PhysWindow,
        ratelimit,
        task, //
    },
    region::{
        Region,
        Transfer, //
    },
};

/// The most bytes one piece of a transfer copies between checks for a signal and for another
/// task to run: 2 MiB. Pieces end at physical 2 MiB boundaries.
pub(crate) const PIECE: u64 = 2 << 20;

/// Says why a request was refused, in one `dmesg` line, unless too many were said lately.
macro_rules! refused {
    ($($arg:tt)*) => {
        if ratelimit::refusal_may_print() {
            pr_err!($($arg)*);
        }
    };
}

/// `SEEK_SET`, `SEEK_CUR`, `SEEK_END`: the only `whence` values the region takes.
const SEEK_SET: c_int = 0;
const SEEK_END: c_int = 2;

/// The direction of a transfer, for its limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    Read,
    Write,
}

/// What a transfer of `count` bytes at file position `pos` touches in a region of `size`
/// bytes: `Ok(None)` for nothing (end of file, or no bytes asked for), else the offset and
/// the length cut at the end. `EINVAL` for a negative position; `ENOSPC` for a write that
/// starts at or past the end.
fn span(direction: Direction, pos: i64, count: usize, size: u64) -> Result<Option<(u64, u64)>> {
    let offset = u64::try_from(pos).map_err(|_| EINVAL)?;
    if count == 0 {
        return Ok(None);
    }
    if offset >= size {
        return match direction {
            Direction::Read => Ok(None),
            Direction::Write => Err(ENOSPC),
        };
    }
    Ok(Some((offset, (count as u64).min(size - offset))))
}

/// The length of the piece that starts at physical address `phys` of a transfer with
/// `remaining` bytes left: up to the next 2 MiB boundary, at most `remaining`.
fn piece_len(phys: u64, remaining: u64) -> u64 {
    (PIECE - phys % PIECE).min(remaining)
}

/// Copies `len` bytes at `offset` of the region, piece by piece, with `copy` (which copies
/// the bytes `[at, at + len)` of the window on the region and returns how much it copied).
/// Returns the bytes done; `EFAULT` when the first piece copied nothing, `EINTR` when a fatal
/// signal came before any byte was done, `ENOMEM` when the region could not be mapped.
fn transfer(
    region: &Region,
    transfer: &Transfer<'_>,
    offset: u64,
    len: u64,
    mut copy: impl FnMut(&PhysWindow<'_>, usize, usize) -> usize,
) -> Result<usize> {
    let base = region.range().base();
    let window = transfer.window().inspect_err(|err| {
        refused!(
            "{}: cannot map {:#x}+{:#x} {} to copy it ({:?})\n",
            region.name().to_str().unwrap_or("?"),
            base,
            region.range().size(),
            transfer.attr().name(),
            err
        );
    })?;
    let mut done = 0u64;
    while done < len {
        if done > 0 {
            task::cond_resched();
        }
        if task::fatal_signal_pending() {
            break;
        }
        let at = offset + done;
        let piece = piece_len(base + at, len - done);
        // Offsets into the region and pieces of at most 2 MiB fit in `usize`: the window maps
        // the whole region.
        let copied = copy(&window, at as usize, piece as usize) as u64;
        done += copied;
        if copied < piece {
            if done == 0 {
                return Err(EFAULT);
            }
            break;
        }
    }
    if done == 0 {
        // Only a fatal signal ends the loop before any byte (`len > 0`).
        return Err(EINTR);
    }
    // No more than one request's count, which is a `usize`.
    Ok(done as usize)
}

/// `read_iter`: copies the region from `*pos` into `dest` and advances `*pos`.
pub(crate) fn read(region: &Region, pos: &mut i64, dest: &mut IovIterDest<'_>) -> Result<usize> {
    let Some((offset, len)) = span(Direction::Read, *pos, dest.len(), region.range().size())?
    else {
        return Ok(0);
    };
    let started = region.start_transfer();
    let done = transfer(region, &started, offset, len, |window, at, len| {
        window.copy_to_iter(at, len, dest)
    })?;
    // No overflow: `offset + done <= size`, which `pos` held already.
    *pos = (offset + done as u64) as i64;
    Ok(done)
}

/// `write_iter`: copies `src` into the region at `*pos` and advances `*pos`.
pub(crate) fn write(region: &Region, pos: &mut i64, src: &mut IovIterSource<'_>) -> Result<usize> {
    let name = region.name().to_str().unwrap_or("?");
    let started = region.start_transfer();
    if !started.attr().allows_write() {
        refused!("{name}: refusing write: the region is write-protected (wp)\n");
        return Err(EPERM);
    }
    let size = region.range().size();
    let at = *pos;
    let Some((offset, len)) = span(Direction::Write, at, src.len(), size).inspect_err(|err| {
        if *err == ENOSPC {
            refused!("{name}: refusing write at {at:#x}: the region ends at {size:#x}\n");
        }
    })?
    else {
        return Ok(0);
    };
    let done = transfer(region, &started, offset, len, |window, at, len| {
        window.copy_from_iter(at, len, src)
    })?;
    // No overflow: as in `read`.
    *pos = (offset + done as u64) as i64;
    Ok(done)
}

/// For `llseek`: the end of file (the region's size) if `whence` is `SEEK_SET`, `SEEK_CUR` or
/// `SEEK_END`; `EINVAL` for any other.
pub(crate) fn seek_end(region: &Region, whence: c_int) -> Result<i64> {
    if !(SEEK_SET..=SEEK_END).contains(&whence) {
        refused!(
            "{}: refusing lseek whence {whence}: only SEEK_SET, SEEK_CUR and SEEK_END\n",
            region.name().to_str().unwrap_or("?")
        );
        return Err(EINVAL);
    }
    // A region's size is far below `i64::MAX` (physical addresses have at most 52 bits).
    i64::try_from(region.range().size()).map_err(|_| EINVAL)
}

#[kunit_tests(carveout_file_io)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;
    const SIZE: u64 = 64 * MIB;

    #[test]
    fn reads_stop_at_the_end() {
        assert_eq!(span(Direction::Read, 0, 4096, SIZE), Ok(Some((0, 4096))));
        assert_eq!(
            span(Direction::Read, (SIZE - 100) as i64, 4096, SIZE),
            Ok(Some((SIZE - 100, 100)))
        );
        assert_eq!(span(Direction::Read, SIZE as i64, 4096, SIZE), Ok(None));
        assert_eq!(span(Direction::Read, i64::MAX, 4096, SIZE), Ok(None));
        assert_eq!(span(Direction::Read, 0, 0, SIZE), Ok(None));
        assert_eq!(span(Direction::Read, -1, 4096, SIZE), Err(EINVAL));
    }

    #[test]
    fn writes_past_the_end_refused() {
        assert_eq!(
            span(Direction::Write, (SIZE - 1) as i64, 4096, SIZE),
            Ok(Some((SIZE - 1, 1)))
        );
        assert_eq!(span(Direction::Write, SIZE as i64, 1, SIZE), Err(ENOSPC));
        assert_eq!(span(Direction::Write, i64::MAX, 1, SIZE), Err(ENOSPC));
        assert_eq!(span(Direction::Write, SIZE as i64, 0, SIZE), Ok(None));
        assert_eq!(span(Direction::Write, i64::MIN, 1, SIZE), Err(EINVAL));
    }

    #[test]
    fn pieces_end_at_2m_boundaries() {
        let base = 128 * MIB;
        assert_eq!(piece_len(base, SIZE), PIECE);
        assert_eq!(piece_len(base + 4096, SIZE), PIECE - 4096);
        assert_eq!(piece_len(base + 1, 10), 10);
        assert_eq!(piece_len(base + PIECE - 1, SIZE), 1);
        // A whole region in pieces: each at most 2 MiB, together exactly the request.
        let (mut at, mut left, mut pieces) = (base + 12345, SIZE - 12345, 0);
        while left > 0 {
            let piece = piece_len(at, left);
            assert!(piece > 0 && piece <= PIECE);
            at += piece;
            left -= piece;
            pieces += 1;
        }
        assert_eq!(at, base + SIZE);
        assert_eq!(pieces, SIZE / PIECE);
    }
}
