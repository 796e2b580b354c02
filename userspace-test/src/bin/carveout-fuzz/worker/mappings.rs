//! Mappings of the region: mmap with random offsets, lengths, protections and flags,
//! munmap, mremap, mprotect, MAP_FIXED over a live mapping, and reads and writes through
//! them, checked against the pattern.

use std::ffi::c_void;

use carveout::pattern;
use rustix::{
    io::Errno,
    mm::{
        mmap, mmap_anonymous, mprotect, mremap, mremap_fixed, MapFlags, MprotectFlags, MremapFlags,
        ProtFlags,
    },
};

use super::{unmap, Map, Worker, MAX_PAGES, PAGE};

const MAX_MAPS: usize = 12;

impl Worker {
    /// Reads (and checks) or writes `count` random words of `map`, as its protection allows.
    pub(super) fn words_ok(&mut self, map: &Map, count: u64) {
        let words = (map.len / 8) as u64;
        for _ in 0..count {
            let i = self.rng.below(words) as usize;
            let index = map.off / 8 + i as u64;
            let want = pattern::word(self.pattern_seed, index);
            let p = (map.addr as *mut u64).wrapping_add(i);
            if map.write && self.rng.chance(500_000) {
                // SAFETY: inside a live, writable mapping of the region (the model says so; a
                // wrong model faults, which the parent reports). It stores the pattern word the
                // region already holds there.
                unsafe { p.write_volatile(want) };
            } else if map.read {
                // SAFETY: as above, readable.
                let got = unsafe { p.read_volatile() };
                if got != want {
                    self.finding(format!(
                        "mapping at region offset {:#x} reads {got:#018x}, the pattern is {want:#018x}",
                        index * 8
                    ));
                    return;
                }
            }
        }
    }

    fn random_prot(&mut self) -> ProtFlags {
        match self.rng.below(20) {
            0 => ProtFlags::empty(),
            1 => ProtFlags::EXEC | ProtFlags::READ,
            2 => ProtFlags::from_bits_retain(self.rng.next() as u32),
            3..=7 => ProtFlags::READ,
            8 => ProtFlags::WRITE,
            _ => ProtFlags::READ | ProtFlags::WRITE,
        }
    }

