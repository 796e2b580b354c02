//! Zero copy from and into a region (issue 22): `O_DIRECT` reads and writes, io_uring's
//! registered buffers and `vmsplice` with a mapping of a pages-mode region as the buffer,
//! against a block device (the guest's pmem). Every check reads the device's and the region's
//! bytes through `/dev/mem`, outside both the driver and the block layer.
//!
//! With `--pfn` the region is one without pages (mapped by PFN): the same transfer must fail
//! `EFAULT` (the kernel cannot pin the mapping) and change nothing.

use std::{
    fs::{File, OpenOptions},
    io,
    os::unix::fs::FileExt,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use carveout::{abi, devmem, open_direct, pattern, DirectBuffer, Region};
use clap::{Args, Subcommand};
use io_uring::{opcode, types, IoUring};
use rustix::pipe::{fcntl_setpipe_size, pipe, splice, SpliceFlags};

use crate::{fail, Failed};

/// Where the checks' window of the region starts: 4 KiB below a 2 MiB boundary, so the
/// mapping has 4 KiB entries and a 2 MiB one.
const WINDOW_OFFSET: u64 = 0x1f_f000;
/// The window's length: two 2 MiB blocks and 8 KiB.
const WINDOW_LEN: usize = 0x40_2000;
/// Where on the block device the window goes.
const TARGET_OFFSET: u64 = 0x2_1000;
const PAGE: usize = 4096;

#[derive(Args)]
pub struct Target {
    /// The block device (or file) the bytes go to and come from.
    #[arg(long, default_value = "/dev/pmem0")]
    target: PathBuf,
    /// The physical address of the block device's first byte (the pmem range), for the
    /// checks through /dev/mem.
    #[arg(long, value_parser = carveout::parse_u64)]
    target_phys: u64,
    #[arg(long, value_parser = carveout::parse_u64)]
    seed: u64,
    /// The region has no pages: the transfer must fail EFAULT and change nothing.
    #[arg(long)]
    pfn: bool,
}

#[derive(Subcommand)]
pub enum ZeroCopyCheck {
    /// pwrite(O_DIRECT) from a mapping of the region (SEED's pattern) to the block device:
    /// /dev/mem shows the pattern on the device.
    OdirectWrite(Target),
    /// pread(O_DIRECT) from the block device (SEED's pattern) into the middle of a mapping
    /// holding another pattern: /dev/mem shows the read bytes there, and the pages around
    /// them unchanged.
    OdirectRead(Target),
    /// IORING_REGISTER_BUFFERS over a mapping, WRITE_FIXED of its first half to the block
    /// device (O_DIRECT), READ_FIXED of that back into its second half; checked through
    /// /dev/mem.
    IoUring(Target),
    /// vmsplice() of the mapping into a pipe, splice() from the pipe to the block device; a
    /// word changed in the mapping after the vmsplice and before the splice arrives changed
    /// (the pipe held the region's pages, not a copy).
    Vmsplice(Target),
    /// Register the whole region with io_uring (IORING_REGISTER_BUFFERS), then unmap it and
    /// close the node; say "holding". Once the file UNPIN_WHEN exists, unregister the buffers
    /// and say "unregistered"; keep the ring open until SECONDS have passed.
    HoldPinned {
        #[arg(long)]
        unpin_when: PathBuf,
        #[arg(long, default_value_t = 600)]
        seconds: u64,
    },
}

fn io_fail(what: &str) -> impl FnOnce(io::Error) -> Failed + '_ {
    move |err| fail(format!("{what}: {err}"))
}

