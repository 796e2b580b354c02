use std::{
    ffi::c_void,
    fmt, fs,
    ops::Range,
    os::fd::{AsFd, BorrowedFd, OwnedFd},
    path::{Path, PathBuf},
    ptr::NonNull,
    str::FromStr,
};

use rustix::{
    fs::{open, Mode, OFlags},
    io::Errno,
    ioctl::{ioctl, Getter, Setter, Updater},
    mm::{mmap, mmap_anonymous, munmap, MapFlags, ProtFlags},
};
use serde::Serialize;

use crate::{
    abi,
    error::{Error, Op, Result},
    pattern::{self, Mismatch, Tally},
};

const PAGE: u64 = 4096;
const HUGE: u64 = 2 << 20;

/// Where the user address of a mapping goes, against the physical address it maps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Placement {
    /// Where the kernel chooses (`mmap(NULL, ...)`): the driver's `get_unmapped_area` keeps
    /// it congruent with the physical address modulo 2 MiB.
    Kernel,
    /// Congruent with the physical address modulo 2 MiB: every whole 2 MiB block can be
    /// mapped with a 2 MiB entry.
    Huge,
    /// 4 KiB off that congruence: no 2 MiB entry is possible, only 4 KiB ones.
    Small,
}

/// How a region or a window of it is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    Read,
    ReadWrite,
}

/// A region's cache attribute (`CARVEOUT_MR_*`), named as the configfs `attr` file names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Attr {
    /// Uncacheable.
    Uc,
    /// Write-combining.
    Wc,
    /// Write-through.
    Wt,
    /// Write-back: ordinary cached memory (the default).
    Wb,
    /// Write-protect: cached, mappings read-only.
    Wp,
}

impl Attr {
    pub const ALL: [Attr; 5] = [Attr::Uc, Attr::Wc, Attr::Wt, Attr::Wb, Attr::Wp];

    pub fn bit(self) -> u32 {
        match self {
            Attr::Uc => abi::MR_UNCACHEABLE,
            Attr::Wc => abi::MR_WRITECOMBINE,
            Attr::Wt => abi::MR_WRITETHROUGH,
            Attr::Wb => abi::MR_WRITEBACK,
            Attr::Wp => abi::MR_WRITEPROTECT,
        }
    }

    /// The attribute of `flags`, if exactly one attribute bit is set.
    pub fn from_flags(flags: u32) -> Option<Attr> {
        let bits = flags & abi::MR_ATTR_MASK;
        Attr::ALL.into_iter().find(|a| a.bit() == bits)
    }

    pub fn name(self) -> &'static str {
        match self {
            Attr::Uc => "uc",
            Attr::Wc => "wc",
            Attr::Wt => "wt",
            Attr::Wb => "wb",
            Attr::Wp => "wp",
        }
    }
}

impl fmt::Display for Attr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Attr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Attr::ALL
            .into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| format!("{s:?} is not an attribute: use uc, wc, wt, wb or wp"))
    }
}

/// The names of the bits set in `flags` (`wb fixbase fixlen active`), unknown bits in hex.
pub fn flag_names(flags: u32) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    let mut rest = flags;
    for attr in Attr::ALL {
        if flags & attr.bit() != 0 {
            names.push(attr.name().into());
            rest &= !attr.bit();
        }
    }
    for (bit, name) in [
        (abi::MR_FIXBASE, "fixbase"),
        (abi::MR_FIXLEN, "fixlen"),
        (abi::MR_UNLISTED, "unlisted"),
        (abi::MR_PAGES, "pages"),
        (abi::MR_ACTIVE, "active"),
        (abi::MR_BUSY, "busy"),
    ] {
        if flags & bit != 0 {
            names.push(name.into());
            rest &= !bit;
        }
    }
    if rest != 0 {
        names.push(format!("{rest:#x}"));
    }
    names
}

/// Every region node: `/dev/carveout<N>` (the module parameter's region) and
/// `/dev/carveout/<name>` (regions made through configfs), sorted.
pub fn discover() -> Vec<PathBuf> {
    discover_in(Path::new("/dev"))
}

