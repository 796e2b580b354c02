//! The region as a file (issue #13): `read`, `write`, `pread`/`pwrite`, `readv`/`writev` and
//! `lseek` on the node, each checked from outside the file interface, through a mapping of
//! the region or through `/dev/mem` at its physical address.
//!
//! Here: the subcommands and what their checks share; one module a family of checks:
//! [`read_write`] (the data), [`bounds`] (the end of the file, seeks and refused writes),
//! [`killed_read`] (a read ended by SIGKILL), [`splice`] (sendfile() and splice()).

mod bounds;
mod killed_read;
mod read_write;
mod splice;

use std::io;

use carveout::{abi, devmem, Access, Region};
use clap::Subcommand;
use rustix::{
    fs::{seek, SeekFrom},
    io::Errno,
};

use crate::{fail, Failed};

#[derive(Subcommand)]
pub enum FileCheck {
    /// Fill through a mapping with SEED's pattern; read(), readv() and preadv() (odd
    /// lengths, several vectors) give the same bytes as the mapping and /dev/mem.
    Read {
        #[arg(long, value_parser = carveout::parse_u64)]
        seed: u64,
    },
    /// Write SEED's pattern with write() and writev() (odd lengths); the mapping and /dev/mem
    /// show it.
    Write {
        #[arg(long, value_parser = carveout::parse_u64)]
        seed: u64,
    },
    /// pread()/pwrite() at scattered offsets land where the mapping and /dev/mem say, and leave
    /// the file position alone.
    Offsets,
    /// A read at or past the end returns 0.
    Eof,
    /// A read across the end returns the bytes up to it, the region's last bytes.
    AcrossEnd,
    /// A write at or past the end is ENOSPC, one across it writes up to the end only, a
    /// negative offset is EINVAL; nothing else changes.
    WritePastEnd,
    /// lseek(SEEK_END) is the size; SEEK_END/SEEK_CUR land where reads show.
    SeekEnd,
    /// lseek with a whence other than SEEK_SET/CUR/END, or to a negative offset, is EINVAL,
    /// and leaves the position where it was.
    BadWhence,
    /// A write is refused with ERRNO (EPERM for a WP region, EBADF with --read-only) and the
    /// contents stay as they were (SEED's pattern, through /dev/mem).
    WriteRefused {
        #[arg(long)]
        errno: String,
        #[arg(long, value_parser = carveout::parse_u64)]
        seed: u64,
        /// Open the node read-only.
        #[arg(long)]
        read_only: bool,
    },
    /// A read of the whole region into a shared tmpfs mapping, killed (SIGKILL) as soon as its
    /// first bytes arrive: it stops part way, what it copied is the region's start, and the
    /// region is unchanged (SEED's pattern).
    ReadKilled {
        #[arg(long, value_parser = carveout::parse_u64)]
        seed: u64,
        /// The tmpfs file the child reads into.
        #[arg(long, default_value = "/tmp/read-killed.bin")]
        sink: String,
    },
    /// (The child of read-killed.) read() the whole region into a shared mapping of SINK.
    ReadInto {
        #[arg(long)]
        sink: String,
    },
    /// sendfile() from the node at an odd offset (SEED's pattern, filled through a mapping)
    /// into the tmpfs file SINK: the file holds what /dev/mem shows there, and the node's
    /// position stays where it was.
    Sendfile {
        #[arg(long, value_parser = carveout::parse_u64)]
        seed: u64,
        #[arg(long, default_value = "/tmp/sendfile.out")]
        sink: String,
    },
    /// splice() from a pipe into the node at an odd offset, in pieces, of SEED's pattern over
    /// another one: /dev/mem shows it there, and the bytes either side are unchanged.
    SpliceIn {
        #[arg(long, value_parser = carveout::parse_u64)]
        seed: u64,
    },
}

const PAGE: u64 = 4096;

