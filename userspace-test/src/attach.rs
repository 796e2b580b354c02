//! PCI devices a region is mapped for (`CARVEOUT_ATTACH`), and cache maintenance for devices
//! that do not snoop (`CARVEOUT_SYNC`): what `carveoutctl attach`, `detach`, `sync` and `info`
//! do and print.
//!
//! The driver lists a region's devices in sysfs, one line each, in its node's `dma_devices`
//! (`/sys/class/carveout/<name>/dma_devices`, reached here through `/sys/dev/char/MAJ:MIN`):
//! `0000:00:03.0 0xbf800000 translated`, `... direct`, `0000:00:03.0 - removed` once the
//! device has gone, or `0000:00:03.0 - revoked` once a driver that may hand its DMA to userspace
//! (vfio-pci) bound to its IOMMU group.

use std::{fmt, fs, io, path::Path};

use rustix::{fs::stat, io::Errno};
use serde::Serialize;

use crate::{abi, errno_name, Region};

/// One line of `dma_devices`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DmaDevice {
    /// The PCI name, `0000:00:03.0`.
    pub device: String,
    /// The address the device must use for the region's base; `None` once it was removed.
    pub bus_addr: Option<u64>,
    /// Whether an IOMMU translates its DMA (the bus address is then an IOVA).
    pub translated: bool,
    /// The device was removed while attached, or the mapping revoked (`- revoked`): the
    /// mapping is gone, detach it.
    pub removed: bool,
    /// The mapping was revoked: a driver that may hand the device's DMA to userspace
    /// (vfio-pci) bound to its IOMMU group.
    pub revoked: bool,
}

/// Parses `dma_devices`.
pub fn parse_dma_devices(text: &str) -> Result<Vec<DmaDevice>, String> {
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let bad = || format!("dma_devices: cannot read {line:?}");
            let mut words = line.split_whitespace();
            let device = words.next().ok_or_else(bad)?.to_owned();
            let bus = words.next().ok_or_else(bad)?;
            let how = words.next().ok_or_else(bad)?;
            let (bus_addr, translated, removed) = match (bus, how) {
                ("-", "removed" | "revoked") => (None, false, true),
                (bus, "translated" | "direct") => {
                    let hex = bus.strip_prefix("0x").ok_or_else(bad)?;
                    let addr = u64::from_str_radix(hex, 16).map_err(|_| bad())?;
                    (Some(addr), how == "translated", false)
                }
                _ => return Err(bad()),
            };
            Ok(DmaDevice {
                device,
                bus_addr,
                translated,
                removed,
                revoked: how == "revoked",
            })
        })
        .collect()
}

/// The devices the region behind node `node` is attached to, from its sysfs directory under
/// `sys` (normally `/sys`).
pub fn dma_devices_in(sys: &Path, node: &Path) -> io::Result<Vec<DmaDevice>> {
    let st = stat(node).map_err(|e| io::Error::other(format!("{}: {e}", node.display())))?;
    let rdev = st.st_rdev;
    let path = sys.join(format!(
        "dev/char/{}:{}/dma_devices",
        rustix::fs::major(rdev),
        rustix::fs::minor(rdev)
    ));
    let text = fs::read_to_string(&path)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    parse_dma_devices(&text).map_err(io::Error::other)
}

/// [`dma_devices_in`] under `/sys`.
pub fn dma_devices(node: &Path) -> io::Result<Vec<DmaDevice>> {
    dma_devices_in(Path::new("/sys"), node)
}

/// A refused attach, detach, bus-address or sync request: the errno and what the driver's
/// header says it means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub request: &'static str,
    pub errno: Errno,
}

impl Refusal {
    /// What `include/carveout.h` says the errno means for this request.
    pub fn meaning(&self) -> &'static str {
        let attach = self.request != "CARVEOUT_SYNC";
        match self.errno {
            Errno::INVAL if attach => {
                "not a PCI device name (DDDD:BB:DD.F), a reach outside 12 to 64 bits, or \
                 non-zero fields"
            }
            Errno::NODEV if self.request == "CARVEOUT_BUS_ADDR" => {
                "the device was removed while attached, or the mapping revoked when a driver \
                 that may hand its DMA to userspace bound to its IOMMU group (detach it)"
            }
            Errno::NODEV => "no such PCI device",
            Errno::EXIST => "already attached",
            Errno::NOENT => "not attached",
            Errno::RANGE => {
                "the device cannot reach the region (its DMA mask, and no IOMMU translates for \
                 it), or the DMA API would bounce its transfers"
            }
            Errno::NOMEM => "the DMA API refused to map the region (no I/O address space)",
            Errno::BUSY if attach => {
                "a driver is bound to the device: its DMA mask rules, state no reach"
            }
            Errno::IO if attach => "the DMA API refuses the stated reach for the device",
            Errno::BADF => "the region is open read-only",
            Errno::PERM => "needs CAP_SYS_ADMIN",
            Errno::INVAL => {
                "unaligned or empty range, an offset + length that overflows, or a \
                             bad direction"
            }
            Errno::NXIO => "the range reaches beyond the region",
            Errno::NOTTY => "this carveout driver predates the request",
            _ => "refused",
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} refused: {} ({})",
            self.request,
            errno_name(self.errno),
            self.meaning()
        )
    }
}