/// [`discover`] under another `/dev`.
pub fn discover_in(dev: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let is_numbered = |name: &str| {
        name.strip_prefix("carveout")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    };
    if let Ok(dir) = fs::read_dir(dev) {
        for e in dir.flatten() {
            if e.file_name().to_str().is_some_and(is_numbered) {
                found.push(e.path());
            }
        }
    }
    if let Ok(dir) = fs::read_dir(dev.join("carveout")) {
        found.extend(dir.flatten().map(|e| e.path()));
    }
    found.sort();
    found
}

/// The node for a region given by path (anything with a `/`) or by name: `carveout0` is
/// `/dev/carveout0`, any other name `/dev/carveout/<name>`.
pub fn resolve(spec: &str) -> PathBuf {
    if spec.contains('/') {
        PathBuf::from(spec)
    } else if spec
        .strip_prefix("carveout")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    {
        Path::new("/dev").join(spec)
    } else {
        Path::new("/dev/carveout").join(spec)
    }
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

    fn refused(&self, op: Op, errno: Errno) -> Error {
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

    /// Maps `range` (byte offsets into the region) shared, readable, and writable if `access`
    /// says so. The range need not be page aligned: the pages around it are mapped and the
    /// [`Mapping`] covers exactly `range`.
    pub fn map(&self, range: Range<u64>, access: Access) -> Result<Mapping> {
        if range.start >= range.end {
            return Err(Error::Invalid {
                path: self.path.clone(),
                why: format!("the range {:#x}..{:#x} is empty", range.start, range.end),
            });
        }
        let start = range.start / PAGE * PAGE;
        let end = range
            .end
            .checked_next_multiple_of(PAGE)
            .ok_or(Error::Invalid {
                path: self.path.clone(),
                why: format!("the range end {:#x} wraps", range.end),
            })?;
        let prot = match access {
            Access::Read => ProtFlags::READ,
            Access::ReadWrite => ProtFlags::READ | ProtFlags::WRITE,
        };
        let window = self.map_raw(start, end - start, prot, MapFlags::SHARED)?;
        let mut mapping = window;
        mapping.start = (range.start - start) as usize;
        mapping.len = (range.end - range.start) as usize;
        mapping.offset = range.start;
        Ok(mapping)
    }

    /// Maps `range` as [`Region::map`] does, but at a user address 4 KiB off the congruence
    /// with the physical address modulo 2 MiB that 2 MiB entries need: the driver then maps
    /// every page with a 4 KiB entry. (`map` lets the driver place the mapping, which keeps
    /// the congruence: 2 MiB entries wherever a whole aligned 2 MiB block is mapped.)
    pub fn map_small_pages(&self, range: Range<u64>, access: Access) -> Result<Mapping> {
        const HUGE: u64 = 2 << 20;
        let base = self.info()?.base;
        let start = range.start / PAGE * PAGE;
        let end = range.end.next_multiple_of(PAGE);
        let len = end.saturating_sub(start);
        let op = || Op::Map {
            offset: start,
            len,
            access,
        };
        if len == 0 {
            return Err(self.refused(op(), Errno::INVAL));
        }
        // Reserve 2 MiB more address space than needed, map over part of it with MAP_FIXED,
        // give back the rest.
        let span = usize::try_from(len + HUGE).map_err(|_| self.refused(op(), Errno::NOMEM))?;
        // SAFETY: a new inaccessible mapping at an address the kernel picks aliases nothing.
        let reserve = unsafe {
            mmap_anonymous(
                std::ptr::null_mut(),
                span,
                ProtFlags::empty(),
                MapFlags::PRIVATE | MapFlags::NORESERVE,
            )
        }
        .map_err(|errno| self.refused(op(), errno))?;
        let at = reserve as u64;
        let want = (base + start + PAGE) % HUGE;
        let addr = at + (want + HUGE - at % HUGE) % HUGE;
        let mapped = self.map_at(addr as *mut c_void, start, len, access);
        // SAFETY: the head and tail of our own reservation, which nothing refers to; the
        // region mapping between them (if made) stays.
        unsafe {
            let _ = munmap(reserve, (addr - at) as usize);
            let tail = addr + len;
            let _ = munmap(tail as *mut c_void, (at + span as u64 - tail) as usize);
        }
        let mut mapping = match mapped {
            Ok(mapping) => mapping,
            Err(err) => {
                // SAFETY: what is left of our reservation, which nothing refers to.
                let _ = unsafe { munmap(addr as *mut c_void, len as usize) };
                return Err(err);
            }
        };
        mapping.start = (range.start - start) as usize;
        mapping.len = (range.end - range.start) as usize;
        mapping.offset = range.start;
        Ok(mapping)
    }

    /// A shared mapping of `len` bytes at region offset `offset`, placed at `addr`, which
    /// must lie inside an inaccessible reservation of the caller's (MAP_FIXED).
    fn map_at(&self, addr: *mut c_void, offset: u64, len: u64, access: Access) -> Result<Mapping> {
        let prot = match access {
            Access::Read => ProtFlags::READ,
            Access::ReadWrite => ProtFlags::READ | ProtFlags::WRITE,
        };
        let op = || Op::Map {
            offset,
            len,
            access,
        };
        let window_len = usize::try_from(len).map_err(|_| self.refused(op(), Errno::NOMEM))?;
        // SAFETY: `addr..addr + len` lies inside the caller's own reservation, which holds no
        // Rust object; MAP_FIXED replaces only that.
        let ptr = unsafe {
            mmap(
                addr,
                window_len,
                prot,
                MapFlags::SHARED | MapFlags::FIXED,
                &self.fd,
                offset,
            )
        }
        .map_err(|errno| self.refused(op(), errno))?;
        self.whole_mapping(ptr, window_len, offset, access, op)
    }

    /// The [`Mapping`] of all of a fresh `mmap` result of `window_len` bytes at `offset`.
    fn whole_mapping(
        &self,
        ptr: *mut c_void,
        window_len: usize,
        offset: u64,
        access: Access,
        op: impl Fn() -> Op,
    ) -> Result<Mapping> {
        let window =
            NonNull::new(ptr.cast::<u8>()).ok_or_else(|| self.refused(op(), Errno::NOMEM))?;
        Ok(Mapping {
            window,
            window_len,
            start: 0,
            len: window_len,
            offset,
            writable: access == Access::ReadWrite,
        })
    }

    /// A page-aligned mapping with the given protection and flags (for tests of what the
    /// driver refuses).
    pub fn map_raw(
        &self,
        offset: u64,
        len: u64,
        prot: ProtFlags,
        flags: MapFlags,
    ) -> Result<Mapping> {
        let access = if prot.contains(ProtFlags::WRITE) {
            Access::ReadWrite
        } else {
            Access::Read
        };
        let op = || Op::Map {
            offset,
            len,
            access,
        };
        let window_len = usize::try_from(len).map_err(|_| self.refused(op(), Errno::NOMEM))?;
        // SAFETY: A new mapping at an address the kernel picks aliases no Rust object.
        let ptr = unsafe {
            mmap(
                std::ptr::null_mut(),
                window_len,
                prot,
                flags,
                &self.fd,
                offset,
            )
        }
        .map_err(|errno| self.refused(op(), errno))?;
        self.whole_mapping(ptr, window_len, offset, access, op)
    }

    /// Maps `len` bytes at region offset `offset` (both page aligned), shared, at a user
    /// address placed as `placement` says: an anonymous reservation 4 MiB larger than the
    /// mapping is made, the mapping put over part of it with `MAP_FIXED`, and the rest of the
    /// reservation unmapped.
    pub fn map_placed(
        &self,
        offset: u64,
        len: u64,
        access: Access,
        placement: Placement,
    ) -> Result<Mapping> {
        let prot = match access {
            Access::Read => ProtFlags::READ,
            Access::ReadWrite => ProtFlags::READ | ProtFlags::WRITE,
        };
        if placement == Placement::Kernel {
            return self.map_raw(offset, len, prot, MapFlags::SHARED);
        }
        let op = || Op::Map {
            offset,
            len,
            access,
        };
        let base = self.info()?.base;
        let phys = base.wrapping_add(offset);
        let window_len = usize::try_from(len).map_err(|_| self.refused(op(), Errno::NOMEM))?;
        let span = window_len
            .checked_add(2 * HUGE as usize)
            .ok_or_else(|| self.refused(op(), Errno::NOMEM))?;
        // SAFETY: A new inaccessible mapping at an address the kernel picks aliases nothing.
        let reserve = unsafe {
            mmap_anonymous(
                std::ptr::null_mut(),
                span,
                ProtFlags::empty(),
                MapFlags::PRIVATE | MapFlags::NORESERVE,
            )
        }
        .map_err(|errno| self.refused(op(), errno))?;
        let start = reserve as usize;
        let addr = placed_address(start, phys, placement);
        // SAFETY: `addr..addr + window_len` lies inside our own reservation, which it replaces
        // in part; nothing refers to the reservation.
        let mapped = unsafe {
            mmap(
                addr as *mut c_void,
                window_len,
                prot,
                MapFlags::SHARED | MapFlags::FIXED,
                &self.fd,
                offset,
            )
        };
        let end = addr + window_len;
        // SAFETY: The pieces of the reservation around the mapping (all of it if the mapping
        // failed) are ours, and nothing refers to them.
        unsafe {
            if mapped.is_err() {
                let _ = munmap(reserve, span);
            } else {
                if addr > start {
                    let _ = munmap(reserve, addr - start);
                }
                if start + span > end {
                    let _ = munmap(end as *mut c_void, start + span - end);
                }
            }
        }
        let ptr = mapped.map_err(|errno| self.refused(op(), errno))?;
        let window =
            NonNull::new(ptr.cast::<u8>()).ok_or_else(|| self.refused(op(), Errno::NOMEM))?;
        Ok(Mapping {
            window,
            window_len,
            start: 0,
            len: window_len,
            offset,
            writable: access == Access::ReadWrite,
        })
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

/// The user address for a mapping of physical address `phys` placed as `placement` says,
/// inside a reservation starting at `start` that is 4 MiB longer than the mapping: the next
/// 2 MiB boundary plus `phys`'s offset in its 2 MiB block (`Huge`), or that offset plus 4 KiB
/// (`Small`), so under `start + 4 MiB`.
fn placed_address(start: usize, phys: u64, placement: Placement) -> usize {
    let shift = match placement {
        Placement::Small => (phys + PAGE) % HUGE,
        Placement::Huge | Placement::Kernel => phys % HUGE,
    };
    start.next_multiple_of(HUGE as usize) + shift as usize
}

/// A mapping of region memory; unmapped on drop.
///
/// The memory may change underneath (a device DMAs into it), so it is read and written with
/// volatile accesses or copied in and out; a plain `&[u8]` exists only through the `unsafe`
/// [`Mapping::as_slice`], whose caller promises that nothing writes the memory meanwhile.
/// Offsets are relative to the start of the mapped range.
#[derive(Debug)]
pub struct Mapping {
    /// The page-aligned window mmap returned.
    window: NonNull<u8>,
    window_len: usize,
    /// Where the requested range starts in the window, and its length.
    start: usize,
    len: usize,
    /// The region offset of the range's first byte.
    offset: u64,
    writable: bool,
}

impl Mapping {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The region offset the mapping starts at.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Asks for `prot` on the whole mapping (`mprotect`): how a test shows what the driver
    /// forbids (write access to a write-protected region).
    pub fn protect(&self, prot: rustix::mm::MprotectFlags) -> std::io::Result<()> {
        // SAFETY: Changing the protection of our own mapping invalidates no Rust reference:
        // none point into it while it is only reached through volatile accesses.
        Ok(unsafe { rustix::mm::mprotect(self.window.as_ptr().cast(), self.window_len, prot) }?)
    }

    pub fn is_writable(&self) -> bool {
        self.writable
    }

    /// The first byte of the range.
    pub fn as_ptr(&self) -> *mut u8 {
        self.window.as_ptr().wrapping_add(self.start)
    }

    /// A pointer to the `T` at `off`, checked to be in bounds and aligned.
    fn at<T>(&self, off: usize) -> *mut T {
        let size = size_of::<T>();
        assert!(
            off.checked_add(size).is_some_and(|end| end <= self.len),
            "{size} bytes at {off:#x} are outside a {:#x}-byte mapping",
            self.len
        );
        let ptr = self.as_ptr().wrapping_add(off);
        assert!(
            ptr.cast::<T>().is_aligned(),
            "offset {off:#x} is not {size}-byte aligned"
        );
        ptr.cast::<T>()
    }

    fn writable_at<T>(&self, off: usize) -> *mut T {
        assert!(self.writable, "write to a read-only mapping");
        self.at(off)
    }

    /// Reads the byte at `off`. Panics when out of bounds.
    pub fn read_u8(&self, off: usize) -> u8 {
        // SAFETY: `at` checked bounds and alignment; the mapping lives as long as `self`.
        unsafe { self.at::<u8>(off).read_volatile() }
    }

    /// Reads the 32-bit word at `off` (4-aligned). Panics when out of bounds or misaligned.
    pub fn read_u32(&self, off: usize) -> u32 {
        // SAFETY: as in `read_u8`.
        unsafe { self.at::<u32>(off).read_volatile() }
    }

    /// Reads the 64-bit word at `off` (8-aligned). Panics when out of bounds or misaligned.
    pub fn read_u64(&self, off: usize) -> u64 {
        // SAFETY: as in `read_u8`.
        unsafe { self.at::<u64>(off).read_volatile() }
    }

    /// Writes the byte at `off`. Panics when out of bounds or the mapping is read-only.
    pub fn write_u8(&self, off: usize, value: u8) {
        // SAFETY: bounds, alignment and writability checked; no Rust reference covers it.
        unsafe { self.writable_at::<u8>(off).write_volatile(value) }
    }

    /// Writes the 32-bit word at `off` (4-aligned).
    pub fn write_u32(&self, off: usize, value: u32) {
        // SAFETY: as in `write_u8`.
        unsafe { self.writable_at::<u32>(off).write_volatile(value) }
    }

    /// Writes the 64-bit word at `off` (8-aligned).
    pub fn write_u64(&self, off: usize, value: u64) {
        // SAFETY: as in `write_u8`.
        unsafe { self.writable_at::<u64>(off).write_volatile(value) }
    }

    /// Copies `buf.len()` bytes from `off` out of the mapping, each read volatile.
    pub fn copy_to_slice(&self, off: usize, buf: &mut [u8]) {
        for (i, b) in buf.iter_mut().enumerate() {
            *b = self.read_u8(off + i);
        }
    }

    /// Copies `buf` into the mapping at `off`, each byte written volatile.
    pub fn copy_from_slice(&self, off: usize, buf: &[u8]) {
        for (i, &b) in buf.iter().enumerate() {
            self.write_u8(off + i, b);
        }
    }

    /// The mapped range as a byte slice.
    ///
    /// # Safety
    ///
    /// While the slice lives, nothing may write the memory: no device DMA into it, no write
    /// through another mapping of the region (in this or another process), no write through
    /// this one. Otherwise the slice's contents change under an immutable reference, which is
    /// undefined behaviour; use the volatile accessors or [`Mapping::copy_to_slice`] instead.
    pub unsafe fn as_slice(&self) -> &[u8] {
        // SAFETY: The range is mapped and readable for `len` bytes while `self` lives; the
        // caller promises nothing writes it meanwhile.
        unsafe { std::slice::from_raw_parts(self.as_ptr(), self.len) }
    }

    /// The mapped range as a mutable byte slice. Panics if the mapping is read-only.
    ///
    /// # Safety
    ///
    /// While the slice lives, nothing else may read or write the memory: no device DMA, no
    /// access through another mapping of the region, in this or another process.
    pub unsafe fn as_mut_slice(&mut self) -> &mut [u8] {
        assert!(self.writable, "a mutable slice of a read-only mapping");
        // SAFETY: The range is mapped writable for `len` bytes while `self` lives, `&mut self`
        // excludes other uses of this mapping, and the caller promises the rest.
        unsafe { std::slice::from_raw_parts_mut(self.as_ptr(), self.len) }
    }

    fn check_words(&self) {
        assert!(
            self.offset % 8 == 0 && self.len % 8 == 0,
            "the pattern is 64-bit words: offset {:#x} and length {:#x} must be multiples of 8",
            self.offset,
            self.len
        );
    }

    /// Fills the mapping with the pattern for `seed` (word `i` of the region gets word `i` of
    /// the pattern). `progress` is told the bytes done, every MiB and at the end.
    pub fn fill_pattern(&self, seed: u64, mut progress: impl FnMut(u64)) {
        self.check_words();
        let first = self.offset / 8;
        for i in 0..self.len / 8 {
            self.write_u64(i * 8, pattern::word(seed, first + i as u64));
            if (i + 1) % (1 << 17) == 0 {
                progress((i as u64 + 1) * 8);
            }
        }
        progress(self.len as u64);
    }

    /// Checks the mapping against the pattern for `seed`; a [`Mismatch`] names the first
    /// differing byte (as a region offset) and counts.
    pub fn verify_pattern(&self, seed: u64, mut progress: impl FnMut(u64)) -> Result<(), Mismatch> {
        self.check_words();
        let first = self.offset / 8;
        let mut tally = Tally::default();
        for i in 0..self.len / 8 {
            let index = first + i as u64;
            tally.word(index * 8, pattern::word(seed, index), self.read_u64(i * 8));
            if (i + 1) % (1 << 17) == 0 {
                progress((i as u64 + 1) * 8);
            }
        }
        progress(self.len as u64);
        tally.finish()
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `window`/`window_len` are exactly what `mmap` returned, unmapped only here.
        let _ = unsafe { munmap(self.window.as_ptr().cast::<c_void>(), self.window_len) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_round_trip_through_names_and_bits() {
        for attr in Attr::ALL {
            assert_eq!(attr.name().parse::<Attr>(), Ok(attr));
            assert_eq!(Attr::from_flags(attr.bit() | abi::MR_ACTIVE), Some(attr));
        }
        assert_eq!("WC".parse::<Attr>(), Ok(Attr::Wc));
        assert!("writeback"
            .parse::<Attr>()
            .unwrap_err()
            .contains("use uc, wc, wt, wb or wp"));
        assert_eq!(
            Attr::from_flags(abi::MR_WRITEBACK | abi::MR_UNCACHEABLE),
            None
        );
        assert_eq!(Attr::from_flags(0), None);
        assert_eq!(
            flag_names(
                abi::MR_WRITEBACK | abi::MR_FIXBASE | abi::MR_FIXLEN | abi::MR_ACTIVE | 1 << 12
            ),
            ["wb", "fixbase", "fixlen", "active", "0x1000"]
        );
        assert_eq!(
            flag_names(abi::MR_UNCACHEABLE | abi::MR_UNLISTED | abi::MR_ACTIVE),
            ["uc", "unlisted", "active"]
        );
        assert_eq!(
            flag_names(abi::MR_WRITEBACK | abi::MR_PAGES | abi::MR_ACTIVE),
            ["wb", "pages", "active"]
        );
    }

    #[test]
    fn placements_keep_or_break_the_2m_congruence() {
        const M2: usize = 2 << 20;
        for (start, phys) in [
            (0x7f00_0000_1000, 0x800_0000u64),
            (0x7f00_0020_0000, 0x800_0000 + 0x30_0000),
            (0x7f00_001f_f000, 0x1_8000_0000 + 0x1f_f000),
        ] {
            let huge = placed_address(start, phys, Placement::Huge);
            let small = placed_address(start, phys, Placement::Small);
            assert_eq!((huge as u64 ^ phys) % M2 as u64, 0, "{huge:#x} / {phys:#x}");
            assert_eq!((small as u64).wrapping_sub(phys) % M2 as u64, 4096);
            for addr in [huge, small] {
                assert!(
                    addr >= start && addr < start + 2 * M2,
                    "{addr:#x} from {start:#x}"
                );
                assert_eq!(addr % 4096, 0);
            }
        }
    }

    #[test]
    fn names_and_paths_resolve_to_nodes() {
        assert_eq!(resolve("carveout0"), Path::new("/dev/carveout0"));
        assert_eq!(resolve("memmap0"), Path::new("/dev/carveout/memmap0"));
        assert_eq!(resolve("carveout"), Path::new("/dev/carveout/carveout"));
        assert_eq!(resolve("./x"), Path::new("./x"));
        assert_eq!(resolve("/dev/carveout/dma"), Path::new("/dev/carveout/dma"));
    }

    #[test]
    fn discovery_finds_numbered_nodes_and_the_directory() {
        let dev = std::env::temp_dir().join(format!("carveout-dev-{}", std::process::id()));
        fs::create_dir_all(dev.join("carveout")).unwrap();
        for f in [
            "carveout0",
            "carveoutx",
            "null",
            "carveout/memmap0",
            "carveout/dma",
        ] {
            fs::write(dev.join(f), "").unwrap();
        }
        let found = discover_in(&dev);
        fs::remove_dir_all(&dev).unwrap();
        let names: Vec<_> = found
            .iter()
            .map(|p| p.strip_prefix(&dev).unwrap().to_path_buf())
            .collect();
        assert_eq!(
            names,
            ["carveout/dma", "carveout/memmap0", "carveout0"].map(PathBuf::from)
        );
    }

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
