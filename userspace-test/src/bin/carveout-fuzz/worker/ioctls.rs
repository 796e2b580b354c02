//! Ioctls: random numbers, hostile arguments, `CARVEOUT_SYNC` against the model, and
//! `CARVEOUT_ATTACH` / `DETACH` / `BUS_ADDR` for devices that are not there.

use std::ffi::c_void;

use carveout::abi;
use rustix::{
    io::Errno,
    ioctl::{ioctl, opcode, Ioctl, IoctlOutput, Opcode},
};

use super::{Worker, MAX_PAGES, PAGE};

const GET_ATTR: Opcode = opcode::read::<[u8; 32]>(0xCA, 0x41);
const SET_ATTR: Opcode = opcode::write::<[u8; 32]>(0xCA, 0x42);
const ATTACH_REQUESTS: [Opcode; 3] = [abi::ATTACH, abi::DETACH, abi::BUS_ADDR];

/// An ioctl with a raw number and a raw argument: what a hostile caller passes.
struct RawIoctl {
    cmd: Opcode,
    arg: *mut c_void,
}

// SAFETY: the kernel may read or write through `arg`; every address the fuzzer hands it is
// either a buffer it owns and does not otherwise use during the call, or one the kernel must
// refuse (NULL, kernel addresses, PROT_NONE pages) without touching user memory.
unsafe impl Ioctl for RawIoctl {
    type Output = IoctlOutput;
    const IS_MUTATING: bool = true;
    fn opcode(&self) -> Opcode {
        self.cmd
    }
    fn as_ptr(&mut self) -> *mut c_void {
        self.arg
    }
    unsafe fn output_from_ptr(out: IoctlOutput, _: *mut c_void) -> rustix::io::Result<IoctlOutput> {
        Ok(out)
    }
}

impl Worker {
    pub(super) fn ioctl(&mut self) {
        let Some(i) = self.file() else { return };
        let cmd: Opcode = match self.rng.below(10) {
            0..=2 => self.rng.pick(&[abi::GET_INFO, GET_ATTR, SET_ATTR]),
            3..=7 => {
                // _IOC(dir, 0xCA, nr, size)
                let dir = self.rng.below(4) as u32;
                let nr = self.rng.below(256) as u32;
                let size = self.rng.below(1 << 14) as u32;
                (dir << 30 | size << 16 | 0xCA << 8 | nr) as Opcode
            }
            _ => {
                let mut cmd = self.rng.next() as u32;
                // The VFS itself answers some types on any file (FIFREEZE, FICLONE, FIOCLEX,
                // FIGETBSZ, ...): not the driver's code, and FIFREEZE would freeze devtmpfs.
                if matches!((cmd >> 8) & 0xff, 0x00 | 0x15 | 0x54 | 0x58 | 0x66 | 0x94) {
                    cmd ^= 0xCB << 8;
                }
                cmd as Opcode
            }
        };
        let known = [abi::GET_INFO, GET_ATTR, SET_ATTR, abi::SYNC]
            .into_iter()
            .chain(ATTACH_REQUESTS)
            .any(|known| known == cmd);
        let (arg, bad) = self.hostile_pointer(96);
        let mut set_flags = None;
        if cmd == SET_ATTR && arg == self.buf.as_ptr() as u64 {
            // A well-formed request: one attribute bit, or garbage now and then.
            let flags = if self.rng.chance(800_000) {
                1u32 << self.rng.below(5)
            } else {
                self.rng.next() as u32
            };
            self.buf[..32].fill(0);
            self.buf[16..20].copy_from_slice(&flags.to_ne_bytes());
            set_flags = Some(flags);
        }
        let fd = &self.files[i].fd;
        // SAFETY: see `RawIoctl`: `arg` is one of our own buffers or an address the kernel
        // must refuse.
        let result = unsafe {
            ioctl(
                fd,
                RawIoctl {
                    cmd,
                    arg: arg as *mut c_void,
                },
            )
        };
        match result {
            Ok(_) if !known => self.finding(format!("unknown ioctl {cmd:#x} succeeded")),
            Ok(_) if bad => self.finding(format!("ioctl {cmd:#x} accepted address {arg:#x}")),
            Ok(_) if cmd == abi::GET_INFO => {
                let base = u64::from_ne_bytes(self.buf[8..16].try_into().expect("8 bytes"));
                let size = u64::from_ne_bytes(self.buf[16..24].try_into().expect("8 bytes"));
                if (base, size) != (self.base, self.size) {
                    self.finding(format!("GET_INFO says base {base:#x} size {size:#x}"));
                }
            }
            // A region with pages is write-back only.
            Ok(_) if self.pages && set_flags.is_some_and(|f| f != abi::MR_WRITEBACK) => self
                .finding(format!(
                    "SET_ATTR to flags {:#x} succeeded on a region with pages",
                    set_flags.unwrap_or(0)
                )),
            Ok(_) => {}
            Err(_) => self.refused += 1,
        }
    }

