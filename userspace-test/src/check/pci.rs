//! Whether the PCI devices reach the regions: what each device's IOMMU does with a physical
//! address, and which regions are attached to it (`CARVEOUT_ATTACH`), at which bus address.

use std::path::PathBuf;

use serde::Serialize;

use super::finding::{Finding, Level, RegionView};
use crate::{
    attach::{self, DmaDevice},
    iommu::{Domain, PciIommu},
    memmap::format_addr,
};

/// The PCI devices the regions are attached to (`CARVEOUT_ATTACH`), as each region's sysfs
/// `dma_devices` lists them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Attachments {
    pub devices: Vec<Attachment>,
    /// Regions whose list could not be read, in words.
    pub errors: Vec<String>,
}

/// One region attached to one device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attachment {
    /// The region's node.
    pub region: PathBuf,
    #[serde(flatten)]
    pub device: DmaDevice,
}

impl Attachments {
    /// Reads `dma_devices` of every region.
    pub fn read(regions: &[RegionView]) -> Self {
        let mut out = Self::default();
        for r in regions {
            match attach::dma_devices(&r.path) {
                Ok(devices) => out
                    .devices
                    .extend(devices.into_iter().map(|device| Attachment {
                        region: r.path.clone(),
                        device,
                    })),
                Err(err) => out.errors.push(err.to_string()),
            }
        }
        out
    }

    fn of<'a>(&'a self, bdf: &'a str) -> impl Iterator<Item = &'a Attachment> + 'a {
        self.devices.iter().filter(move |a| a.device.device == bdf)
    }
}

/// The PCI devices to examine: those named, then those attached to a region (once each; a
/// device removed while attached is not looked for).
pub fn pci_devices(named: &[String], attached: &Attachments) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let present = attached.devices.iter().filter(|a| !a.device.removed);
    for bdf in named.iter().chain(present.map(|a| &a.device.device)) {
        if !out.contains(bdf) {
            out.push(bdf.clone());
        }
    }
    out
}

/// What the IOMMU means for each PCI device examined: a physical address reaches the region or
/// faults; and which regions are attached to it, at which bus address.
pub fn findings(
    pci: &[Result<PciIommu, String>],
    attached: &Attachments,
    regions: &[RegionView],
) -> Vec<Finding> {
    let mut out = Vec::new();
    for why in &attached.errors {
        out.push(Finding {
            level: Level::Problem,
            message: format!("cannot tell which devices are attached: {why}"),
        });
    }
    for a in attached.devices.iter().filter(|a| a.device.revoked) {
        out.push(Finding {
            level: Level::Warning,
            message: format!(
                "{}: {} is no longer mapped for it: a driver that may hand its DMA to userspace \
                 bound to its IOMMU group; `carveoutctl detach {} {}` drops the entry",
                a.device.device,
                a.region.display(),
                a.device.device,
                a.region.display()
            ),
        });
    }
    for a in attached
        .devices
        .iter()
        .filter(|a| a.device.removed && !a.device.revoked)
    {
        out.push(Finding {
            level: Level::Warning,
            message: format!(
                "{}: removed while {} was attached to it: the mapping is gone; `carveoutctl \
                 detach {} {}` drops the entry",
                a.device.device,
                a.region.display(),
                a.device.device,
                a.region.display()
            ),
        });
    }
    for dev in pci {
        let dev = match dev {
            Ok(dev) => dev,
            Err(why) => {
                out.push(Finding {
                    level: Level::Problem,
                    message: why.clone(),
                });
                continue;
            }
        };
        let (bdf, group) = (&dev.bdf, dev.group.unwrap_or_default());
        let attachments: Vec<&Attachment> = attached.of(bdf).collect();
        let (level, message) = match &dev.domain {
            Domain::NoIommu => (
                Level::Ok,
                format!(
                    "{bdf}: no IOMMU group, no IOMMU translates its DMA: it reaches a region at \
                     the region's physical address"
                ),
            ),
            Domain::Identity => (
                Level::Ok,
                format!(
                    "{bdf}: IOMMU group {group} has an identity (passthrough) domain: its DMA \
                     reaches a region at the region's physical address"
                ),
            ),
            Domain::Blocked => (
                Level::Warning,
                format!("{bdf}: IOMMU group {group} blocks all DMA: the device reaches no memory"),
            ),
            Domain::Translated(kind) if !attachments.is_empty() => (
                Level::Ok,
                format!(
                    "{bdf}: IOMMU group {group} translates its DMA (domain type {kind}): it \
                     reaches an attached region at the bus address carveout reports, not at the \
                     physical address"
                ),
            ),
            Domain::Translated(kind) => (
                Level::Warning,
                format!(
                    "{bdf}: IOMMU group {group} translates its DMA (domain type {kind}): a \
                     physical address handed to it faults in the IOMMU and nothing reaches the \
                     region. Map the region for it (`carveoutctl attach {bdf}`, then hand it \
                     the bus address reported; or a userspace driver: VFIO_IOMMU_MAP_DMA of \
                     the region's mmap, then hand the device that iova), or give the group an \
                     identity domain (unbind the device, then echo identity > \
                     /sys/kernel/iommu_groups/{group}/type), or boot with iommu=pt"
                ),
            ),
        };
        out.push(Finding { level, message });
        for a in attachments.iter().filter(|a| !a.device.removed) {
            let bus = a.device.bus_addr.unwrap_or_default();
            let how = if a.device.translated {
                "an IOVA its IOMMU translates"
            } else {
                "the physical address"
            };
            out.push(Finding {
                level: Level::Ok,
                message: format!(
                    "{bdf}: {} is attached to it: the device must use bus address {bus:#x} \
                     ({how}) for the region's base",
                    a.region.display()
                ),
            });
        }
        if matches!(dev.domain, Domain::Translated(_)) && !attachments.is_empty() {
            for r in regions
                .iter()
                .filter(|r| !attachments.iter().any(|a| a.region == r.path))
            {
                out.push(Finding {
                    level: Level::Warning,
                    message: format!(
                        "{bdf}: {} is not attached to it: its physical address {} faults in \
                         the IOMMU (`carveoutctl attach {bdf} {}`)",
                        r.path.display(),
                        format_addr(r.span.base),
                        r.path.display()
                    ),
                });
            }
        }
    }
    out
}
