// SPDX-License-Identifier: GPL-2.0

//! The userspace ABI, mirrored from `include/carveout.h` (the one source of truth).

use kernel::ioctl::{
    _IOR,
    _IOW,
    _IOWR, //
};

use crate::kernel_ext::uapi::uapi_struct;

pub(crate) const ABI_VERSION: u32 = 1;

pub(crate) const MR_UNCACHEABLE: u32 = 1 << 0;
pub(crate) const MR_WRITECOMBINE: u32 = 1 << 1;
pub(crate) const MR_WRITETHROUGH: u32 = 1 << 2;
pub(crate) const MR_WRITEBACK: u32 = 1 << 3;
pub(crate) const MR_WRITEPROTECT: u32 = 1 << 4;
pub(crate) const MR_FIXBASE: u32 = 1 << 5;
pub(crate) const MR_FIXLEN: u32 = 1 << 6;
/// Claimed though not listed as reserved memory, because the region opted in
/// (`allow_unlisted=1`).
pub(crate) const MR_UNLISTED: u32 = 1 << 7;
/// The region has struct pages (pages mode): its mappings can be pinned; write-back only.
pub(crate) const MR_PAGES: u32 = 1 << 8;
pub(crate) const MR_ACTIVE: u32 = 1 << 27;
pub(crate) const MR_BUSY: u32 = 1 << 30;

uapi_struct! {
    /// `struct carveout_info`.
    pub(crate) struct Info {
        pub(crate) abi_version: u32,
        pub(crate) info_size: u32,
        pub(crate) base: u64,
        pub(crate) size: u64,
        pub(crate) flags: u32,
        pub(crate) pad0: u32,
        pub(crate) name: [u8; 32],
        pub(crate) reserved: [u64; 4],
    }
}

uapi_struct! {
    /// `struct carveout_range_desc`.
    pub(crate) struct RangeDesc {
        pub(crate) base: u64,
        pub(crate) len: u64,
        pub(crate) flags: u32,
        pub(crate) pad0: u32,
        pub(crate) owner: [u8; 8],
    }
}

uapi_struct! {
    /// `struct carveout_attach`.
    pub(crate) struct Attach {
        pub(crate) device: [u8; 32],
        pub(crate) bus_addr: u64,
        pub(crate) flags: u32,
        pub(crate) reach_bits: u32,
        pub(crate) reserved: [u64; 2],
    }
}

/// `CARVEOUT_ATTACH_TRANSLATED`: an IOMMU translates the device's DMA.
pub(crate) const ATTACH_TRANSLATED: u32 = 1 << 0;

uapi_struct! {
    /// `struct carveout_sync`.
    pub(crate) struct Sync {
        pub(crate) offset: u64,
        pub(crate) len: u64,
        pub(crate) direction: u32,
        pub(crate) pad0: u32,
    }
}

pub(crate) const SYNC_FOR_DEVICE: u32 = 1;
pub(crate) const SYNC_FOR_CPU: u32 = 2;

const _: () = assert!(core::mem::size_of::<Info>() == 96);
const _: () = assert!(core::mem::size_of::<Attach>() == 64);
const _: () = assert!(core::mem::size_of::<Sync>() == 24);
const _: () = assert!(core::mem::size_of::<RangeDesc>() == 32);

const IOCTL_MAGIC: u32 = 0xCA;

pub(crate) const CARVEOUT_GET_INFO: u32 = _IOR::<Info>(IOCTL_MAGIC, 0x40);
pub(crate) const CARVEOUT_GET_ATTR: u32 = _IOR::<RangeDesc>(IOCTL_MAGIC, 0x41);
pub(crate) const CARVEOUT_SET_ATTR: u32 = _IOW::<RangeDesc>(IOCTL_MAGIC, 0x42);
pub(crate) const CARVEOUT_ATTACH: u32 = _IOWR::<Attach>(IOCTL_MAGIC, 0x43);
pub(crate) const CARVEOUT_DETACH: u32 = _IOW::<Attach>(IOCTL_MAGIC, 0x44);
pub(crate) const CARVEOUT_BUS_ADDR: u32 = _IOWR::<Attach>(IOCTL_MAGIC, 0x45);
pub(crate) const CARVEOUT_SYNC: u32 = _IOW::<Sync>(IOCTL_MAGIC, 0x46);
