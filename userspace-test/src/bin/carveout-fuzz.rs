//! carveout-fuzz: a bounded, seeded fuzzer for `/dev/carveout*`.
//!
//! It runs four rounds of `--procs` worker processes at once, unloading and loading the
//! module between rounds. Each worker runs its share of `--ops` random operations, on the
//! device only: open/close/read/write/lseek, ioctls with random numbers and hostile arguments
//! (NULL, kernel addresses, inaccessible pages, buffers cut short by a guard page), mmap with
//! random offset/length/prot/flags (MAP_PRIVATE, MAP_FIXED over a live mapping), munmap,
//! mremap, mprotect, fork with mappings alive, and now and then `rmmod` / `insmod`.
//! `CARVEOUT_SYNC` with random offsets, lengths, directions and padding, each answer checked
//! against the header's rules; `CARVEOUT_ATTACH` / `DETACH` / `BUS_ADDR` with names of no
//! device (malformed, unterminated, or well formed but absent), which must be refused.
//!
//! The region must hold the pattern for `--pattern-seed` (`carveout-test fill`): that is the
//! model of its contents. Every read through a mapping checks the pattern word for its region
//! offset, and every write stores that same word: the fuzzer itself never changes the
//! contents, so a changed word afterwards (`carveout-test verify`) is a bug, and so is a
//! mapping that shows the wrong memory. The file interface is held to the same model: every
//! byte that read/pread/readv/preadv returns must be the pattern's, write/pwrite/writev/pwritev
//! store the pattern's own bytes, and each call at a random offset (inside, at or past the end,
//! across 2 MiB pieces, negative, near 2^63) must return the count or errno the bounds give,
//! with the file position (random lseek whence values included) where the model puts it.
//!
//! It also checks what must be refused: private or out-of-range mappings, growing a device
//! mapping, unknown ioctls, ioctls and reads/writes with kernel pointers. A violation is
//! printed as `finding:` with the worker, its seed and the operation number.
//!
//! Reproducible: worker `i` (numbered across rounds) runs the sequence of seed
//! `pattern::word(seed, i)`; the interleaving of workers is up to the scheduler.
//! Exit status: 0 clean, 1 findings, 2 error.

use std::{
    ffi::c_void,
    io,
    os::fd::{AsRawFd, OwnedFd},
    process::{Command, ExitCode},
    time::Instant,
};

use carveout::parse_u64;
use carveout::{abi, pattern};
use clap::Parser;
use rustix::{
    fs::{open, Mode, OFlags},
    io::Errno,
    ioctl::{ioctl, opcode, Ioctl, IoctlOutput, Opcode},
    mm::{
        mmap, mmap_anonymous, mprotect, mremap, mremap_fixed, munmap, MapFlags, MprotectFlags,
        MremapFlags, ProtFlags,
    },
    process::{waitpid, Pid, WaitOptions},
};

#[derive(Parser)]
#[command(about = "Fuzz /dev/carveout* with hostile ioctls, mappings and file operations")]
struct Cli {
    /// The region's device node (the only file the fuzzer operates on).
    #[arg(long, default_value = "/dev/carveout0")]
    dev: String,
    /// Seed of the run (default: from the clock; printed either way).
    #[arg(long, value_parser = parse_u64)]
    seed: Option<u64>,
    /// The pattern the region holds (carveout-test fill --seed).
    #[arg(long, value_parser = parse_u64)]
    pattern_seed: u64,
    /// Operations in all, shared among the workers.
    #[arg(long, default_value_t = 200_000)]
    ops: u64,
    /// Worker processes running at once.
    #[arg(long, default_value_t = 4)]
    procs: u64,
    /// The module, for insmod attempts.
    #[arg(long, default_value = "/lib/modules/carveout.ko")]
    module: String,
    /// Probability of an rmmod or insmod attempt, per million operations.
    #[arg(long, default_value_t = 300)]
    reload_ppm: u64,
    /// Probability of a fork with the mappings alive, per million of the rare operations (4 in
    /// 100 operations).
    #[arg(long, default_value_t = 4_000)]
    fork_ppm: u64,
    /// Run as worker N (internal).
    #[arg(long, hide = true)]
    worker: Option<u64>,
    /// The region's base and size (internal: handed to workers).
    #[arg(long, hide = true, value_parser = parse_u64)]
    base: Option<u64>,
    #[arg(long, hide = true, value_parser = parse_u64)]
    size: Option<u64>,
}

