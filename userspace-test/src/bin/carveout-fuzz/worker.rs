//! A worker: one process running its share of the operations against the device, with
//! the model of what each must do. The operations are methods of [`Worker`], one module a
//! family of them ([`ioctls`], [`mappings`], [`file_io`], [`pins`]); here are the worker's state, its
//! loop, its files, hostile pointers, forks and module reloads.

mod file_io;
mod ioctls;
mod mappings;
mod pins;

use std::{ffi::c_void, io, os::fd::OwnedFd, process::Command, time::Instant};

use rustix::{
    fs::{open, Mode, OFlags},
    io::Errno,
    mm::{mmap_anonymous, mprotect, munmap, MapFlags, MprotectFlags, ProtFlags},
    process::{waitpid, Pid, WaitOptions},
};

use crate::{
    cli::{Cli, ROUNDS},
    rng::Rng,
};

const PAGE: usize = 4096;
const MAX_FDS: usize = 8;
/// Mapping lengths are mostly small (a whole-region mapping fills every page table entry).
const MAX_PAGES: u64 = 32;

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

/// An open file of the device.
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
    /// The region has pages (`--pages`).
    pages: bool,
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
    /// Pins of a mapping (vmsplice) that succeeded (with pages) or were refused EFAULT
    /// (without), as the model says.
    pins: u64,
    noted_read_only: bool,
}

/// Runs worker `id` (its sequence of seed `seed`) and returns how many findings it printed.
pub fn run(cli: &Cli, id: u64, seed: u64) -> io::Result<u64> {
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
        pages: cli.pages,
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
        pins: 0,
        // One worker says it; the others would repeat it.
        noted_read_only: id != 0,
    };
    let start = Instant::now();
    w.run(ops);
    println!(
        "# worker {id} seed {seed:#x}: {} operations ({} refused; {} mmaps, {} forks, {} rmmods, \
         {} insmods, {} pins as the model says) in {:.1}s, {} findings",
        w.op,
        w.refused,
        w.mapped,
        w.forks,
        w.rmmods,
        w.insmods,
        w.pins,
        start.elapsed().as_secs_f64(),
        w.findings
    );
    Ok(w.findings)
}

impl Worker {
    fn finding(&mut self, what: String) {
        self.findings += 1;
        println!(
            "finding: worker {} (seed {:#x}) op {}: {what}",
            self.id, self.seed, self.op
        );
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
                84..=94 => self.file_io(),
                95 => self.pin(),
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
            if self.pages {
                args.push("pages=1".into());
            }
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

fn unmap(addr: usize, len: usize) {
    // SAFETY: only ever called with ranges of our own mappings or reservations.
    let _ = unsafe { munmap(addr as *mut c_void, len) };
}
