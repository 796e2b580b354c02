//! The ioctl ABI of `/dev/carveout*`, mirrored from `include/carveout.h` and checked against
//! it at compile time (see `build.rs`).

use std::mem::{offset_of, size_of};

use rustix::ioctl::{opcode, Opcode};

/// What the C compiler says about `include/carveout.h`.
mod c {
    #![allow(non_upper_case_globals)]
    include!(concat!(env!("OUT_DIR"), "/abi_c.rs"));
}

pub const ABI_VERSION: u32 = 1;

pub const MR_ATTR_MASK: u32 = 0x1f;
pub const MR_WRITEBACK: u32 = 1 << 3;
pub const MR_FIXBASE: u32 = 1 << 5;
pub const MR_FIXLEN: u32 = 1 << 6;
pub const MR_ACTIVE: u32 = 1 << 27;
pub const MR_BUSY: u32 = 1 << 30;

/// `struct carveout_info`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Info {
    pub abi_version: u32,
    pub info_size: u32,
    pub base: u64,
    pub size: u64,
    pub flags: u32,
    pub pad0: u32,
    pub name: [u8; 32],
    pub reserved: [u64; 4],
}

impl Info {
    /// The region name, up to its first NUL.
    pub fn name(&self) -> &str {
        let len = self
            .name
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(self.name.len());
        std::str::from_utf8(&self.name[..len]).unwrap_or("?")
    }
}

const IOCTL_MAGIC: u8 = 0xCA;
pub const GET_INFO: Opcode = opcode::read::<Info>(IOCTL_MAGIC, 0x40);

// The mirror must agree with the header, field by field.
const _: () = {
    assert!(size_of::<Info>() == c::SIZEOF_INFO);
    assert!(offset_of!(Info, abi_version) == c::OFFSET_abi_version);
    assert!(offset_of!(Info, info_size) == c::OFFSET_info_size);
    assert!(offset_of!(Info, base) == c::OFFSET_base);
    assert!(offset_of!(Info, size) == c::OFFSET_size);
    assert!(offset_of!(Info, flags) == c::OFFSET_flags);
    assert!(offset_of!(Info, name) == c::OFFSET_name);
    assert!(offset_of!(Info, reserved) == c::OFFSET___reserved);
    assert!(ABI_VERSION == c::ABI_VERSION);
    // `Opcode` is `u32` here but `c_ulong` on some targets: the cast keeps this portable.
    #[allow(clippy::unnecessary_cast)]
    let get_info = GET_INFO as u32;
    assert!(get_info == c::GET_INFO);
    assert!(MR_ATTR_MASK == c::MR_ATTR_MASK);
    assert!(MR_WRITEBACK == c::MR_WRITEBACK);
    assert!(MR_FIXBASE == c::MR_FIXBASE);
    assert!(MR_FIXLEN == c::MR_FIXLEN);
    assert!(MR_ACTIVE == c::MR_ACTIVE);
    assert!(MR_BUSY == c::MR_BUSY);
};
