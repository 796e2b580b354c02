// SPDX-License-Identifier: GPL-2.0

//! Cache attributes of a region, after FreeBSD's `mem(4)` memory-range attributes: pure logic
//! (encoding, parsing, names), so it can be unit tested.

use kernel::prelude::*;

use crate::{
    abi,
    kernel_ext::memtype::CacheMode, //
};

/// The memory type every mapping of a region gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CacheAttr {
    /// Uncacheable (`MDF_UNCACHEABLE`).
    Uncached,
    /// Write-combining (`MDF_WRITECOMBINE`).
    WriteCombining,
    /// Write-through (`MDF_WRITETHROUGH`).
    WriteThrough,
    /// Write-back, ordinary cached memory (`MDF_WRITEBACK`): the default.
    WriteBack,
    /// Write-protect: cached, and mappings are read-only (`MDF_WRITEPROTECT`).
    WriteProtect,
}

const ALL: [CacheAttr; 5] = [
    CacheAttr::Uncached,
    CacheAttr::WriteCombining,
    CacheAttr::WriteThrough,
    CacheAttr::WriteBack,
    CacheAttr::WriteProtect,
];

impl CacheAttr {
    /// The attribute bit in `CARVEOUT_MR_*` flags.
    pub(crate) fn flag(self) -> u32 {
        match self {
            Self::Uncached => abi::MR_UNCACHEABLE,
            Self::WriteCombining => abi::MR_WRITECOMBINE,
            Self::WriteThrough => abi::MR_WRITETHROUGH,
            Self::WriteBack => abi::MR_WRITEBACK,
            Self::WriteProtect => abi::MR_WRITEPROTECT,
        }
    }

    /// The attribute that `flags` names: exactly one attribute bit and no other bit.
    pub(crate) fn from_flags(flags: u32) -> Option<Self> {
        ALL.into_iter().find(|attr| attr.flag() == flags)
    }

    /// The short name used by configfs, sysfs and the tools: `uc`, `wc`, `wt`, `wb`, `wp`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Uncached => "uc",
            Self::WriteCombining => "wc",
            Self::WriteThrough => "wt",
            Self::WriteBack => "wb",
            Self::WriteProtect => "wp",
        }
    }

    /// Parses a short name, ignoring surrounding white space (a trailing newline from `echo`).
    pub(crate) fn parse(text: &[u8]) -> Option<Self> {
        let text = text.trim_ascii();
        ALL.into_iter().find(|attr| attr.name().as_bytes() == text)
    }

    /// Whether mappings may be writable.
    pub(crate) fn allows_write(self) -> bool {
        self != Self::WriteProtect
    }

    /// The memory type of its mappings: UC is UC- (as `pgprot_noncached` gives it: uncached
    /// unless an MTRR says write-combining).
    pub(crate) fn cache_mode(self) -> CacheMode {
        match self {
            Self::Uncached => CacheMode::UncachedMinus,
            Self::WriteCombining => CacheMode::WriteCombining,
            Self::WriteThrough => CacheMode::WriteThrough,
            Self::WriteBack => CacheMode::WriteBack,
            Self::WriteProtect => CacheMode::WriteProtect,
        }
    }

    /// Whether 2 MiB and 1 GiB entries can carry it. x86 keeps the PAT bit of such an entry at
    /// bit 12, while `vmf_insert_pfn_pmd` and `vmf_insert_pfn_pud` copy a 4 KiB protection's
    /// PAT bit (bit 7) unchanged, where a large entry has PSE: WT and WP, the two types that
    /// need the PAT bit, would come out as UC and WC. They are mapped with 4 KiB entries
    /// instead.
    pub(crate) fn fits_huge_entries(self) -> bool {
        !matches!(self, Self::WriteThrough | Self::WriteProtect)
    }

    /// Whether the CPU can only give this attribute through PAT (without PAT, x86 would
    /// silently map it as uncached instead).
    pub(crate) fn needs_pat(self) -> bool {
        matches!(
            self,
            Self::WriteCombining | Self::WriteThrough | Self::WriteProtect
        )
    }
}

#[kunit_tests(carveout_attr)]
mod tests {
    use super::*;

    #[test]
    fn flags_round_trip() {
        for attr in ALL {
            assert_eq!(CacheAttr::from_flags(attr.flag()), Some(attr));
            assert_eq!(CacheAttr::parse(attr.name().as_bytes()), Some(attr));
        }
    }

    #[test]
    fn refuses_bad_flags() {
        assert_eq!(CacheAttr::from_flags(0), None);
        assert_eq!(
            CacheAttr::from_flags(abi::MR_UNCACHEABLE | abi::MR_WRITEBACK),
            None
        );
        assert_eq!(
            CacheAttr::from_flags(abi::MR_WRITEBACK | abi::MR_BUSY),
            None
        );
        assert_eq!(CacheAttr::from_flags(1 << 20), None);
    }

    #[test]
    fn parses_names() {
        assert_eq!(CacheAttr::parse(b"wc\n"), Some(CacheAttr::WriteCombining));
        assert_eq!(CacheAttr::parse(b" wp "), Some(CacheAttr::WriteProtect));
        assert_eq!(CacheAttr::parse(b"WB"), None);
        assert_eq!(CacheAttr::parse(b""), None);
        assert_eq!(CacheAttr::parse(b"wbx"), None);
    }

    #[test]
    fn only_wp_is_read_only() {
        for attr in ALL {
            assert_eq!(attr.allows_write(), attr != CacheAttr::WriteProtect);
        }
    }
}
