//! Pins of a mapping (issue 22): `vmsplice` of a piece of a live mapping into a pipe, the
//! bytes read back out of it. With pages, the pipe holds the region's own pages, and the bytes
//! must be the pattern's; without, the kernel cannot pin the mapping and `vmsplice` must fail
//! `EFAULT`.

use std::os::fd::AsRawFd;

use carveout::pattern;
use rustix::{io::read, pipe::pipe};

use super::{Worker, PAGE};

/// At most this many pages a pin (a pipe holds 16 by default).
const MAX_PIN_PAGES: u64 = 16;

impl Worker {
    pub(super) fn pin(&mut self) {
        let readable: Vec<_> = self.maps.iter().filter(|m| m.read).copied().collect();
        if readable.is_empty() {
            return;
        }
        let m = readable[self.rng.below(readable.len() as u64) as usize];
        let pages = (m.len / PAGE) as u64;
        let first = self.rng.below(pages);
        let count = 1 + self.rng.below(MAX_PIN_PAGES.min(pages - first));
        let Ok((rx, tx)) = pipe() else {
            self.refused += 1;
            return;
        };
        let iov = libc::iovec {
            iov_base: (m.addr + first as usize * PAGE) as *mut libc::c_void,
            iov_len: count as usize * PAGE,
        };
        // SAFETY: the iovec lies inside a live, readable mapping of ours (as the model says;
        // a wrong model is an EFAULT, not memory unsafety); without SPLICE_F_GIFT the kernel
        // only reads the pages.
        let n = unsafe { libc::vmsplice(tx.as_raw_fd(), &iov, 1, libc::SPLICE_F_NONBLOCK) };
        let errno = std::io::Error::last_os_error();
        let off = m.off + first * PAGE as u64;
        match (usize::try_from(n), self.pages) {
            (Ok(n), true) => self.pinned_bytes_ok(&rx, off, n),
            (Ok(_), false) => self.finding(format!(
                "vmsplice of a mapping at region offset {off:#x} succeeded on a region without \
                 pages"
            )),
            (Err(_), false) if errno.raw_os_error() == Some(libc::EFAULT) => {
                self.refused += 1;
                self.pins += 1;
            }
            (Err(_), _) => self.finding(format!(
                "vmsplice of {count} page(s) of a mapping at region offset {off:#x}: {errno}"
            )),
        }
    }

    /// The `n` bytes in pipe `rx` are the pattern's for region offset `off` on.
    fn pinned_bytes_ok(&mut self, rx: &impl std::os::fd::AsFd, off: u64, n: usize) {
        let mut got = 0;
        while got < n {
            match read(rx, &mut self.big[got..n]) {
                Ok(0) | Err(_) => {
                    self.finding(format!("the pipe gave {got} of the {n} bytes vmspliced"));
                    return;
                }
                Ok(k) => got += k,
            }
        }
        let want = pattern::bytes(self.pattern_seed, off, n);
        self.pins += 1;
        if let Some(i) = (0..n).find(|&i| self.big[i] != want[i]) {
            self.finding(format!(
                "a pin at region offset {off:#x} reads {:#04x} at {:#x}, the pattern is {:#04x}",
                self.big[i],
                off + i as u64,
                want[i]
            ));
        }
    }
}
