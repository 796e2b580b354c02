//! The region as a file (issue #13): `read`, `write`, `pread`/`pwrite`, `readv`/`writev` and
//! `lseek` on the node, each checked from outside the file interface, through a mapping of
//! the region or through `/dev/mem` at its physical address.

use std::{
    fs::File,
    io::{IoSlice, IoSliceMut},
    os::fd::{AsFd, AsRawFd},
    process::{Command as Process, Stdio},
    time::{Duration, Instant},
};

use carveout::{abi, devmem, pattern, Access, Region};
use clap::Subcommand;
use rustix::{
    fs::{seek, sendfile, SeekFrom},
    io::{pread, pwrite, read, readv, write, writev, Errno},
    mm::{mmap, MapFlags, ProtFlags},
    pipe::{pipe, splice, SpliceFlags},
};

use crate::{fail, Failed};

#[derive(Subcommand)]
pub enum FileCheck {
    /// Fill through a mapping with SEED's pattern; read(), readv() and preadv() (odd
    /// lengths, several vectors) give the same bytes as the mapping and /dev/mem.
    Read {
        #[arg(long, value_parser = carveout::parse_u64)]
        seed: u64,
    },
    /// Write SEED's pattern with write() and writev() (odd lengths); the mapping and /dev/mem
    /// show it.
    Write {
        #[arg(long, value_parser = carveout::parse_u64)]
        seed: u64,
    },
    /// pread()/pwrite() at scattered offsets land where the mapping and /dev/mem say, and leave
    /// the file position alone.
    Offsets,
    /// A read at or past the end returns 0.
    Eof,
    /// A read across the end returns the bytes up to it, the region's last bytes.
    AcrossEnd,
    /// A write at or past the end is ENOSPC, one across it writes up to the end only, a
    /// negative offset is EINVAL; nothing else changes.
    WritePastEnd,
    /// lseek(SEEK_END) is the size; SEEK_END/SEEK_CUR land where reads show.
    SeekEnd,
    /// lseek with a whence other than SEEK_SET/CUR/END, or to a negative offset, is EINVAL,
    /// and leaves the position where it was.
    BadWhence,
    /// A write is refused with ERRNO (EPERM for a WP region, EBADF with --read-only) and the
    /// contents stay as they were (SEED's pattern, through /dev/mem).
    WriteRefused {
        #[arg(long)]
        errno: String,
        #[arg(long, value_parser = carveout::parse_u64)]
        seed: u64,
        /// Open the node read-only.
        #[arg(long)]
        read_only: bool,
    },
    /// A read of the whole region into a shared tmpfs mapping, killed (SIGKILL) as soon as its
    /// first bytes arrive: it stops part way, what it copied is the region's start, and the
    /// region is unchanged (SEED's pattern).
    ReadKilled {
        #[arg(long, value_parser = carveout::parse_u64)]
        seed: u64,
        /// The tmpfs file the child reads into.
        #[arg(long, default_value = "/tmp/read-killed.bin")]
        sink: String,
    },
    /// (The child of read-killed.) read() the whole region into a shared mapping of SINK.
    ReadInto {
        #[arg(long)]
        sink: String,
    },
    /// sendfile() from the node at an odd offset (SEED's pattern, filled through a mapping)
    /// into the tmpfs file SINK: the file holds what /dev/mem shows there, and the node's
    /// position stays where it was.
    Sendfile {
        #[arg(long, value_parser = carveout::parse_u64)]
        seed: u64,
        #[arg(long, default_value = "/tmp/sendfile.out")]
        sink: String,
    },
    /// splice() from a pipe into the node at an odd offset, in pieces, of SEED's pattern over
    /// another one: /dev/mem shows it there, and the bytes either side are unchanged.
    SpliceIn {
        #[arg(long, value_parser = carveout::parse_u64)]
        seed: u64,
    },
}

const PAGE: u64 = 4096;

fn sys<T>(what: &str, result: rustix::io::Result<T>) -> Result<T, Failed> {
    result.map_err(|errno| fail(format!("{what}: {errno}")))
}

/// `got` must equal `want`; else the first differing offset (from `at`) is the reason.
fn same(what: &str, at: u64, got: &[u8], want: &[u8]) -> Result<(), Failed> {
    if got.len() != want.len() {
        return Err(fail(format!(
            "{what}: {} bytes, expected {}",
            got.len(),
            want.len()
        )));
    }
    match got.iter().zip(want).position(|(a, b)| a != b) {
        None => Ok(()),
        Some(i) => Err(fail(format!(
            "{what}: differs at offset {:#x}: {:#04x}, expected {:#04x}",
            at + i as u64,
            got[i],
            want[i]
        ))),
    }
}

