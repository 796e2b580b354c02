//! Reads physical memory through `/dev/mem`: the view from outside the driver.

use std::{fs::File, io, os::unix::fs::FileExt};

use crate::pattern::{self, Mismatch, Tally};

/// Reads `buf.len()` bytes of physical memory at `phys`.
pub fn read(phys: u64, buf: &mut [u8]) -> io::Result<()> {
    File::open("/dev/mem")?
        .read_exact_at(buf, phys)
        .map_err(|err| io::Error::new(err.kind(), format!("/dev/mem at {phys:#x}: {err}")))
}

/// Checks `len` bytes of physical memory at `phys` against the pattern for `seed` (word 0 of
/// the pattern at `phys`); mismatch offsets are relative to `phys`.
pub fn verify(phys: u64, len: u64, seed: u64) -> io::Result<Result<(), Mismatch>> {
    const CHUNK: u64 = 1 << 16;
    let mem = File::open("/dev/mem")?;
    let mut buf = vec![0u8; CHUNK as usize];
    let mut tally = Tally::default();
    let mut off = 0;
    while off < len {
        let n = CHUNK.min(len - off) as usize;
        mem.read_exact_at(&mut buf[..n], phys + off)
            .map_err(|err| {
                io::Error::new(err.kind(), format!("/dev/mem at {:#x}: {err}", phys + off))
            })?;
        for (i, chunk) in buf[..n].chunks_exact(8).enumerate() {
            let word = u64::from_ne_bytes(chunk.try_into().expect("8-byte chunk"));
            let index = off / 8 + i as u64;
            tally.word(index * 8, pattern::word(seed, index), word);
        }
        off += n as u64;
    }
    Ok(tally.finish())
}