    /// `CARVEOUT_SYNC`, mostly well formed, checked against the model: the errno the header
    /// documents for the request, and the contents unchanged (a mapping's words still hold the
    /// pattern after a sync).
    pub(super) fn sync(&mut self) {
        let Some(i) = self.file() else { return };
        let pages = self.size / PAGE as u64;
        let page = PAGE as u64;
        let offset = match self.rng.below(8) {
            0..=3 => self.rng.below(pages) * page,
            4 => self.rng.below(self.size),
            5 => self.size + self.rng.below(4) * page,
            6 => u64::MAX - self.rng.below(4) * page - (page - 1),
            _ => self.rng.next(),
        };
        let len = match self.rng.below(8) {
            0..=3 => (1 + self.rng.below(MAX_PAGES)) * page,
            4 => 0,
            5 => 1 + self.rng.below(2 * page),
            6 => self.size.saturating_sub(offset).max(page),
            _ => self.rng.next() & !(page - 1),
        };
        let direction = match self.rng.below(10) {
            0..=3 => abi::SYNC_FOR_DEVICE,
            4..=7 => abi::SYNC_FOR_CPU,
            _ => self.rng.next() as u32 % 8,
        };
        let pad0 = if self.rng.chance(50_000) {
            1 + self.rng.below(u32::MAX as u64) as u32
        } else {
            0
        };
        let req = abi::Sync {
            offset,
            len,
            direction,
            pad0,
        };
        let (arg, bad) = if self.rng.chance(100_000) {
            self.hostile_pointer(24)
        } else {
            (self.buf.as_mut_ptr() as u64, false)
        };
        if !bad && arg == self.buf.as_ptr() as u64 {
            // SAFETY: `buf` is a page long and ours; `abi::Sync` is plain data.
            unsafe {
                self.buf
                    .as_mut_ptr()
                    .cast::<abi::Sync>()
                    .write_unaligned(req)
            };
        }
        let expected = if bad || arg != self.buf.as_ptr() as u64 {
            Err(Errno::FAULT)
        } else if pad0 != 0
            || !matches!(direction, abi::SYNC_FOR_DEVICE | abi::SYNC_FOR_CPU)
            || len == 0
            || offset % page != 0
            || len % page != 0
            || offset.checked_add(len).is_none()
        {
            Err(Errno::INVAL)
        } else if offset + len > self.size {
            Err(Errno::NXIO)
        } else {
            Ok(())
        };
        // SAFETY: see `RawIoctl`: `arg` is our buffer or an address the kernel must refuse;
        // SYNC only reads it.
        let result = unsafe {
            ioctl(
                &self.files[i].fd,
                RawIoctl {
                    cmd: abi::SYNC,
                    arg: arg as *mut c_void,
                },
            )
        }
        .map(drop);
        if result.is_err() {
            self.refused += 1;
        }
        // A buffer cut short by the guard page may or may not hold all 24 bytes.
        let short = !bad && arg != self.buf.as_ptr() as u64;
        if result != expected && !(short && result.is_err()) {
            self.finding(format!(
                "CARVEOUT_SYNC offset {offset:#x} len {len:#x} direction {direction} pad0 \
                 {pad0:#x} at {arg:#x}: {result:?}, expected {expected:?}"
            ));
            return;
        }
        if result.is_ok() && !self.maps.is_empty() {
            let map = self.maps[self.rng.below(self.maps.len() as u64) as usize];
            self.words_ok(&map, 16);
        }
    }

