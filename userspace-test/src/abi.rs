//! The ioctl ABI of `/dev/carveout*`, mirrored from `include/carveout.h` and checked against
//! it at compile time (see `build.rs`) and again by the unit test below.

use std::mem::{offset_of, size_of};

use rustix::ioctl::{opcode, Opcode};

/// What the C compiler says about `include/carveout.h`.
mod c {
    #![allow(non_upper_case_globals, dead_code)]
    include!(concat!(env!("OUT_DIR"), "/abi_c.rs"));
}

pub const ABI_VERSION: u32 = 1;

/// Cache attribute bits: exactly one is set in a region's flags.
pub const MR_UNCACHEABLE: u32 = 1 << 0;
pub const MR_WRITECOMBINE: u32 = 1 << 1;
pub const MR_WRITETHROUGH: u32 = 1 << 2;
pub const MR_WRITEBACK: u32 = 1 << 3;
pub const MR_WRITEPROTECT: u32 = 1 << 4;
pub const MR_ATTR_MASK: u32 = 0x1f;

/// State bits.
pub const MR_FIXBASE: u32 = 1 << 5;
pub const MR_FIXLEN: u32 = 1 << 6;
/// Claimed though not listed as reserved memory, because the region opted in
/// (`allow_unlisted=1`); such a region defaults to UC.
pub const MR_UNLISTED: u32 = 1 << 7;
/// The region has struct pages (pages mode): its mappings can be pinned (`O_DIRECT`,
/// io_uring, `vmsplice`, iommufd); write-back only.
pub const MR_PAGES: u32 = 1 << 8;
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

/// `struct carveout_range_desc`: the region as a mem(4) memory-range descriptor.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RangeDesc {
    pub base: u64,
    pub len: u64,
    pub flags: u32,
    pub pad0: u32,
    /// NUL-padded, not NUL-terminated when all 8 bytes are used.
    pub owner: [u8; 8],
}

impl RangeDesc {
    /// The owner, up to its first NUL or all 8 bytes.
    pub fn owner(&self) -> String {
        let len = self
            .owner
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(self.owner.len());
        String::from_utf8_lossy(&self.owner[..len]).into_owned()
    }
}

/// `struct carveout_attach`: a PCI device given DMA access to the region.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Attach {
    /// The PCI device name, `0000:00:03.0`, NUL-terminated.
    pub device: [u8; 32],
    pub bus_addr: u64,
    pub flags: u32,
    /// ATTACH: 0, or the address bits a device with no driver decodes (12 to 64).
    pub reach_bits: u32,
    pub reserved: [u64; 2],
}

/// `CARVEOUT_ATTACH_TRANSLATED`: an IOMMU translates the device's DMA.
pub const ATTACH_TRANSLATED: u32 = 1 << 0;

/// `struct carveout_sync`: cache maintenance of a piece of the region.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sync {
    pub offset: u64,
    pub len: u64,
    pub direction: u32,
    pub pad0: u32,
}

pub const SYNC_FOR_DEVICE: u32 = 1;
pub const SYNC_FOR_CPU: u32 = 2;

const IOCTL_MAGIC: u8 = 0xCA;
pub const GET_INFO: Opcode = opcode::read::<Info>(IOCTL_MAGIC, 0x40);
pub const GET_ATTR: Opcode = opcode::read::<RangeDesc>(IOCTL_MAGIC, 0x41);
pub const SET_ATTR: Opcode = opcode::write::<RangeDesc>(IOCTL_MAGIC, 0x42);
pub const ATTACH: Opcode = opcode::read_write::<Attach>(IOCTL_MAGIC, 0x43);
pub const DETACH: Opcode = opcode::write::<Attach>(IOCTL_MAGIC, 0x44);
pub const BUS_ADDR: Opcode = opcode::read_write::<Attach>(IOCTL_MAGIC, 0x45);
pub const SYNC: Opcode = opcode::write::<Sync>(IOCTL_MAGIC, 0x46);