/// `len` bytes of the region at `offset`, read through /dev/mem.
fn via_devmem(info: &abi::Info, offset: u64, len: usize) -> Result<Vec<u8>, Failed> {
    let mut buf = vec![0u8; len];
    devmem::read(info.base + offset, &mut buf).map_err(|err| fail(err.to_string()))?;
    Ok(buf)
}

fn expect_errno<T>(what: &str, result: rustix::io::Result<T>, want: Errno) -> Result<(), Failed> {
    match result {
        Ok(_) => Err(fail(format!("{what}: succeeded, expected {want}"))),
        Err(errno) if errno == want => {
            println!("# {what}: {errno}");
            Ok(())
        }
        Err(errno) => Err(fail(format!("{what}: {errno}, expected {want}"))),
    }
}

fn position(region: &Region) -> Result<u64, Failed> {
    sys("lseek(0, SEEK_CUR)", seek(region, SeekFrom::Current(0)))
}

pub fn run(dev: &str, check: &FileCheck) -> std::io::Result<Result<(), Failed>> {
    let access = match check {
        FileCheck::WriteRefused { read_only, .. } if *read_only => Access::Read,
        FileCheck::ReadInto { .. } => Access::Read,
        _ => Access::ReadWrite,
    };
    let region = Region::open_with(dev, access)?;
    let info = region.info()?;
    Ok(match check {
        FileCheck::Read { seed } => check_read(&region, &info, *seed),
        FileCheck::Write { seed } => check_write(&region, &info, *seed),
        FileCheck::Offsets => check_offsets(&region, &info),
        FileCheck::Eof => check_eof(&region, &info),
        FileCheck::AcrossEnd => check_across_end(&region, &info),
        FileCheck::WritePastEnd => check_write_past_end(&region, &info),
        FileCheck::SeekEnd => check_seek_end(&region, &info),
        FileCheck::BadWhence => check_bad_whence(&region, &info),
        FileCheck::WriteRefused { errno, seed, .. } => {
            check_write_refused(&region, &info, errno, *seed)
        }
        FileCheck::ReadKilled { seed, sink } => check_read_killed(dev, &region, &info, *seed, sink),
        FileCheck::ReadInto { sink } => read_into(&region, &info, sink),
        FileCheck::Sendfile { seed, sink } => check_sendfile(&region, &info, *seed, sink),
        FileCheck::SpliceIn { seed } => check_splice_in(&region, &info, *seed),
    })
}

fn check_read(region: &Region, info: &abi::Info, seed: u64) -> Result<(), Failed> {
    let size = info.size as usize;
    let mapping = region
        .map(0..info.size, Access::ReadWrite)
        .map_err(|e| fail(e.to_string()))?;
    mapping.fill_pattern(seed, |_| ());
    let mut from_map = vec![0u8; size];
    mapping.copy_to_slice(0, &mut from_map);
    same(
        "the mapping after the fill",
        0,
        &from_map,
        &pattern::bytes(seed, 0, size),
    )?;

    // read() from the start in odd lengths, to the end of file.
    sys("lseek(0)", seek(region, SeekFrom::Start(0)))?;
    let mut got = vec![0u8; size + 3];
    let mut done = 0;
    let mut calls = 0;
    while done < got.len() {
        let want = ((1 << 20) + 7).min(got.len() - done);
        let n = sys("read()", read(region, &mut got[done..done + want]))?;
        if n == 0 {
            break;
        }
        done += n;
        calls += 1;
    }
    if done != size {
        return Err(fail(format!(
            "read() gave {done} bytes before EOF, the region is {size}"
        )));
    }
    same("read() against the mapping", 0, &got[..size], &from_map)?;
    println!("# read(): {size} bytes in {calls} calls match the mapping");

    // readv() from an odd offset into three vectors.
    let at = 3 * PAGE + 5;
    sys("lseek", seek(region, SeekFrom::Start(at)))?;
    let (mut a, mut b, mut c) = (vec![0u8; 4093], vec![0u8; 1], vec![0u8; (2 << 20) + 11]);
    let total = a.len() + b.len() + c.len();
    let n = sys(
        "readv()",
        readv(
            region,
            &mut [
                IoSliceMut::new(&mut a),
                IoSliceMut::new(&mut b),
                IoSliceMut::new(&mut c),
            ],
        ),
    )?;
    if n != total {
        return Err(fail(format!("readv() gave {n} bytes, expected {total}")));
    }
    let joined = [a, b, c].concat();
    let end = at as usize + total;
    same(
        "readv() against the mapping",
        at,
        &joined,
        &from_map[at as usize..end],
    )?;
    if position(region)? != end as u64 {
        return Err(fail("readv() did not advance the position by its count"));
    }
    // And against /dev/mem, outside the driver.
    same(
        "readv() against /dev/mem",
        at,
        &joined,
        &via_devmem(info, at, total)?,
    )?;
    println!("# readv(): {total} bytes at {at:#x} in three vectors match the mapping and /dev/mem");
    // Reading and seeking changed nothing.
    devmem::verify(info.base, info.size, seed)
        .map_err(|e| fail(e.to_string()))?
        .map_err(|m| {
            fail(format!(
                "/dev/mem after the reads: {} words differ from {:#x}",
                m.words, m.offset
            ))
        })?;
    Ok(())
}

