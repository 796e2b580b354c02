//! Region memory the rest of the kernel can pin: a mapping of a pages-mode region (loaded with
//! `pages=1`, or the configfs attribute `pages`) as the buffer of `O_DIRECT` reads and writes,
//! io_uring's registered buffers and `vmsplice`.
//!
//! A region without pages is mapped by page frame number: the kernel cannot pin such a
//! mapping, and `O_DIRECT` from or into it fails `EFAULT`. [`DirectBuffer::new`] refuses such a
//! region up front, saying so. The buffer is 4 KiB aligned and a multiple of 4 KiB long, which
//! covers the logical block size of every block device (512 or 4096 bytes).
//!
//! The memory is shared with devices and other mappings, so no `&[u8]` of it is handed out:
//! the transfers pass its address to the kernel, and the bytes are read and written through
//! the volatile accessors of [`DirectBuffer::mapping`].
//!
//! ```no_run
//! use carveout::{open_direct, DirectBuffer, Region};
//!
//! let region = Region::open("/dev/carveout0")?;
//! // 1 MiB at the start of the region, for O_DIRECT.
//! let buffer = DirectBuffer::new(&region, 0..1 << 20)?;
//! let disk = open_direct("/dev/pmem0")?;
//! // The region's first MiB to the disk's first MiB, with no copy through a bounce buffer.
//! let written = buffer.write_to(&disk, 0, 0..1 << 20)?;
//! assert_eq!(written, 1 << 20);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::{
    fs::{File, OpenOptions},
    io,
    ops::Range,
    os::{
        fd::{AsFd, AsRawFd},
        unix::fs::OpenOptionsExt,
    },
    path::Path,
};

use crate::{
    abi,
    error::{Error, Result},
    mapping::Mapping,
    region::{Access, Region},
};

/// The alignment of a [`DirectBuffer`]'s start and length.
pub const DIRECT_ALIGN: u64 = 4096;

/// Opens `path` (a block device or a file) for reading and writing with `O_DIRECT`: its
/// transfers go between the device and the buffer given, bypassing the page cache.
pub fn open_direct(path: impl AsRef<Path>) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)
}

/// A mapping of a pages-mode region, usable as an `O_DIRECT`, io_uring or `vmsplice` buffer.
#[derive(Debug)]
pub struct DirectBuffer {
    mapping: Mapping,
}

impl DirectBuffer {
    /// Maps `range` (region offsets, 4 KiB aligned) of `region`, read-write, for direct I/O.
    /// Refused when the region has no pages (`CARVEOUT_MR_PAGES` not in its flags: the kernel
    /// could not pin the mapping) or the range is not 4 KiB aligned.
    pub fn new(region: &Region, range: Range<u64>) -> Result<Self> {
        let info = region.info()?;
        if info.flags & abi::MR_PAGES == 0 {
            return Err(Error::Invalid {
                path: region.path().to_path_buf(),
                why: "the region has no pages (flags lack CARVEOUT_MR_PAGES): the kernel cannot \
                      pin its mappings, so O_DIRECT, io_uring and vmsplice would fail EFAULT; \
                      load it with pages=1 (or set the configfs attribute pages to 1)"
                    .into(),
            });
        }
        Self::map_any(region, range)
    }

    /// [`DirectBuffer::new`] without the pages-mode check: for showing what the kernel does
    /// with a mapping of a region without pages (it refuses to pin it).
    pub fn map_any(region: &Region, range: Range<u64>) -> Result<Self> {
        if range.start % DIRECT_ALIGN != 0 || range.end % DIRECT_ALIGN != 0 {
            return Err(Error::Invalid {
                path: region.path().to_path_buf(),
                why: format!(
                    "{:#x}..{:#x} is not {DIRECT_ALIGN}-byte aligned at both ends, as direct \
                     I/O needs",
                    range.start, range.end
                ),
            });
        }
        Ok(Self {
            mapping: region.map(range, Access::ReadWrite)?,
        })
    }

    /// The mapping, to fill and check the bytes (volatile accesses).
    pub fn mapping(&self) -> &Mapping {
        &self.mapping
    }

    pub fn len(&self) -> usize {
        self.mapping.len()
    }

    pub fn is_empty(&self) -> bool {
        self.mapping.is_empty()
    }

