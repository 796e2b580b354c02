//! Raw copies between a region and an ordinary file through the region's file interface
//! (`pread`/`pwrite` of `/dev/carveout*`, see `include/carveout.h`): what `carveoutctl save`,
//! `restore` and `dump --raw` do. The bytes move in [`CHUNK`]-sized calls; each copy is
//! summed with SHA-256, so a saved file can be checked with `sha256sum`.

use std::io::{self, Read, Write};

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::{Error, Region};

/// Bytes per `read`/`write` call on the region: 1 MiB.
pub const CHUNK: usize = 1 << 20;

/// What a save or a restore did: the `--json` summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// `"save"` or `"restore"`.
    pub op: &'static str,
    /// Bytes copied.
    pub bytes: u64,
    /// Offset into the region of the first byte.
    pub offset: u64,
    /// SHA-256 of the bytes copied, in hex.
    pub checksum: String,
    /// The file saved to or restored from (`-` for standard output).
    pub file: String,
    /// The region's node.
    pub region: String,
}

/// Why a transfer stopped: the region refused, or the file did.
#[derive(Debug)]
pub enum TransferError {
    Region(Error),
    File { path: String, err: io::Error },
}

impl std::fmt::Display for TransferError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TransferError::Region(err) => err.fmt(f),
            TransferError::File { path, err } => write!(f, "{path}: {err}"),
        }
    }
}

impl std::error::Error for TransferError {}

impl From<Error> for TransferError {
    fn from(err: Error) -> Self {
        TransferError::Region(err)
    }
}

fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn file_error(path: &str) -> impl FnOnce(io::Error) -> TransferError + '_ {
    move |err| TransferError::File {
        path: path.to_string(),
        err,
    }
}

/// Copies `len` bytes of `region` from `offset` to `out` (named `file` in messages), calling
/// `progress` with the bytes done after each chunk. The range must lie inside the region
/// (the caller checks it); a region that ends early is an error.
pub fn save(
    region: &Region,
    offset: u64,
    len: u64,
    out: &mut dyn Write,
    file: &str,
    mut progress: impl FnMut(u64),
) -> std::result::Result<Summary, TransferError> {
    let mut buf = vec![0u8; CHUNK.min(len.max(1) as usize)];
    let mut hash = Sha256::new();
    let mut done = 0u64;
    while done < len {
        let want = buf.len().min((len - done) as usize);
        let n = region.read_at(offset + done, &mut buf[..want])?;
        if n == 0 {
            return Err(Error::Invalid {
                path: region.path().to_path_buf(),
                why: format!(
                    "read gave end of file at offset {:#x}, before the {len:#x} bytes asked for",
                    offset + done
                ),
            }
            .into());
        }
        hash.update(&buf[..n]);
        out.write_all(&buf[..n]).map_err(file_error(file))?;
        done += n as u64;
        progress(done);
    }
    out.flush().map_err(file_error(file))?;
    Ok(Summary {
        op: "save",
        bytes: done,
        offset,
        checksum: hex(&hash.finalize()),
        file: file.to_string(),
        region: region.path().display().to_string(),
    })
}

/// Reads from `src` until `buf` is full or `src` ends; the bytes read.
fn read_full(src: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match src.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    Ok(filled)
}