pub fn run(dev: &str, check: &ZeroCopyCheck) -> io::Result<Result<(), Failed>> {
    let region = Region::open(dev)?;
    let info = region.info()?;
    if let ZeroCopyCheck::HoldPinned {
        unpin_when,
        seconds,
    } = check
    {
        return Ok(hold_pinned(region, &info, unpin_when, *seconds));
    }
    let (ZeroCopyCheck::OdirectWrite(target)
    | ZeroCopyCheck::OdirectRead(target)
    | ZeroCopyCheck::IoUring(target)
    | ZeroCopyCheck::Vmsplice(target)) = check
    else {
        unreachable!("hold-pinned returned above");
    };
    if info.size < WINDOW_OFFSET + WINDOW_LEN as u64 {
        return Ok(Err(fail(format!(
            "the region ({:#x} bytes) is too small for the checks' window",
            info.size
        ))));
    }
    let has_pages = info.flags & abi::MR_PAGES != 0;
    if has_pages == target.pfn {
        return Ok(Err(fail(format!(
            "the region's flags {:#x} say it {} pages; the check expects {}",
            info.flags,
            if has_pages { "has" } else { "has no" },
            if target.pfn { "none" } else { "pages" }
        ))));
    }
    let window = WINDOW_OFFSET..WINDOW_OFFSET + WINDOW_LEN as u64;
    let buffer = if target.pfn {
        DirectBuffer::map_any(&region, window)
    } else {
        DirectBuffer::new(&region, window)
    };
    let buffer = match buffer {
        Ok(buffer) => buffer,
        Err(err) => return Ok(Err(fail(err.to_string()))),
    };
    let ctx = Context {
        region_phys: info.base,
        target,
    };
    Ok(match check {
        ZeroCopyCheck::OdirectWrite(_) => odirect_write(&ctx, &buffer),
        ZeroCopyCheck::OdirectRead(_) => odirect_read(&ctx, buffer),
        ZeroCopyCheck::IoUring(_) => io_uring_fixed(&ctx, &buffer),
        ZeroCopyCheck::Vmsplice(_) => vmsplice_out(&ctx, &buffer),
        ZeroCopyCheck::HoldPinned { .. } => unreachable!("handled above"),
    })
}

/// What the checks share: where the region is, the device and the seed.
struct Context<'a> {
    region_phys: u64,
    target: &'a Target,
}

impl Context<'_> {
    /// The target opened for reading and writing, with `O_DIRECT` if `direct`.
    fn open_target(&self, direct: bool) -> Result<File, Failed> {
        let path = &self.target.target;
        let file = if direct {
            open_direct(path)
        } else {
            OpenOptions::new().read(true).write(true).open(path)
        };
        file.map_err(io_fail(&path.display().to_string()))
    }

    /// Puts `bytes` on the target at `offset` through the page cache (and fsync), and checks
    /// that /dev/mem shows them there: the view the checks rely on is the device's.
    fn put_on_target(&self, offset: u64, bytes: &[u8]) -> Result<(), Failed> {
        let file = self.open_target(false)?;
        file.write_all_at(bytes, offset)
            .map_err(io_fail("buffered write to the target"))?;
        file.sync_all().map_err(io_fail("fsync of the target"))?;
        self.target_shows("the target after a buffered write", offset, bytes)
    }

    /// /dev/mem at the target's `offset` holds `want`.
    fn target_shows(&self, what: &str, offset: u64, want: &[u8]) -> Result<(), Failed> {
        devmem_shows(what, self.target.target_phys + offset, want)
    }

    /// /dev/mem at the region's `offset` holds `want`.
    fn region_shows(&self, what: &str, offset: u64, want: &[u8]) -> Result<(), Failed> {
        devmem_shows(what, self.region_phys + offset, want)
    }

    /// `result` is the EFAULT a transfer from a mapping without pages must get.
    fn expect_efault<T>(&self, what: &str, result: io::Result<T>) -> Result<(), Failed> {
        match result {
            Ok(_) => Err(fail(format!(
                "{what} from a mapping of a region without pages succeeded, expected EFAULT"
            ))),
            Err(err) if err.raw_os_error() == Some(libc::EFAULT) => {
                println!("# {what} from a mapping without pages: {err} (EFAULT, as expected)");
                Ok(())
            }
            Err(err) => Err(fail(format!("{what}: {err}, expected EFAULT"))),
        }
    }
}

/// The seed of the bytes a check overwrites first, so that a transfer that did nothing shows.
fn other(seed: u64) -> u64 {
    !seed ^ 0x5a5a
}

