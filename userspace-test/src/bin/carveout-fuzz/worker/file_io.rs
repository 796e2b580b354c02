//! The file interface: read, write, pread/pwrite, readv/writev, preadv/pwritev and lseek at
//! random offsets, lengths and whence values, held to the model.

use std::{
    ffi::c_void,
    io,
    os::fd::{AsRawFd, OwnedFd},
};

use carveout::pattern;
use rustix::io::Errno;

use super::{Worker, PAGE};

impl Worker {
    /// The file interface (read, write, pread/pwrite, readv/writev, preadv/pwritev, lseek)
    /// at random offsets, lengths and whence values, against the model: the region holds the
    /// pattern (every byte read must be the pattern's, every write stores the pattern's own
    /// bytes), each open file has the position the model computed, and each call returns the
    /// count or errno the bounds say (`include/carveout.h`).
    pub(super) fn file_io(&mut self) {
        let Some(i) = self.file() else { return };
        match self.rng.below(10) {
            0..=1 => self.lseek(i),
            2 => self.hostile_read(i),
            3 => self.hostile_write(i),
            4..=6 => self.checked_read(i),
            _ => self.checked_write(i),
        }
    }

    /// A file offset: inside, near the end, at it, past it, near 2 MiB piece boundaries,
    /// near `i64::MAX`, or negative.
    fn random_offset(&mut self) -> i64 {
        let size = self.size as i64;
        match self.rng.below(9) {
            0 => 0,
            1 | 2 => self.rng.below(self.size) as i64,
            3 => size - 1 - self.rng.below(3 * PAGE as u64) as i64,
            4 => size,
            5 => size + self.rng.below(1 << 40) as i64,
            6 => i64::MAX - self.rng.below(3 * PAGE as u64) as i64,
            7 => {
                let blocks = (self.size >> 21).max(1);
                ((self.rng.below(blocks) << 21) as i64 + self.rng.below(128) as i64 - 64).max(0)
            }
            _ => -1 - self.rng.below(1 << 20) as i64,
        }
    }

    /// A length: mostly small, sometimes across several 2 MiB pieces.
    fn random_len(&mut self) -> usize {
        match self.rng.below(200) {
            0..=9 => 0,
            10..=149 => self.rng.below(2 * PAGE as u64) as usize,
            150..=197 => self.rng.below(96 << 10) as usize,
            _ => self.rng.below(self.big.len() as u64) as usize,
        }
    }

    /// What a read (or write) of `len` bytes at `pos` must return: the count up to the end,
    /// 0 (read) or ENOSPC (write) at or past it, EINVAL for a negative or overflowing offset.
    fn expected(&self, write: bool, pos: i64, len: usize) -> Result<usize, Errno> {
        if pos < 0 || pos.checked_add(len as i64).is_none() {
            return Err(Errno::INVAL);
        }
        let size = self.size as i64;
        if len == 0 {
            Ok(0)
        } else if pos >= size {
            if write {
                Err(Errno::NOSPC)
            } else {
                Ok(0)
            }
        } else {
            Ok(len.min((size - pos) as usize))
        }
    }

    /// Checks a call's result against the model; true if it matched.
    fn matches(
        &mut self,
        what: &str,
        got: Result<usize, Errno>,
        want: Result<usize, Errno>,
    ) -> bool {
        match (got, want) {
            (Ok(n), Ok(m)) if n == m => true,
            (Err(e), Err(f)) if e == f => {
                self.refused += 1;
                true
            }
            // Another worker may have made the region write-protected.
            (Err(Errno::PERM), _) if what.contains("write") => {
                self.refused += 1;
                false
            }
            _ => {
                self.finding(format!("{what}: returned {got:?}, the model says {want:?}"));
                false
            }
        }
    }

    /// Checks `data` read from region offset `pos` against the pattern.
    fn bytes_ok(&mut self, what: &str, pos: i64, data: &[u8]) {
        let want = pattern::bytes(self.pattern_seed, pos as u64, data.len());
        if let Some(k) = data.iter().zip(&want).position(|(a, b)| a != b) {
            self.finding(format!(
                "{what}: the byte at region offset {:#x} is {:#04x}, the pattern's is {:#04x}",
                pos as u64 + k as u64,
                data[k],
                want[k]
            ));
        }
    }