    /// The buffer's first byte.
    pub fn as_ptr(&self) -> *mut u8 {
        self.mapping.as_ptr()
    }

    /// The buffer's bytes `at` as an `iovec` (for io_uring's `IORING_REGISTER_BUFFERS` and
    /// `vmsplice`). Panics when `at` is outside the buffer.
    pub fn iovec(&self, at: Range<usize>) -> libc::iovec {
        self.check(&at);
        libc::iovec {
            iov_base: self.as_ptr().wrapping_add(at.start).cast(),
            iov_len: at.len(),
        }
    }

    fn check(&self, at: &Range<usize>) {
        assert!(
            at.start <= at.end && at.end <= self.len(),
            "{:#x}..{:#x} is outside a {:#x}-byte buffer",
            at.start,
            at.end,
            self.len()
        );
    }

    /// `pwrite` of the buffer's bytes `at` to `file` at `file_offset` (open `file` with
    /// `O_DIRECT` for the device to read the region itself); returns the bytes written.
    /// Panics when `at` is outside the buffer.
    pub fn write_to(
        &self,
        file: impl AsFd,
        file_offset: u64,
        at: Range<usize>,
    ) -> io::Result<usize> {
        self.check(&at);
        let offset = file_offset_of(file_offset)?;
        retried(|| {
            // SAFETY: `at` lies inside the mapping, which lives while `self` does; the kernel
            // only reads it. No Rust reference to the bytes exists (they are reached through
            // volatile accesses only), so none is invalidated.
            unsafe {
                libc::pwrite(
                    file.as_fd().as_raw_fd(),
                    self.as_ptr().wrapping_add(at.start).cast(),
                    at.len(),
                    offset,
                )
            }
        })
    }

    /// `pread` from `file` at `file_offset` into the buffer's bytes `at` (with `O_DIRECT` the
    /// device writes the region itself); returns the bytes read. Panics when `at` is outside
    /// the buffer.
    pub fn read_from(
        &mut self,
        file: impl AsFd,
        file_offset: u64,
        at: Range<usize>,
    ) -> io::Result<usize> {
        self.check(&at);
        let offset = file_offset_of(file_offset)?;
        retried(|| {
            // SAFETY: `at` lies inside the writable mapping, which lives while `self` does and
            // `&mut self` keeps this process's other users of it away; no Rust reference to
            // the bytes exists (they are reached through volatile accesses only).
            unsafe {
                libc::pread(
                    file.as_fd().as_raw_fd(),
                    self.as_ptr().wrapping_add(at.start).cast(),
                    at.len(),
                    offset,
                )
            }
        })
    }

    /// `vmsplice` of the buffer's bytes `at` into the pipe `pipe` (its write end): the pipe
    /// holds references to the region's pages, not a copy. Returns the bytes spliced (at most
    /// what the pipe has room for). Panics when `at` is outside the buffer.
    pub fn vmsplice_to(&self, pipe: impl AsFd, at: Range<usize>) -> io::Result<usize> {
        let iov = self.iovec(at);
        retried(|| {
            // SAFETY: the iovec covers bytes of the mapping, which lives while `self` does;
            // the kernel takes references to its pages and reads them (no SPLICE_F_GIFT: it
            // never writes them). The pages stay valid while referenced.
            unsafe { libc::vmsplice(pipe.as_fd().as_raw_fd(), &iov, 1, 0) }
        })
    }
}

/// `offset` as the kernel's `off_t` (EINVAL beyond it).
fn file_offset_of(offset: u64) -> io::Result<libc::off_t> {
    libc::off_t::try_from(offset).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// The byte count a system call returned, the call repeated while it is interrupted (EINTR).
fn retried(mut call: impl FnMut() -> isize) -> io::Result<usize> {
    loop {
        match usize::try_from(call()) {
            Ok(n) => return Ok(n),
            Err(_) => match io::Error::last_os_error() {
                err if err.kind() == io::ErrorKind::Interrupted => continue,
                err => return Err(err),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_region_is_an_error_not_a_buffer() {
        let err = Region::open("/nonexistent/carveout9")
            .and_then(|r| DirectBuffer::new(&r, 0..4096))
            .expect_err("missing");
        assert_eq!(err.errno(), Some(rustix::io::Errno::NOENT));
    }
}
