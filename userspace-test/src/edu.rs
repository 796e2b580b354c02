//! QEMU's `edu` PCI device (QEMU `docs/specs/edu.rst`), driven from userspace: either through
//! sysfs (BAR 0 mapped from `resource0`, no driver bound, device addresses as the device's
//! IOMMU domain translates them: physical ones without an IOMMU or with an identity domain) or
//! through VFIO (bound to vfio-pci, BAR 0 and config space through the device file, device
//! addresses the I/O virtual addresses the program mapped in its container). Either way, bus
//! mastering is switched on in its config space. Enough of it to move bytes between memory
//! and the device's 4 KiB buffer by DMA.

use std::{
    ffi::c_void,
    fs, io,
    os::fd::OwnedFd,
    path::{Path, PathBuf},
    ptr::NonNull,
    thread,
    time::{Duration, Instant},
};

use rustix::{
    fs::{open, Mode, OFlags},
    io::{pread, pwrite},
    mm::{mmap, munmap, MapFlags, ProtFlags},
};

use crate::vfio::{self, Vfio};

const VENDOR: &str = "0x1234";
const DEVICE: &str = "0x11e8";

const REG_ID: usize = 0x00;
const REG_LIVENESS: usize = 0x04;
const REG_DMA_SRC: usize = 0x80;
const REG_DMA_DST: usize = 0x88;
const REG_DMA_COUNT: usize = 0x90;
const REG_DMA_CMD: usize = 0x98;
const CMD_START: u64 = 1 << 0;
const CMD_TO_RAM: u64 = 1 << 1;
const BAR_LEN: usize = 1 << 20;

/// The device's buffer in its own DMA address space.
pub const BUF_ADDR: u64 = 0x40000;
/// Its length. QEMU 7.2 aborts the whole emulator on a transfer that ends exactly at the end
/// of the buffer (its range check uses `<`), so transfers must end before it.
pub const BUF_LEN: u64 = 4096;
/// The device's default DMA mask: 28 bits. Addresses above are clamped by the device, unless
/// QEMU's `-device edu,dma_mask=...` says otherwise (see [`Edu::set_dma_mask`]).
pub const DMA_MASK: u64 = (1 << 28) - 1;

/// How the program owns the device.
enum Owner {
    /// Through sysfs, no driver bound.
    Sysfs,
    /// Through its VFIO device file.
    Vfio(Vfio),
}

/// An `edu` device with its registers mapped and bus mastering on; unmapped on drop.
pub struct Edu {
    sysfs: PathBuf,
    regs: NonNull<u8>,
    owner: Owner,
    dma_mask: u64,
}

impl Edu {
    /// Finds the first `edu` device on the PCI bus, enables it and its bus mastering, and maps
    /// its registers, through sysfs.
    pub fn open() -> io::Result<Self> {
        let sysfs = find()?;
        fs::write(sysfs.join("enable"), "1")
            .map_err(|err| annotate(err, format!("enable {}", sysfs.display())))?;
        let config = sysfs.join("config");
        let fd = open(&config, OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())
            .map_err(|err| annotate(err.into(), format!("open {}", config.display())))?;
        enable_bus_master(
            |buf| pread(&fd, buf, 4).map(drop).map_err(Into::into),
            |buf| pwrite(&fd, buf, 4).map(drop).map_err(Into::into),
        )?;
        let res: OwnedFd = open(
            sysfs.join("resource0"),
            OFlags::RDWR | OFlags::SYNC | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|err| annotate(err.into(), format!("open {}/resource0", sysfs.display())))?;
        // SAFETY: a new mapping at an address the kernel picks aliases no Rust object.
        let ptr = unsafe {
            mmap(
                std::ptr::null_mut(),
                BAR_LEN,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
                &res,
                0,
            )
        }?;
        let regs =
            NonNull::new(ptr.cast::<u8>()).ok_or_else(|| io::Error::other("mmap gave NULL"))?;
        let edu = Self {
            sysfs,
            regs,
            owner: Owner::Sysfs,
            dma_mask: DMA_MASK,
        };
        edu.probe()?;
        Ok(edu)
    }

