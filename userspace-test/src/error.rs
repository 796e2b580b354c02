//! Typed errors: what was refused, on which region, and the errno, in words.

use std::{fmt, io, path::PathBuf};

use rustix::io::Errno;

use crate::{attr::Attr, region::Access};

/// The operation a region refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Open(Access),
    GetInfo,
    GetAttr,
    SetAttr(Attr),
    Map {
        offset: u64,
        len: u64,
        access: Access,
    },
    /// `pread` through the region's file interface.
    Read {
        offset: u64,
        len: u64,
    },
    /// `pwrite` through the region's file interface.
    Write {
        offset: u64,
        len: u64,
    },
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Open(Access::Read) => write!(f, "opening for reading"),
            Op::Open(Access::ReadWrite) => write!(f, "opening for reading and writing"),
            Op::GetInfo => write!(f, "CARVEOUT_GET_INFO"),
            Op::GetAttr => write!(f, "CARVEOUT_GET_ATTR"),
            Op::SetAttr(attr) => write!(f, "CARVEOUT_SET_ATTR to {attr}"),
            Op::Map {
                offset,
                len,
                access,
            } => write!(
                f,
                "mmap of {len:#x} bytes at offset {offset:#x} ({})",
                match access {
                    Access::Read => "read-only",
                    Access::ReadWrite => "read-write",
                }
            ),
            Op::Read { offset, len } => {
                write!(f, "read of {len:#x} bytes at offset {offset:#x}")
            }
            Op::Write { offset, len } => {
                write!(f, "write of {len:#x} bytes at offset {offset:#x}")
            }
        }
    }
}

/// Why a carveout operation failed.
#[derive(Debug)]
pub enum Error {
    /// The kernel refused `op` on the region at `path` with `errno`.
    Refused { op: Op, path: PathBuf, errno: Errno },
    /// The driver speaks another ABI version.
    AbiVersion {
        path: PathBuf,
        driver: u32,
        ours: u32,
    },
    /// A request this library refuses before asking the kernel (a range outside the region).
    Invalid { path: PathBuf, why: String },
    /// Writing or creating a configfs item was refused.
    Configfs {
        path: PathBuf,
        action: String,
        errno: Errno,
    },
    /// A facility is missing (configfs, carveout itself); says what to do.
    Unavailable { why: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The errno the kernel answered, if it was the kernel that refused.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            Error::Refused { errno, .. } | Error::Configfs { errno, .. } => Some(*errno),
            _ => None,
        }
    }
}

/// The errno's symbolic name, for messages people search for.
pub fn errno_name(errno: Errno) -> String {
    let known = [
        (Errno::PERM, "EPERM"),
        (Errno::NOENT, "ENOENT"),
        (Errno::IO, "EIO"),
        (Errno::NXIO, "ENXIO"),
        (Errno::BADF, "EBADF"),
        (Errno::AGAIN, "EAGAIN"),
        (Errno::INTR, "EINTR"),
        (Errno::NOMEM, "ENOMEM"),
        (Errno::FAULT, "EFAULT"),
        (Errno::ACCESS, "EACCES"),
        (Errno::BUSY, "EBUSY"),
        (Errno::EXIST, "EEXIST"),
        (Errno::NODEV, "ENODEV"),
        (Errno::NOTDIR, "ENOTDIR"),
        (Errno::ISDIR, "EISDIR"),
        (Errno::INVAL, "EINVAL"),
        (Errno::NOTTY, "ENOTTY"),
        (Errno::ROFS, "EROFS"),
        (Errno::NOSPC, "ENOSPC"),
        (Errno::PROTO, "EPROTO"),
        (Errno::OVERFLOW, "EOVERFLOW"),
        (Errno::OPNOTSUPP, "EOPNOTSUPP"),
        (Errno::TIMEDOUT, "ETIMEDOUT"),
        (Errno::RANGE, "ERANGE"),
    ];
    known
        .iter()
        .find(|(e, _)| *e == errno)
        .map(|(_, n)| n.to_string())
        .unwrap_or_else(|| format!("errno {}", errno.raw_os_error()))
}

