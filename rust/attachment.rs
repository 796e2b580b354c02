// SPDX-License-Identifier: GPL-2.0

//! The PCI devices a region is mapped for (`CARVEOUT_ATTACH`, configfs `attach`, `attach=`):
//! one [`DmaAttachment`] each, what each request is refused for and the line that says why.

use kernel::{
    new_mutex,
    prelude::*,
    str::CString,
    sync::Mutex, //
};

use crate::{
    kernel_ext::dma_attachment::{
        AttachError,
        Claimed,
        DmaAttachment,
        Reach,
        Status,
        Translation, //
    },
    range::PhysRange,
};

/// A region's attached devices. Dropping it unmaps the region for each.
#[pin_data]
pub(crate) struct Attachments {
    #[pin]
    list: Mutex<AttachmentList>,
}

/// The list behind the lock. A region that goes (`enable` = 0, `rmdir`, unbinding, `rmmod`)
/// while mapped for devices says so for each as this drops: the attachments, dropped after the
/// line, unmap the region and drop their device references.
struct AttachmentList {
    /// The region's name, for those lines.
    region: CString,
    list: KVec<Pin<KBox<DmaAttachment>>>,
}

impl core::ops::Deref for AttachmentList {
    type Target = KVec<Pin<KBox<DmaAttachment>>>;

    fn deref(&self) -> &Self::Target {
        &self.list
    }
}

impl core::ops::DerefMut for AttachmentList {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.list
    }
}

impl Drop for AttachmentList {
    fn drop(&mut self) {
        for attachment in self.list.iter() {
            pr_info!(
                "{}: released while attached to {}: no longer mapped for it\n",
                self.region.to_str().unwrap_or("?"),
                attachment.name().to_str().unwrap_or("?")
            );
        }
    }
}

impl Attachments {
    /// No device attached yet, for the region named `region`.
    pub(crate) fn new(region: CString) -> impl PinInit<Self> {
        pin_init!(Self {
            list <- new_mutex!(AttachmentList {
                region,
                list: KVec::new(),
            }),
        })
    }

    /// Maps `claim` (region `region`, `range`) for the PCI device `device`; see
    /// [`crate::region::Region::attach`].
    pub(crate) fn attach(
        &self,
        region: &str,
        range: &PhysRange,
        claim: &impl Claimed,
        device: &CStr,
        reach: Reach,
    ) -> Result<(u64, Translation)> {
        let name = device.to_str().unwrap_or("?");
        let mut list = self.list.lock();
        if list.iter().any(|a| a.name() == device) {
            pr_err!("{}: attach {}: already attached\n", region, name);
            return Err(EEXIST);
        }
        let attachment = DmaAttachment::new(device, claim, reach)
            .map_err(|err| refused(region, name, range, err))?;
        let Status::Mapped { bus, translation } = attachment.status() else {
            // A removal or a bind right after mapping: already unmapped.
            pr_err!(
                "{}: attach {}: it went away while being attached\n",
                region,
                name
            );
            return Err(ENODEV);
        };
        // A failed push drops the attachment, which unmaps the region.
        list.push(attachment, GFP_KERNEL).map_err(|_| {
            pr_err!(
                "{}: attach {}: no memory to record the attachment: unmapped again\n",
                region,
                name
            );
            ENOMEM
        })?;
        pr_info!(
            "{}: attached {}: bus address {:#x} ({})\n",
            region,
            name,
            bus,
            match translation {
                Translation::Translated => "translated by its IOMMU",
                Translation::Direct => "the physical address",
            }
        );
        Ok((bus, translation))
    }

    /// Unmaps the region for `device` and drops the reference to it; `ENOENT` if not attached.
    pub(crate) fn detach(&self, region: &str, device: &CStr) -> Result {
        let name = device.to_str().unwrap_or("?");
        let mut list = self.list.lock();
        let Some(index) = list.iter().position(|a| a.name() == device) else {
            pr_err!("{}: detach {}: not attached\n", region, name);
            return Err(ENOENT);
        };
        drop(list.remove(index)?);
        pr_info!("{}: detached {}\n", region, name);
        Ok(())
    }

    /// Where the attachment of `device` stands; `ENOENT` if not attached.
    pub(crate) fn status(&self, device: &CStr) -> Result<Status> {
        let list = self.list.lock();
        let attachment = list.iter().find(|a| a.name() == device).ok_or(ENOENT)?;
        Ok(attachment.status())
    }

    /// Calls `line` for each attached device: its name and where it stands.
    pub(crate) fn each(
        &self,
        mut line: impl FnMut(&CStr, Status) -> core::fmt::Result,
    ) -> core::fmt::Result {
        for attachment in self.list.lock().iter() {
            line(attachment.name(), attachment.status())?;
        }
        Ok(())
    }
}

/// Says why attaching `name` to `region` was refused, in one line, and gives the errno.
fn refused(region: &str, name: &str, range: &PhysRange, err: AttachError) -> Error {
    let (errno, why, mask) = match &err {
        AttachError::NoDevice => (ENODEV, "no such PCI device", None),
        AttachError::HasDriver => (
            EBUSY,
            "a driver is bound to it and its DMA mask rules: state a reach only for a device with no driver",
            None,
        ),
        AttachError::UserDriver(..) => (EBUSY, "", None),
        AttachError::UserOwned => (
            EBUSY,
            "a user driver (VFIO, iommufd) owns its IOMMU group",
            None,
        ),
        AttachError::Revoked => (
            EBUSY,
            "a driver that may hand its DMA to userspace bound to its IOMMU group meanwhile",
            None,
        ),
        AttachError::ReachRefused => (EIO, "the DMA API refuses the reach stated for it", None),
        AttachError::OutOfReach(mask) => (
            ERANGE,
            "no IOMMU translates for it and its DMA mask does not reach the region",
            Some(*mask),
        ),
        AttachError::WouldBounce => (
            ERANGE,
            "the DMA API would bounce its transfers through another buffer",
            None,
        ),
        AttachError::Refused => (ENOMEM, "the DMA API refused to map the region", None),
        AttachError::Failed(err) => (*err, "mapping the region failed", None),
    };
    match (&err, mask) {
        (AttachError::UserDriver(device, driver), _) => pr_err!(
            "{}: attach {}: {} is bound to {}, which may hand DMA in its IOMMU group to userspace (unbind it first) ({:#x}-{:#x})\n",
            region,
            name,
            device.to_str().unwrap_or("?"),
            driver.to_str().unwrap_or("?"),
            range.base(),
            range.last()
        ),
        (_, Some(mask)) => pr_err!(
            "{}: attach {}: {} ({:#x}-{:#x}, DMA mask {:#x})\n",
            region,
            name,
            why,
            range.base(),
            range.last(),
            mask
        ),
        (_, None) => pr_err!(
            "{}: attach {}: {} ({:#x}-{:#x})\n",
            region,
            name,
            why,
            range.base(),
            range.last()
        ),
    }
    errno
}
