//! An open region node: its ioctls (info, cache attribute, DMA attachment, cache
//! maintenance) and its file interface. Its mappings ([`Region::map`] and the rest) are in
//! `mapping.rs`.

use std::{
    os::fd::{AsFd, BorrowedFd, OwnedFd},
    path::{Path, PathBuf},
};

use rustix::{
    fs::{fstat, major, minor, open, Mode, OFlags},
    io::Errno,
    ioctl::{ioctl, Getter, Setter, Updater},
};
use serde::Serialize;

use crate::{
    abi,
    attr::Attr,
    error::{Error, Op, Result},
    nodes::resolve,
};

/// How a region or a window of it is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    Read,
    ReadWrite,
}

/// An open `/dev/carveout*`.
#[derive(Debug)]
pub struct Region {
    fd: OwnedFd,
    path: PathBuf,
    access: Access,
}

impl Region {
    /// Opens the region device at `path` for reading and writing.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path, Access::ReadWrite)
    }

    /// Opens a region by path or by name (see [`resolve`]).
    pub fn open_name(spec: &str, access: Access) -> Result<Self> {
        Self::open_with(resolve(spec), access)
    }

    /// Opens the region device at `path` with `access`.
    pub fn open_with(path: impl AsRef<Path>, access: Access) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let flags = match access {
            Access::Read => OFlags::RDONLY,
            Access::ReadWrite => OFlags::RDWR,
        };
        match open(&path, flags | OFlags::CLOEXEC, Mode::empty()) {
            Ok(fd) => Ok(Self { fd, path, access }),
            Err(errno) => Err(Error::Refused {
                op: Op::Open(access),
                path,
                errno,
            }),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The size of a pages-mode region's folios in bytes (sysfs `pages_align`): every mapping
    /// of such a region maps whole folios, so its offset and length are multiples of it. 0 for
    /// a region without pages, or a driver that has no such attribute.
    pub fn pages_align(&self) -> u64 {
        self.sysfs_number("pages_align").unwrap_or(0)
    }

    /// How many of a pages-mode region's pages are mapped or pinned now (sysfs `pages_in_use`;
    /// the pages of every folio in use); `None` if the driver does not say.
    pub fn pages_in_use(&self) -> Option<u64> {
        self.sysfs_number("pages_in_use")
    }

    /// The number in the region's sysfs attribute `name` (`/sys/dev/char/MAJ:MIN/name`).
    fn sysfs_number(&self, name: &str) -> Option<u64> {
        let st = fstat(&self.fd).ok()?;
        let path = format!(
            "/sys/dev/char/{}:{}/{name}",
            major(st.st_rdev),
            minor(st.st_rdev)
        );
        std::fs::read_to_string(path).ok()?.trim().parse().ok()
    }

    /// The refusal of `op` on this region with `errno`.
    pub(crate) fn refused(&self, op: Op, errno: Errno) -> Error {
        Error::Refused {
            op,
            path: self.path.clone(),
            errno,
        }
    }

    /// What `CARVEOUT_GET_INFO` reports.
    pub fn info(&self) -> Result<abi::Info> {
        // SAFETY: GET_INFO writes exactly one `abi::Info`, the type `Getter` hands the kernel.
        let info = unsafe { ioctl(&self.fd, Getter::<{ abi::GET_INFO }, abi::Info>::new()) }
            .map_err(|errno| self.refused(Op::GetInfo, errno))?;
        if info.abi_version != abi::ABI_VERSION {
            return Err(Error::AbiVersion {
                path: self.path.clone(),
                driver: info.abi_version,
                ours: abi::ABI_VERSION,
            });
        }
        Ok(info)
    }

    /// The region as a memory-range descriptor (`CARVEOUT_GET_ATTR`).
    pub fn range_desc(&self) -> Result<abi::RangeDesc> {
        // SAFETY: GET_ATTR writes exactly one `abi::RangeDesc`, the type `Getter` hands it.
        unsafe { ioctl(&self.fd, Getter::<{ abi::GET_ATTR }, abi::RangeDesc>::new()) }
            .map_err(|errno| self.refused(Op::GetAttr, errno))
    }

    /// The region's cache attribute, from `CARVEOUT_GET_ATTR`.
    pub fn attr(&self) -> Result<Attr> {
        let desc = self.range_desc()?;
        Attr::from_flags(desc.flags).ok_or_else(|| Error::Invalid {
            path: self.path.clone(),
            why: format!(
                "CARVEOUT_GET_ATTR reported flags {:#x}: not exactly one attribute bit",
                desc.flags
            ),
        })
    }

    /// Changes the region's cache attribute (`CARVEOUT_SET_ATTR`). Needs the region open for
    /// writing and no mapping of it anywhere.
    pub fn set_attr(&self, attr: Attr) -> Result<()> {
        self.set_attr_flags(attr.bit())
            .map_err(|errno| self.refused(Op::SetAttr(attr), errno))
    }

    /// `CARVEOUT_SET_ATTR` with raw flags (for tests of what the driver refuses); every other
    /// field zero, as the ABI asks.
    pub fn set_attr_flags(&self, flags: u32) -> std::result::Result<(), Errno> {
        self.set_attr_desc(abi::RangeDesc {
            flags,
            ..abi::RangeDesc::default()
        })
    }

    /// `CARVEOUT_SET_ATTR` with a whole descriptor as given, non-zero `base`, `len`, `pad0` or
    /// `owner` included (for tests of what the driver refuses).
    pub fn set_attr_desc(&self, desc: abi::RangeDesc) -> std::result::Result<(), Errno> {
        // SAFETY: SET_ATTR reads exactly one `abi::RangeDesc`, the type `Setter` hands it.
        unsafe {
            ioctl(
                &self.fd,
                Setter::<{ abi::SET_ATTR }, abi::RangeDesc>::new(desc),
            )
        }
    }

    /// Gives the PCI device `device` (`0000:00:03.0`) DMA access to the whole region
    /// (`CARVEOUT_ATTACH`; needs the region open for writing and CAP_SYS_ADMIN). The answer
    /// holds the address the device must use for the region's base and, in `flags`, whether
    /// an IOMMU translates it. `reach_bits`, for a device with no driver: the address bits it
    /// decodes (12 to 64), instead of its default DMA mask's 32.
    pub fn attach(
        &self,
        device: &str,
        reach_bits: Option<u32>,
    ) -> std::result::Result<abi::Attach, Errno> {
        self.attach_call::<{ abi::ATTACH }>(device, reach_bits.unwrap_or(0))
    }

    /// Takes `device`'s access back (`CARVEOUT_DETACH`).
    pub fn detach(&self, device: &str) -> std::result::Result<(), Errno> {
        self.attach_call::<{ abi::DETACH }>(device, 0).map(|_| ())
    }

    /// The address an attached `device` must use (`CARVEOUT_BUS_ADDR`).
    pub fn bus_addr(&self, device: &str) -> std::result::Result<abi::Attach, Errno> {
        self.attach_call::<{ abi::BUS_ADDR }>(device, 0)
    }

    fn attach_call<const OPCODE: rustix::ioctl::Opcode>(
        &self,
        device: &str,
        reach_bits: u32,
    ) -> std::result::Result<abi::Attach, Errno> {
        let mut req = abi::Attach {
            reach_bits,
            ..Default::default()
        };
        let name = device.as_bytes();
        if name.len() >= req.device.len() || name.contains(&0) {
            return Err(Errno::INVAL);
        }
        req.device[..name.len()].copy_from_slice(name);
        // SAFETY: ATTACH and BUS_ADDR read and write one `abi::Attach`, DETACH reads one: the
        // type `Updater` hands the kernel.
        unsafe { ioctl(&self.fd, Updater::<OPCODE, abi::Attach>::new(&mut req)) }?;
        Ok(req)
    }

    /// Cache maintenance of `[offset, offset + len)` for a device that does not snoop
    /// (`CARVEOUT_SYNC`): `direction` is `abi::SYNC_FOR_DEVICE` or `abi::SYNC_FOR_CPU`.
    pub fn sync(&self, offset: u64, len: u64, direction: u32) -> std::result::Result<(), Errno> {
        self.sync_request(abi::Sync {
            offset,
            len,
            direction,
            pad0: 0,
        })
    }

    /// `CARVEOUT_SYNC` with the request as given (any direction, any `__pad0`): for tests of
    /// what the driver refuses.
    pub fn sync_request(&self, req: abi::Sync) -> std::result::Result<(), Errno> {
        // SAFETY: SYNC reads exactly one `abi::Sync`, the type `Setter` hands it.
        unsafe { ioctl(&self.fd, Setter::<{ abi::SYNC }, abi::Sync>::new(req)) }
    }

    /// The access the region was opened with.
    pub fn access(&self) -> Access {
        self.access
    }

    /// `pread` of the region's file interface: copies the bytes at `offset` into `buf` and
    /// returns how many; fewer than asked when the region ends first, 0 at or past its end.
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize> {
        let len = buf.len() as u64;
        loop {
            match rustix::io::pread(&self.fd, &mut *buf, offset) {
                Err(Errno::INTR) => continue,
                Err(errno) => return Err(self.refused(Op::Read { offset, len }, errno)),
                Ok(n) => return Ok(n),
            }
        }
    }

    /// `pwrite` of the region's file interface: copies `buf` to `offset` and returns how many
    /// bytes it wrote; fewer than given when the region ends first (`ENOSPC` at its end).
    pub fn write_at(&self, offset: u64, buf: &[u8]) -> Result<usize> {
        loop {
            match rustix::io::pwrite(&self.fd, buf, offset) {
                Err(Errno::INTR) => continue,
                Err(errno) => {
                    let op = Op::Write {
                        offset,
                        len: buf.len() as u64,
                    };
                    return Err(self.refused(op, errno));
                }
                Ok(n) => return Ok(n),
            }
        }
    }
}

impl AsFd for Region {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use rustix::io::Errno;

    use super::*;

    #[test]
    fn opening_a_missing_node_is_a_typed_refusal() {
        let err = Region::open_name("/nonexistent/carveout9", Access::Read).expect_err("missing");
        assert_eq!(err.errno(), Some(Errno::NOENT));
        assert!(
            err.to_string()
                .contains("opening for reading refused with ENOENT"),
            "{err}"
        );
    }
}
