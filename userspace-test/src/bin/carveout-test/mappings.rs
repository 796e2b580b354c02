//! Mappings held or refused: `mmap-bounds`, `hold`, `pin-hold`, `wp-check`, and
//! `devmem-hold` (a `/dev/mem` mapping, for the memory-type conflicts with a region's).

use std::io;

use carveout::{Access, Region};
use rustix::{
    fs::{open, Mode, OFlags},
    io::Errno,
    mm::{mmap, MapFlags, ProtFlags},
};

use crate::Failed;

/// Each refused mapping must fail with its documented errno; the last page must map.
pub fn cmd_mmap_bounds(region: &Region, size: u64) -> Result<(), Failed> {
    const PAGE: u64 = 4096;
    let rw = ProtFlags::READ | ProtFlags::WRITE;
    let cases: [(&str, u64, u64, MapFlags, &[Errno]); 6] = [
        (
            "offset at the end",
            size,
            PAGE,
            MapFlags::SHARED,
            &[Errno::NXIO],
        ),
        (
            "window past the end",
            size - PAGE,
            2 * PAGE,
            MapFlags::SHARED,
            &[Errno::NXIO],
        ),
        (
            "far beyond the end",
            1 << 40,
            PAGE,
            MapFlags::SHARED,
            &[Errno::NXIO],
        ),
        (
            "offset near 2^63",
            0x7fff_ffff_ffff_f000,
            2 * PAGE,
            MapFlags::SHARED,
            &[Errno::NXIO, Errno::OVERFLOW],
        ),
        (
            "offset + length wraps 2^64",
            0xffff_ffff_ffff_f000,
            2 * PAGE,
            MapFlags::SHARED,
            &[Errno::OVERFLOW, Errno::INVAL],
        ),
        (
            "private mapping",
            0,
            PAGE,
            MapFlags::PRIVATE,
            &[Errno::INVAL],
        ),
    ];
    for (what, offset, len, flags, expected) in cases {
        match region.map_raw(offset, len, rw, flags) {
            Ok(_) => return Err(Failed(format!("{what}: mapped, expected {expected:?}"))),
            Err(err) => {
                let errno = err.errno();
                if !errno.is_some_and(|e| expected.contains(&e)) {
                    return Err(Failed(format!("{what}: {err}, expected {expected:?}")));
                }
                println!("# {what}: refused with {err}");
            }
        }
    }
    region
        .map(size - PAGE..size, Access::ReadWrite)
        .map(drop)
        .map_err(|err| Failed(format!("the last page: {err}, expected it to map")))
}

/// [`crate::cli::Command::Hold`]: the device is closed while the mapping is held.
pub fn cmd_hold(region: Region, size: u64, seconds: u64, read_only: bool) -> io::Result<()> {
    let access = if read_only {
        Access::Read
    } else {
        Access::ReadWrite
    };
    let mapping = region.map(0..size, access)?;
    drop(region);
    println!("holding a {}-byte mapping, device closed", mapping.len());
    std::thread::sleep(std::time::Duration::from_secs(seconds));
    Ok(())
}

/// [`crate::cli::Command::PinHold`]: the pipe holds the pages after the mapping and the device
/// are gone.
pub fn cmd_pin_hold(region: Region, len: u64, seconds: u64) -> io::Result<()> {
    let mapping = region.map(0..len, Access::ReadWrite)?;
    let (_read_end, write_end) = rustix::pipe::pipe()?;
    let want = usize::try_from(len).map_err(|_| io::Error::other("length too large"))?;
    rustix::pipe::fcntl_setpipe_size(&write_end, want)?;
    // SAFETY: The slice only describes the mapping to vmsplice (an iovec); nothing reads
    // or writes the memory through it, and it ends before the mapping is unmapped.
    let bytes = unsafe { std::slice::from_raw_parts(mapping.as_ptr(), mapping.len()) };
    // SAFETY: The pipe is ours and unread; without SPLICE_F_GIFT the kernel takes its
    // own references to the pages, so unmapping them afterwards is sound.
    let spliced = unsafe {
        rustix::pipe::vmsplice(
            &write_end,
            &[rustix::pipe::IoSliceRaw::from_slice(bytes)],
            rustix::pipe::SpliceFlags::empty(),
        )
    }?;
    drop(mapping);
    drop(region);
    println!("holding {spliced} bytes of the region's pages in a pipe, unmapped, device closed");
    std::thread::sleep(std::time::Duration::from_secs(seconds));
    Ok(())
}

/// A write-protected region: a writable shared mapping is refused with EACCES, a read-only one
/// maps and reads, and mprotect cannot make it writable.
pub fn cmd_wp_check(region: &Region, size: u64) -> Result<(), Failed> {
    match region.map(0..size, Access::ReadWrite) {
        Ok(_) => return Err(Failed("a writable mapping of a WP region succeeded".into())),
        Err(err) if err.errno() == Some(Errno::ACCESS) => {
            println!("# writable mapping refused: {err}")
        }
        Err(err) => return Err(Failed(format!("writable mapping: {err}, expected EACCES"))),
    }
    let mapping = region
        .map(0..size, Access::Read)
        .map_err(|err| Failed(format!("read-only mapping: {err}")))?;
    println!("# read-only mapping reads {:#x}", mapping.read_u64(0));
    match mapping.protect(rustix::mm::MprotectFlags::READ | rustix::mm::MprotectFlags::WRITE) {
        Ok(()) => Err(Failed(
            "mprotect(PROT_WRITE) on a WP mapping succeeded".into(),
        )),
        Err(err) => {
            println!("# mprotect(PROT_WRITE) refused: {err}");
            Ok(())
        }
    }
}

/// Maps `len` bytes of physical memory at `phys` through `/dev/mem` (`O_SYNC` if `sync`),
/// touches every page, says so, and keeps the mapping for `seconds`.
pub fn cmd_devmem_hold(phys: u64, len: u64, sync: bool, seconds: u64) -> io::Result<()> {
    let mut flags = OFlags::RDWR | OFlags::CLOEXEC;
    if sync {
        flags |= OFlags::SYNC;
    }
    let fd = open("/dev/mem", flags, Mode::empty())?;
    let window = usize::try_from(len).map_err(io::Error::other)?;
    // SAFETY: A new mapping at an address the kernel picks aliases no Rust object; it is
    // never unmapped (the process ends holding it).
    let ptr = unsafe {
        mmap(
            std::ptr::null_mut(),
            window,
            ProtFlags::READ | ProtFlags::WRITE,
            MapFlags::SHARED,
            &fd,
            phys,
        )
    }
    .map_err(|errno| {
        io::Error::other(format!(
            "/dev/mem: mmap of {len:#x} bytes at {phys:#x}: {}: {errno}",
            carveout::errno_name(errno)
        ))
    })?;
    for off in (0..window).step_by(4096) {
        // SAFETY: `off` lies inside the mapping just made; volatile, as for device memory.
        unsafe { ptr.cast::<u8>().add(off).read_volatile() };
    }
    println!(
        "holding a {len:#x}-byte /dev/mem mapping of {phys:#x}{}",
        if sync { " (O_SYNC)" } else { "" }
    );
    std::thread::sleep(std::time::Duration::from_secs(seconds));
    Ok(())
}