impl std::error::Error for Refusal {}

/// What `carveoutctl attach` reports.
#[derive(Debug, Clone, Serialize)]
pub struct Attached {
    pub region: String,
    pub device: String,
    /// The address the device must use for the region's base.
    pub bus_addr: u64,
    /// The region's physical base.
    pub physical: u64,
    /// An IOMMU translates the device's DMA: `bus_addr` is an IOVA.
    pub translated: bool,
}

impl fmt::Display for Attached {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: attached {}: bus address {:#x} ({})",
            self.region,
            self.device,
            self.bus_addr,
            if self.translated {
                format!(
                    "an IOVA: its IOMMU translates; the physical base {:#x} would fault",
                    self.physical
                )
            } else {
                "the physical address: no IOMMU translates".into()
            }
        )
    }
}

fn refused(request: &'static str) -> impl Fn(Errno) -> Refusal {
    move |errno| Refusal { request, errno }
}

/// Maps the whole region for `device` (`CARVEOUT_ATTACH`), which decodes `reach_bits` address
/// bits if given (a device with no driver), else its DMA mask's.
pub fn attach(
    region: &Region,
    device: &str,
    reach_bits: Option<u32>,
) -> Result<Attached, crate::Failure> {
    let info = region.info()?;
    let reply = region
        .attach(device, reach_bits)
        .map_err(refused("CARVEOUT_ATTACH"))?;
    Ok(Attached {
        region: region.path().display().to_string(),
        device: device.to_owned(),
        bus_addr: reply.bus_addr,
        physical: info.base,
        translated: reply.flags & abi::ATTACH_TRANSLATED != 0,
    })
}

/// What `carveoutctl detach` reports.
#[derive(Debug, Clone, Serialize)]
pub struct Detached {
    pub region: String,
    pub device: String,
}

impl fmt::Display for Detached {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: detached {}: the region is no longer mapped for it",
            self.region, self.device
        )
    }
}

/// Unmaps the region for `device` (`CARVEOUT_DETACH`).
pub fn detach(region: &Region, device: &str) -> Result<Detached, Refusal> {
    region.detach(device).map_err(refused("CARVEOUT_DETACH"))?;
    Ok(Detached {
        region: region.path().display().to_string(),
        device: device.to_owned(),
    })
}

/// An attached device as `carveoutctl info` shows it: what sysfs lists and what
/// `CARVEOUT_BUS_ADDR` answers for it (which must agree).
#[derive(Debug, Clone, Serialize)]
pub struct AttachedDevice {
    #[serde(flatten)]
    pub sysfs: DmaDevice,
    /// `CARVEOUT_BUS_ADDR`'s answer, or its errno's name.
    pub ioctl_bus_addr: Option<u64>,
    pub ioctl_error: Option<String>,
}

impl AttachedDevice {
    /// Whether sysfs and the ioctl say the same.
    pub fn agrees(&self) -> bool {
        match (self.sysfs.bus_addr, self.ioctl_bus_addr, &self.ioctl_error) {
            (Some(a), Some(b), None) => a == b,
            (None, None, Some(err)) => err == "ENODEV",
            _ => false,
        }
    }
}

impl fmt::Display for AttachedDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dev = &self.sysfs;
        match dev.bus_addr {
            Some(bus) => write!(
                f,
                "{} bus address {bus:#x} ({})",
                dev.device,
                if dev.translated {
                    "IOVA, translated by its IOMMU"
                } else {
                    "physical, direct"
                }
            )?,
            None if dev.revoked => write!(
                f,
                "{} revoked: a driver that may hand its DMA to userspace (vfio-pci) bound to its \
                 IOMMU group; detach it",
                dev.device
            )?,
            None => write!(f, "{} removed while attached: detach it", dev.device)?,
        }
        if !self.agrees() {
            write!(
                f,
                "; but CARVEOUT_BUS_ADDR says {}",
                match (&self.ioctl_bus_addr, &self.ioctl_error) {
                    (Some(bus), _) => format!("{bus:#x}"),
                    (None, Some(err)) => err.clone(),
                    (None, None) => "nothing".into(),
                }
            )?;
        }
        Ok(())
    }
}

