//! The file's edges and refusals: `file eof`, `file across-end`, `file write-past-end`, `file
//! seek-end`, `file bad-whence`, `file write-refused`.

use std::{
    io::IoSlice,
    os::fd::{AsFd, AsRawFd},
};

use carveout::{abi, pattern, Region};
use rustix::{
    fs::{seek, SeekFrom},
    io::{pread, pwrite, read, write, writev, Errno},
};

use super::{devmem_holds, expect_errno, position, same, sys, via_devmem, PAGE};
use crate::{fail, Failed};

pub fn check_eof(region: &Region, info: &abi::Info) -> Result<(), Failed> {
    let mut buf = [0u8; 4096];
    for at in [
        info.size,
        info.size + 1,
        info.size + (1 << 30),
        i64::MAX as u64 - 4096,
    ] {
        let n = sys("pread() past the end", pread(region, &mut buf, at))?;
        if n != 0 {
            return Err(fail(format!(
                "pread() at {at:#x} returned {n}, expected 0 (EOF)"
            )));
        }
    }
    sys("lseek(SEEK_END)", seek(region, SeekFrom::End(0)))?;
    let n = sys("read() at the end", read(region, &mut buf))?;
    if n != 0 {
        return Err(fail(format!("read() at the end returned {n}, expected 0")));
    }
    // The last page is still readable: EOF is exactly the size.
    let n = sys(
        "pread() of the last page",
        pread(region, &mut buf, info.size - PAGE),
    )?;
    same(
        "the last page against /dev/mem",
        info.size - PAGE,
        &buf[..n],
        &via_devmem(info, info.size - PAGE, PAGE as usize)?,
    )?;
    println!(
        "# reads at and past {:#x} return 0; the page before it reads",
        info.size
    );
    Ok(())
}

pub fn check_across_end(region: &Region, info: &abi::Info) -> Result<(), Failed> {
    for (before, len) in [(PAGE, 2 * PAGE as usize), (1, 4096), (100, 1 << 20)] {
        let at = info.size - before;
        let mut buf = vec![0u8; len];
        let n = sys("pread() across the end", pread(region, &mut buf, at))?;
        if n as u64 != before {
            return Err(fail(format!(
                "pread() of {len} at {at:#x} returned {n}, expected {before}"
            )));
        }
        same(
            "the short read against /dev/mem",
            at,
            &buf[..n],
            &via_devmem(info, at, n)?,
        )?;
    }
    // read() with the position: short, then EOF.
    sys("lseek", seek(region, SeekFrom::End(-100)))?;
    let mut buf = vec![0u8; 4096];
    let n = sys("read()", read(region, &mut buf))?;
    let m = sys("read()", read(region, &mut buf))?;
    if (n, m) != (100, 0) {
        return Err(fail(format!(
            "read() at size-100 gave {n} then {m}, expected 100 then 0"
        )));
    }
    println!("# reads across the end return the bytes up to it, which /dev/mem shows");
    Ok(())
}

pub fn check_write_past_end(region: &Region, info: &abi::Info) -> Result<(), Failed> {
    let size = info.size;
    let tail = 3 * PAGE;
    let before = via_devmem(info, size - tail, tail as usize)?;
    let marker = vec![0x5au8; 2 * PAGE as usize];
    expect_errno(
        "pwrite() at the end",
        pwrite(region, &marker, size),
        Errno::NOSPC,
    )?;
    expect_errno(
        "pwrite() past the end",
        pwrite(region, &marker, size + (1 << 30)),
        Errno::NOSPC,
    )?;
    sys("lseek(SEEK_END)", seek(region, SeekFrom::End(0)))?;
    expect_errno("write() at the end", write(region, &marker), Errno::NOSPC)?;
    // A negative offset: the raw call (rustix takes only non-negative offsets).
    // SAFETY: `marker` is valid for reads of its length.
    let ret = unsafe {
        libc::pwrite(
            region.as_fd().as_raw_fd(),
            marker.as_ptr().cast(),
            marker.len(),
            -4096,
        )
    };
    if ret != -1 || Errno::from_io_error(&std::io::Error::last_os_error()) != Some(Errno::INVAL) {
        return Err(fail(format!(
            "pwrite() at offset -4096 returned {ret}, expected EINVAL"
        )));
    }
    println!("# pwrite() at offset -4096: EINVAL");
    same(
        "the region's last pages after the refused writes",
        size - tail,
        &via_devmem(info, size - tail, tail as usize)?,
        &before,
    )?;
    // Across the end: one page written, the count says so.
    let n = sys(
        "pwrite() across the end",
        pwrite(region, &marker, size - PAGE),
    )?;
    if n as u64 != PAGE {
        return Err(fail(format!(
            "pwrite() of {} at size-4096 wrote {n}",
            marker.len()
        )));
    }
    let after = via_devmem(info, size - tail, tail as usize)?;
    let split = (tail - PAGE) as usize;
    same(
        "the pages before the last",
        size - tail,
        &after[..split],
        &before[..split],
    )?;
    same(
        "the last page",
        size - PAGE,
        &after[split..],
        &marker[..PAGE as usize],
    )?;
    println!("# writes at or past the end: ENOSPC; across it: {PAGE} bytes, the last page");
    Ok(())
}

