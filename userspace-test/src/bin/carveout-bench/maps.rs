//! The mappings the bench makes (of the region, of `/dev/mem`, of anonymous memory; placed
//! for 2 MiB or for 4 KiB entries), and what they cost the process: minor faults, page tables.

use std::{
    ffi::c_void,
    fs,
    os::fd::OwnedFd,
    ptr::{self, NonNull},
};

use rustix::{
    fs::{open, Mode, OFlags},
    mm::{mmap, mmap_anonymous, munmap, MapFlags, ProtFlags},
};

pub const PAGE: usize = 4096;

pub const HUGE: usize = 2 << 20;

/// Where a mapping's pages come from.
#[derive(Clone, Copy, PartialEq)]
pub enum Source<'a> {
    /// The region, with the user address congruent to the physical one modulo 2 MiB (the
    /// driver maps 2 MiB entries at fault time) or deliberately 4 KiB off (every page mapped
    /// with 4 KiB entries at mmap).
    Carveout { dev: &'a str, huge: bool },
    /// `/dev/mem` at the region's physical address.
    DevMem { phys: u64 },
    /// Anonymous memory, with transparent huge pages (the test kernel has them `always`) or
    /// without (`PR_SET_THP_DISABLE` while it is faulted in: the kernel has no `madvise`).
    Anon { thp: bool },
}

/// A mapping made by this program; unmapped on drop.
pub struct Map {
    pub ptr: NonNull<u8>,
    pub len: usize,
    /// The whole reservation the mapping sits in (unmapped with it).
    reserve: (NonNull<c_void>, usize),
}

impl Drop for Map {
    fn drop(&mut self) {
        // SAFETY: The reservation (which the mapping replaced in part) is ours, and nothing
        // refers to it after the drop.
        let _ = unsafe { munmap(self.reserve.0.as_ptr(), self.reserve.1) };
    }
}

impl Map {
    pub fn new(
        source: Source<'_>,
        offset: u64,
        len: usize,
        prot: ProtFlags,
    ) -> Result<Self, String> {
        // An address 2 MiB aligned (plus 4 KiB for the 4 KiB carveout case): reserve more
        // than needed, then map over part of it with MAP_FIXED.
        let span = len + 2 * HUGE;
        // SAFETY: A new inaccessible mapping at an address the kernel picks aliases nothing.
        let reserve = unsafe {
            mmap_anonymous(
                ptr::null_mut(),
                span,
                ProtFlags::empty(),
                MapFlags::PRIVATE | MapFlags::NORESERVE,
            )
        }
        .map_err(|e| format!("reserving {span} bytes of address space: {e}"))?;
        let reserve = (NonNull::new(reserve).ok_or("mmap returned NULL")?, span);
        let aligned = (reserve.0.as_ptr() as usize).next_multiple_of(HUGE);
        // The region's base is 2 MiB aligned; the address keeps the offset's position in its
        // 2 MiB block, so the two stay congruent.
        let addr = match source {
            Source::Carveout { huge: false, .. } => aligned + (offset as usize + PAGE) % HUGE,
            Source::Carveout { huge: true, .. } => aligned + offset as usize % HUGE,
            _ => aligned,
        } as *mut c_void;
        let fixed = MapFlags::FIXED;
        let mapped = match source {
            Source::Carveout { dev, .. } => map_file(dev, addr, len, prot, fixed, offset),
            Source::DevMem { phys } => map_file("/dev/mem", addr, len, prot, fixed, phys + offset),
            Source::Anon { .. } => {
                // SAFETY: `addr..addr + len` lies inside our own reservation.
                let ptr =
                    unsafe { mmap_anonymous(addr, len, prot, MapFlags::PRIVATE | MapFlags::FIXED) }
                        .map_err(|e| format!("anonymous mmap: {e}"));
                ptr
            }
        };
        let ptr = match mapped.and_then(|ptr| NonNull::new(ptr.cast()).ok_or("NULL".into())) {
            Ok(ptr) => ptr,
            Err(err) => {
                // SAFETY: The reservation is ours and nothing refers to it.
                let _ = unsafe { munmap(reserve.0.as_ptr(), reserve.1) };
                return Err(err);
            }
        };
        Ok(Map { ptr, len, reserve })
    }

