//! Mapping a region: where the mapping goes against the physical address (2 MiB or 4 KiB
//! entries), and the [`Mapping`] it gives, read and written with volatile accesses.

use std::{ffi::c_void, ops::Range, ptr::NonNull};

use rustix::{
    io::Errno,
    mm::{mmap, mmap_anonymous, munmap, MapFlags, ProtFlags},
};
use serde::Serialize;

use crate::{
    error::{Error, Op, Result},
    pattern::{self, Mismatch, Tally},
    region::{Access, Region},
};

const PAGE: u64 = 4096;
const HUGE: u64 = 2 << 20;

/// Where the user address of a mapping goes, against the physical address it maps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Placement {
    /// Where the kernel chooses (`mmap(NULL, ...)`): the driver's `get_unmapped_area` keeps
    /// it congruent with the physical address modulo 2 MiB.
    Kernel,
    /// Congruent with the physical address modulo 2 MiB: every whole 2 MiB block can be
    /// mapped with a 2 MiB entry.
    Huge,
    /// 4 KiB off that congruence: no 2 MiB entry is possible, only 4 KiB ones.
    Small,
}

impl Region {
    /// Maps `range` (byte offsets into the region) shared, readable, and writable if `access`
    /// says so. The range need not be page aligned: the pages around it are mapped (the folios
    /// around it for a pages-mode region of large folios, which maps whole folios only) and
    /// the [`Mapping`] covers exactly `range`.
    pub fn map(&self, range: Range<u64>, access: Access) -> Result<Mapping> {
        if range.start >= range.end {
            return Err(Error::Invalid {
                path: self.path().to_path_buf(),
                why: format!("the range {:#x}..{:#x} is empty", range.start, range.end),
            });
        }
        let granule = self.pages_align().max(PAGE);
        let start = range.start / granule * granule;
        let end = range
            .end
            .checked_next_multiple_of(granule)
            .ok_or(Error::Invalid {
                path: self.path().to_path_buf(),
                why: format!("the range end {:#x} wraps", range.end),
            })?;
        let window = self.map_raw(start, end - start, prot(access), MapFlags::SHARED)?;
        Ok(window.narrowed(range))
    }

    /// Maps `range` as [`Region::map`] does, but at a user address 4 KiB off the congruence
    /// with the physical address modulo 2 MiB that 2 MiB entries need: the driver then maps
    /// every page with a 4 KiB entry. (`map` lets the driver place the mapping, which keeps
    /// the congruence: 2 MiB entries wherever a whole aligned 2 MiB block is mapped.)
    pub fn map_small_pages(&self, range: Range<u64>, access: Access) -> Result<Mapping> {
        let start = range.start / PAGE * PAGE;
        let end = range.end.next_multiple_of(PAGE);
        let len = end.saturating_sub(start);
        let window = self.map_placed(start, len, access, Placement::Small)?;
        Ok(window.narrowed(range))
    }

    /// The [`Mapping`] of all of a fresh `mmap` result of `window_len` bytes at `offset`.
    fn whole_mapping(
        &self,
        ptr: *mut c_void,
        window_len: usize,
        offset: u64,
        access: Access,
        op: impl Fn() -> Op,
    ) -> Result<Mapping> {
        let window =
            NonNull::new(ptr.cast::<u8>()).ok_or_else(|| self.refused(op(), Errno::NOMEM))?;
        Ok(Mapping {
            window,
            window_len,
            start: 0,
            len: window_len,
            offset,
            writable: access == Access::ReadWrite,
        })
    }

    /// A page-aligned mapping with the given protection and flags (for tests of what the
    /// driver refuses).
    pub fn map_raw(
        &self,
        offset: u64,
        len: u64,
        prot: ProtFlags,
        flags: MapFlags,
    ) -> Result<Mapping> {
        let access = if prot.contains(ProtFlags::WRITE) {
            Access::ReadWrite
        } else {
            Access::Read
        };
        let op = || Op::Map {
            offset,
            len,
            access,
        };
        let window_len = usize::try_from(len).map_err(|_| self.refused(op(), Errno::NOMEM))?;
        // SAFETY: A new mapping at an address the kernel picks aliases no Rust object.
        let ptr = unsafe { mmap(std::ptr::null_mut(), window_len, prot, flags, self, offset) }
            .map_err(|errno| self.refused(op(), errno))?;
        self.whole_mapping(ptr, window_len, offset, access, op)
    }