const PAGE: usize = 4096;
/// Rounds of `--procs` workers; the module is unloaded and loaded again after each.
const ROUNDS: u64 = 4;
const MAX_FDS: usize = 8;
const MAX_MAPS: usize = 12;
/// Mapping lengths are mostly small (a whole-region mapping fills every page table entry).
const MAX_PAGES: u64 = 32;

const GET_ATTR: Opcode = opcode::read::<[u8; 32]>(0xCA, 0x41);
const SET_ATTR: Opcode = opcode::write::<[u8; 32]>(0xCA, 0x42);
const ATTACH_REQUESTS: [Opcode; 3] = [abi::ATTACH, abi::DETACH, abi::BUS_ADDR];

/// Kernel addresses a buggy driver would write to or read from: text, the direct map (also
/// of the region itself), the top page, all ones.
fn kernel_addresses(base: u64) -> [u64; 6] {
    [
        0xffff_ffff_8100_0000,
        0xffff_8880_0000_0000,
        0xffff_8880_0000_0000 + base,
        0xffff_ffff_ffff_f000,
        u64::MAX,
        0x8000_0000_0000_0000,
    ]
}

/// xorshift64*: small, fast, and the same sequence for the same seed everywhere.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(pattern::word(seed, 0) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
    fn chance(&mut self, per_million: u64) -> bool {
        self.below(1_000_000) < per_million
    }
    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

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

struct File {
    fd: OwnedFd,
    readable: bool,
    writable: bool,
    /// The file position the model expects.
    pos: i64,
}

/// A live mapping of the region, as the fuzzer believes it to be.
#[derive(Clone, Copy, Debug)]
struct Map {
    addr: usize,
    /// Bytes of address space the mapping covers (what munmap must release).
    len: usize,
    /// Region offset of `addr`.
    off: u64,
    read: bool,
    write: bool,
    /// The file was open for writing when mapped (mprotect may add PROT_WRITE).
    may_write: bool,
}

struct Worker {
    id: u64,
    seed: u64,
    rng: Rng,
    dev: String,
    module: String,
    base: u64,
    size: u64,
    pattern_seed: u64,
    reload_ppm: u64,
    fork_ppm: u64,
    files: Vec<File>,
    maps: Vec<Map>,
    /// Two pages: the first readable and writable, the second PROT_NONE (short buffers).
    guard: usize,
    /// A PROT_NONE page nobody maps over.
    hole: usize,
    /// A buffer the kernel may fill.
    buf: Vec<u8>,
    /// The buffer of file reads and writes (up to two 2 MiB pieces and some).
    big: Vec<u8>,
    op: u64,
    findings: u64,
    refused: u64,
    /// Successful mmaps, forks, rmmods and insmods.
    mapped: u64,
    forks: u64,
    rmmods: u64,
    insmods: u64,
    noted_read_only: bool,
}

impl Worker {
    fn finding(&mut self, what: String) {
        self.findings += 1;
        println!(
            "finding: worker {} (seed {:#x}) op {}: {what}",
            self.id, self.seed, self.op
        );
    }