    /// The first `edu` device, owned through VFIO: it must be bound to vfio-pci. Its DMA then
    /// reaches only what the program maps with [`Edu::vfio`]'s `map_dma`.
    pub fn open_vfio() -> io::Result<Self> {
        let sysfs = find()?;
        let bdf = bdf_of(&sysfs)?;
        Self::with_vfio(sysfs, Vfio::open(&bdf)?)
    }

    /// The first `edu` device through a VFIO device file a parent process opened (and whose
    /// container it set up): `userspace-test/c/carveout_vfio.c`.
    pub fn inherit_vfio(device: OwnedFd) -> io::Result<Self> {
        let sysfs = find()?;
        let bdf = bdf_of(&sysfs)?;
        Self::with_vfio(sysfs, Vfio::inherit(&bdf, device)?)
    }

    fn with_vfio(sysfs: PathBuf, vfio: Vfio) -> io::Result<Self> {
        let info = vfio.device_info()?;
        if info.flags & vfio::DEVICE_FLAGS_PCI == 0 {
            return Err(io::Error::other(format!(
                "{}: VFIO says it is no PCI device",
                vfio.bdf()
            )));
        }
        enable_bus_master(
            |buf| vfio.config_read(4, buf),
            |buf| vfio.config_write(4, buf),
        )?;
        let regs = vfio.map_bar(vfio::PCI_BAR0_REGION_INDEX, BAR_LEN)?;
        let edu = Self {
            sysfs,
            regs,
            owner: Owner::Vfio(vfio),
            dma_mask: DMA_MASK,
        };
        edu.probe()?;
        Ok(edu)
    }

    /// The VFIO handle, when the device is owned through VFIO.
    pub fn vfio(&self) -> Option<&Vfio> {
        match &self.owner {
            Owner::Vfio(vfio) => Some(vfio),
            Owner::Sysfs => None,
        }
    }

    /// The DMA mask QEMU gave the device (`-device edu,dma_mask=...`); [`DMA_MASK`] unless
    /// told. Transfers outside it are refused rather than clamped by the device.
    pub fn set_dma_mask(&mut self, mask: u64) {
        self.dma_mask = mask;
    }

    /// Checks that the registers answer as edu's do.
    fn probe(&self) -> io::Result<()> {
        let edu = self;
        let id = edu.read32(REG_ID);
        if id & 0xff != 0xed {
            return Err(io::Error::other(format!(
                "{}: id register {id:#x}, not edu",
                edu.sysfs.display()
            )));
        }
        let probe = 0x5a5a_1234;
        edu.write32(REG_LIVENESS, probe);
        if edu.read32(REG_LIVENESS) != !probe {
            return Err(io::Error::other("edu liveness register does not invert"));
        }
        Ok(())
    }

    /// The device's sysfs directory.
    pub fn sysfs(&self) -> &Path {
        &self.sysfs
    }

    fn reg(&self, offset: usize) -> *mut u8 {
        assert!(offset < BAR_LEN && offset % 4 == 0);
        self.regs.as_ptr().wrapping_add(offset)
    }

    fn read32(&self, offset: usize) -> u32 {
        // SAFETY: an aligned register inside the mapped BAR (asserted in `reg`).
        unsafe { self.reg(offset).cast::<u32>().read_volatile() }
    }

    fn write32(&self, offset: usize, value: u32) {
        // SAFETY: as in `read32`.
        unsafe { self.reg(offset).cast::<u32>().write_volatile(value) }
    }

    fn read64(&self, offset: usize) -> u64 {
        // SAFETY: as in `read32`; the DMA registers take 8-byte accesses.
        unsafe { self.reg(offset).cast::<u64>().read_volatile() }
    }

    fn write64(&self, offset: usize, value: u64) {
        // SAFETY: as in `read64`.
        unsafe { self.reg(offset).cast::<u64>().write_volatile(value) }
    }

    /// Device buffer → memory: `count` bytes from buffer offset `buf_off` to device address
    /// `addr` (a physical address without an IOMMU, else an I/O virtual address).
    pub fn to_ram(&self, buf_off: u64, addr: u64, count: u64) -> io::Result<()> {
        self.transfer(addr, buf_off, count, true)
    }

    /// Memory → device buffer: `count` bytes from device address `addr` to buffer offset
    /// `buf_off`.
    pub fn from_ram(&self, addr: u64, buf_off: u64, count: u64) -> io::Result<()> {
        self.transfer(addr, buf_off, count, false)
    }