    /// Maps `len` bytes at region offset `offset` (both page aligned), shared, at a user
    /// address placed as `placement` says: an anonymous reservation 4 MiB larger than the
    /// mapping is made, the mapping put over part of it with `MAP_FIXED`, and the rest of the
    /// reservation unmapped.
    pub fn map_placed(
        &self,
        offset: u64,
        len: u64,
        access: Access,
        placement: Placement,
    ) -> Result<Mapping> {
        let prot = prot(access);
        if placement == Placement::Kernel {
            return self.map_raw(offset, len, prot, MapFlags::SHARED);
        }
        let op = || Op::Map {
            offset,
            len,
            access,
        };
        let base = self.info()?.base;
        let phys = base.wrapping_add(offset);
        let window_len = usize::try_from(len).map_err(|_| self.refused(op(), Errno::NOMEM))?;
        let span = window_len
            .checked_add(2 * HUGE as usize)
            .ok_or_else(|| self.refused(op(), Errno::NOMEM))?;
        // SAFETY: A new inaccessible mapping at an address the kernel picks aliases nothing.
        let reserve = unsafe {
            mmap_anonymous(
                std::ptr::null_mut(),
                span,
                ProtFlags::empty(),
                MapFlags::PRIVATE | MapFlags::NORESERVE,
            )
        }
        .map_err(|errno| self.refused(op(), errno))?;
        let start = reserve as usize;
        let addr = placed_address(start, phys, placement);
        // SAFETY: `addr..addr + window_len` lies inside our own reservation, which it replaces
        // in part; nothing refers to the reservation.
        let mapped = unsafe {
            mmap(
                addr as *mut c_void,
                window_len,
                prot,
                MapFlags::SHARED | MapFlags::FIXED,
                self,
                offset,
            )
        };
        let end = addr + window_len;
        // SAFETY: The pieces of the reservation around the mapping (all of it if the mapping
        // failed) are ours, and nothing refers to them.
        unsafe {
            if mapped.is_err() {
                let _ = munmap(reserve, span);
            } else {
                if addr > start {
                    let _ = munmap(reserve, addr - start);
                }
                if start + span > end {
                    let _ = munmap(end as *mut c_void, start + span - end);
                }
            }
        }
        let ptr = mapped.map_err(|errno| self.refused(op(), errno))?;
        self.whole_mapping(ptr, window_len, offset, access, op)
    }
}

/// The protection of a mapping made with `access`.
fn prot(access: Access) -> ProtFlags {
    match access {
        Access::Read => ProtFlags::READ,
        Access::ReadWrite => ProtFlags::READ | ProtFlags::WRITE,
    }
}

/// The user address for a mapping of physical address `phys` placed as `placement` says,
/// inside a reservation starting at `start` that is 4 MiB longer than the mapping: the next
/// 2 MiB boundary plus `phys`'s offset in its 2 MiB block (`Huge`), or that offset plus 4 KiB
/// (`Small`), so under `start + 4 MiB`.
fn placed_address(start: usize, phys: u64, placement: Placement) -> usize {
    let shift = match placement {
        Placement::Small => (phys + PAGE) % HUGE,
        Placement::Huge | Placement::Kernel => phys % HUGE,
    };
    start.next_multiple_of(HUGE as usize) + shift as usize
}

/// A mapping of region memory; unmapped on drop.
///
/// The memory may change underneath (a device DMAs into it), so it is read and written with
/// volatile accesses or copied in and out; a plain `&[u8]` exists only through the `unsafe`
/// [`Mapping::as_slice`], whose caller promises that nothing writes the memory meanwhile.
/// Offsets are relative to the start of the mapped range.
#[derive(Debug)]
pub struct Mapping {
    /// The page-aligned window mmap returned.
    window: NonNull<u8>,
    window_len: usize,
    /// Where the requested range starts in the window, and its length.
    start: usize,
    len: usize,
    /// The region offset of the range's first byte.
    offset: u64,
    writable: bool,
}