fn check_write(region: &Region, info: &abi::Info, seed: u64) -> Result<(), Failed> {
    let size = info.size as usize;
    let want = pattern::bytes(seed, 0, size);
    sys("lseek(0)", seek(region, SeekFrom::Start(0)))?;
    // The first 3 MiB + 5 bytes with writev() in three vectors, the rest with write() in odd
    // lengths.
    let split = [4099usize, (3 << 20) - 4099, 5];
    let mut parts = Vec::new();
    let mut at = 0;
    for len in split {
        parts.push(IoSlice::new(&want[at..at + len]));
        at += len;
    }
    let n = sys("writev()", writev(region, &parts))?;
    if n != at {
        return Err(fail(format!("writev() wrote {n} bytes, expected {at}")));
    }
    let mut done = at;
    while done < size {
        let len = ((1 << 20) + 13).min(size - done);
        let n = sys("write()", write(region, &want[done..done + len]))?;
        if n == 0 {
            return Err(fail(format!("write() wrote nothing at {done:#x}")));
        }
        done += n;
    }
    if position(region)? != info.size {
        return Err(fail(
            "the position after writing the whole region is not its size",
        ));
    }
    let mapping = region
        .map(0..info.size, Access::Read)
        .map_err(|e| fail(e.to_string()))?;
    mapping.verify_pattern(seed, |_| ()).map_err(|m| {
        fail(format!(
            "the mapping: {} words differ from {:#x}",
            m.words, m.offset
        ))
    })?;
    devmem::verify(info.base, info.size, seed)
        .map_err(|e| fail(e.to_string()))?
        .map_err(|m| {
            fail(format!(
                "/dev/mem: {} words differ from {:#x}",
                m.words, m.offset
            ))
        })?;
    println!("# writev() and write(): {size} bytes seen in the mapping and through /dev/mem");
    Ok(())
}

fn check_offsets(region: &Region, info: &abi::Info) -> Result<(), Failed> {
    let size = info.size;
    let mapping = region
        .map(0..size, Access::ReadWrite)
        .map_err(|e| fail(e.to_string()))?;
    sys("lseek", seek(region, SeekFrom::Start(12345)))?;
    let offsets = [
        0,
        1,
        PAGE - 3,
        2 << 20,
        (2 << 20) - 1,
        size / 2 + 17,
        size - 9,
        size - 1,
    ];
    for (i, &at) in offsets.iter().enumerate() {
        let len = 9.min((size - at) as usize);
        let bytes: Vec<u8> = (0..len).map(|j| (0xa0 + i * 9 + j) as u8).collect();
        let n = sys("pwrite()", pwrite(region, &bytes, at))?;
        if n != len {
            return Err(fail(format!("pwrite() at {at:#x} wrote {n} of {len}")));
        }
        let mut seen = vec![0u8; len];
        mapping.copy_to_slice(at as usize, &mut seen);
        same("pwrite() seen in the mapping", at, &seen, &bytes)?;
        same(
            "pwrite() seen through /dev/mem",
            at,
            &via_devmem(info, at, len)?,
            &bytes,
        )?;
        // Written through the mapping, read with pread().
        let other: Vec<u8> = bytes.iter().map(|b| !b).collect();
        mapping.copy_from_slice(at as usize, &other);
        let mut back = vec![0u8; len];
        let n = sys("pread()", pread(region, &mut back, at))?;
        same("pread() of what the mapping wrote", at, &back[..n], &other)?;
    }
    if position(region)? != 12345 {
        return Err(fail("pread()/pwrite() moved the file position"));
    }
    println!(
        "# pread()/pwrite() at {} offsets agree with the mapping and /dev/mem",
        offsets.len()
    );
    Ok(())
}