/// `len` bytes at physical `phys`, read through /dev/mem, equal `want`.
fn devmem_shows(what: &str, phys: u64, want: &[u8]) -> Result<(), Failed> {
    let mut got = vec![0u8; want.len()];
    devmem::read(phys, &mut got).map_err(io_fail(what))?;
    match got.iter().zip(want).position(|(a, b)| a != b) {
        None => Ok(()),
        Some(i) => Err(fail(format!(
            "{what}: /dev/mem at {:#x} holds {:#04x}, expected {:#04x}",
            phys + i as u64,
            got[i],
            want[i]
        ))),
    }
}

/// The pattern's bytes for region offsets `[offset, offset + len)`.
fn region_pattern(seed: u64, offset: u64, len: usize) -> Vec<u8> {
    pattern::bytes(seed, offset, len)
}

/// Calls `step(done)` (which moves bytes from `done` on and returns how many) until `len`
/// bytes have moved; a step that moves nothing is an error.
fn move_all(
    what: &str,
    len: usize,
    mut step: impl FnMut(usize) -> io::Result<usize>,
) -> io::Result<usize> {
    let mut done = 0;
    let mut calls = 0;
    while done < len {
        let n = step(done)?;
        calls += 1;
        if n == 0 {
            return Err(io::Error::other(format!(
                "{what} moved nothing at {done:#x} of {len:#x}"
            )));
        }
        done += n;
    }
    Ok(calls)
}

fn odirect_write(ctx: &Context<'_>, buffer: &DirectBuffer) -> Result<(), Failed> {
    let seed = ctx.target.seed;
    let len = buffer.len();
    buffer.mapping().fill_pattern(seed, |_| ());
    let want = region_pattern(seed, WINDOW_OFFSET, len);
    ctx.region_shows("the region after the fill", WINDOW_OFFSET, &want)?;
    let before = region_pattern(other(seed), WINDOW_OFFSET, len);
    ctx.put_on_target(TARGET_OFFSET, &before)?;
    let disk = ctx.open_target(true)?;
    let result = move_all("pwrite(O_DIRECT)", len, |done| {
        buffer.write_to(&disk, TARGET_OFFSET + done as u64, done..len)
    });
    if ctx.target.pfn {
        ctx.expect_efault("pwrite(O_DIRECT)", result)?;
        return ctx.target_shows("the target after the refused write", TARGET_OFFSET, &before);
    }
    let calls = result.map_err(io_fail("pwrite(O_DIRECT) from the mapping"))?;
    ctx.target_shows("the target after pwrite(O_DIRECT)", TARGET_OFFSET, &want)?;
    ctx.region_shows("the region after pwrite(O_DIRECT)", WINDOW_OFFSET, &want)?;
    println!(
        "# pwrite(O_DIRECT): {len:#x} bytes from region offset {WINDOW_OFFSET:#x} to \
         {TARGET_OFFSET:#x} of the target in {calls} call(s), seen through /dev/mem"
    );
    Ok(())
}

fn odirect_read(ctx: &Context<'_>, mut buffer: DirectBuffer) -> Result<(), Failed> {
    let seed = ctx.target.seed;
    let len = buffer.len();
    // The device holds SEED's pattern for the window; the window holds another. The read
    // fills all but the window's first and last pages, which must keep the other pattern.
    let want = region_pattern(seed, WINDOW_OFFSET, len);
    ctx.put_on_target(TARGET_OFFSET, &want)?;
    buffer.mapping().fill_pattern(other(seed), |_| ());
    let before = region_pattern(other(seed), WINDOW_OFFSET, len);
    ctx.region_shows("the region before the read", WINDOW_OFFSET, &before)?;
    let inner = PAGE..len - PAGE;
    let disk = ctx.open_target(true)?;
    let result = move_all("pread(O_DIRECT)", inner.len(), |done| {
        let at = inner.start + done;
        buffer.read_from(&disk, TARGET_OFFSET + at as u64, at..inner.end)
    });
    if ctx.target.pfn {
        ctx.expect_efault("pread(O_DIRECT)", result)?;
        return ctx.region_shows("the region after the refused read", WINDOW_OFFSET, &before);
    }
    let calls = result.map_err(io_fail("pread(O_DIRECT) into the mapping"))?;
    let mut expected = before;
    expected[inner.clone()].copy_from_slice(&want[inner.clone()]);
    ctx.region_shows("the region after pread(O_DIRECT)", WINDOW_OFFSET, &expected)?;
    println!(
        "# pread(O_DIRECT): {:#x} bytes into region offset {:#x} in {calls} call(s), seen \
         through /dev/mem; the pages around them unchanged",
        inner.len(),
        WINDOW_OFFSET + inner.start as u64
    );
    Ok(())
}