/// The devices attached to the region, from sysfs, each asked again through the ioctl.
pub fn attached_devices(region: &Region) -> io::Result<Vec<AttachedDevice>> {
    Ok(dma_devices(region.path())?
        .into_iter()
        .map(|dev| {
            let answer = region.bus_addr(&dev.device);
            AttachedDevice {
                ioctl_bus_addr: answer.as_ref().ok().map(|a| a.bus_addr),
                ioctl_error: answer.err().map(errno_name),
                sysfs: dev,
            }
        })
        .collect())
}

/// Which way `CARVEOUT_SYNC` makes the memory coherent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum SyncFor {
    /// Before the device reads what the CPU wrote (write back).
    Device,
    /// Before the CPU reads what the device wrote (invalidate).
    Cpu,
}

impl SyncFor {
    pub fn direction(self) -> u32 {
        match self {
            SyncFor::Device => abi::SYNC_FOR_DEVICE,
            SyncFor::Cpu => abi::SYNC_FOR_CPU,
        }
    }
}

/// What `carveoutctl sync` reports.
#[derive(Debug, Clone, Serialize)]
pub struct Synced {
    pub region: String,
    pub offset: u64,
    pub len: u64,
    #[serde(rename = "for")]
    pub for_: SyncFor,
    /// The region's cache attribute: wb and wt get their lines written back and invalidated,
    /// the others only a memory barrier.
    pub attr: Option<crate::Attr>,
}

impl fmt::Display for Synced {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.attr {
            Some(crate::Attr::Wb | crate::Attr::Wt) => "cache lines written back and invalidated",
            _ => "memory barrier (the CPU does not cache this attribute)",
        };
        write!(
            f,
            "{}: synced {:#x}+{:#x} for the {}: {what}",
            self.region,
            self.offset,
            self.len,
            match self.for_ {
                SyncFor::Device => "device",
                SyncFor::Cpu => "CPU",
            }
        )
    }
}

/// `CARVEOUT_SYNC` of `[offset, offset + len)` (default: from 0 to the region's end).
pub fn sync(
    region: &Region,
    offset: Option<u64>,
    len: Option<u64>,
    for_: SyncFor,
) -> Result<Synced, crate::Failure> {
    let info = region.info()?;
    let offset = offset.unwrap_or(0);
    let len = len.unwrap_or_else(|| info.size.saturating_sub(offset));
    region
        .sync(offset, len, for_.direction())
        .map_err(refused("CARVEOUT_SYNC"))?;
    Ok(Synced {
        region: region.path().display().to_string(),
        offset,
        len,
        for_,
        attr: crate::Attr::from_flags(info.flags),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dma_devices_lines_parse() {
        let devs = parse_dma_devices(
            "0000:00:01.0 0xbf800000 translated\n0000:00:02.0 0x8000000 direct\n\
             0000:00:03.0 - removed\n0000:00:04.0 - revoked\n",
        )
        .unwrap();
        assert_eq!(devs.len(), 4);
        assert!(devs[3].removed && devs[3].revoked && devs[3].bus_addr.is_none());
        assert!(!devs[2].revoked);
        assert_eq!(devs[0].bus_addr, Some(0xbf80_0000));
        assert!(devs[0].translated && !devs[0].removed);
        assert_eq!(devs[1].bus_addr, Some(0x800_0000));
        assert!(!devs[1].translated);
        assert_eq!(devs[2].bus_addr, None);
        assert!(devs[2].removed);
        assert_eq!(parse_dma_devices("").unwrap(), []);
        assert!(parse_dma_devices("0000:00:01.0 0xzz translated").is_err());
        assert!(parse_dma_devices("0000:00:01.0 0x1000").is_err());
    }

    #[test]
    fn sysfs_and_ioctl_must_agree() {
        let dev = |bus_addr, removed| DmaDevice {
            device: "0000:00:01.0".into(),
            bus_addr,
            translated: true,
            removed,
            revoked: false,
        };
        let seen = |sysfs, ioctl_bus_addr, err: Option<&str>| AttachedDevice {
            sysfs,
            ioctl_bus_addr,
            ioctl_error: err.map(Into::into),
        };
        assert!(seen(dev(Some(0x1000), false), Some(0x1000), None).agrees());
        assert!(!seen(dev(Some(0x1000), false), Some(0x2000), None).agrees());
        assert!(seen(dev(None, true), None, Some("ENODEV")).agrees());
        assert!(!seen(dev(Some(0x1000), false), None, Some("ENOENT")).agrees());
    }
}
