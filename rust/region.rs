// SPDX-License-Identifier: GPL-2.0

//! A claimed carve-out: the range, its claim in the iomem tree, and what may be done with it.

use kernel::{
    device::Device,
    mm::virt::VmaNew,
    page::PAGE_SIZE,
    prelude::*,
    sync::Arc, //
};

use crate::{
    abi,
    range::{
        PhysRange,
        RangeError,
        WindowError, //
    },
    sys::{
        self,
        IomemClaim,
        RamOverlap, //
    },
};

/// The name the claim carries in `/proc/iomem`.
const CLAIM_NAME: &CStr = c"carveout";

/// A carve-out that this driver holds. Shared by the bound device and every open file, so the
/// claim outlives the last user even if the device is unbound first.
pub(crate) struct Region {
    range: PhysRange,
    name: &'static CStr,
    /// Released (and the range handed back to the iomem tree) on drop.
    _claim: IomemClaim,
}

impl Region {
    /// Checks that `[base, base + size)` is a reserved range nobody else holds, and claims it.
    ///
    /// Refusals: `EINVAL` for a range that is empty, unaligned, wraps, or touches System RAM;
    /// `EBUSY` for a range something else already claimed. Each says why in one line on `dev`.
    /// Nothing reads or writes the memory.
    pub(crate) fn claim(
        dev: &Device,
        base: u64,
        size: u64,
        name: &'static CStr,
    ) -> Result<Arc<Self>> {
        let range = PhysRange::new(base, size).map_err(|err: RangeError| {
            dev_err!(dev, "refusing {:#x}+{:#x}: {}\n", base, size, err.reason());
            EINVAL
        })?;
        if sys::system_ram_overlap(&range)? == RamOverlap::Intersects {
            dev_err!(
                dev,
                "refusing {:#x}-{:#x}: overlaps System RAM (reserve it first, e.g. memmap=SIZE$BASE)\n",
                range.base(),
                range.last()
            );
            return Err(EINVAL);
        }
        let claim = sys::claim_iomem(&range, CLAIM_NAME).ok_or_else(|| {
            dev_err!(
                dev,
                "refusing {:#x}-{:#x}: already claimed by another driver (see /proc/iomem)\n",
                range.base(),
                range.last()
            );
            EBUSY
        })?;
        dev_info!(
            dev,
            "claimed {:#x}-{:#x} ({} KiB) as /dev/{}\n",
            range.base(),
            range.last(),
            range.size() / 1024,
            name
        );
        Ok(Arc::new(
            Self {
                range,
                name,
                _claim: claim,
            },
            GFP_KERNEL,
        )?)
    }

    /// What `CARVEOUT_GET_INFO` reports.
    pub(crate) fn info(&self) -> abi::Info {
        let mut info = abi::Info {
            abi_version: abi::ABI_VERSION,
            info_size: core::mem::size_of::<abi::Info>() as u32,
            base: self.range.base(),
            size: self.range.size(),
            flags: abi::MR_WRITEBACK | abi::MR_FIXBASE | abi::MR_FIXLEN | abi::MR_ACTIVE,
            ..Default::default()
        };
        let name = self.name.to_bytes();
        // Leave at least one NUL at the end.
        let len = name.len().min(info.name.len() - 1);
        info.name[..len].copy_from_slice(&name[..len]);
        info
    }

    /// Maps the window of the region that `vma` asks for (its page offset and length).
    ///
    /// `EINVAL` for a private mapping or an offset that overflows; `ENXIO` for a window that
    /// does not lie inside the region.
    pub(crate) fn map(&self, vma: &VmaNew) -> Result {
        if !sys::vma_is_shared(vma) {
            return Err(EINVAL);
        }
        let offset = sys::vma_page_offset(vma)
            .checked_mul(PAGE_SIZE as u64)
            .ok_or(EINVAL)?;
        let len = (vma.end() - vma.start()) as u64;
        let window = self.range.window(offset, len).map_err(|err| match err {
            WindowError::OutOfRange => ENXIO,
            WindowError::Overflow => EINVAL,
        })?;
        sys::map_window(vma, window)
    }
}