/// Submits `entry` on `ring` and waits for its completion: the bytes it moved.
fn run_one(ring: &mut IoUring, entry: io_uring::squeue::Entry) -> io::Result<usize> {
    // SAFETY: the entry's buffer is a registered buffer of the ring (a mapping that outlives
    // the call, which waits for the completion) and its file descriptor is open meanwhile.
    unsafe { ring.submission().push(&entry) }
        .map_err(|_| io::Error::other("the submission queue is full"))?;
    ring.submit_and_wait(1)?;
    let cqe = ring
        .completion()
        .next()
        .ok_or_else(|| io::Error::other("no completion"))?;
    usize::try_from(cqe.result()).map_err(|_| io::Error::from_raw_os_error(-cqe.result()))
}

fn io_uring_fixed(ctx: &Context<'_>, buffer: &DirectBuffer) -> Result<(), Failed> {
    let seed = ctx.target.seed;
    let len = buffer.len();
    let half = len / 2 / PAGE * PAGE;
    let mut ring = IoUring::new(4).map_err(io_fail("io_uring_setup"))?;
    let iov = buffer.iovec(0..len);
    // SAFETY: the iovec covers the mapping, which lives until the buffers are unregistered
    // below (or the ring is dropped, on an early return, before `buffer`).
    let registered = unsafe { ring.submitter().register_buffers(&[iov]) };
    if ctx.target.pfn {
        return ctx.expect_efault("IORING_REGISTER_BUFFERS", registered);
    }
    registered.map_err(io_fail("IORING_REGISTER_BUFFERS over the mapping"))?;
    println!("# IORING_REGISTER_BUFFERS: {len:#x} bytes of the mapping registered");

    // WRITE_FIXED: the first half to the device.
    buffer.mapping().fill_pattern(seed, |_| ());
    let want = region_pattern(seed, WINDOW_OFFSET, half);
    ctx.put_on_target(TARGET_OFFSET, &region_pattern(other(seed), 0, half))?;
    let disk = ctx.open_target(true)?;
    let fd = types::Fd(std::os::fd::AsRawFd::as_raw_fd(&disk));
    let write = opcode::WriteFixed::new(fd, buffer.as_ptr(), half as u32, 0)
        .offset(TARGET_OFFSET)
        .build();
    let n = run_one(&mut ring, write).map_err(io_fail("WRITE_FIXED"))?;
    if n != half {
        return Err(fail(format!("WRITE_FIXED wrote {n:#x} bytes of {half:#x}")));
    }
    ctx.target_shows("the target after WRITE_FIXED", TARGET_OFFSET, &want)?;

    // READ_FIXED: that back into the second half, which holds another pattern.
    let second = buffer.as_ptr().wrapping_add(half);
    let other_bytes = region_pattern(other(seed), 0, half);
    buffer.mapping().copy_from_slice(half, &other_bytes);
    ctx.region_shows(
        "the second half before READ_FIXED",
        WINDOW_OFFSET + half as u64,
        &other_bytes,
    )?;
    let read = opcode::ReadFixed::new(fd, second, half as u32, 0)
        .offset(TARGET_OFFSET)
        .build();
    let n = run_one(&mut ring, read).map_err(io_fail("READ_FIXED"))?;
    if n != half {
        return Err(fail(format!("READ_FIXED read {n:#x} bytes of {half:#x}")));
    }
    ctx.region_shows(
        "the second half after READ_FIXED",
        WINDOW_OFFSET + half as u64,
        &want,
    )?;
    ctx.region_shows("the first half after READ_FIXED", WINDOW_OFFSET, &want)?;
    ring.submitter()
        .unregister_buffers()
        .map_err(io_fail("IORING_UNREGISTER_BUFFERS"))?;
    println!(
        "# WRITE_FIXED of {half:#x} bytes to the target and READ_FIXED back into the mapping, \
         seen through /dev/mem"
    );
    Ok(())
}

