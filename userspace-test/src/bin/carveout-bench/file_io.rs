//! `read()`/`write()` of the node against `memcpy` through a mapping, and against a tmpfs file.

use std::{fs, hint::black_box, ptr};

use carveout::Region;

use crate::{
    bench::Bench,
    clock::{rate, Clock},
    maps::{Map, Source},
};

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
pub fn bench_file_io(b: &mut Bench, dev: &str) -> Result<(), String> {
    const CHUNK: usize = FileIoBuffers::LEN;
    let region = Region::open(dev).map_err(|e| e.to_string())?;
    let len = region.info().map_err(|e| e.to_string())?.size as usize / CHUNK * CHUNK;
    let map = Map::touched(Source::Carveout { dev, huge: true }, len)?;
    let mut buffers = FileIoBuffers::new();
    let names = [
        "read_syscall",
        "read_mmap_copy",
        "write_syscall",
        "write_mmap_copy",
    ];
    for aligned in [false, true] {
        let mut samples: [Vec<f64>; 4] = Default::default();
        for _ in 0..b.runs {
            let rates = file_io_rates(b.clock, &region, &map, buffers.get(aligned));
            for (sample, rate) in samples.iter_mut().zip(rates) {
                sample.push(rate);
            }
        }
        let suffix = if aligned { "_2m_aligned" } else { "" };
        for (name, sample) in names.iter().zip(samples) {
            b.add(&format!("{name}{suffix}"), "MiB/s", sample);
        }
        for (ratio, over) in [
            ("read_syscall", "read_mmap_copy"),
            ("write_syscall", "write_mmap_copy"),
        ] {
            b.report.ratio(
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
    // scripts/common.sh turns them off: TCG b.runs `rep movsb` a byte at a time).
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
    for _ in 0..b.runs {
        tmp_read.push(rate(b.clock, tmp_len, || {
            for off in (0..tmp_len).step_by(CHUNK) {
                let n = rustix::io::pread(&file, &mut *buf, off as u64).unwrap_or(0);
                assert_eq!(n, CHUNK, "pread() of 1 MiB of tmpfs");
            }
            black_box(&buf);
        }));
        tmp_write.push(rate(b.clock, tmp_len, || {
            for off in (0..tmp_len).step_by(CHUNK) {
                let n = rustix::io::pwrite(&file, &*buf, off as u64).unwrap_or(0);
                assert_eq!(n, CHUNK, "pwrite() of 1 MiB of tmpfs");
            }
        }));
    }
    b.add("read_syscall_tmpfs", "MiB/s", tmp_read);
    b.add("write_syscall_tmpfs", "MiB/s", tmp_write);
    b.report.ratio(
        "read_syscall_over_tmpfs",
        "read_syscall",
        "read_syscall_tmpfs",
    );
    b.report.ratio(
        "write_syscall_over_tmpfs",
        "write_syscall",
        "write_syscall_tmpfs",
    );
    Ok(())
}
