use std::{
    ffi::c_void,
    io,
    os::fd::OwnedFd,
    path::{Path, PathBuf},
    ptr::NonNull,
};

use rustix::{
    fs::{open, Mode, OFlags},
    ioctl::{ioctl, Getter},
    mm::{mmap, munmap, MapFlags, ProtFlags},
};

use crate::{abi, pattern};

/// An open `/dev/carveout*`.
#[derive(Debug)]
pub struct Region {
    fd: OwnedFd,
    path: PathBuf,
}

impl Region {
    /// Opens the region device at `path` for reading and writing.
    pub fn open(path: impl AsRef<Path>) -> io::Result<Self> {
        let path = path.as_ref().to_path_buf();
        let fd = open(&path, OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())
            .map_err(|err| annotate(err.into(), format!("open {}", path.display())))?;
        Ok(Self { fd, path })
    }

    /// What `CARVEOUT_GET_INFO` reports.
    pub fn info(&self) -> io::Result<abi::Info> {
        // SAFETY: GET_INFO writes exactly one `abi::Info`, the type `Getter` hands the kernel.
        let info = unsafe { ioctl(&self.fd, Getter::<{ abi::GET_INFO }, abi::Info>::new()) }
            .map_err(|err| {
                annotate(
                    err.into(),
                    format!("CARVEOUT_GET_INFO on {}", self.path.display()),
                )
            })?;
        if info.abi_version != abi::ABI_VERSION {
            return Err(io::Error::other(format!(
                "{} speaks ABI {}, this program {}",
                self.path.display(),
                info.abi_version,
                abi::ABI_VERSION
            )));
        }
        Ok(info)
    }

    /// Maps `[offset, offset + len)` of the region, shared, readable and writable.
    pub fn map(&self, offset: u64, len: usize) -> io::Result<Mapping> {
        self.map_with(
            offset,
            len,
            ProtFlags::READ | ProtFlags::WRITE,
            MapFlags::SHARED,
        )
    }

    /// Maps with the given protection and flags (for tests of what the driver refuses).
    pub fn map_with(
        &self,
        offset: u64,
        len: usize,
        prot: ProtFlags,
        flags: MapFlags,
    ) -> io::Result<Mapping> {
        // SAFETY: A new mapping at an address the kernel picks aliases no Rust object.
        let ptr = unsafe { mmap(std::ptr::null_mut(), len, prot, flags, &self.fd, offset) }?;
        let ptr =
            NonNull::new(ptr.cast::<u8>()).ok_or_else(|| io::Error::other("mmap gave NULL"))?;
        Ok(Mapping { ptr, len })
    }
}

/// Where a pattern check first failed, and how many words differed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mismatch {
    pub offset: u64,
    pub count: u64,
}

/// A mapping of region memory; unmapped on drop.
///
/// The memory may change underneath (a device DMAs into it), so it is never handed out as a
/// Rust slice: every access is a volatile read or write of one word.
#[derive(Debug)]
pub struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

impl Mapping {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn word_ptr(&self, index: usize) -> *mut u64 {
        assert!(
            index < self.len / 8,
            "word {index} outside a {}-byte mapping",
            self.len
        );
        // In bounds (asserted); the mapping is page aligned, so every word is aligned.
        self.ptr.as_ptr().cast::<u64>().wrapping_add(index)
    }

    /// Reads 64-bit word `index`.
    pub fn read_word(&self, index: usize) -> u64 {
        // SAFETY: `word_ptr` is in bounds and aligned, and the mapping lives as long as `self`.
        unsafe { self.word_ptr(index).read_volatile() }
    }

    /// Writes 64-bit word `index`.
    pub fn write_word(&self, index: usize, value: u64) {
        // SAFETY: as in `read_word`; the mapping is writable memory no Rust reference covers.
        unsafe { self.word_ptr(index).write_volatile(value) }
    }

    /// The address the mapping starts at (for handing to other code as a raw address).
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// Copies `buf.len()` bytes out of the mapping from byte `offset`, one volatile read each.
    pub fn read_bytes(&self, offset: usize, buf: &mut [u8]) {
        self.check_span(offset, buf.len());
        for (i, byte) in buf.iter_mut().enumerate() {
            // SAFETY: in bounds (checked above); the mapping lives as long as `self`.
            *byte = unsafe { self.ptr.as_ptr().add(offset + i).read_volatile() };
        }
    }

    /// Copies `buf` into the mapping at byte `offset`, one volatile write each.
    pub fn write_bytes(&self, offset: usize, buf: &[u8]) {
        self.check_span(offset, buf.len());
        for (i, byte) in buf.iter().enumerate() {
            // SAFETY: as in `read_bytes`; the mapping is writable memory no Rust reference covers.
            unsafe { self.ptr.as_ptr().add(offset + i).write_volatile(*byte) };
        }
    }

    fn check_span(&self, offset: usize, len: usize) {
        assert!(
            offset.checked_add(len).is_some_and(|end| end <= self.len),
            "bytes {offset:#x}+{len:#x} outside a {:#x}-byte mapping",
            self.len
        );
    }

    /// Fills the mapping with the pattern for `seed`.
    pub fn fill(&self, seed: u64) {
        for i in 0..self.len / 8 {
            self.write_word(i, pattern::word(seed, i as u64));
        }
    }

    /// Checks the mapping against the pattern for `seed`.
    pub fn verify(&self, seed: u64) -> Result<(), Mismatch> {
        let mut first = None;
        let mut count = 0;
        for i in 0..self.len / 8 {
            if self.read_word(i) != pattern::word(seed, i as u64) {
                first.get_or_insert(i as u64 * 8);
                count += 1;
            }
        }
        match first {
            None => Ok(()),
            Some(offset) => Err(Mismatch { offset, count }),
        }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are exactly what `mmap` returned, unmapped only here.
        let _ = unsafe { munmap(self.ptr.as_ptr().cast::<c_void>(), self.len) };
    }
}

fn annotate(err: io::Error, what: String) -> io::Error {
    io::Error::new(err.kind(), format!("{what}: {err}"))
}