impl Mapping {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The region offset the mapping starts at.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Asks for `prot` on the whole mapping (`mprotect`): how a test shows what the driver
    /// forbids (write access to a write-protected region).
    pub fn protect(&self, prot: rustix::mm::MprotectFlags) -> std::io::Result<()> {
        // SAFETY: Changing the protection of our own mapping invalidates no Rust reference:
        // none point into it while it is only reached through volatile accesses.
        Ok(unsafe { rustix::mm::mprotect(self.window.as_ptr().cast(), self.window_len, prot) }?)
    }

    pub fn is_writable(&self) -> bool {
        self.writable
    }

    /// The first byte of the range.
    pub fn as_ptr(&self) -> *mut u8 {
        self.window.as_ptr().wrapping_add(self.start)
    }

    /// A pointer to the `T` at `off`, checked to be in bounds and aligned.
    fn at<T>(&self, off: usize) -> *mut T {
        let size = size_of::<T>();
        assert!(
            off.checked_add(size).is_some_and(|end| end <= self.len),
            "{size} bytes at {off:#x} are outside a {:#x}-byte mapping",
            self.len
        );
        let ptr = self.as_ptr().wrapping_add(off);
        assert!(
            ptr.cast::<T>().is_aligned(),
            "offset {off:#x} is not {size}-byte aligned"
        );
        ptr.cast::<T>()
    }

    fn writable_at<T>(&self, off: usize) -> *mut T {
        assert!(self.writable, "write to a read-only mapping");
        self.at(off)
    }

    /// Reads the byte at `off`. Panics when out of bounds.
    pub fn read_u8(&self, off: usize) -> u8 {
        // SAFETY: `at` checked bounds and alignment; the mapping lives as long as `self`.
        unsafe { self.at::<u8>(off).read_volatile() }
    }

    /// Reads the 32-bit word at `off` (4-aligned). Panics when out of bounds or misaligned.
    pub fn read_u32(&self, off: usize) -> u32 {
        // SAFETY: as in `read_u8`.
        unsafe { self.at::<u32>(off).read_volatile() }
    }

    /// Reads the 64-bit word at `off` (8-aligned). Panics when out of bounds or misaligned.
    pub fn read_u64(&self, off: usize) -> u64 {
        // SAFETY: as in `read_u8`.
        unsafe { self.at::<u64>(off).read_volatile() }
    }

    /// Writes the byte at `off`. Panics when out of bounds or the mapping is read-only.
    pub fn write_u8(&self, off: usize, value: u8) {
        // SAFETY: bounds, alignment and writability checked; no Rust reference covers it.
        unsafe { self.writable_at::<u8>(off).write_volatile(value) }
    }

    /// Writes the 32-bit word at `off` (4-aligned).
    pub fn write_u32(&self, off: usize, value: u32) {
        // SAFETY: as in `write_u8`.
        unsafe { self.writable_at::<u32>(off).write_volatile(value) }
    }

    /// Writes the 64-bit word at `off` (8-aligned).
    pub fn write_u64(&self, off: usize, value: u64) {
        // SAFETY: as in `write_u8`.
        unsafe { self.writable_at::<u64>(off).write_volatile(value) }
    }

    /// Copies `buf.len()` bytes from `off` out of the mapping, each read volatile.
    pub fn copy_to_slice(&self, off: usize, buf: &mut [u8]) {
        for (i, b) in buf.iter_mut().enumerate() {
            *b = self.read_u8(off + i);
        }
    }

    /// Copies `buf` into the mapping at `off`, each byte written volatile.
    pub fn copy_from_slice(&self, off: usize, buf: &[u8]) {
        for (i, &b) in buf.iter().enumerate() {
            self.write_u8(off + i, b);
        }
    }

    /// The mapped range as a byte slice.
    ///
    /// # Safety
    ///
    /// While the slice lives, nothing may write the memory: no device DMA into it, no write
    /// through another mapping of the region (in this or another process), no write through
    /// this one. Otherwise the slice's contents change under an immutable reference, which is
    /// undefined behaviour; use the volatile accessors or [`Mapping::copy_to_slice`] instead.
    pub unsafe fn as_slice(&self) -> &[u8] {
        // SAFETY: The range is mapped and readable for `len` bytes while `self` lives; the
        // caller promises nothing writes it meanwhile.
        unsafe { std::slice::from_raw_parts(self.as_ptr(), self.len) }
    }