    /// The whole region mapped where the kernel chooses (`mmap(NULL, ...)`): the driver picks
    /// an address congruent with the physical one modulo 2 MiB.
    pub fn kernel_placed(dev: &str, len: usize, prot: ProtFlags) -> Result<Self, String> {
        let ptr = map_file(dev, ptr::null_mut(), len, prot, MapFlags::empty(), 0)?;
        let ptr = NonNull::new(ptr.cast::<u8>()).ok_or("mmap returned NULL")?;
        Ok(Map {
            ptr,
            len,
            reserve: (ptr.cast(), len),
        })
    }

    /// A readable and writable mapping of the first `len` bytes of `source`, every page
    /// written once.
    pub fn touched(source: Source<'_>, len: usize) -> Result<Self, String> {
        let map = Map::new(source, 0, len, ProtFlags::READ | ProtFlags::WRITE)?;
        map.touch();
        Ok(map)
    }

    /// Writes one word in every 4 KiB page.
    pub fn touch(&self) {
        self.touch_every(PAGE);
    }

    /// Writes one word every `stride` bytes.
    pub fn touch_every(&self, stride: usize) {
        for off in (0..self.len).step_by(stride) {
            // SAFETY: `off` is inside the mapping, which is writable when touched.
            unsafe { self.word(off).write_volatile(off as u64) };
        }
    }

    pub fn read_u64(&self, off: usize) -> u64 {
        // SAFETY: Callers pass word-aligned offsets inside the mapping.
        unsafe { self.word(off).read_volatile() }
    }

    pub fn write_u64(&self, off: usize, value: u64) {
        // SAFETY: As for `read_u64`; the mapping is writable.
        unsafe { self.word(off).write_volatile(value) }
    }

    /// The address of the word at `off` (valid when `off` is word-aligned and inside).
    fn word(&self, off: usize) -> *mut u64 {
        self.ptr.as_ptr().wrapping_add(off).cast()
    }
}

fn map_file(
    path: &str,
    addr: *mut c_void,
    len: usize,
    prot: ProtFlags,
    flags: MapFlags,
    offset: u64,
) -> Result<*mut c_void, String> {
    let oflags = if prot.contains(ProtFlags::WRITE) {
        OFlags::RDWR
    } else {
        OFlags::RDONLY
    };
    let fd: OwnedFd = open(path, oflags, Mode::empty()).map_err(|e| format!("{path}: {e}"))?;
    // SAFETY: `addr..addr + len` lies inside our own reservation, which it replaces.
    unsafe { mmap(addr, len, prot, MapFlags::SHARED | flags, &fd, offset) }
        .map_err(|e| format!("{path}: mmap of {len} bytes at offset {offset:#x}: {e}"))
}

/// Minor page faults of this process so far (`ru_minflt`, as `getrusage` reports it).
pub fn minor_faults() -> u64 {
    // SAFETY: `getrusage` writes the struct it is given.
    let mut usage = unsafe { std::mem::zeroed::<libc::rusage>() };
    // SAFETY: `usage` is a valid, writable `rusage`.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    usage.ru_minflt as u64
}

/// Transparent huge pages off for this process while it exists, for [`Source::Anon`] without
/// them.
pub struct ThpOff(bool);

impl ThpOff {
    pub fn new(source: Source<'_>) -> Self {
        let off = source == Source::Anon { thp: false };
        if off {
            // SAFETY: PR_SET_THP_DISABLE takes integer arguments only.
            unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
        }
        ThpOff(off)
    }
}

impl Drop for ThpOff {
    fn drop(&mut self) {
        if self.0 {
            // SAFETY: As in `new`.
            unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 0, 0, 0, 0) };
        }
    }
}

/// This process's page tables in KiB (`VmPTE`).
pub fn page_table_kib() -> u64 {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmPTE:"))
                .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}