/// What `errno` means for `op`, from `include/carveout.h` and the driver's documentation.
fn meaning(op: &Op, errno: Errno) -> Option<&'static str> {
    Some(match (op, errno) {
        (Op::Open(_), Errno::NOENT) => {
            "no such region node (is carveout loaded? see `carveoutctl list`)"
        }
        (Op::Open(_), Errno::ACCESS | Errno::PERM) => {
            "permission denied (region nodes are root-only unless their mode or gid says otherwise)"
        }
        (Op::Open(_), Errno::NODEV | Errno::NXIO) => "the region has gone away",
        (Op::GetInfo, Errno::NOTTY) => "not a carveout device",
        (Op::GetAttr | Op::SetAttr(_), Errno::NOTTY) => {
            "this carveout driver has no attribute ioctls (it predates CARVEOUT_GET_ATTR/SET_ATTR)"
        }
        (Op::SetAttr(_), Errno::INVAL) => {
            "no, several or unknown bits in flags, or non-zero base, len, __pad0 or owner"
        }
        (Op::SetAttr(_), Errno::BUSY) => {
            "the region is mapped; changing the memory type under a mapping would alias two \
             memory types for the same page"
        }
        (Op::SetAttr(_), Errno::OPNOTSUPP) => "the CPU cannot give that attribute",
        (Op::SetAttr(_), Errno::BADF) => "the device is open read-only",
        (Op::Map { .. }, Errno::NXIO) => "the window does not lie inside the region",
        (Op::Map { .. }, Errno::INVAL) => "a private mapping, or an offset + length that overflows",
        (Op::Map { .. }, Errno::OVERFLOW) => "offset + length wraps",
        (Op::Map { .. }, Errno::BUSY) => {
            "another mapping of the range (say /dev/mem opened O_SYNC) holds another memory \
             type; the driver never maps with a type other than the region's (see dmesg)"
        }
        (Op::Map { .. }, Errno::ACCESS) => {
            "a write-protected (wp) region refuses writable mappings, or the device is open \
             read-only"
        }
        (Op::Write { .. }, Errno::NOSPC) => "the offset is at or past the end of the region",
        (Op::Write { .. }, Errno::PERM) => "a write-protected (wp) region refuses writes",
        (Op::Write { .. }, Errno::BADF) => "the device is open read-only",
        (Op::Read { .. } | Op::Write { .. }, Errno::INVAL) => "a negative or overflowing offset",
        (Op::Read { .. } | Op::Write { .. }, Errno::INTR) => "interrupted before any byte moved",
        _ => return None,
    })
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Refused { op, path, errno } => {
                write!(
                    f,
                    "{}: {op} refused with {} ({})",
                    path.display(),
                    errno_name(*errno),
                    io::Error::from(*errno)
                )?;
                if let Some(why) = meaning(op, *errno) {
                    write!(f, ": {why}")?;
                }
                Ok(())
            }
            Error::AbiVersion { path, driver, ours } => write!(
                f,
                "{}: the driver speaks carveout ABI {driver}, this program {ours}",
                path.display()
            ),
            Error::Invalid { path, why } => write!(f, "{}: {why}", path.display()),
            Error::Configfs {
                path,
                action,
                errno,
            } => {
                write!(
                    f,
                    "{}: {action} refused with {} ({})",
                    path.display(),
                    errno_name(*errno),
                    io::Error::from(*errno)
                )?;
                let why = match *errno {
                    Errno::BUSY => {
                        Some("the range is already claimed (by another region, pmem or a driver)")
                    }
                    Errno::INVAL => Some(
                        "the driver rejected the region: not page aligned, overlapping System RAM \
                         (not reserved by memmap=?), not reserved memory at all (a hole, a \
                         device's registers, ACPI tables; allow_unlisted opts in), or a bad \
                         value (see dmesg)",
                    ),
                    Errno::ACCESS | Errno::PERM => Some("permission denied: run as root"),
                    Errno::EXIST => Some("it exists already"),
                    _ => None,
                };
                if let Some(why) = why {
                    write!(f, ": {why}")?;
                }
                Ok(())
            }
            Error::Unavailable { why } => f.write_str(why),
        }
    }
}

impl std::error::Error for Error {}

impl From<Error> for io::Error {
    fn from(err: Error) -> Self {
        match err.errno() {
            Some(errno) => io::Error::new(io::Error::from(errno).kind(), err.to_string()),
            None => io::Error::other(err.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_name_the_operation_the_errno_and_the_reason() {
        let err = Error::Refused {
            op: Op::SetAttr(Attr::Uc),
            path: "/dev/carveout0".into(),
            errno: Errno::BUSY,
        };
        let text = err.to_string();
        assert!(
            text.starts_with("/dev/carveout0: CARVEOUT_SET_ATTR to uc refused with EBUSY"),
            "{text}"
        );
        assert!(text.contains("the region is mapped"), "{text}");
        assert_eq!(err.errno(), Some(Errno::BUSY));
        let io: io::Error = err.into();
        assert_eq!(io.kind(), io::ErrorKind::ResourceBusy);

        let map = Error::Refused {
            op: Op::Map {
                offset: 0x4000000,
                len: 4096,
                access: Access::ReadWrite,
            },
            path: "/dev/carveout0".into(),
            errno: Errno::NXIO,
        };
        assert!(map
            .to_string()
            .contains("mmap of 0x1000 bytes at offset 0x4000000 (read-write) refused with ENXIO"));
        assert!(map.to_string().contains("does not lie inside the region"));
        let notty = Error::Refused {
            op: Op::GetAttr,
            path: "/dev/x".into(),
            errno: Errno::NOTTY,
        };
        assert!(notty.to_string().contains("no attribute ioctls"));
        assert_eq!(errno_name(Errno::from_raw_os_error(4095)), "errno 4095");
    }
}
