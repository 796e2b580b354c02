//! Whether a PCI device's DMA goes through an IOMMU, from sysfs: its IOMMU group
//! (`/sys/bus/pci/devices/D/iommu_group`) and the type of the group's default domain
//! (`.../iommu_group/type`: `DMA`, `DMA-FQ` translate, `identity` passes physical addresses
//! through, `blocked` stops all DMA).

use std::{fs, io, path::Path};

use serde::Serialize;

/// What the IOMMU does with a device's DMA addresses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Domain {
    /// No IOMMU group: no IOMMU stands between the device and memory (or it is off).
    NoIommu,
    /// An identity (passthrough) domain: device addresses are physical addresses.
    Identity,
    /// A translating domain (`DMA`, `DMA-FQ`, ...; the type as sysfs names it): the device
    /// reaches only what the kernel or a VFIO user mapped for it, at the I/O virtual
    /// addresses chosen then.
    Translated(String),
    /// A blocking domain: the device reaches no memory at all.
    Blocked,
}

impl Domain {
    /// The domain for a group type as `/sys/kernel/iommu_groups/N/type` spells it.
    pub fn from_type(text: &str) -> Self {
        match text.trim() {
            "identity" => Domain::Identity,
            "blocked" => Domain::Blocked,
            other => Domain::Translated(other.to_owned()),
        }
    }

    /// Whether a physical address handed to the device reaches memory.
    pub fn physical_ok(&self) -> bool {
        matches!(self, Domain::NoIommu | Domain::Identity)
    }
}

/// A PCI device's IOMMU situation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PciIommu {
    /// The device's address, `0000:00:03.0`.
    pub bdf: String,
    /// Its IOMMU group's number, if it has one.
    pub group: Option<u32>,
    pub domain: Domain,
}

impl PciIommu {
    /// Reads the device's group and domain type from `/sys`.
    pub fn read(bdf: &str) -> io::Result<Self> {
        Self::read_in(Path::new("/sys"), bdf)
    }

    /// [`PciIommu::read`] under another sysfs root.
    pub fn read_in(sys: &Path, bdf: &str) -> io::Result<Self> {
        let dev = sys.join("bus/pci/devices").join(bdf);
        if !dev.exists() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("no PCI device {bdf} (see /sys/bus/pci/devices or lspci -D)"),
            ));
        }
        let link = dev.join("iommu_group");
        let target = match fs::read_link(&link) {
            Ok(target) => target,
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                return Ok(Self {
                    bdf: bdf.to_owned(),
                    group: None,
                    domain: Domain::NoIommu,
                })
            }
            Err(err) => {
                return Err(io::Error::new(
                    err.kind(),
                    format!("{}: {err}", link.display()),
                ))
            }
        };
        let group = target
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| {
                io::Error::other(format!(
                    "{} points to {}: not a group",
                    link.display(),
                    target.display()
                ))
            })?;
        let type_path = link.join("type");
        let text = fs::read_to_string(&type_path)
            .map_err(|err| io::Error::new(err.kind(), format!("{}: {err}", type_path.display())))?;
        Ok(Self {
            bdf: bdf.to_owned(),
            group: Some(group),
            domain: Domain::from_type(&text),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn groups_and_types_are_read_from_sysfs() {
        let sys = std::env::temp_dir().join(format!("carveout-iommu-{}", std::process::id()));
        let _ = fs::remove_dir_all(&sys);
        let devices = sys.join("bus/pci/devices");
        let groups = sys.join("kernel/iommu_groups");
        fs::create_dir_all(groups.join("3")).unwrap();
        fs::write(groups.join("3/type"), "DMA-FQ\n").unwrap();
        for bdf in ["0000:00:03.0", "0000:00:04.0"] {
            fs::create_dir_all(devices.join(bdf)).unwrap();
        }
        symlink(groups.join("3"), devices.join("0000:00:03.0/iommu_group")).unwrap();

        let edu = PciIommu::read_in(&sys, "0000:00:03.0").unwrap();
        assert_eq!(edu.group, Some(3));
        assert_eq!(edu.domain, Domain::Translated("DMA-FQ".into()));
        assert!(!edu.domain.physical_ok());
        let plain = PciIommu::read_in(&sys, "0000:00:04.0").unwrap();
        assert_eq!((plain.group, plain.domain), (None, Domain::NoIommu));
        let err = PciIommu::read_in(&sys, "0000:00:1f.7").unwrap_err();
        assert!(
            err.to_string().contains("no PCI device 0000:00:1f.7"),
            "{err}"
        );
        fs::write(groups.join("3/type"), "identity\n").unwrap();
        assert!(PciIommu::read_in(&sys, "0000:00:03.0")
            .unwrap()
            .domain
            .physical_ok());
        fs::remove_dir_all(&sys).unwrap();
    }
}
