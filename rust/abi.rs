// SPDX-License-Identifier: GPL-2.0

//! The userspace ABI, mirrored from `include/carveout.h` (the one source of truth).

use kernel::{
    ioctl::_IOR,
    transmute::AsBytes, //
};

pub(crate) const ABI_VERSION: u32 = 1;

pub(crate) const MR_WRITEBACK: u32 = 1 << 3;
pub(crate) const MR_FIXBASE: u32 = 1 << 5;
pub(crate) const MR_FIXLEN: u32 = 1 << 6;
pub(crate) const MR_ACTIVE: u32 = 1 << 27;

/// `struct carveout_info`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
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

const _: () = assert!(core::mem::size_of::<Info>() == 96);

// SAFETY: `Info` is `repr(C)` with only integer fields laid out without padding (checked by
// the size assertion above), so every byte is initialised.
unsafe impl AsBytes for Info {}

const IOCTL_MAGIC: u32 = 0xCA;

pub(crate) const CARVEOUT_GET_INFO: u32 = _IOR::<Info>(IOCTL_MAGIC, 0x40);
