//! A region's cache attribute (`CARVEOUT_MR_*`), and the names of a region's flags.

use std::{fmt, str::FromStr};

use serde::Serialize;

use crate::abi;

/// A region's cache attribute (`CARVEOUT_MR_*`), named as the configfs `attr` file names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Attr {
    /// Uncacheable.
    Uc,
    /// Write-combining.
    Wc,
    /// Write-through.
    Wt,
    /// Write-back: ordinary cached memory (the default).
    Wb,
    /// Write-protect: cached, mappings read-only.
    Wp,
}

impl Attr {
    pub const ALL: [Attr; 5] = [Attr::Uc, Attr::Wc, Attr::Wt, Attr::Wb, Attr::Wp];

    pub fn bit(self) -> u32 {
        match self {
            Attr::Uc => abi::MR_UNCACHEABLE,
            Attr::Wc => abi::MR_WRITECOMBINE,
            Attr::Wt => abi::MR_WRITETHROUGH,
            Attr::Wb => abi::MR_WRITEBACK,
            Attr::Wp => abi::MR_WRITEPROTECT,
        }
    }

    /// The attribute of `flags`, if exactly one attribute bit is set.
    pub fn from_flags(flags: u32) -> Option<Attr> {
        let bits = flags & abi::MR_ATTR_MASK;
        Attr::ALL.into_iter().find(|a| a.bit() == bits)
    }

    pub fn name(self) -> &'static str {
        match self {
            Attr::Uc => "uc",
            Attr::Wc => "wc",
            Attr::Wt => "wt",
            Attr::Wb => "wb",
            Attr::Wp => "wp",
        }
    }
}

impl fmt::Display for Attr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Attr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Attr::ALL
            .into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| format!("{s:?} is not an attribute: use uc, wc, wt, wb or wp"))
    }
}

/// The names of the bits set in `flags` (`wb fixbase fixlen active`), unknown bits in hex.
pub fn flag_names(flags: u32) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    let mut rest = flags;
    for attr in Attr::ALL {
        if flags & attr.bit() != 0 {
            names.push(attr.name().into());
            rest &= !attr.bit();
        }
    }
    for (bit, name) in [
        (abi::MR_FIXBASE, "fixbase"),
        (abi::MR_FIXLEN, "fixlen"),
        (abi::MR_UNLISTED, "unlisted"),
        (abi::MR_PAGES, "pages"),
        (abi::MR_ACTIVE, "active"),
        (abi::MR_BUSY, "busy"),
    ] {
        if flags & bit != 0 {
            names.push(name.into());
            rest &= !bit;
        }
    }
    if rest != 0 {
        names.push(format!("{rest:#x}"));
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_round_trip_through_names_and_bits() {
        for attr in Attr::ALL {
            assert_eq!(attr.name().parse::<Attr>(), Ok(attr));
            assert_eq!(Attr::from_flags(attr.bit() | abi::MR_ACTIVE), Some(attr));
        }
        assert_eq!("WC".parse::<Attr>(), Ok(Attr::Wc));
        assert!("writeback"
            .parse::<Attr>()
            .unwrap_err()
            .contains("use uc, wc, wt, wb or wp"));
        assert_eq!(
            Attr::from_flags(abi::MR_WRITEBACK | abi::MR_UNCACHEABLE),
            None
        );
        assert_eq!(Attr::from_flags(0), None);
        assert_eq!(
            flag_names(
                abi::MR_WRITEBACK | abi::MR_FIXBASE | abi::MR_FIXLEN | abi::MR_ACTIVE | 1 << 12
            ),
            ["wb", "fixbase", "fixlen", "active", "0x1000"]
        );
        assert_eq!(
            flag_names(abi::MR_UNCACHEABLE | abi::MR_UNLISTED | abi::MR_ACTIVE),
            ["uc", "unlisted", "active"]
        );
        assert_eq!(
            flag_names(abi::MR_WRITEBACK | abi::MR_PAGES | abi::MR_ACTIVE),
            ["wb", "pages", "active"]
        );
    }
}
