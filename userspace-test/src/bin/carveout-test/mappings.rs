//! Mappings held or refused: `mmap-bounds`, `folio-maps`, `hold`, `pin-hold`, `wp-check`, and
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

/// A pages-mode region of large folios maps whole folios only: mappings whose offset, length
/// or address is not a multiple of the folio size are refused with EINVAL, and so is unmapping
/// or mprotecting part of a folio of a mapping; unmapping a whole folio works. sysfs
/// `pages_in_use` counts the pages of every folio mapped, and none once they are unmapped.
pub fn cmd_folio_maps(region: &Region, size: u64) -> Result<(), Failed> {
    const PAGE: u64 = 4096;
    let folio = region.pages_align();
    if folio <= PAGE || size < 2 * folio {
        return Err(Failed(format!(
            "pages_align is {folio:#x} and the region {size:#x} bytes: not a region of at least \
             two large folios"
        )));
    }
    let rw = ProtFlags::READ | ProtFlags::WRITE;
    let refused = |what: &str, result: Result<(), Errno>| match result {
        Ok(()) => Err(Failed(format!("{what}: succeeded, expected EINVAL"))),
        Err(Errno::INVAL) => {
            println!("# {what}: refused with EINVAL");
            Ok(())
        }
        Err(errno) => Err(Failed(format!("{what}: {errno}, expected EINVAL"))),
    };
    for (what, offset, len) in [
        ("a folio from one page into the region", PAGE, folio),
        ("one page", 0, PAGE),
        ("a folio and a page", 0, folio + PAGE),
    ] {
        let result = region
            .map_raw(offset, len, rw, MapFlags::SHARED)
            .map(drop)
            .map_err(|err| err.errno().unwrap_or(Errno::IO));
        refused(&format!("mapping {what}"), result)?;
    }
    // A folio at an address one page past a folio boundary (MAP_FIXED into a reservation).
    let reserved = usize::try_from(3 * folio).map_err(|_| Failed("folio too large".into()))?;
    // SAFETY: A new private anonymous reservation, nothing else uses it; unmapped below.
    let base = unsafe {
        rustix::mm::mmap_anonymous(
            std::ptr::null_mut(),
            reserved,
            ProtFlags::empty(),
            MapFlags::PRIVATE,
        )
    }
    .map_err(|errno| Failed(format!("reserving address space: {errno}")))?;
    let aligned = (base as u64).next_multiple_of(folio) + PAGE;
    // SAFETY: The target lies inside our own reservation (3 folios from `base`); MAP_FIXED
    // replaces only that part of it.
    let fixed = unsafe {
        mmap(
            aligned as *mut std::ffi::c_void,
            folio as usize,
            rw,
            MapFlags::SHARED | MapFlags::FIXED,
            region,
            0,
        )
    };
    let fixed_result = fixed.map(drop);
    // SAFETY: Ends the reservation (and whatever the MAP_FIXED put inside it).
    unsafe { rustix::mm::munmap(base, reserved) }
        .map_err(|errno| Failed(format!("munmap of the reservation: {errno}")))?;
    refused(
        "mapping a folio one page past a folio boundary",
        fixed_result,
    )?;
    // The whole region, each folio touched: every page counts as in use.
    let pages = size / PAGE;
    let per_folio = folio / PAGE;
    let mapping = region
        .map(0..size, Access::ReadWrite)
        .map_err(|err| Failed(format!("mapping the whole region: {err}")))?;
    for off in (0..mapping.len()).step_by(folio as usize) {
        mapping.write_u8(off, mapping.read_u8(off));
    }
    let in_use = |what: &str, want: u64| match region.pages_in_use() {
        Some(got) if got == want => {
            println!("# pages_in_use {got} {what}");
            Ok(())
        }
        got => Err(Failed(format!(
            "pages_in_use {got:?} {what}, expected {want}"
        ))),
    };
    in_use("with every folio mapped", pages)?;
    let start = mapping.as_ptr();
    // SAFETY: Both calls name a part of our own mapping, which they may change or unmap;
    // nothing in this process uses that part afterwards (the mapping is only dropped).
    let (split_unmap, split_protect, whole_unmap) = unsafe {
        let one_page_in = start.add(PAGE as usize).cast();
        (
            rustix::mm::munmap(one_page_in, PAGE as usize),
            rustix::mm::mprotect(start.cast(), PAGE as usize, rustix::mm::MprotectFlags::READ),
            rustix::mm::munmap(start.cast(), folio as usize),
        )
    };
    refused("unmapping one page of a folio", split_unmap)?;
    refused("mprotect of one page of a folio", split_protect)?;
    whole_unmap.map_err(|errno| Failed(format!("unmapping the first folio: {errno}")))?;
    println!("# unmapping the first folio: done");
    in_use("with the first folio unmapped", pages - per_folio)?;
    drop(mapping);
    in_use("with the mapping gone", 0)
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
