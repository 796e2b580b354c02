//! carveout-bench: what a carveout mapping costs, against anonymous memory (the limit) and
//! `/dev/mem` (the old way), in the guest. `all` prints one `@@bench {json}` line per
//! measurement and per ratio, and `@@md` lines of a Markdown table; `huge-check` and `hold`
//! serve the 2 MiB mapping cases of the test suite; `file-io` measures only read()/write() of
//! the node against memcpy through a mapping (also part of `all`).
//!
//! Exit status: 0 done (or the check holds), 1 a check that does not hold, 2 a system error.

use std::{
    ffi::c_void,
    fs,
    hint::black_box,
    os::fd::OwnedFd,
    process::{Command, ExitCode},
    ptr::{self, NonNull},
    time::{Duration, Instant},
};

use carveout::parse_u64;
use carveout::{pattern, Attr, Region};
use clap::{Parser, Subcommand};
use rustix::{
    fs::{open, Mode, OFlags},
    mm::{mmap, mmap_anonymous, munmap, MapFlags, ProtFlags},
};
use serde::Serialize;

#[path = "carveout-bench/zerocopy.rs"]
mod zerocopy;

const PAGE: usize = 4096;
const HUGE: usize = 2 << 20;

#[derive(Parser)]
#[command(about = "Benchmark carveout mappings against anonymous memory and /dev/mem")]
struct Cli {
    /// The region's device node.
    #[arg(long, default_value = "/dev/carveout0")]
    dev: String,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Every measurement; needs the module unloaded and a reservation of at least 1 GiB.
    All {
        /// carveout.ko.
        #[arg(long)]
        module: String,
        /// Physical base of the reservation.
        #[arg(long, value_parser = parse_u64)]
        base: u64,
        /// Size of the reservation (the big region), at least 1 GiB.
        #[arg(long, value_parser = parse_u64)]
        size: u64,
        /// Runs of each measurement.
        #[arg(long, default_value_t = 5)]
        runs: usize,
    },
    /// Checks that a 2 MiB-aligned mapping of the whole region uses 2 MiB entries: one fault
    /// per 2 MiB, and no page tables of 4 KiB entries.
    HugeUsed,
    /// Checks that 2 MiB and 4 KiB mappings (and /dev/mem) see the same bytes, also through a
    /// window whose ends are not 2 MiB aligned.
    HugeMatches,
    /// read()/write() of the whole region in 1 MiB calls against memcpy from/to a mapping of
    /// it, with the same 1 MiB buffer (the region must be loaded).
    FileIo {
        #[arg(long, default_value_t = 3)]
        runs: usize,
    },
    /// Attach time (CARVEOUT_ATTACH) of regions of several sizes for PCI device DEVICE, in the
    /// IOMMU bench guest: `iommu_attach_<size>` each, and the ratio of the largest over the one
    /// 16 times smaller. Needs the module unloaded.
    IommuAttach {
        #[arg(long)]
        module: String,
        #[arg(long, value_parser = parse_u64)]
        base: u64,
        /// The largest region (1 GiB); also 256, 64 and 16 MiB.
        #[arg(long, value_parser = parse_u64)]
        size: u64,
        /// The PCI device to attach the regions to (edu).
        #[arg(long)]
        device: String,
        /// The address bits the device decodes, stated with each attach (it has no driver, so
        /// its DMA mask is 32 bits): its IOVAs may then lie above 4 GiB.
        #[arg(long)]
        reach_bits: Option<u32>,
        #[arg(long, default_value_t = 5)]
        runs: usize,
    },
    /// Zero copy (issue 22): 256 MiB from a pages-mode mapping to the block device PMEM with
    /// O_DIRECT against buffered writes and fsync, and the load time and memory map of a
    /// 1 GiB region with pages over one without. Needs the module unloaded and 1 GiB at BASE.
    Zerocopy {
        #[arg(long)]
        module: String,
        #[arg(long, value_parser = parse_u64)]
        base: u64,
        /// The block device to write to (the guest's pmem).
        #[arg(long, default_value = "/dev/pmem0")]
        pmem: std::path::PathBuf,
        #[arg(long, default_value_t = 5)]
        runs: usize,
    },
    /// Maps the whole region 2 MiB aligned, touches it, says "holding", and keeps it.
    Hold {
        #[arg(long, default_value_t = 120)]
        seconds: u64,
        #[arg(long)]
        read_only: bool,
    },
}

type Res<T> = Result<T, String>;