fn vmsplice_out(ctx: &Context<'_>, buffer: &DirectBuffer) -> Result<(), Failed> {
    const MARK: u64 = 0x6d61_726b_6564_2121;
    let seed = ctx.target.seed;
    let len = buffer.len();
    buffer.mapping().fill_pattern(seed, |_| ());
    let before = region_pattern(other(seed), 0, len);
    ctx.put_on_target(TARGET_OFFSET, &before)?;
    let (rx, tx) = pipe().map_err(|e| fail(format!("pipe: {e}")))?;
    let room = fcntl_setpipe_size(&tx, 1 << 20).map_err(|e| fail(format!("F_SETPIPE_SZ: {e}")))?;
    let disk = ctx.open_target(false)?;
    let mut first = true;
    let result = move_all("vmsplice()", len, |done| {
        let n = buffer.vmsplice_to(&tx, done..len.min(done + room))?;
        if first {
            // The pipe holds the region's pages: this word, changed after the vmsplice, is
            // what the splice below delivers.
            buffer.mapping().write_u64(0, MARK);
            first = false;
        }
        let mut off = TARGET_OFFSET + done as u64;
        let mut moved = 0;
        while moved < n {
            let m = splice(
                &rx,
                None,
                &disk,
                Some(&mut off),
                n - moved,
                SpliceFlags::empty(),
            )?;
            if m == 0 {
                return Err(io::Error::other("splice() to the target moved nothing"));
            }
            moved += m;
        }
        Ok(n)
    });
    if ctx.target.pfn {
        ctx.expect_efault("vmsplice()", result)?;
        return ctx.target_shows(
            "the target after the refused vmsplice",
            TARGET_OFFSET,
            &before,
        );
    }
    let calls = result.map_err(io_fail("vmsplice() and splice()"))?;
    disk.sync_all().map_err(io_fail("fsync of the target"))?;
    let mut want = region_pattern(seed, WINDOW_OFFSET, len);
    want[..8].copy_from_slice(&MARK.to_ne_bytes());
    ctx.target_shows(
        "the target after vmsplice() and splice()",
        TARGET_OFFSET,
        &want,
    )?;
    println!(
        "# vmsplice() of {len:#x} bytes of the mapping and splice() to the target in {calls} \
         round(s) of {room:#x}; the word changed after the vmsplice arrived changed"
    );
    Ok(())
}

fn hold_pinned(
    region: Region,
    info: &abi::Info,
    unpin_when: &Path,
    seconds: u64,
) -> Result<(), Failed> {
    let buffer = DirectBuffer::new(&region, 0..info.size).map_err(|e| fail(e.to_string()))?;
    let ring = IoUring::new(4).map_err(io_fail("io_uring_setup"))?;
    let iov = buffer.iovec(0..buffer.len());
    // SAFETY: the kernel pins the pages of the iovec; the mapping is unmapped below while they
    // are registered, which is the point: the pins keep the pages, no Rust value refers to
    // them, and nothing is read or written through the registered buffer afterwards.
    unsafe { ring.submitter().register_buffers(&[iov]) }
        .map_err(io_fail("IORING_REGISTER_BUFFERS over the region"))?;
    let len = buffer.len();
    drop(buffer);
    drop(region);
    println!("holding: {len:#x} bytes registered with io_uring; the region unmapped and closed");
    let start = Instant::now();
    let deadline = Duration::from_secs(seconds);
    while !unpin_when.exists() {
        if start.elapsed() > deadline {
            return Err(fail(format!("{} never appeared", unpin_when.display())));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    ring.submitter()
        .unregister_buffers()
        .map_err(io_fail("IORING_UNREGISTER_BUFFERS"))?;
    println!("unregistered");
    std::thread::sleep(deadline.saturating_sub(start.elapsed()));
    Ok(())
}