    fn lseek(&mut self, i: usize) {
        let size = self.size as i64;
        let pos = self.files[i].pos;
        let whence = self.rng.pick(&[0, 0, 1, 1, 2, 2, 3, 4, 5, -1, 77]);
        let off = match self.rng.below(3) {
            0 => self.random_offset(),
            1 => self.rng.below(1 << 22) as i64 - (1 << 21),
            _ => self.rng.next() as i64,
        };
        let want = match whence {
            0 => Some(off),
            1 => pos.checked_add(off),
            2 => size.checked_add(off),
            _ => None,
        }
        .filter(|p| *p >= 0);
        // SAFETY: lseek on our own descriptor; any offset and whence may be passed.
        let got = unsafe { libc::lseek(self.files[i].fd.as_raw_fd(), off, whence) };
        match want {
            Some(p) if got == p => self.files[i].pos = p,
            None if got == -1 => {
                let errno = Errno::from_io_error(&io::Error::last_os_error());
                if errno != Some(Errno::INVAL) {
                    self.finding(format!(
                        "lseek({off}, {whence}) failed with {errno:?}, not EINVAL"
                    ));
                }
                self.refused += 1;
            }
            _ => {
                self.finding(format!(
                    "lseek({off}, {whence}) from {pos} returned {got}, the model says {want:?}"
                ));
                if got >= 0 {
                    self.files[i].pos = got;
                }
            }
        }
    }

    /// A random read (or write) of file `i`: its length; how it is made (0 read, 1 pread,
    /// 2 readv, 3 preadv: odd ones at an offset of their own, the others at the file
    /// position); the offset; and what the model says it must return.
    fn random_call(&mut self, i: usize, write: bool) -> (usize, u64, i64, Result<usize, Errno>) {
        let len = self.random_len();
        let how = self.rng.below(4);
        let pos = if how % 2 == 0 {
            self.files[i].pos
        } else {
            self.random_offset()
        };
        let open_for_it = if write {
            self.files[i].writable
        } else {
            self.files[i].readable
        };
        // pread/preadv/pwrite/pwritev refuse a negative offset before they look at the file.
        let want = if open_for_it || (how % 2 == 1 && pos < 0) {
            self.expected(write, pos, len)
        } else {
            Err(Errno::BADF)
        };
        (len, how, pos, want)
    }

    /// read/pread/readv/preadv into our own buffer: the count the model says, the pattern's
    /// bytes, the position moved by read and readv only.
    fn checked_read(&mut self, i: usize) {
        let (len, how, pos, want) = self.random_call(i, false);
        let mut big = std::mem::take(&mut self.big);
        let split = self.rng.below(len as u64 + 1) as usize;
        let fd = &self.files[i].fd;
        let got = match how {
            0 => rustix::io::read(fd, &mut big[..len]),
            1 => pread_raw(fd, &mut big[..len], pos),
            2 => {
                let (a, b) = big[..len].split_at_mut(split);
                rustix::io::readv(fd, &mut [io::IoSliceMut::new(a), io::IoSliceMut::new(b)])
            }
            _ => {
                let (a, b) = big[..len].split_at_mut(split);
                preadv_raw(
                    fd,
                    &mut [io::IoSliceMut::new(a), io::IoSliceMut::new(b)],
                    pos,
                )
            }
        };
        let what = ["read", "pread", "readv", "preadv"][how as usize];
        let what = format!("{what} of {len:#x} at {pos:#x}");
        if self.matches(&what, got, want) {
            if let Ok(n) = got {
                self.bytes_ok(&what, pos, &big[..n]);
                if how % 2 == 0 {
                    self.files[i].pos += n as i64;
                }
            }
        } else if let (Ok(n), 0 | 2) = (got, how) {
            self.files[i].pos = pos + n as i64;
        }
        self.big = big;
    }

    /// write/pwrite/writev/pwritev of the pattern's own bytes: the count the model says (or
    /// EPERM if the region was made write-protected), the position moved by write and writev.
    fn checked_write(&mut self, i: usize) {
        let (len, how, pos, want) = self.random_call(i, true);
        let mut big = std::mem::take(&mut self.big);
        let inside = if pos >= 0 {
            len.min(self.size.saturating_sub(pos as u64) as usize)
        } else {
            0
        };
        pattern::fill_bytes(self.pattern_seed, pos.max(0) as u64, &mut big[..inside]);
        let split = self.rng.below(len as u64 + 1) as usize;
        let fd = &self.files[i].fd;
        let got = match how {
            0 => rustix::io::write(fd, &big[..len]),
            1 => pwrite_raw(fd, &big[..len], pos),
            2 => {
                let (a, b) = big[..len].split_at(split);
                rustix::io::writev(fd, &[io::IoSlice::new(a), io::IoSlice::new(b)])
            }
            _ => {
                let (a, b) = big[..len].split_at(split);
                pwritev_raw(fd, &[io::IoSlice::new(a), io::IoSlice::new(b)], pos)
            }
        };
        self.big = big;
        let what = ["write", "pwrite", "writev", "pwritev"][how as usize];
        let what = format!("{what} of {len:#x} at {pos:#x}");
        if self.matches(&what, got, want) || got.is_ok() {
            if let (Ok(n), 0 | 2) = (got, how) {
                self.files[i].pos = pos + n as i64;
            }
        }
    }