/// Copies all of `src` (named `file`) into `region` from `offset`, calling `progress` with the
/// bytes done after each chunk. `file_len` is the file's size if known (a regular file):
/// one larger than the `space` left in the region from `offset` is refused before a byte is
/// written; a stream is refused once it turns out longer (after filling the space).
pub fn restore(
    region: &Region,
    offset: u64,
    space: u64,
    src: &mut dyn Read,
    file_len: Option<u64>,
    file: &str,
    mut progress: impl FnMut(u64),
) -> std::result::Result<Summary, TransferError> {
    let too_large = |len: &str| Error::Invalid {
        path: region.path().to_path_buf(),
        why: format!(
            "{file} is {len} bytes, larger than the {space} bytes the region has from offset \
             {offset:#x}: refused"
        ),
    };
    if let Some(len) = file_len.filter(|len| *len > space) {
        return Err(too_large(&len.to_string()).into());
    }
    let mut buf = vec![0u8; CHUNK];
    let mut hash = Sha256::new();
    let mut done = 0u64;
    loop {
        let n = read_full(src, &mut buf).map_err(file_error(file))?;
        if n == 0 {
            break;
        }
        if n as u64 > space - done {
            return Err(too_large("more than that").into());
        }
        let mut written = 0;
        while written < n {
            written += region.write_at(offset + done + written as u64, &buf[written..n])?;
        }
        hash.update(&buf[..n]);
        done += n as u64;
        progress(done);
    }
    Ok(Summary {
        op: "restore",
        bytes: done,
        offset,
        checksum: hex(&hash.finalize()),
        file: file.to_string(),
        region: region.path().display().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_hex_of_known_input() {
        let mut hash = Sha256::new();
        hash.update(b"abc");
        assert_eq!(
            hex(&hash.finalize()),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    /// A scratch file standing in for a region node: the copies only use pread/pwrite.
    fn scratch(name: &str, bytes: &[u8]) -> (std::path::PathBuf, Region) {
        let path = std::env::temp_dir().join(format!("carveout-{}-{name}", std::process::id()));
        std::fs::write(&path, bytes).unwrap();
        let region = Region::open(&path).unwrap();
        (path, region)
    }

    fn sha256(bytes: &[u8]) -> String {
        hex(&Sha256::digest(bytes))
    }

    #[test]
    fn save_copies_the_range_and_sums_it() {
        let bytes: Vec<u8> = (0..(3 << 20) + 5)
            .map(|i: u32| (i * 7 + i / 4096) as u8)
            .collect();
        let (path, region) = scratch("save", &bytes);
        let (offset, len) = (1000u64, (2 << 20) + 7);
        let mut out = Vec::new();
        let mut seen = Vec::new();
        let summary = save(&region, offset, len, &mut out, "out.bin", |n| seen.push(n)).unwrap();
        let want = &bytes[1000..1000 + len as usize];
        assert_eq!(out, want);
        assert_eq!(summary.bytes, len);
        assert_eq!(summary.offset, offset);
        assert_eq!(summary.checksum, sha256(want));
        assert_eq!(summary.op, "save");
        assert_eq!(seen, vec![1 << 20, 2 << 20, len]);
        // Past the end of the "region": an error, not a short file.
        let mut out = Vec::new();
        let err = save(&region, 3 << 20, 64, &mut out, "out.bin", |_| {}).unwrap_err();
        assert!(err.to_string().contains("end of file"), "{err}");
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn restore_writes_at_the_offset_and_refuses_too_large() {
        let (path, region) = scratch("restore", &[0u8; 8192]);
        let data = b"a known image".repeat(100);
        let mut src = &data[..];
        let summary = restore(
            &region,
            4096,
            4096,
            &mut src,
            Some(data.len() as u64),
            "img",
            |_| {},
        )
        .unwrap();
        assert_eq!((summary.op, summary.bytes), ("restore", data.len() as u64));
        assert_eq!(summary.checksum, sha256(&data));
        let now = std::fs::read(&path).unwrap();
        assert_eq!(&now[4096..4096 + data.len()], &data[..]);
        assert!(now[..4096].iter().all(|b| *b == 0));
        // Larger than the space: refused before a byte is written.
        let big = vec![0xffu8; 4097];
        let mut src = &big[..];
        let err = restore(&region, 4096, 4096, &mut src, Some(4097), "big", |_| {}).unwrap_err();
        assert!(
            err.to_string().contains("larger than the 4096 bytes"),
            "{err}"
        );
        // A stream found too long once the space is full.
        let mut src = &big[..];
        assert!(restore(&region, 4096, 4096, &mut src, None, "-", |_| {}).is_err());
        assert_eq!(
            std::fs::read(&path).unwrap()[4096..4096 + data.len()],
            data[..]
        );
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn read_full_fills_from_short_reads() {
        struct Trickle(Vec<u8>);
        impl Read for Trickle {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0.is_empty() || buf.is_empty() {
                    return Ok(0);
                }
                buf[0] = self.0.remove(0);
                Ok(1)
            }
        }
        let mut src = Trickle(b"carveout".to_vec());
        let mut buf = [0u8; 5];
        assert_eq!(read_full(&mut src, &mut buf).unwrap(), 5);
        assert_eq!(&buf, b"carve");
        assert_eq!(read_full(&mut src, &mut buf).unwrap(), 3);
        assert_eq!(&buf[..3], b"out");
        assert_eq!(read_full(&mut src, &mut buf).unwrap(), 0);
    }
}