    /// `CARVEOUT_ATTACH`, `DETACH` or `BUS_ADDR` for a device that is not there: a malformed
    /// or unterminated name, non-zero reserved fields, a reach other than 0 or 12 to 64 bits
    /// (ATTACH) or any reach (the others) (`EINVAL`), or a well-formed name of no
    /// device (`ENODEV` to attach, `ENOENT` otherwise; `EBADF` to attach or detach through a
    /// read-only file). The fuzz guest has no device a name could hit by chance.
    pub(super) fn attach_no_device(&mut self) {
        let Some(i) = self.file() else { return };
        let cmd = self.rng.pick(&ATTACH_REQUESTS);
        let mut req = abi::Attach::default();
        let well_formed = match self.rng.below(6) {
            0..=2 => {
                let name = self
                    .rng
                    .pick(&["0000:ff:1f.7", "ffff:00:00.0", "0000:fe:00.0"]);
                req.device[..12].copy_from_slice(name.as_bytes());
                true
            }
            3 => {
                let name = self.rng.pick(&[
                    "",
                    "edu",
                    "00:01.0",
                    "0000:00:01.0x",
                    "0000-00-01.0",
                    "0000:0g:01.0",
                ]);
                req.device[..name.len()].copy_from_slice(name.as_bytes());
                false
            }
            4 => {
                // No NUL in the 32 bytes.
                req.device.fill(b'0' + self.rng.below(10) as u8);
                false
            }
            _ => {
                let n = self.rng.below(32) as usize;
                for b in &mut req.device[..n] {
                    *b = self.rng.next() as u8;
                }
                false
            }
        };
        let dirty = self.rng.chance(100_000);
        if dirty {
            match self.rng.below(3) {
                0 => req.bus_addr = self.rng.next() | 1,
                1 => req.flags = 1 + self.rng.below(u32::MAX as u64) as u32,
                _ => req.reserved[1] = self.rng.next() | 1,
            }
        }
        // A reach: ATTACH takes 12 to 64 address bits (or 0), the others only 0.
        req.reach_bits = match self.rng.below(8) {
            0 => self.rng.next() as u32,
            1 => 12 + self.rng.below(53) as u32,
            2 => self.rng.pick(&[1, 11, 65, u32::MAX]),
            _ => 0,
        };
        let reach_valid = req.reach_bits == 0 || (12..=64).contains(&req.reach_bits);
        // The name check accepts exactly DDDD:BB:DD.F in hex.
        let name = req
            .device
            .iter()
            .position(|&b| b == 0)
            .map(|n| &req.device[..n]);
        let valid_name = name.is_some_and(|n| {
            n.len() == 12
                && n.iter().enumerate().all(|(i, b)| match i {
                    4 | 7 => *b == b':',
                    10 => *b == b'.',
                    _ => b.is_ascii_hexdigit(),
                })
        });
        if well_formed && !valid_name {
            self.finding(format!("the fuzzer's name {:?} is not well formed", name));
            return;
        }
        let writable = self.files[i].writable;
        let expected = if dirty || (cmd != abi::ATTACH && req.reach_bits != 0) || !valid_name {
            Errno::INVAL
        } else if cmd == abi::BUS_ADDR {
            Errno::NOENT
        } else if !writable {
            Errno::BADF
        } else if cmd == abi::ATTACH && !reach_valid {
            Errno::INVAL
        } else if cmd == abi::ATTACH {
            Errno::NODEV
        } else {
            Errno::NOENT
        };
        // SAFETY: `req` is ours and lives across the call; the kernel reads and may write one
        // `abi::Attach` there.
        let result = unsafe {
            ioctl(
                &self.files[i].fd,
                RawIoctl {
                    cmd,
                    arg: (&raw mut req).cast(),
                },
            )
        };
        match result {
            Ok(_) => self.finding(format!(
                "ioctl {cmd:#x} for device {:?} succeeded",
                String::from_utf8_lossy(&req.device)
            )),
            Err(errno) => {
                self.refused += 1;
                if errno != expected {
                    self.finding(format!(
                        "ioctl {cmd:#x} for device {:?}: {errno:?}, expected {expected:?}",
                        String::from_utf8_lossy(&req.device)
                    ));
                }
            }
        }
    }
}