    pub(super) fn mmap(&mut self) {
        if self.maps.len() >= MAX_MAPS {
            let m = self.maps.swap_remove(0);
            unmap(m.addr, m.len);
        }
        let Some(i) = self.file() else { return };
        let size = self.size;
        let pages = 1 + self.rng.below(MAX_PAGES);
        let len = match self.rng.below(50) {
            0 => size as usize,
            1 => 0,
            2 => self.rng.below(PAGE as u64 * 4) as usize,
            _ => pages as usize * PAGE,
        };
        let off = match self.rng.below(20) {
            0 => size,
            1 => size - (self.rng.below(4) * PAGE as u64),
            2 => self.rng.next(),
            3 => self.rng.next() & !(PAGE as u64 - 1),
            4 => 1 + self.rng.below(PAGE as u64 - 1),
            _ => self.rng.below(size / PAGE as u64) * PAGE as u64,
        };
        let prot = self.random_prot();
        let kind = self.rng.pick(&[
            MapFlags::SHARED,
            MapFlags::SHARED,
            MapFlags::SHARED,
            MapFlags::SHARED,
            MapFlags::PRIVATE,
            MapFlags::SHARED_VALIDATE,
            MapFlags::empty(),
        ]);
        // Unassigned and high bits (not FIXED_NOREPLACE, bit 20: as root it maps at any
        // address, 0 included, which hostile pointers must never hit).
        let junk = MapFlags::from_bits_retain(1 << (21 + self.rng.below(11)));
        let extra = if self.rng.chance(300_000) {
            self.rng.pick(&[
                MapFlags::POPULATE,
                MapFlags::LOCKED,
                MapFlags::NORESERVE,
                MapFlags::HUGETLB,
                MapFlags::SYNC,
                MapFlags::GROWSDOWN,
                MapFlags::STACK,
                MapFlags::UNINITIALIZED,
                MapFlags::DROPPABLE,
                junk,
            ])
        } else {
            MapFlags::empty()
        };
        let file = &self.files[i];
        let (readable, writable) = (file.readable, file.writable);
        // SAFETY: the kernel picks the address (no FIXED here); the new mapping aliases no
        // Rust object.
        let result = unsafe { mmap(std::ptr::null_mut(), len, prot, kind | extra, &file.fd, off) };
        let rounded = (len as u64).div_ceil(PAGE as u64) * PAGE as u64;
        let in_range =
            off % PAGE as u64 == 0 && off.checked_add(rounded).is_some_and(|e| e <= size);
        let shared = kind == MapFlags::SHARED || kind == MapFlags::SHARED_VALIDATE;
        let prot_ok = readable && (writable || !prot.contains(ProtFlags::WRITE));
        let plain = prot
            .difference(ProtFlags::READ | ProtFlags::WRITE)
            .is_empty()
            && (extra.is_empty() || extra == MapFlags::POPULATE || extra == MapFlags::NORESERVE);
        match result {
            Ok(ptr) if (ptr as usize) < 0x10_0000 => {
                self.finding(format!(
                    "mmap placed a mapping at {ptr:?} with no address asked for"
                ));
                unmap(ptr as usize, rounded as usize);
            }
            Ok(ptr) => {
                let map = Map {
                    addr: ptr as usize,
                    len: rounded as usize,
                    off,
                    read: prot.contains(ProtFlags::READ),
                    write: prot.contains(ProtFlags::WRITE),
                    may_write: writable,
                };
                if !shared || !in_range || !prot_ok || len == 0 {
                    self.finding(format!(
                        "mmap(len {len:#x}, prot {prot:?}, {:?}, offset {off:#x}) on a file open {} succeeded",
                        kind | extra,
                        if writable { "rw" } else { "r" }
                    ));
                    unmap(map.addr, map.len);
                    return;
                }
                self.maps.push(map);
                self.mapped += 1;
                self.words_ok(&map, 4);
            }
            Err(err) => {
                self.refused += 1;
                // A plain, valid request with a read-write file must map (or fail only for a
                // reason the caller cannot help: no memory, or a write-protected region).
                // (A read-only file cannot map at all today: without FMODE_WRITE the kernel
                // clears VM_SHARED, and the driver refuses what then looks private.)
                if kind == MapFlags::SHARED
                    && in_range
                    && len > 0
                    && readable
                    && !writable
                    && plain
                    && !prot.contains(ProtFlags::WRITE)
                    && !self.noted_read_only
                {
                    self.noted_read_only = true;
                    println!(
                        "# worker {}: note: a read-only file cannot map even PROT_READ \
                         MAP_SHARED ({err})",
                        self.id
                    );
                }
                if kind == MapFlags::SHARED
                    && in_range
                    && len > 0
                    && writable
                    && readable
                    && plain
                    && !matches!(
                        err,
                        Errno::NOMEM | Errno::AGAIN | Errno::ACCESS | Errno::BUSY
                    )
                {
                    self.finding(format!(
                        "valid mmap(len {len:#x}, prot {prot:?}, offset {off:#x}) failed: {err}"
                    ));
                }
            }
        }
    }

    pub(super) fn munmap(&mut self) {
        if self.maps.is_empty() {
            return;
        }
        let i = self.rng.below(self.maps.len() as u64) as usize;
        let m = self.maps[i];
        let pages = m.len / PAGE;
        let cut = 1 + self.rng.below(pages as u64) as usize;
        match self.rng.below(3) {
            // The first `cut` pages.
            0 if cut < pages => {
                unmap(m.addr, cut * PAGE);
                let m = &mut self.maps[i];
                m.addr += cut * PAGE;
                m.len -= cut * PAGE;
                m.off += (cut * PAGE) as u64;
            }
            // The last `cut` pages.
            1 if cut < pages => {
                unmap(m.addr + (pages - cut) * PAGE, cut * PAGE);
                self.maps[i].len -= cut * PAGE;
            }
            _ => {
                unmap(m.addr, m.len);
                self.maps.swap_remove(i);
            }
        }
    }

    pub(super) fn access(&mut self) {
        if self.maps.is_empty() {
            return;
        }
        let i = self.rng.below(self.maps.len() as u64) as usize;
        let m = self.maps[i];
        self.words_ok(&m, 16);
    }

    pub(super) fn mprotect(&mut self) {
        if self.maps.is_empty() {
            return;
        }
        let i = self.rng.below(self.maps.len() as u64) as usize;
        let m = self.maps[i];
        let prot = match self.rng.below(4) {
            0 => MprotectFlags::READ,
            1 => MprotectFlags::READ | MprotectFlags::WRITE,
            2 => MprotectFlags::empty(),
            _ => MprotectFlags::from_bits_retain(self.rng.next() as u32 & 0x0300_000f),
        };
        // SAFETY: the range is one of our region mappings; no Rust reference points into it.
        match unsafe { mprotect(m.addr as *mut c_void, m.len, prot) } {
            Ok(()) => {
                if prot.contains(MprotectFlags::WRITE) && !m.may_write {
                    self.finding(
                        "mprotect added PROT_WRITE to a mapping of a read-only file".into(),
                    );
                }
                let m = &mut self.maps[i];
                m.read = prot.contains(MprotectFlags::READ);
                m.write = prot.contains(MprotectFlags::WRITE);
            }
            Err(_) => self.refused += 1,
        }
    }