    fn transfer(&self, phys: u64, buf_off: u64, count: u64, to_ram: bool) -> io::Result<()> {
        if count == 0 || buf_off + count >= BUF_LEN {
            return Err(io::Error::other(format!(
                "transfer of {count:#x} at buffer offset {buf_off:#x}: must be non-empty and \
                 end before {BUF_LEN:#x}"
            )));
        }
        if phys + count - 1 > self.dma_mask {
            return Err(io::Error::other(format!(
                "{phys:#x}+{count:#x} is outside edu's DMA mask {:#x} (raise it with \
                 -device edu,dma_mask=...)",
                self.dma_mask
            )));
        }
        let (src, dst, dir) = if to_ram {
            (BUF_ADDR + buf_off, phys, CMD_TO_RAM)
        } else {
            (phys, BUF_ADDR + buf_off, 0)
        };
        self.wait_idle()?;
        self.write64(REG_DMA_SRC, src);
        self.write64(REG_DMA_DST, dst);
        self.write64(REG_DMA_COUNT, count);
        self.write64(REG_DMA_CMD, CMD_START | dir);
        self.wait_idle()
    }

    /// Polls the command register until the start bit clears (edu completes a transfer about
    /// 100 ms of virtual time after it starts).
    fn wait_idle(&self) -> io::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.read64(REG_DMA_CMD) & CMD_START != 0 {
            if Instant::now() > deadline {
                return Err(io::Error::other("edu DMA did not complete within 10 s"));
            }
            thread::sleep(Duration::from_millis(5));
        }
        Ok(())
    }
}

impl Drop for Edu {
    fn drop(&mut self) {
        match &self.owner {
            // SAFETY: exactly the mapping made in `open`, unmapped only here.
            Owner::Sysfs => {
                let _ = unsafe { munmap(self.regs.as_ptr().cast::<c_void>(), BAR_LEN) };
            }
            // SAFETY: exactly the mapping `open_vfio` had `map_bar` make, unused after this.
            Owner::Vfio(vfio) => unsafe { vfio.unmap_bar(self.regs, BAR_LEN) },
        }
    }
}

/// The PCI address (`0000:00:03.0`) of the first edu device on the bus.
pub fn find_bdf() -> io::Result<String> {
    bdf_of(&find()?)
}

fn bdf_of(sysfs: &Path) -> io::Result<String> {
    sysfs
        .file_name()
        .and_then(|n| n.to_str())
        .map(str::to_owned)
        .ok_or_else(|| io::Error::other(format!("{}: no device name", sysfs.display())))
}

/// The sysfs directory of the first device with edu's vendor and device id.
fn find() -> io::Result<PathBuf> {
    let mut found = Vec::new();
    for entry in fs::read_dir("/sys/bus/pci/devices")? {
        let path = entry?.path();
        let id = |name: &str| fs::read_to_string(path.join(name)).unwrap_or_default();
        if id("vendor").trim() == VENDOR && id("device").trim() == DEVICE {
            found.push(path);
        }
    }
    found.sort();
    found.into_iter().next().ok_or_else(|| {
        io::Error::other(
            "no edu device (PCI 1234:11e8) found; is -device edu on QEMU's command line?",
        )
    })
}

/// Sets memory-space decoding and bus mastering (bits 1 and 2 of the command register at
/// config offset 4), so the device may DMA; `read` and `write` reach the command register.
fn enable_bus_master(
    read: impl Fn(&mut [u8]) -> io::Result<()>,
    write: impl Fn(&[u8]) -> io::Result<()>,
) -> io::Result<()> {
    let mut cmd = [0u8; 2];
    read(&mut cmd)?;
    let value = u16::from_le_bytes(cmd) | (1 << 1) | (1 << 2);
    write(&value.to_le_bytes())?;
    read(&mut cmd)?;
    if u16::from_le_bytes(cmd) & (1 << 2) == 0 {
        return Err(io::Error::other(
            "bus mastering did not stick in the command register",
        ));
    }
    Ok(())
}

fn annotate(err: io::Error, what: String) -> io::Error {
    io::Error::new(err.kind(), format!("{what}: {err}"))
}