pub fn check_seek_end(region: &Region, info: &abi::Info) -> Result<(), Failed> {
    let end = sys("lseek(0, SEEK_END)", seek(region, SeekFrom::End(0)))?;
    if end != info.size {
        return Err(fail(format!(
            "SEEK_END is {end:#x}, the region is {:#x}",
            info.size
        )));
    }
    let at = sys("lseek(-8192, SEEK_END)", seek(region, SeekFrom::End(-8192)))?;
    let at = sys(
        "lseek(4096, SEEK_CUR)",
        seek(region, SeekFrom::Current(4096)),
    )
    .and_then(|cur| {
        if cur == at + 4096 {
            Ok(cur)
        } else {
            Err(fail(format!("SEEK_CUR +4096 from {at:#x} gave {cur:#x}")))
        }
    })?;
    let mut buf = vec![0u8; 8192];
    let n = sys("read()", read(region, &mut buf))?;
    if n as u64 != PAGE {
        return Err(fail(format!(
            "read() at {at:#x} gave {n}, expected the last 4096"
        )));
    }
    same(
        "the last page against /dev/mem",
        at,
        &buf[..n],
        &via_devmem(info, at, n)?,
    )?;
    // Past the end is a position like any other: reads there are EOF.
    let past = sys("lseek(1M, SEEK_END)", seek(region, SeekFrom::End(1 << 20)))?;
    if past != info.size + (1 << 20) {
        return Err(fail(format!("SEEK_END +1M gave {past:#x}")));
    }
    println!("# SEEK_END is {end:#x}; SEEK_END/SEEK_CUR land where /dev/mem agrees");
    Ok(())
}

pub fn check_bad_whence(region: &Region, info: &abi::Info) -> Result<(), Failed> {
    let start = sys("lseek", seek(region, SeekFrom::Start(8192)))?;
    for whence in [3, 4, 5, 100, -1] {
        // SAFETY: lseek on an open descriptor; any whence value may be passed.
        let ret = unsafe { libc::lseek(region.as_fd().as_raw_fd(), 0, whence) };
        let errno = Errno::from_io_error(&std::io::Error::last_os_error());
        if ret != -1 || errno != Some(Errno::INVAL) {
            return Err(fail(format!(
                "lseek whence {whence} returned {ret} ({errno:?}), expected EINVAL"
            )));
        }
        println!("# whence {whence}: EINVAL");
    }
    let negative = [
        ("SEEK_SET -1", SeekFrom::Start(u64::MAX)),
        ("SEEK_CUR -8193", SeekFrom::Current(-8193)),
        ("SEEK_END -(size+1)", SeekFrom::End(-(info.size as i64) - 1)),
        ("SEEK_END +i64::MAX", SeekFrom::End(i64::MAX)),
    ];
    for (what, from) in negative {
        expect_errno(what, seek(region, from), Errno::INVAL)?;
    }
    if position(region)? != start {
        return Err(fail("a refused lseek moved the position"));
    }
    Ok(())
}

pub fn check_write_refused(
    region: &Region,
    info: &abi::Info,
    errno: &str,
    seed: u64,
) -> Result<(), Failed> {
    let want = match errno {
        "EPERM" => Errno::PERM,
        "EBADF" => Errno::BADF,
        other => return Err(fail(format!("{other}: expected EPERM or EBADF"))),
    };
    let bytes = vec![0xeeu8; 8192];
    expect_errno("write()", write(region, &bytes), want)?;
    expect_errno("pwrite() at 1M", pwrite(region, &bytes, 1 << 20), want)?;
    expect_errno("writev()", writev(region, &[IoSlice::new(&bytes)]), want)?;
    // Reading still works, and shows the contents unchanged.
    let mut buf = vec![0u8; 8192];
    let n = sys("pread()", pread(region, &mut buf, 1 << 20))?;
    same(
        "pread() after the refused writes",
        1 << 20,
        &buf[..n],
        &pattern::bytes(seed, 1 << 20, n),
    )?;
    devmem_holds(info, seed, "/dev/mem", "changed")?;
    Ok(())
}