fn sys<T>(what: &str, result: rustix::io::Result<T>) -> Result<T, Failed> {
    result.map_err(|errno| fail(format!("{what}: {errno}")))
}

/// `got` must equal `want`; else the first differing offset (from `at`) is the reason.
fn same(what: &str, at: u64, got: &[u8], want: &[u8]) -> Result<(), Failed> {
    if got.len() != want.len() {
        return Err(fail(format!(
            "{what}: {} bytes, expected {}",
            got.len(),
            want.len()
        )));
    }
    match got.iter().zip(want).position(|(a, b)| a != b) {
        None => Ok(()),
        Some(i) => Err(fail(format!(
            "{what}: differs at offset {:#x}: {:#04x}, expected {:#04x}",
            at + i as u64,
            got[i],
            want[i]
        ))),
    }
}

/// `len` bytes of the region at `offset`, read through /dev/mem.
fn via_devmem(info: &abi::Info, offset: u64, len: usize) -> Result<Vec<u8>, Failed> {
    let mut buf = vec![0u8; len];
    devmem::read(info.base + offset, &mut buf).map_err(|err| fail(err.to_string()))?;
    Ok(buf)
}

fn expect_errno<T>(what: &str, result: rustix::io::Result<T>, want: Errno) -> Result<(), Failed> {
    match result {
        Ok(_) => Err(fail(format!("{what}: succeeded, expected {want}"))),
        Err(errno) if errno == want => {
            println!("# {what}: {errno}");
            Ok(())
        }
        Err(errno) => Err(fail(format!("{what}: {errno}, expected {want}"))),
    }
}

fn position(region: &Region) -> Result<u64, Failed> {
    sys("lseek(0, SEEK_CUR)", seek(region, SeekFrom::Current(0)))
}

/// The whole region holds `seed`'s pattern through /dev/mem; else `what` and how many words
/// `differ` (the verb: "differ", "changed") from which offset are the reason.
fn devmem_holds(info: &abi::Info, seed: u64, what: &str, differ: &str) -> Result<(), Failed> {
    devmem::verify(info.base, info.size, seed)
        .map_err(|e| fail(e.to_string()))?
        .map_err(|m| {
            fail(format!(
                "{what}: {} words {differ} from {:#x}",
                m.words, m.offset
            ))
        })
}

pub fn run(dev: &str, check: &FileCheck) -> io::Result<Result<(), Failed>> {
    let access = match check {
        FileCheck::WriteRefused { read_only, .. } if *read_only => Access::Read,
        FileCheck::ReadInto { .. } => Access::Read,
        _ => Access::ReadWrite,
    };
    let region = Region::open_with(dev, access)?;
    let info = region.info()?;
    Ok(match check {
        FileCheck::Read { seed } => read_write::check_read(&region, &info, *seed),
        FileCheck::Write { seed } => read_write::check_write(&region, &info, *seed),
        FileCheck::Offsets => read_write::check_offsets(&region, &info),
        FileCheck::Eof => bounds::check_eof(&region, &info),
        FileCheck::AcrossEnd => bounds::check_across_end(&region, &info),
        FileCheck::WritePastEnd => bounds::check_write_past_end(&region, &info),
        FileCheck::SeekEnd => bounds::check_seek_end(&region, &info),
        FileCheck::BadWhence => bounds::check_bad_whence(&region, &info),
        FileCheck::WriteRefused { errno, seed, .. } => {
            bounds::check_write_refused(&region, &info, errno, *seed)
        }
        FileCheck::ReadKilled { seed, sink } => {
            killed_read::check_read_killed(dev, &region, &info, *seed, sink)
        }
        FileCheck::ReadInto { sink } => killed_read::read_into(&region, &info, sink),
        FileCheck::Sendfile { seed, sink } => splice::check_sendfile(&region, &info, *seed, sink),
        FileCheck::SpliceIn { seed } => splice::check_splice_in(&region, &info, *seed),
    })
}