fn check_eof(region: &Region, info: &abi::Info) -> Result<(), Failed> {
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

fn check_across_end(region: &Region, info: &abi::Info) -> Result<(), Failed> {
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

fn check_write_past_end(region: &Region, info: &abi::Info) -> Result<(), Failed> {
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

fn check_seek_end(region: &Region, info: &abi::Info) -> Result<(), Failed> {
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

fn check_bad_whence(region: &Region, info: &abi::Info) -> Result<(), Failed> {
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

fn check_write_refused(
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
    devmem::verify(info.base, info.size, seed)
        .map_err(|e| fail(e.to_string()))?
        .map_err(|m| {
            fail(format!(
                "/dev/mem: {} words changed from {:#x}",
                m.words, m.offset
            ))
        })?;
    Ok(())
}

fn check_read_killed(
    dev: &str,
    region: &Region,
    info: &abi::Info,
    seed: u64,
    sink: &str,
) -> Result<(), Failed> {
    let size = info.size as usize;
    let file = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(sink)
        .map_err(|e| fail(format!("{sink}: {e}")))?;
    file.set_len(info.size)
        .map_err(|e| fail(format!("{sink}: {e}")))?;
    // SAFETY: a fresh shared mapping of our own file; read with volatile loads only.
    let view = unsafe {
        mmap(
            std::ptr::null_mut(),
            size,
            ProtFlags::READ,
            MapFlags::SHARED,
            &file,
            0,
        )
    }
    .map_err(|e| fail(format!("mmap {sink}: {e}")))?
    .cast::<u64>();
    let first = pattern::word(seed, 0);
    let exe = std::env::current_exe().map_err(|e| fail(e.to_string()))?;
    let mut child = Process::new(exe)
        .args(["--dev", dev, "file", "read-into", "--sink", sink])
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| fail(format!("spawning the reader: {e}")))?;
    let started = Instant::now();
    // SAFETY: inside the mapping (word 0); the child writes it through the kernel.
    while unsafe { view.read_volatile() } != first {
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            return Err(fail("the reader never started copying"));
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(fail(format!(
                "the reader ended ({status}) before it was killed"
            )));
        }
    }
    child.kill().map_err(|e| fail(format!("SIGKILL: {e}")))?;
    let status = child.wait().map_err(|e| fail(e.to_string()))?;
    let killed_after = started.elapsed();
    // SAFETY: the mapping is `size` bytes long and nothing writes it any more.
    let copied = unsafe { std::slice::from_raw_parts(view.cast::<u8>(), size) }.to_vec();
    // SAFETY: unmapped once, nothing uses `view` afterwards.
    let _ = unsafe { rustix::mm::munmap(view.cast(), size) };
    use std::os::unix::process::ExitStatusExt;
    if status.signal() != Some(libc::SIGKILL) {
        return Err(fail(format!("the reader was not killed: {status}")));
    }
    let want = pattern::bytes(seed, 0, size);
    let done = copied
        .iter()
        .zip(&want)
        .position(|(a, b)| a != b)
        .unwrap_or(size);
    println!(
        "# the reader copied {done:#x} of {size:#x} bytes before SIGKILL ended it ({} ms)",
        killed_after.as_millis()
    );
    if done == size {
        return Err(fail("the read finished: the kill did not end it part way"));
    }
    if let Some(i) = copied[done..].iter().position(|b| *b != 0) {
        return Err(fail(format!(
            "bytes at {:#x}, after the copied prefix, were written",
            done + i
        )));
    }
    // The region itself is as it was.
    let _ = region;
    devmem::verify(info.base, info.size, seed)
        .map_err(|e| fail(e.to_string()))?
        .map_err(|m| {
            fail(format!(
                "/dev/mem: {} words changed from {:#x}",
                m.words, m.offset
            ))
        })?;
    Ok(())
}

fn read_into(region: &Region, info: &abi::Info, sink: &str) -> Result<(), Failed> {
    let size = info.size as usize;
    let file = File::options()
        .read(true)
        .write(true)
        .open(sink)
        .map_err(|e| fail(format!("{sink}: {e}")))?;
    // SAFETY: a fresh shared mapping of the sink; only the kernel writes it (read()).
    let buf = unsafe {
        mmap(
            std::ptr::null_mut(),
            size,
            ProtFlags::READ | ProtFlags::WRITE,
            MapFlags::SHARED,
            &file,
            0,
        )
    }
    .map_err(|e| fail(format!("mmap {sink}: {e}")))?;
    // SAFETY: the mapping is `size` bytes, writable, and nothing else in this process uses it.
    let buf = unsafe { std::slice::from_raw_parts_mut(buf.cast::<u8>(), size) };
    let n = sys("read()", read(region, buf))?;
    println!("read {n}");
    Ok(())
}

/// The piece of the region the splice checks move: from an odd offset, several MiB (more than
/// a pipe holds), ending short of the region's end.
fn splice_span(info: &abi::Info, start: u64) -> Result<usize, Failed> {
    let room = info
        .size
        .checked_sub(start + PAGE)
        .ok_or_else(|| fail("the region is too small for the splice checks"))?;
    Ok(room.min((4 << 20) + 13) as usize)
}

fn check_sendfile(region: &Region, info: &abi::Info, seed: u64, sink: &str) -> Result<(), Failed> {
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

fn check_splice_in(region: &Region, info: &abi::Info, seed: u64) -> Result<(), Failed> {
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