/// Where a mapping's pages come from.
#[derive(Clone, Copy, PartialEq)]
enum Source<'a> {
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
struct Map {
    ptr: NonNull<u8>,
    len: usize,
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
    fn new(source: Source<'_>, offset: u64, len: usize, prot: ProtFlags) -> Res<Self> {
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
    fn kernel_placed(dev: &str, len: usize, prot: ProtFlags) -> Res<Self> {
        let ptr = map_file(dev, ptr::null_mut(), len, prot, MapFlags::empty(), 0)?;
        let ptr = NonNull::new(ptr.cast::<u8>()).ok_or("mmap returned NULL")?;
        Ok(Map {
            ptr,
            len,
            reserve: (ptr.cast(), len),
        })
    }

    /// Writes one word in every 4 KiB page.
    fn touch(&self) {
        self.touch_every(PAGE);
    }

    /// Writes one word every `stride` bytes.
    fn touch_every(&self, stride: usize) {
        for off in (0..self.len).step_by(stride) {
            // SAFETY: `off` is inside the mapping, which is writable when touched.
            unsafe {
                self.ptr
                    .as_ptr()
                    .add(off)
                    .cast::<u64>()
                    .write_volatile(off as u64)
            };
        }
    }

    fn read_u64(&self, off: usize) -> u64 {
        // SAFETY: Callers pass word-aligned offsets inside the mapping.
        unsafe { self.ptr.as_ptr().add(off).cast::<u64>().read_volatile() }
    }

    fn write_u64(&self, off: usize, value: u64) {
        // SAFETY: As for `read_u64`; the mapping is writable.
        unsafe {
            self.ptr
                .as_ptr()
                .add(off)
                .cast::<u64>()
                .write_volatile(value)
        }
    }
}

fn map_file(
    path: &str,
    addr: *mut c_void,
    len: usize,
    prot: ProtFlags,
    flags: MapFlags,
    offset: u64,
) -> Res<*mut c_void> {
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
fn minor_faults() -> u64 {
    // SAFETY: `getrusage` writes the struct it is given.
    let mut usage = unsafe { std::mem::zeroed::<libc::rusage>() };
    // SAFETY: `usage` is a valid, writable `rusage`.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    usage.ru_minflt as u64
}

/// Transparent huge pages off for this process while it exists, for [`Source::Anon`] without
/// them.
struct ThpOff(bool);

impl ThpOff {
    fn new(source: Source<'_>) -> Self {
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
fn page_table_kib() -> u64 {
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

#[derive(Serialize, Clone)]
struct Stat {
    name: String,
    unit: &'static str,
    median: f64,
    min: f64,
    max: f64,
    runs: usize,
}

impl Stat {
    fn of(name: &str, unit: &'static str, mut samples: Vec<f64>) -> Self {
        samples.sort_by(f64::total_cmp);
        let n = samples.len();
        let median = match n {
            0 => f64::NAN,
            _ if n % 2 == 1 => samples[n / 2],
            _ => (samples[n / 2 - 1] + samples[n / 2]) / 2.0,
        };
        Stat {
            name: name.to_string(),
            unit,
            median,
            min: samples.first().copied().unwrap_or(f64::NAN),
            max: samples.last().copied().unwrap_or(f64::NAN),
            runs: n,
        }
    }
}

/// The measurements so far, printed as they come.
#[derive(Default)]
struct Report {
    stats: Vec<Stat>,
}

impl Report {
    fn add(&mut self, stat: Stat) {
        println!(
            "@@bench {}",
            serde_json::to_string(&stat).unwrap_or_default()
        );
        self.stats.push(stat);
    }

    fn get(&self, name: &str) -> Option<&Stat> {
        self.stats.iter().find(|s| s.name == name)
    }

    /// `num / den` of two measurements: median over median, and the spread from the extremes.
    fn ratio(&mut self, name: &str, num: &str, den: &str) {
        let (Some(a), Some(b)) = (self.get(num).cloned(), self.get(den).cloned()) else {
            println!("# ratio {name}: {num} or {den} missing");
            return;
        };
        let stat = Stat {
            name: name.to_string(),
            unit: "ratio",
            median: a.median / b.median,
            min: a.min / b.max,
            max: a.max / b.min,
            runs: a.runs.min(b.runs),
        };
        self.add(stat);
    }

    /// A measurement reported as a ratio of its own (a count, say).
    fn alias(&mut self, name: &str, of: &str) {
        if let Some(stat) = self.get(of).cloned() {
            self.add(Stat {
                name: name.to_string(),
                ..stat
            });
        }
    }

    fn markdown(&self) {
        println!("@@md | measurement | unit | median | min | max | runs |");
        println!("@@md | --- | --- | ---: | ---: | ---: | ---: |");
        for s in &self.stats {
            println!(
                "@@md | `{}` | {} | {} | {} | {} | {} |",
                s.name,
                s.unit,
                fmt_num(s.median),
                fmt_num(s.min),
                fmt_num(s.max),
                s.runs
            );
        }
    }
}

fn fmt_num(x: f64) -> String {
    if x.is_nan() {
        "–".into()
    } else if x.abs() >= 1000.0 || x == x.trunc() {
        format!("{x:.0}")
    } else if x.abs() >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.3}")
    }
}

/// A stopwatch on the time-stamp counter: the guest's `clock_gettime` ticks in jiffies (4 ms)
/// under the test kernel, too coarse for a single `insmod`; QEMU's TSC counts host time.
#[derive(Clone, Copy)]
struct Clock {
    /// TSC ticks per second, measured against `Instant` once.
    hz: f64,
}

impl Clock {
    fn calibrate() -> Self {
        let (instant, start) = (Instant::now(), tsc());
        std::thread::sleep(Duration::from_millis(500));
        let ticks = tsc().wrapping_sub(start) as f64;
        Clock {
            hz: ticks / instant.elapsed().as_secs_f64(),
        }
    }

    fn start(self) -> Stopwatch {
        Stopwatch {
            clock: self,
            start: tsc(),
        }
    }
}

struct Stopwatch {
    clock: Clock,
    start: u64,
}

impl Stopwatch {
    fn secs(&self) -> f64 {
        tsc().wrapping_sub(self.start) as f64 / self.clock.hz
    }
}

fn tsc() -> u64 {
    // SAFETY: `rdtsc` has no preconditions on x86-64.
    unsafe { core::arch::x86_64::_rdtsc() }
}

fn run(cmd: &str, args: &[String]) -> Res<()> {
    let status = Command::new(cmd)
        .args(args)
        .status()
        .map_err(|e| format!("{cmd}: {e}"))?;
    status
        .success()
        .then_some(())
        .ok_or_else(|| format!("{cmd} {}: {status}", args.join(" ")))
}

fn insmod(module: &str, base: u64, size: u64) -> Res<()> {
    run(
        "insmod",
        &[
            module.to_string(),
            format!("base={base:#x}"),
            format!("size={size:#x}"),
        ],
    )
}

fn rmmod() -> Res<()> {
    run("rmmod", &["carveout".to_string()])
}

/// `insmod` time of each of `sizes` (name, bytes), in ms. The sizes alternate, run by run,
/// so drift on a busy host hits them alike; `runs` is at least 11 (a load is quick).
fn bench_load(
    report: &mut Report,
    clock: Clock,
    module: &str,
    base: u64,
    sizes: &[(&str, u64)],
    runs: usize,
) -> Res<()> {
    let mut samples = vec![Vec::new(); sizes.len()];
    for _ in 0..runs.max(11) {
        for (&(_, size), samples) in sizes.iter().zip(&mut samples) {
            let watch = clock.start();
            insmod(module, base, size)?;
            samples.push(watch.secs() * 1e3);
            rmmod()?;
        }
    }
    for (&(name, _), samples) in sizes.iter().zip(samples) {
        report.add(Stat::of(name, "ms", samples));
    }
    Ok(())
}

/// `runs` times: a mapping of `len` bytes made, written once every `stride` bytes and
/// unmapped; the wall times and the minor faults of each.
fn time_map_and_write(
    clock: Clock,
    source: Source<'_>,
    len: usize,
    stride: usize,
    runs: usize,
) -> Res<(Vec<f64>, Vec<f64>)> {
    let mut times = Vec::new();
    let mut faults = Vec::new();
    let _thp = ThpOff::new(source);
    for _ in 0..runs {
        let faults_before = minor_faults();
        let watch = clock.start();
        let map = Map::new(source, 0, len, ProtFlags::READ | ProtFlags::WRITE)?;
        map.touch_every(stride);
        times.push(watch.secs());
        faults.push((minor_faults() - faults_before) as f64);
        drop(map);
    }
    Ok((times, faults))
}

/// mmap plus a write to every page: wall time and minor faults.
fn bench_map_touch(
    report: &mut Report,
    clock: Clock,
    name: &str,
    source: Source<'_>,
    len: usize,
    runs: usize,
) -> Res<()> {
    let (times, faults) = time_map_and_write(clock, source, len, PAGE, runs)?;
    report.add(Stat::of(&format!("map_touch_{name}"), "s", times));
    report.add(Stat::of(&format!("faults_{name}"), "faults", faults));
    Ok(())
}

/// The first mapping after a load against the later ones: `reloads` times the module is
/// loaded, the 1 GiB region mapped with 4 KiB entries and written once per page `1 + STEADY`
/// times, and the module unloaded. Per load, the first time over the median of the later
/// ones is one sample of `first_map_over_steady`. The first load's first mapping is also the
/// first write to these guest pages since the guest booted (QEMU backs guest RAM with host
/// memory on first write, unless the bench guest preallocates it):
/// `first_map_since_boot_over_steady`. Leaves the module unloaded.
fn bench_first_map(
    report: &mut Report,
    clock: Clock,
    dev: &str,
    module: &str,
    base: u64,
    size: u64,
    reloads: usize,
) -> Res<()> {
    const STEADY: usize = 3;
    let len = usize::try_from(size).map_err(|e| e.to_string())?;
    let small = Source::Carveout { dev, huge: false };
    let (mut firsts, mut ratios) = (Vec::new(), Vec::new());
    for load in 0..reloads {
        insmod(module, base, size)?;
        let times = time_map_and_write(clock, small, len, PAGE, 1 + STEADY);
        rmmod()?;
        let times = times?.0;
        let steady = Stat::of("steady", "s", times[1..].to_vec()).median;
        println!(
            "# load {load}: first map + touch {:.3} s, then {:.3?} s",
            times[0],
            &times[1..]
        );
        firsts.push(times[0]);
        ratios.push(times[0] / steady);
    }
    if let Some(&since_boot) = ratios.first() {
        report.add(Stat::of(
            "first_map_since_boot_over_steady",
            "ratio",
            vec![since_boot],
        ));
    }
    report.add(Stat::of("map_touch_first_after_load", "s", firsts));
    report.add(Stat::of("first_map_over_steady", "ratio", ratios));
    Ok(())
}

/// Page-table setup alone: `mmap` and one write per 2 MiB, so that every entry exists (the
/// 4 KiB path fills all its PTEs in `mmap`; the 2 MiB path one PMD entry per fault), without
/// the per-page first touch that dominates `map_touch_*` under TCG.
fn bench_map_setup(
    report: &mut Report,
    clock: Clock,
    name: &str,
    source: Source<'_>,
    len: usize,
    runs: usize,
) -> Res<()> {
    let (times, _) = time_map_and_write(clock, source, len, HUGE, runs)?;
    report.add(Stat::of(&format!("map_setup_{name}"), "s", times));
    Ok(())
}

/// Repeats `pass` (which moves `bytes` bytes) for at least 0.2 s; MiB/s.
fn rate(clock: Clock, bytes: usize, mut pass: impl FnMut()) -> f64 {
    let watch = clock.start();
    let mut passes = 0u32;
    while passes == 0 || watch.secs() < 0.2 {
        pass();
        passes += 1;
    }
    f64::from(passes) * bytes as f64 / f64::from(1u32 << 20) / watch.secs()
}

/// Sequential read, write and copy bandwidth through a mapping of `len` bytes, in MiB/s.
fn bench_bandwidth(
    report: &mut Report,
    clock: Clock,
    name: &str,
    source: Source<'_>,
    len: usize,
    runs: usize,
) -> Res<()> {
    let map = Map::new(source, 0, len, ProtFlags::READ | ProtFlags::WRITE)?;
    map.touch();
    let (mut read, mut write, mut copy) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs {
        read.push(rate(clock, len, || {
            let mut sum = 0u64;
            for off in (0..len).step_by(8) {
                sum = sum.wrapping_add(map.read_u64(off));
            }
            black_box(sum);
        }));
        write.push(rate(clock, len, || {
            for off in (0..len).step_by(8) {
                map.write_u64(off, off as u64);
            }
        }));
        // Copy the first half over the second: the bytes copied count.
        let half = len / 2;
        copy.push(rate(clock, half, || {
            // SAFETY: Both halves lie inside the mapping and do not overlap; no Rust
            // reference to the mapping exists.
            unsafe { ptr::copy_nonoverlapping(map.ptr.as_ptr(), map.ptr.as_ptr().add(half), half) };
            black_box(map.read_u64(half));
        }));
    }
    report.add(Stat::of(&format!("read_{name}"), "MiB/s", read));
    report.add(Stat::of(&format!("write_{name}"), "MiB/s", write));
    report.add(Stat::of(&format!("copy_{name}"), "MiB/s", copy));
    Ok(())
}

/// The 1 MiB buffers of the file-I/O bench, at two placements in one 4 MiB allocation: one
/// page past a 2 MiB boundary (the one the ratios use), and on the boundary.
///
/// On the boundary the buffer's page numbers repeat those of the kernel's mapping of the
/// region (1 GiB aligned) modulo QEMU's software TLB, which is direct-mapped: under TCG each
/// copy's loads and stores then evict each other's entries and `read()` runs several times
/// slower. A CPU's own TLB is set-associative; any page-aligned buffer off a 2 MiB boundary
/// (measured: 1, 3, 16 and 300 pages past it) runs at the same speed.
struct FileIoBuffers {
    space: Vec<u8>,
    off_boundary: usize,
    on_boundary: usize,
}

impl FileIoBuffers {
    const LEN: usize = 1 << 20;

    fn new() -> Self {
        let space = vec![0x5au8; 4 * Self::LEN];
        let addr = space.as_ptr() as usize;
        let on_boundary = addr.next_multiple_of(2 * Self::LEN) - addr;
        Self {
            space,
            off_boundary: on_boundary + 4096,
            on_boundary,
        }
    }

    fn get(&mut self, on_boundary: bool) -> &mut [u8] {
        let at = if on_boundary {
            self.on_boundary
        } else {
            self.off_boundary
        };
        &mut self.space[at..at + Self::LEN]
    }
}

/// One run of [`bench_file_io`] with `buf`: `read()`, `memcpy` from the mapping, `write()`,
/// `memcpy` to the mapping, in MiB/s.
fn file_io_rates(clock: Clock, region: &Region, map: &Map, buf: &mut [u8]) -> [f64; 4] {
    let (len, chunk) = (map.len, buf.len());
    let whole = |f: &mut dyn FnMut(usize)| (0..len).step_by(chunk).for_each(f);
    let read = rate(clock, len, || {
        let _ = rustix::fs::seek(region, rustix::fs::SeekFrom::Start(0));
        whole(&mut |_| {
            let n = rustix::io::read(region, &mut *buf).unwrap_or(0);
            assert_eq!(n, chunk, "read() of 1 MiB");
        });
        black_box(&buf);
    });
    let read_copy = rate(clock, len, || {
        whole(&mut |off| {
            // SAFETY: `off + chunk <= len`, inside the mapping; `buf` is `chunk` bytes and
            // does not overlap it; no Rust reference to the mapping exists.
            unsafe { ptr::copy_nonoverlapping(map.ptr.as_ptr().add(off), buf.as_mut_ptr(), chunk) };
        });
        black_box(&buf);
    });
    let write = rate(clock, len, || {
        let _ = rustix::fs::seek(region, rustix::fs::SeekFrom::Start(0));
        whole(&mut |_| {
            let n = rustix::io::write(region, buf).unwrap_or(0);
            assert_eq!(n, chunk, "write() of 1 MiB");
        });
    });
    let write_copy = rate(clock, len, || {
        whole(&mut |off| {
            // SAFETY: As above, the other way.
            unsafe { ptr::copy_nonoverlapping(buf.as_ptr(), map.ptr.as_ptr().add(off), chunk) };
        });
        black_box(map.read_u64(0));
    });
    [read, read_copy, write, write_copy]
}

/// `read()`/`write()` of the whole region in 1 MiB calls, and `memcpy` of the same bytes from
/// and to a 2 MiB mapping of it, into and out of the same 1 MiB buffer, in MiB/s; then the
/// ratios (file interface over memcpy: 1 when the copy is the whole cost). The buffer lies one
/// page past a 2 MiB boundary; the `_2m_aligned` rows repeat the ratios with it on the
/// boundary, where TCG's direct-mapped TLB makes the kernel's copy thrash
/// ([`FileIoBuffers`]).
fn bench_file_io(report: &mut Report, clock: Clock, dev: &str, runs: usize) -> Res<()> {
    const CHUNK: usize = FileIoBuffers::LEN;
    let region = Region::open(dev).map_err(|e| e.to_string())?;
    let len = region.info().map_err(|e| e.to_string())?.size as usize / CHUNK * CHUNK;
    let map = Map::new(
        Source::Carveout { dev, huge: true },
        0,
        len,
        ProtFlags::READ | ProtFlags::WRITE,
    )?;
    map.touch();
    let mut buffers = FileIoBuffers::new();
    let names = [
        "read_syscall",
        "read_mmap_copy",
        "write_syscall",
        "write_mmap_copy",
    ];
    for aligned in [false, true] {
        let mut samples: [Vec<f64>; 4] = Default::default();
        for _ in 0..runs {
            let rates = file_io_rates(clock, &region, &map, buffers.get(aligned));
            for (sample, rate) in samples.iter_mut().zip(rates) {
                sample.push(rate);
            }
        }
        let suffix = if aligned { "_2m_aligned" } else { "" };
        for (name, sample) in names.iter().zip(samples) {
            report.add(Stat::of(&format!("{name}{suffix}"), "MiB/s", sample));
        }
        for (ratio, over) in [
            ("read_syscall", "read_mmap_copy"),
            ("write_syscall", "write_mmap_copy"),
        ] {
            report.ratio(
                &format!("{ratio}_over_mmap_copy{suffix}"),
                &format!("{ratio}{suffix}"),
                &format!("{over}{suffix}"),
            );
        }
    }
    drop(map);
    let buf = buffers.get(false);

    // The control: the same calls on a tmpfs file (the page cache's copy_to_user and
    // copy_from_user, no carveout), up to 64 MiB of it, with the same buffer. Against it, the
    // ratio says what the driver's call path costs beyond the kernel's own user copy. The
    // guest CPU's fast-string features say which instruction that copy is (TCG_CPU in
    // scripts/common.sh turns them off: TCG runs `rep movsb` a byte at a time).
    let flags = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let flags = flags.lines().find(|l| l.starts_with("flags")).unwrap_or("");
    let has = |f: &str| flags.split_whitespace().any(|w| w == f);
    println!("# CPU: erms {}, fsrm {}", has("erms"), has("fsrm"));
    let tmp_len = len.min(64 << 20);
    let path = "/tmp/carveout-bench-file-io";
    let file = fs::File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .map_err(|e| format!("{path}: {e}"))?;
    let _ = fs::remove_file(path);
    for off in (0..tmp_len).step_by(CHUNK) {
        rustix::io::pwrite(&file, &*buf, off as u64).map_err(|e| format!("{path}: {e}"))?;
    }
    let (mut tmp_read, mut tmp_write) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        tmp_read.push(rate(clock, tmp_len, || {
            for off in (0..tmp_len).step_by(CHUNK) {
                let n = rustix::io::pread(&file, &mut *buf, off as u64).unwrap_or(0);
                assert_eq!(n, CHUNK, "pread() of 1 MiB of tmpfs");
            }
            black_box(&buf);
        }));
        tmp_write.push(rate(clock, tmp_len, || {
            for off in (0..tmp_len).step_by(CHUNK) {
                let n = rustix::io::pwrite(&file, &*buf, off as u64).unwrap_or(0);
                assert_eq!(n, CHUNK, "pwrite() of 1 MiB of tmpfs");
            }
        }));
    }
    report.add(Stat::of("read_syscall_tmpfs", "MiB/s", tmp_read));
    report.add(Stat::of("write_syscall_tmpfs", "MiB/s", tmp_write));
    report.ratio(
        "read_syscall_over_tmpfs",
        "read_syscall",
        "read_syscall_tmpfs",
    );
    report.ratio(
        "write_syscall_over_tmpfs",
        "write_syscall",
        "write_syscall_tmpfs",
    );
    Ok(())
}

/// Random 8-byte reads over a mapping of `len` bytes (TLB bound), in million reads per second.
fn bench_random(
    report: &mut Report,
    clock: Clock,
    name: &str,
    source: Source<'_>,
    len: usize,
    runs: usize,
) -> Res<()> {
    let map = Map::new(source, 0, len, ProtFlags::READ | ProtFlags::WRITE)?;
    map.touch();
    let reads = 2_000_000usize;
    let words = (len / 8) as u64;
    let mut samples = Vec::new();
    for run in 0..runs {
        let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ run as u64;
        let mut sum = 0u64;
        let watch = clock.start();
        for _ in 0..reads {
            // xorshift64
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            sum = sum.wrapping_add(map.read_u64(((x % words) * 8) as usize));
        }
        black_box(sum);
        samples.push(reads as f64 / 1e6 / watch.secs());
    }
    report.add(Stat::of(&format!("random_{name}"), "Mreads/s", samples));
    Ok(())
}

fn bench_all(dev: &str, module: &str, base: u64, size: u64, runs: usize) -> Res<()> {
    let gib = 1u64 << 30;
    if size < gib {
        return Err(format!(
            "the reservation is {size:#x} bytes; the bench needs 1 GiB"
        ));
    }
    let len = gib as usize;
    let mut report = Report::default();
    let _ = rmmod();
    let clock = Clock::calibrate();
    println!("# TSC: {:.0} MHz", clock.hz / 1e6);

    println!("# load: insmod of 4 MiB and 1 GiB regions");
    let sizes = [("insmod_4m", 4 << 20), ("insmod_1g", gib)];
    bench_load(&mut report, clock, module, base, &sizes, runs)?;

    println!("# the first map after a load, {} reloads", runs.max(5));
    bench_first_map(&mut report, clock, dev, module, base, gib, runs.max(5))?;

    insmod(module, base, gib)?;
    let huge = Source::Carveout { dev, huge: true };
    let small = Source::Carveout { dev, huge: false };
    let result = (|| -> Res<()> {
        println!("# map and first touch of 1 GiB");
        bench_map_touch(&mut report, clock, "carveout_4k", small, len, runs)?;
        bench_map_touch(&mut report, clock, "carveout_2m", huge, len, runs)?;
        bench_map_setup(&mut report, clock, "carveout_4k", small, len, runs)?;
        bench_map_setup(&mut report, clock, "carveout_2m", huge, len, runs)?;
        bench_map_touch(
            &mut report,
            clock,
            "devmem",
            Source::DevMem { phys: base },
            len,
            runs,
        )?;
        bench_map_touch(
            &mut report,
            clock,
            "anon",
            Source::Anon { thp: false },
            len,
            runs,
        )?;
        bench_map_touch(
            &mut report,
            clock,
            "anon_thp",
            Source::Anon { thp: true },
            len,
            runs,
        )?;

        println!("# sequential bandwidth, 32 MiB");
        let bw = 32 << 20;
        let region = Region::open(dev).map_err(|e| e.to_string())?;
        for (attr, name) in [(Attr::Wb, "wb"), (Attr::Wc, "wc"), (Attr::Uc, "uc")] {
            region.set_attr(attr).map_err(|e| e.to_string())?;
            bench_bandwidth(&mut report, clock, name, huge, bw, runs)?;
        }
        region.set_attr(Attr::Wb).map_err(|e| e.to_string())?;
        bench_bandwidth(
            &mut report,
            clock,
            "anon",
            Source::Anon { thp: true },
            bw,
            runs,
        )?;

        println!("# read()/write() of the whole region in 1 MiB calls against memcpy");
        bench_file_io(&mut report, clock, dev, runs)?;
        println!("# CARVEOUT_SYNC of 64 MiB, write-back");
        bench_sync(&mut report, clock, &region, 64 << 20, runs)?;

        println!("# random 8-byte reads over 1 GiB");
        bench_random(&mut report, clock, "carveout_4k", small, len, runs)?;
        bench_random(&mut report, clock, "carveout_2m", huge, len, runs)?;
        bench_random(
            &mut report,
            clock,
            "anon_thp",
            Source::Anon { thp: true },
            len,
            runs,
        )?;
        Ok(())
    })();
    let _ = rmmod();
    result?;

    report.ratio("load_1g_over_4m", "insmod_1g", "insmod_4m");
    report.alias("touch_faults_carveout", "faults_carveout_2m");
    report.alias("touch_faults_anon", "faults_anon");
    report.ratio(
        "map_touch_anon_over_carveout",
        "map_touch_anon",
        "map_touch_carveout_2m",
    );
    report.ratio(
        "map_touch_4k_over_2m",
        "map_touch_carveout_4k",
        "map_touch_carveout_2m",
    );
    report.ratio(
        "map_setup_4k_over_2m",
        "map_setup_carveout_4k",
        "map_setup_carveout_2m",
    );
    report.ratio("wb_read_over_anon", "read_wb", "read_anon");
    report.ratio("wb_write_over_anon", "write_wb", "write_anon");
    report.ratio(
        "random_2m_over_4k",
        "random_carveout_2m",
        "random_carveout_4k",
    );
    report.markdown();
    Ok(())
}

/// `sync_<MiB>m_ms`: CARVEOUT_SYNC (for the device) of the first `len` bytes of the region, a
/// write-back region. TCG does not model caches: this is the cost of the flush instructions
/// (and of mapping each 2 MiB piece into the kernel), not of memory traffic.
fn bench_sync(
    report: &mut Report,
    clock: Clock,
    region: &Region,
    len: u64,
    runs: usize,
) -> Res<()> {
    region.set_attr(Attr::Wb).map_err(|e| e.to_string())?;
    let mut samples = Vec::new();
    for _ in 0..runs {
        let watch = clock.start();
        region
            .sync(0, len, carveout::abi::SYNC_FOR_DEVICE)
            .map_err(|e| format!("CARVEOUT_SYNC of {len:#x} bytes: {e}"))?;
        samples.push(watch.secs() * 1e3);
    }
    report.add(Stat::of(&format!("sync_{}m_ms", len >> 20), "ms", samples));
    Ok(())
}

/// A size as the measurement names write it: `16m`, `1g`.
fn size_name(size: u64) -> String {
    if size >= 1 << 30 && size % (1 << 30) == 0 {
        format!("{}g", size >> 30)
    } else {
        format!("{}m", size >> 20)
    }
}

/// `iommu_attach_<size>`: CARVEOUT_ATTACH time of regions of `size`, `size / 4`, `size / 16`
/// and `size / 64` at `base`, for `device` (stating `reach_bits` if given), each after the
/// IOVA of the one before is free again. A size the DMA API cannot map (the device's DMA mask
/// leaves too little I/O address space: a driverless PCI device has 32 bits, less the PCI
/// windows) is reported and left out; the ratio is then of the largest size that could be
/// mapped over the one 16 times smaller.
fn bench_iommu_attach(
    dev: &str,
    module: &str,
    (base, size): (u64, u64),
    device: &str,
    reach_bits: Option<u32>,
    runs: usize,
) -> Res<()> {
    let mut report = Report::default();
    let _ = rmmod();
    let clock = Clock::calibrate();
    let iommu = carveout::iommu::PciIommu::read(device).map_err(|e| e.to_string())?;
    println!("# {device}: IOMMU {:?}", iommu.domain);
    for cap in fs::read_dir("/sys/class/iommu")
        .into_iter()
        .flatten()
        .flatten()
    {
        if let Ok(text) = fs::read_to_string(cap.path().join("intel-iommu/cap")) {
            let c = u64::from_str_radix(text.trim(), 16).unwrap_or(0);
            println!(
                "# {}: large pages 2 MiB {}, 1 GiB {}",
                cap.file_name().to_string_lossy(),
                (c >> 34) & 1,
                (c >> 35) & 1
            );
        }
    }
    let sizes = [size, size / 4, size / 16, size / 64];
    let mut measured = Vec::new();
    for &len in &sizes {
        let name = format!("iommu_attach_{}", size_name(len));
        insmod(module, base, len)?;
        let result = (|| -> Res<Vec<f64>> {
            let region = Region::open(dev).map_err(|e| e.to_string())?;
            let mut samples = Vec::new();
            for _ in 0..runs.max(11) {
                let watch = clock.start();
                let reply = region.attach(device, reach_bits);
                let secs = watch.secs();
                let reply = reply.map_err(|e| {
                    format!("CARVEOUT_ATTACH of {} for {device}: {e}", size_name(len))
                })?;
                samples.push(secs * 1e3);
                region
                    .detach(device)
                    .map_err(|e| format!("CARVEOUT_DETACH: {e}"))?;
                // A DMA-FQ domain frees the IOVA from its flush queue (within 10 ms), not at
                // unmap: until then a second region as large may find no room.
                std::thread::sleep(Duration::from_millis(50));
                if samples.len() == 1 {
                    println!(
                        "# {}: bus address {:#x} for physical {base:#x}",
                        size_name(len),
                        reply.bus_addr
                    );
                }
            }
            Ok(samples)
        })();
        rmmod()?;
        match result {
            Ok(samples) => {
                report.add(Stat::of(&name, "ms", samples));
                measured.push(len);
            }
            Err(why) => println!("# {name}: not measured: {why}"),
        }
    }
    if let Some(&big) = measured.first() {
        if measured.contains(&(big / 16)) {
            let name = format!(
                "iommu_attach_{}_over_{}",
                size_name(big),
                size_name(big / 16)
            );
            report.ratio(
                &name,
                &format!("iommu_attach_{}", size_name(big)),
                &format!("iommu_attach_{}", size_name(big / 16)),
            );
        }
    }
    report.markdown();
    Ok(())
}

/// The `huge_mapping_used` (`used`) or `huge_mapping_matches` check, on the whole region.
fn huge_check(dev: &str, used: bool) -> Res<bool> {
    let region = Region::open(dev).map_err(|e| e.to_string())?;
    let info = region.info().map_err(|e| e.to_string())?;
    drop(region);
    let len = usize::try_from(info.size).map_err(|e| e.to_string())?;
    let blocks = len / HUGE;
    let rw = ProtFlags::READ | ProtFlags::WRITE;
    let mut ok = true;

    if used {
        // One fault per 2 MiB and no 4 KiB page tables for it; the 4 KiB path for contrast.
        return huge_used(dev, len, info.base);
    }

    // Matches: a pattern written through 4 KiB entries reads back through 2 MiB ones and the
    // other way round, including a window whose ends are not 2 MiB aligned.
    let small = Map::new(Source::Carveout { dev, huge: false }, 0, len, rw)?;
    let huge = Map::new(Source::Carveout { dev, huge: true }, 0, len, rw)?;
    for (seed, writer, reader) in [(0x4b1u64, &small, &huge), (0x2b2, &huge, &small)] {
        for off in (0..len).step_by(8) {
            writer.write_u64(off, pattern::word(seed, (off / 8) as u64));
        }
        let bad = (0..len)
            .step_by(8)
            .filter(|&off| reader.read_u64(off) != pattern::word(seed, (off / 8) as u64))
            .count();
        if bad != 0 {
            println!("# seed {seed:#x}: {bad} words differ between the mappings");
            ok = false;
        }
    }
    drop((small, huge));
    if blocks >= 4 {
        // A window from 1 MiB to 1 MiB before the end: 4 KiB entries at both ends.
        let edge = HUGE / 2;
        let window = Map::new(
            Source::Carveout { dev, huge: true },
            edge as u64,
            len - 2 * edge,
            rw,
        )?;
        let bad = (0..window.len)
            .step_by(8)
            .filter(|&off| window.read_u64(off) != pattern::word(0x2b2, ((edge + off) / 8) as u64))
            .count();
        if bad != 0 {
            println!("# the window at {edge:#x}: {bad} words differ");
            ok = false;
        }
    }
    match carveout::devmem::verify(info.base, info.size, 0x2b2) {
        Ok(Ok(())) => {}
        Ok(Err(mismatch)) => {
            println!("# /dev/mem differs: {mismatch:?}");
            ok = false;
        }
        Err(e) => return Err(format!("/dev/mem: {e}")),
    }
    Ok(ok)
}

fn huge_used(dev: &str, len: usize, base: u64) -> Res<bool> {
    let blocks = len / HUGE;
    let rw = ProtFlags::READ | ProtFlags::WRITE;
    let mut ok = true;
    for placement in ["2 MiB aligned", "4 KiB offset", "placed by the kernel"] {
        let faults = minor_faults();
        let ptes = page_table_kib();
        let map = match placement {
            "2 MiB aligned" => Map::new(Source::Carveout { dev, huge: true }, 0, len, rw)?,
            "4 KiB offset" => Map::new(Source::Carveout { dev, huge: false }, 0, len, rw)?,
            _ => Map::kernel_placed(dev, len, rw)?,
        };
        map.touch();
        let faults = minor_faults() - faults;
        let ptes = page_table_kib().saturating_sub(ptes);
        let addr = map.ptr.as_ptr() as usize;
        println!(
            "# {placement} mapping of {len:#x} bytes at {addr:#x}: {faults} faults, page tables +{ptes} KiB"
        );
        if placement == "4 KiB offset" {
            continue;
        }
        if (addr as u64 ^ base) % HUGE as u64 != 0 {
            println!(
                "# the address is not congruent with the physical base {base:#x} modulo 2 MiB"
            );
            ok = false;
        }
        if faults as usize > blocks + 4 || ptes as usize >= len / HUGE * 4 {
            println!("# expected about {blocks} faults and no 4 KiB page tables");
            ok = false;
        }
    }

    Ok(ok)
}

fn hold(dev: &str, seconds: u64, read_only: bool) -> Res<()> {
    let region = Region::open(dev).map_err(|e| e.to_string())?;
    let len = usize::try_from(region.info().map_err(|e| e.to_string())?.size)
        .map_err(|e| e.to_string())?;
    drop(region);
    let prot = if read_only {
        ProtFlags::READ
    } else {
        ProtFlags::READ | ProtFlags::WRITE
    };
    let map = Map::new(Source::Carveout { dev, huge: true }, 0, len, prot)?;
    let mut sum = 0u64;
    for off in (0..len).step_by(PAGE) {
        sum = sum.wrapping_add(map.read_u64(off));
    }
    black_box(sum);
    println!("holding {len:#x} bytes, 2 MiB aligned");
    std::thread::sleep(Duration::from_secs(seconds));
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Cmd::All {
            module,
            base,
            size,
            runs,
        } => bench_all(&cli.dev, &module, base, size, runs).map(|()| true),
        Cmd::IommuAttach {
            module,
            base,
            size,
            device,
            reach_bits,
            runs,
        } => bench_iommu_attach(&cli.dev, &module, (base, size), &device, reach_bits, runs)
            .map(|()| true),
        Cmd::Zerocopy {
            module,
            base,
            pmem,
            runs,
        } => zerocopy::bench_zerocopy(&cli.dev, &module, base, &pmem, runs).map(|()| true),
        Cmd::HugeUsed => huge_check(&cli.dev, true),
        Cmd::HugeMatches => huge_check(&cli.dev, false),
        Cmd::Hold { seconds, read_only } => hold(&cli.dev, seconds, read_only).map(|()| true),
        Cmd::FileIo { runs } => {
            let mut report = Report::default();
            bench_file_io(&mut report, Clock::calibrate(), &cli.dev, runs).map(|()| {
                report.markdown();
                true
            })
        }
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(err) => {
            eprintln!("carveout-bench: {err}");
            ExitCode::from(2)
        }
    }
}