    /// Reads (and checks) or writes `count` random words of `map`, as its protection allows.
    fn words_ok(&mut self, map: &Map, count: u64) {
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

    fn run(&mut self, ops: u64) {
        while self.op < ops {
            self.op += 1;
            match self.rng.below(100) {
                0..=5 => self.open(),
                6..=9 => self.close(),
                10..=30 => self.ioctl(),
                31..=33 => self.sync(),
                // Rare: each refusal is a line in dmesg, which must not be flooded (other cases
                // read the lines their refusals add).
                34 if self.rng.chance(50_000) => self.attach_no_device(),
                34 => self.ioctl(),
                35..=49 => self.mmap(),
                50..=56 => self.munmap(),
                57..=71 => self.access(),
                72..=75 => self.mprotect(),
                76..=79 => self.mremap(),
                80..=83 => self.map_fixed_over(),
                84..=95 => self.file_io(),
                _ => self.rare(),
            }
        }
        self.maps.clone().iter().for_each(|m| unmap(m.addr, m.len));
        self.maps.clear();
        self.files.clear();
    }

    fn rare(&mut self) {
        if self.rng.chance(self.fork_ppm) {
            self.fork_with_mappings();
        } else if self.rng.chance(self.reload_ppm * 25) {
            self.reload();
        } else if self.rng.chance(20_000) {
            // Let go of everything, so an rmmod somewhere can succeed.
            self.maps.clone().iter().for_each(|m| unmap(m.addr, m.len));
            self.maps.clear();
            self.files.clear();
        } else {
            self.access();
        }
    }

    fn open(&mut self) {
        if self.files.len() >= MAX_FDS {
            self.files.remove(0);
        }
        let (mode, readable, writable) = self.rng.pick(&[
            (OFlags::RDWR, true, true),
            (OFlags::RDWR, true, true),
            (OFlags::RDONLY, true, false),
            (OFlags::WRONLY, false, true),
        ]);
        let extra = self.rng.pick(&[
            OFlags::empty(),
            OFlags::NONBLOCK,
            OFlags::APPEND,
            OFlags::SYNC,
            OFlags::TRUNC,
            OFlags::EXCL,
        ]);
        match open(&self.dev, mode | extra | OFlags::CLOEXEC, Mode::empty()) {
            Ok(fd) => self.files.push(File {
                fd,
                readable,
                writable,
                pos: 0,
            }),
            // The module is unloaded (another worker's rmmod): expected now and then.
            Err(Errno::NOENT | Errno::NODEV | Errno::NXIO) => self.refused += 1,
            Err(err) => {
                self.refused += 1;
                if extra.is_empty() {
                    self.finding(format!("open({:?}) failed: {err}", mode));
                }
            }
        }
    }

    fn close(&mut self) {
        if !self.files.is_empty() {
            let i = self.rng.below(self.files.len() as u64) as usize;
            self.files.swap_remove(i);
        }
    }

    fn file(&mut self) -> Option<usize> {
        if self.files.is_empty() {
            self.open();
        }
        (!self.files.is_empty()).then(|| self.rng.below(self.files.len() as u64) as usize)
    }

    /// A hostile argument: (address, whether the kernel must refuse to touch it).
    fn hostile_pointer(&mut self, len: usize) -> (u64, bool) {
        match self.rng.below(7) {
            0 => (0, true),
            1 => (self.rng.pick(&kernel_addresses(self.base)), true),
            2 => (self.hole as u64 + self.rng.below(PAGE as u64), true),
            3 => (0x1000, true),
            // A buffer that runs into the guard page after 1..len bytes.
            4 => {
                let short = 1 + self.rng.below(len.max(2) as u64 - 1);
                ((self.guard + PAGE) as u64 - short, false)
            }
            5 => {
                // Random, but never a user address that might be mapped (a carveout mapping
                // the kernel would then write to).
                let v = self.rng.next();
                (
                    if v < 0x8000_0000_0000 {
                        v | 0xffff_0000_0000_0000
                    } else {
                        v
                    },
                    true,
                )
            }
            _ => (self.buf.as_mut_ptr() as u64, false),
        }
    }

    fn ioctl(&mut self) {
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
        if cmd == SET_ATTR && arg == self.buf.as_ptr() as u64 {
            // A well-formed request: one attribute bit, or garbage now and then.
            let flags = if self.rng.chance(800_000) {
                1u32 << self.rng.below(5)
            } else {
                self.rng.next() as u32
            };
            self.buf[..32].fill(0);
            self.buf[16..20].copy_from_slice(&flags.to_ne_bytes());
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
            Ok(_) => {}
            Err(_) => self.refused += 1,
        }
    }

    /// `CARVEOUT_SYNC`, mostly well formed, checked against the model: the errno the header
    /// documents for the request, and the contents unchanged (a mapping's words still hold the
    /// pattern after a sync).
    fn sync(&mut self) {
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
    fn attach_no_device(&mut self) {
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

    fn mmap(&mut self) {
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

    fn munmap(&mut self) {
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

    fn access(&mut self) {
        if self.maps.is_empty() {
            return;
        }
        let i = self.rng.below(self.maps.len() as u64) as usize;
        let m = self.maps[i];
        self.words_ok(&m, 16);
    }

    fn mprotect(&mut self) {
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

    fn mremap(&mut self) {
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
    fn map_fixed_over(&mut self) {
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

    /// The file interface (read, write, pread/pwrite, readv/writev, preadv/pwritev, lseek)
    /// at random offsets, lengths and whence values, against the model: the region holds the
    /// pattern (every byte read must be the pattern's, every write stores the pattern's own
    /// bytes), each open file has the position the model computed, and each call returns the
    /// count or errno the bounds say (`include/carveout.h`).
    fn file_io(&mut self) {
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
        let want = pattern_bytes(self.pattern_seed, pos as u64, data.len());
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

    /// read/pread/readv/preadv into our own buffer: the count the model says, the pattern's
    /// bytes, the position moved by read and readv only.
    fn checked_read(&mut self, i: usize) {
        let len = self.random_len();
        let how = self.rng.below(4);
        let pos = if how % 2 == 0 {
            self.files[i].pos
        } else {
            self.random_offset()
        };
        // pread/preadv refuse a negative offset before they look at the file.
        let want = if self.files[i].readable || (how % 2 == 1 && pos < 0) {
            self.expected(false, pos, len)
        } else {
            Err(Errno::BADF)
        };
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
        let len = self.random_len();
        let how = self.rng.below(4);
        let pos = if how % 2 == 0 {
            self.files[i].pos
        } else {
            self.random_offset()
        };
        // pwrite/pwritev refuse a negative offset before they look at the file.
        let want = if self.files[i].writable || (how % 2 == 1 && pos < 0) {
            self.expected(true, pos, len)
        } else {
            Err(Errno::BADF)
        };
        let mut big = std::mem::take(&mut self.big);
        let inside = if pos >= 0 {
            len.min(self.size.saturating_sub(pos as u64) as usize)
        } else {
            0
        };
        pattern_into(self.pattern_seed, pos.max(0) as u64, &mut big[..inside]);
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

    /// Forks with the mappings alive; the child reads and writes through them and exits.
    fn fork_with_mappings(&mut self) {
        // SAFETY: the worker is single-threaded; the child only touches memory and exits
        // with _exit, running no destructors.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            let before = self.findings;
            for m in self.maps.clone() {
                self.words_ok(&m, 8);
            }
            if self.rng.chance(500_000) {
                self.maps.clone().iter().for_each(|m| unmap(m.addr, m.len));
            }
            // SAFETY: ends the child without unwinding.
            unsafe { libc::_exit(i32::from(self.findings != before)) };
        }
        if pid < 0 {
            self.refused += 1;
            return;
        }
        self.forks += 1;
        match waitpid(Pid::from_raw(pid), WaitOptions::empty()) {
            Ok(Some((_, status))) if status.exit_status() == Some(0) => {}
            Ok(Some((_, status))) => {
                self.finding(format!("forked child ended with {status:?}"));
            }
            _ => self.finding("waitpid for the forked child failed".into()),
        }
    }

    fn reload(&mut self) {
        let out = if self.rng.chance(500_000) {
            let out = Command::new("rmmod").arg("carveout").output();
            if out.as_ref().is_ok_and(|o| o.status.success()) {
                self.rmmods += 1;
            }
            out
        } else {
            let mut args = vec![
                format!("base={:#x}", self.base),
                format!("size={:#x}", self.size),
            ];
            if self.rng.chance(300_000) {
                // A garbage load that must be refused (base in the first MiB: System RAM).
                args = vec!["base=0x1000".into(), "size=0x1000".into()];
            }
            let out = Command::new("insmod")
                .arg(&self.module)
                .args(&args)
                .output();
            if out.as_ref().is_ok_and(|o| o.status.success()) {
                self.insmods += 1;
                if args[0] == "base=0x1000" {
                    self.finding("insmod base=0x1000 size=0x1000 succeeded".into());
                }
            }
            out
        };
        if !out.is_ok_and(|o| o.status.success()) {
            self.refused += 1;
        }
    }
}

/// The pattern's bytes for region offsets `[off, off + buf.len())`, a word at a time.
fn pattern_into(seed: u64, off: u64, buf: &mut [u8]) {
    let mut k = 0;
    while k < buf.len() {
        let o = off + k as u64;
        let word = pattern::word(seed, o / 8).to_ne_bytes();
        let start = (o % 8) as usize;
        let n = (8 - start).min(buf.len() - k);
        buf[k..k + n].copy_from_slice(&word[start..start + n]);
        k += n;
    }
}

fn pattern_bytes(seed: u64, off: u64, len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    pattern_into(seed, off, &mut buf);
    buf
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

fn unmap(addr: usize, len: usize) {
    // SAFETY: only ever called with ranges of our own mappings or reservations.
    let _ = unsafe { munmap(addr as *mut c_void, len) };
}

fn worker(cli: &Cli, id: u64, seed: u64) -> io::Result<u64> {
    let (base, size) = (cli.base.unwrap_or(0), cli.size.unwrap_or(0));
    // SAFETY: fresh anonymous mappings alias nothing.
    let guard = unsafe {
        mmap_anonymous(
            std::ptr::null_mut(),
            2 * PAGE,
            ProtFlags::READ | ProtFlags::WRITE,
            MapFlags::PRIVATE,
        )
    }?;
    // SAFETY: the second page of our own reservation.
    unsafe {
        mprotect(
            guard.cast::<u8>().add(PAGE).cast(),
            PAGE,
            MprotectFlags::empty(),
        )
    }?;
    // SAFETY: as above.
    let hole = unsafe {
        mmap_anonymous(
            std::ptr::null_mut(),
            PAGE,
            ProtFlags::empty(),
            MapFlags::PRIVATE,
        )
    }?;
    let workers = ROUNDS * cli.procs;
    let ops = cli.ops / workers + u64::from(id < cli.ops % workers);
    let mut w = Worker {
        id,
        seed,
        rng: Rng::new(seed),
        dev: cli.dev.clone(),
        module: cli.module.clone(),
        base,
        size,
        pattern_seed: cli.pattern_seed,
        reload_ppm: cli.reload_ppm,
        fork_ppm: cli.fork_ppm,
        files: Vec::new(),
        maps: Vec::new(),
        guard: guard as usize,
        hole: hole as usize,
        buf: vec![0u8; PAGE],
        big: vec![0u8; (4 << 20) + 3 * PAGE],
        op: 0,
        findings: 0,
        refused: 0,
        mapped: 0,
        forks: 0,
        rmmods: 0,
        insmods: 0,
        // One worker says it; the others would repeat it.
        noted_read_only: id != 0,
    };
    let start = Instant::now();
    w.run(ops);
    println!(
        "# worker {id} seed {seed:#x}: {} operations ({} refused; {} mmaps, {} forks, {} rmmods, \
         {} insmods) in {:.1}s, {} findings",
        w.op,
        w.refused,
        w.mapped,
        w.forks,
        w.rmmods,
        w.insmods,
        start.elapsed().as_secs_f64(),
        w.findings
    );
    Ok(w.findings)
}

fn run(cli: &Cli) -> io::Result<bool> {
    let seed = cli.seed.unwrap_or_else(|| {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        t.as_nanos() as u64
    });
    if let Some(id) = cli.worker {
        return Ok(worker(cli, id, pattern::word(seed, id))? == 0);
    }
    let region = carveout::Region::open(&cli.dev)?;
    let info = region.info()?;
    drop(region);
    println!(
        "# carveout-fuzz: seed {seed:#x}, {} operations, {} processes, region {:#x}+{:#x}",
        cli.ops, cli.procs, info.base, info.size
    );
    let exe = std::env::current_exe()?;
    let start = Instant::now();
    let mut clean = true;
    // Workers hold the device almost all the time, so their own rmmods rarely find it idle:
    // between rounds, with every worker gone, the module is unloaded and loaded for real.
    for round in 0..ROUNDS {
        let mut children = Vec::new();
        for n in 0..cli.procs {
            let id = round * cli.procs + n;
            let child = Command::new(&exe)
                .args(["--dev", &cli.dev, "--module", &cli.module])
                .arg(format!("--seed={seed:#x}"))
                .arg(format!("--pattern-seed={:#x}", cli.pattern_seed))
                .arg(format!("--ops={}", cli.ops))
                .arg(format!("--procs={}", cli.procs))
                .arg(format!("--reload-ppm={}", cli.reload_ppm))
                .arg(format!("--fork-ppm={}", cli.fork_ppm))
                .arg(format!("--worker={id}"))
                .arg(format!("--base={:#x}", info.base))
                .arg(format!("--size={:#x}", info.size))
                .spawn()?;
            children.push((id, child));
        }
        for (id, mut child) in children {
            let status = child.wait()?;
            if !status.success() {
                println!(
                    "finding: worker {id} (seed {:#x}) ended with {status}",
                    pattern::word(seed, id)
                );
                clean = false;
            }
        }
        // A worker's own rmmod may have left it unloaded; then there is nothing to remove.
        if std::path::Path::new(&cli.dev).exists() {
            let out = Command::new("rmmod").arg("carveout").output()?;
            if !out.status.success() {
                println!(
                    "finding: rmmod with no user failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
                clean = false;
            }
        }
        let out = Command::new("insmod")
            .arg(&cli.module)
            .arg(format!("base={:#x}", info.base))
            .arg(format!("size={:#x}", info.size))
            .output()?;
        if !out.status.success() {
            println!(
                "finding: insmod after round {round} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            return Ok(false);
        }
    }
    println!(
        "# carveout-fuzz: seed {seed:#x}: {} operations, module unloaded and loaded {ROUNDS} \
         times, in {:.1}s, {}",
        cli.ops,
        start.elapsed().as_secs_f64(),
        if clean { "no findings" } else { "FINDINGS" }
    );
    Ok(clean)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(err) => {
            eprintln!("carveout-fuzz: {err}");
            ExitCode::from(2)
        }
    }
}