    pub(super) fn mremap(&mut self) {
        if self.maps.is_empty() {
            return;
        }
        let i = self.rng.below(self.maps.len() as u64) as usize;
        let m = self.maps[i];
        let old = m.addr as *mut c_void;
        match self.rng.below(3) {
            0 if m.len > PAGE => {
                let new_len = PAGE * (1 + self.rng.below((m.len / PAGE - 1) as u64) as usize);
                // SAFETY: shrinking our own region mapping in place.
                match unsafe { mremap(old, m.len, new_len, MremapFlags::empty()) } {
                    Ok(_) => self.maps[i].len = new_len,
                    Err(err) => self.finding(format!("mremap shrink failed: {err}")),
                }
            }
            1 => {
                let new_len = m.len + PAGE * (1 + self.rng.below(4) as usize);
                let flags = self.rng.pick(&[MremapFlags::empty(), MremapFlags::MAYMOVE]);
                // SAFETY: as above; growing must be refused (device mappings do not expand).
                match unsafe { mremap(old, m.len, new_len, flags) } {
                    Ok(p) => {
                        self.finding(format!("mremap grew a device mapping ({flags:?})"));
                        self.maps[i].addr = p as usize;
                        self.maps[i].len = new_len;
                    }
                    Err(_) => self.refused += 1,
                }
            }
            _ => {
                // Move it to a reserved place.
                // SAFETY: a fresh anonymous reservation aliases nothing.
                let Ok(target) = (unsafe {
                    mmap_anonymous(
                        std::ptr::null_mut(),
                        m.len,
                        ProtFlags::empty(),
                        MapFlags::PRIVATE,
                    )
                }) else {
                    return;
                };
                // SAFETY: moves our region mapping over our own reservation.
                match unsafe { mremap_fixed(old, m.len, m.len, MremapFlags::MAYMOVE, target) } {
                    Ok(p) => {
                        self.maps[i].addr = p as usize;
                        self.words_ok(&self.maps[i].clone(), 4);
                    }
                    Err(_) => {
                        self.refused += 1;
                        unmap(target as usize, m.len);
                    }
                }
            }
        }
    }

    /// mmap with MAP_FIXED over part of a live mapping, at a random (valid or not) offset.
    pub(super) fn map_fixed_over(&mut self) {
        if self.maps.is_empty() {
            return;
        }
        let Some(f) = self.file() else { return };
        let i = self.rng.below(self.maps.len() as u64) as usize;
        let m = self.maps.swap_remove(i);
        let pages = m.len / PAGE;
        let start = self.rng.below(pages as u64) as usize;
        let count = 1 + self.rng.below((pages - start) as u64) as usize;
        let (addr, len) = (m.addr + start * PAGE, count * PAGE);
        // Keep what is left of the old mapping on either side.
        if start > 0 {
            self.maps.push(Map {
                len: start * PAGE,
                ..m
            });
        }
        if start + count < pages {
            let skip = (start + count) * PAGE;
            self.maps.push(Map {
                addr: m.addr + skip,
                len: m.len - skip,
                off: m.off + skip as u64,
                ..m
            });
        }
        let off = if self.rng.chance(800_000) {
            self.rng.below(self.size / PAGE as u64) * PAGE as u64
        } else {
            self.rng.next() & !(PAGE as u64 - 1)
        };
        let kind = self
            .rng
            .pick(&[MapFlags::SHARED, MapFlags::SHARED, MapFlags::PRIVATE]);
        let prot = ProtFlags::READ | ProtFlags::WRITE;
        let file = &self.files[f];
        let (readable, writable) = (file.readable, file.writable);
        // SAFETY: MAP_FIXED replaces part of our own region mapping, nothing else.
        let result = unsafe {
            mmap(
                addr as *mut c_void,
                len,
                prot,
                kind | MapFlags::FIXED,
                &file.fd,
                off,
            )
        };
        let valid = kind == MapFlags::SHARED
            && readable
            && writable
            && off.checked_add(len as u64).is_some_and(|e| e <= self.size);
        match result {
            Ok(_) if !valid => {
                self.finding(format!("MAP_FIXED {kind:?} at offset {off:#x} succeeded"));
                unmap(addr, len);
            }
            Ok(_) => {
                let new = Map {
                    addr,
                    len,
                    off,
                    read: true,
                    write: true,
                    may_write: true,
                };
                self.maps.push(new);
                self.words_ok(&new, 4);
            }
            Err(_) => {
                self.refused += 1;
                // A failed MAP_FIXED may already have unmapped the old pages.
                unmap(addr, len);
            }
        }
    }
}