// The mirror must agree with the header, field by field: a difference fails the build.
const _: () = {
    assert!(size_of::<Info>() == c::SIZEOF_INFO);
    assert!(offset_of!(Info, abi_version) == c::OFFSET_INFO_abi_version);
    assert!(offset_of!(Info, info_size) == c::OFFSET_INFO_info_size);
    assert!(offset_of!(Info, base) == c::OFFSET_INFO_base);
    assert!(offset_of!(Info, size) == c::OFFSET_INFO_size);
    assert!(offset_of!(Info, flags) == c::OFFSET_INFO_flags);
    assert!(offset_of!(Info, pad0) == c::OFFSET_INFO___pad0);
    assert!(offset_of!(Info, name) == c::OFFSET_INFO_name);
    assert!(size_of::<[u8; 32]>() == c::SIZEOF_INFO_NAME);
    assert!(offset_of!(Info, reserved) == c::OFFSET_INFO___reserved);
    assert!(size_of::<RangeDesc>() == c::SIZEOF_DESC);
    assert!(offset_of!(RangeDesc, base) == c::OFFSET_DESC_base);
    assert!(offset_of!(RangeDesc, len) == c::OFFSET_DESC_len);
    assert!(offset_of!(RangeDesc, flags) == c::OFFSET_DESC_flags);
    assert!(offset_of!(RangeDesc, pad0) == c::OFFSET_DESC___pad0);
    assert!(offset_of!(RangeDesc, owner) == c::OFFSET_DESC_owner);
    assert!(size_of::<[u8; 8]>() == c::SIZEOF_DESC_OWNER);
    assert!(size_of::<Attach>() == c::SIZEOF_ATTACH);
    assert!(offset_of!(Attach, device) == c::OFFSET_ATTACH_device);
    assert!(offset_of!(Attach, bus_addr) == c::OFFSET_ATTACH_bus_addr);
    assert!(offset_of!(Attach, flags) == c::OFFSET_ATTACH_flags);
    assert!(offset_of!(Attach, reach_bits) == c::OFFSET_ATTACH_reach_bits);
    assert!(offset_of!(Attach, reserved) == c::OFFSET_ATTACH___reserved);
    assert!(size_of::<Sync>() == c::SIZEOF_SYNC);
    assert!(offset_of!(Sync, offset) == c::OFFSET_SYNC_offset);
    assert!(offset_of!(Sync, len) == c::OFFSET_SYNC_len);
    assert!(offset_of!(Sync, direction) == c::OFFSET_SYNC_direction);
    assert!(offset_of!(Sync, pad0) == c::OFFSET_SYNC___pad0);
    assert!(ATTACH == c::ATTACH);
    assert!(DETACH == c::DETACH);
    assert!(BUS_ADDR == c::BUS_ADDR);
    assert!(SYNC == c::SYNC);
    assert!(ATTACH_TRANSLATED == c::ATTACH_TRANSLATED);
    assert!(SYNC_FOR_DEVICE == c::SYNC_FOR_DEVICE);
    assert!(SYNC_FOR_CPU == c::SYNC_FOR_CPU);
    assert!(ABI_VERSION == c::ABI_VERSION);
    assert!(GET_INFO == c::GET_INFO);
    assert!(GET_ATTR == c::GET_ATTR);
    assert!(SET_ATTR == c::SET_ATTR);
    assert!(MR_UNCACHEABLE == c::MR_UNCACHEABLE);
    assert!(MR_WRITECOMBINE == c::MR_WRITECOMBINE);
    assert!(MR_WRITETHROUGH == c::MR_WRITETHROUGH);
    assert!(MR_WRITEBACK == c::MR_WRITEBACK);
    assert!(MR_WRITEPROTECT == c::MR_WRITEPROTECT);
    assert!(MR_ATTR_MASK == c::MR_ATTR_MASK);
    assert!(MR_FIXBASE == c::MR_FIXBASE);
    assert!(MR_FIXLEN == c::MR_FIXLEN);
    assert!(MR_UNLISTED == c::MR_UNLISTED);
    assert!(MR_PAGES == c::MR_PAGES);
    assert!(MR_ACTIVE == c::MR_ACTIVE);
    assert!(MR_BUSY == c::MR_BUSY);
};

#[cfg(test)]
mod tests {
    use super::*;

    /// The same comparison as the compile-time block, as a test that reports what differs.
    #[test]
    fn mirror_matches_the_c_header() {
        let pairs: [(&str, u64, u64); 8] = [
            (
                "sizeof info",
                size_of::<Info>() as u64,
                c::SIZEOF_INFO as u64,
            ),
            (
                "sizeof range_desc",
                size_of::<RangeDesc>() as u64,
                c::SIZEOF_DESC as u64,
            ),
            ("GET_INFO", u64::from(GET_INFO), u64::from(c::GET_INFO)),
            ("GET_ATTR", u64::from(GET_ATTR), u64::from(c::GET_ATTR)),
            ("SET_ATTR", u64::from(SET_ATTR), u64::from(c::SET_ATTR)),
            (
                "owner offset",
                offset_of!(RangeDesc, owner) as u64,
                c::OFFSET_DESC_owner as u64,
            ),
            (
                "flags offset",
                offset_of!(RangeDesc, flags) as u64,
                c::OFFSET_DESC_flags as u64,
            ),
            (
                "attr mask",
                u64::from(MR_ATTR_MASK),
                u64::from(c::MR_ATTR_MASK),
            ),
        ];
        for (what, rust, header) in pairs {
            assert_eq!(rust, header, "{what}: Rust {rust:#x}, header {header:#x}");
        }
        // The documented sizes (the header asserts them too).
        assert_eq!(c::SIZEOF_INFO, 96);
        assert_eq!(c::SIZEOF_DESC, 32);
        // SET is a write, GET a read: direction bits 01 and 10 in bits 30-31.
        assert_eq!(c::SET_ATTR >> 30, 1);
        assert_eq!(c::GET_ATTR >> 30, 2);
    }

    #[test]
    fn owner_is_not_nul_terminated_when_full() {
        let desc = RangeDesc {
            owner: *b"carveout",
            ..RangeDesc::default()
        };
        assert_eq!(desc.owner(), "carveout");
        let short = RangeDesc {
            owner: *b"abc\0\0\0\0\0",
            ..RangeDesc::default()
        };
        assert_eq!(short.owner(), "abc");
    }
}