    /// read(2) into NULL, kernel addresses, unmapped pages, or a buffer cut short by a guard
    /// page: nothing may land outside our own memory, and what lands is the pattern.
    fn hostile_read(&mut self, i: usize) {
        let len = self.rng.below(PAGE as u64 * 2) as usize;
        let (ptr, bad) = self.hostile_pointer(len);
        let len = if bad { len } else { len.min(PAGE) };
        let pos = self.files[i].pos;
        let raw = self.files[i].fd.as_raw_fd();
        // SAFETY: raw read(2) (rustix takes only valid slices, and these pointers are the
        // point); `ptr` is our own buffer of at least `len` bytes, or an address the kernel
        // must refuse.
        let n = unsafe { libc::read(raw, ptr as *mut c_void, len) };
        if n > 0 && bad {
            self.finding(format!("read into {ptr:#x} returned {n}"));
        } else if n > 0 {
            self.files[i].pos += n as i64;
            // SAFETY: the kernel wrote `n` bytes of our own buffer at `ptr`.
            let data = unsafe { std::slice::from_raw_parts(ptr as *const u8, n as usize) }.to_vec();
            self.bytes_ok("read into a short buffer", pos, &data);
        } else if n < 0 {
            self.refused += 1;
        }
    }

    /// write(2) from addresses that hold no data for the region: refused, nothing written.
    fn hostile_write(&mut self, i: usize) {
        let len = 1 + self.rng.below(PAGE as u64 * 2) as usize;
        let (ptr, bad) = self.hostile_pointer(len);
        if !bad {
            return;
        }
        let raw = self.files[i].fd.as_raw_fd();
        // SAFETY: as for read; the kernel must refuse `ptr`.
        let n = unsafe { libc::write(raw, ptr as *const c_void, len) };
        if n > 0 {
            self.finding(format!("write from {ptr:#x} returned {n}"));
        } else {
            self.refused += 1;
        }
    }
}

/// A raw call's result: the count, or the errno.
fn count(ret: isize) -> Result<usize, Errno> {
    if ret < 0 {
        Err(Errno::from_io_error(&io::Error::last_os_error()).unwrap_or(Errno::IO))
    } else {
        Ok(ret as usize)
    }
}

// pread/pwrite/preadv/pwritev with any offset, negative ones included (rustix takes only
// non-negative offsets, and refusing negative ones is what is tested).

fn pread_raw(fd: &OwnedFd, buf: &mut [u8], pos: i64) -> Result<usize, Errno> {
    // SAFETY: `buf` is valid for writes of its length.
    count(unsafe { libc::pread(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), pos) })
}

fn pwrite_raw(fd: &OwnedFd, buf: &[u8], pos: i64) -> Result<usize, Errno> {
    // SAFETY: `buf` is valid for reads of its length.
    count(unsafe { libc::pwrite(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len(), pos) })
}

fn preadv_raw(fd: &OwnedFd, bufs: &mut [io::IoSliceMut<'_>], pos: i64) -> Result<usize, Errno> {
    // SAFETY: `IoSliceMut` is ABI-compatible with `struct iovec`; each is valid for writes.
    count(unsafe { libc::preadv(fd.as_raw_fd(), bufs.as_ptr().cast(), bufs.len() as i32, pos) })
}

fn pwritev_raw(fd: &OwnedFd, bufs: &[io::IoSlice<'_>], pos: i64) -> Result<usize, Errno> {
    // SAFETY: `IoSlice` is ABI-compatible with `struct iovec`; each is valid for reads.
    count(unsafe { libc::pwritev(fd.as_raw_fd(), bufs.as_ptr().cast(), bufs.len() as i32, pos) })
}