    /// The mapped range as a mutable byte slice. Panics if the mapping is read-only.
    ///
    /// # Safety
    ///
    /// While the slice lives, nothing else may read or write the memory: no device DMA, no
    /// access through another mapping of the region, in this or another process.
    pub unsafe fn as_mut_slice(&mut self) -> &mut [u8] {
        assert!(self.writable, "a mutable slice of a read-only mapping");
        // SAFETY: The range is mapped writable for `len` bytes while `self` lives, `&mut self`
        // excludes other uses of this mapping, and the caller promises the rest.
        unsafe { std::slice::from_raw_parts_mut(self.as_ptr(), self.len) }
    }

    /// The part `range` (region offsets) of a mapping of the pages around it.
    fn narrowed(mut self, range: Range<u64>) -> Mapping {
        self.start = (range.start - self.offset) as usize;
        self.len = (range.end - range.start) as usize;
        self.offset = range.start;
        self
    }

    fn check_words(&self) {
        assert!(
            self.offset % 8 == 0 && self.len % 8 == 0,
            "the pattern is 64-bit words: offset {:#x} and length {:#x} must be multiples of 8",
            self.offset,
            self.len
        );
    }

    /// Fills the mapping with the pattern for `seed` (word `i` of the region gets word `i` of
    /// the pattern). `progress` is told the bytes done, every MiB and at the end.
    pub fn fill_pattern(&self, seed: u64, mut progress: impl FnMut(u64)) {
        self.check_words();
        let first = self.offset / 8;
        for i in 0..self.len / 8 {
            self.write_u64(i * 8, pattern::word(seed, first + i as u64));
            if (i + 1) % (1 << 17) == 0 {
                progress((i as u64 + 1) * 8);
            }
        }
        progress(self.len as u64);
    }

    /// Checks the mapping against the pattern for `seed`; a [`Mismatch`] names the first
    /// differing byte (as a region offset) and counts.
    pub fn verify_pattern(&self, seed: u64, mut progress: impl FnMut(u64)) -> Result<(), Mismatch> {
        self.check_words();
        let first = self.offset / 8;
        let mut tally = Tally::default();
        for i in 0..self.len / 8 {
            let index = first + i as u64;
            tally.word(index * 8, pattern::word(seed, index), self.read_u64(i * 8));
            if (i + 1) % (1 << 17) == 0 {
                progress((i as u64 + 1) * 8);
            }
        }
        progress(self.len as u64);
        tally.finish()
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `window`/`window_len` are exactly what `mmap` returned, unmapped only here.
        let _ = unsafe { munmap(self.window.as_ptr().cast::<c_void>(), self.window_len) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placements_keep_or_break_the_2m_congruence() {
        const M2: usize = 2 << 20;
        for (start, phys) in [
            (0x7f00_0000_1000, 0x800_0000u64),
            (0x7f00_0020_0000, 0x800_0000 + 0x30_0000),
            (0x7f00_001f_f000, 0x1_8000_0000 + 0x1f_f000),
        ] {
            let huge = placed_address(start, phys, Placement::Huge);
            let small = placed_address(start, phys, Placement::Small);
            assert_eq!((huge as u64 ^ phys) % M2 as u64, 0, "{huge:#x} / {phys:#x}");
            assert_eq!((small as u64).wrapping_sub(phys) % M2 as u64, 4096);
            for addr in [huge, small] {
                assert!(
                    addr >= start && addr < start + 2 * M2,
                    "{addr:#x} from {start:#x}"
                );
                assert_eq!(addr % 4096, 0);
            }
        }
    }

    #[test]
    fn a_mapping_covers_exactly_the_range_asked_for() {
        // Any file maps as the region node does; its bytes are their offsets' low bits.
        let path = std::env::temp_dir().join(format!("carveout-map-{}", std::process::id()));
        let bytes: Vec<u8> = (0..3 * PAGE).map(|o| o as u8 ^ (o >> 8) as u8).collect();
        std::fs::write(&path, &bytes).unwrap();
        let region = Region::open_with(&path, Access::ReadWrite).unwrap();
        let mapping = region.map(0x123..0x2005, Access::Read).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!((mapping.offset(), mapping.len()), (0x123, 0x2005 - 0x123));
        assert!(!mapping.is_writable());
        let mut got = vec![0u8; mapping.len()];
        mapping.copy_to_slice(0, &mut got);
        assert_eq!(got, bytes[0x123..0x2005]);
        assert!(region.map(8..8, Access::Read).is_err());
    }
}
