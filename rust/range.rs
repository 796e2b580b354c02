// SPDX-License-Identifier: GPL-2.0

//! Physical range arithmetic, and the numbers and text users write: pure logic, no kernel
//! state, so it can be unit tested.

use kernel::{
    page::PAGE_SIZE,
    prelude::*, //
};

/// Why a requested range is refused before anything is claimed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RangeError {
    /// `size` is zero.
    ZeroSize,
    /// `base` is not a multiple of the page size.
    UnalignedBase,
    /// `size` is not a multiple of the page size.
    UnalignedSize,
    /// `base + size` does not fit in 64 bits.
    Wraps,
}

impl RangeError {
    /// The reason, in words, for the one `dmesg` line that refuses a load.
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Self::ZeroSize => "size is 0 (pass base= and size=)",
            Self::UnalignedBase => "base is not page aligned",
            Self::UnalignedSize => "size is not a multiple of the page size",
            Self::Wraps => "base + size wraps past the end of the address space",
        }
    }
}

/// A non-empty, page-aligned physical address range that does not wrap.
///
/// # Invariants
///
/// `size > 0`, `base` and `size` are multiples of `PAGE_SIZE`, and `base + size - 1` fits in a
/// `u64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PhysRange {
    base: u64,
    size: u64,
}

/// A window of a [`PhysRange`] to map: physical start and length, both page aligned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Window {
    pub(crate) phys: u64,
    pub(crate) len: u64,
}

/// Why a window of the range cannot be mapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WindowError {
    /// The window starts or ends beyond the end of the range.
    OutOfRange,
    /// Offset plus length overflows.
    Overflow,
}

const PAGE: u64 = PAGE_SIZE as u64;

impl PhysRange {
    /// Checks `base` and `size` as given by a user.
    pub(crate) fn new(base: u64, size: u64) -> Result<Self, RangeError> {
        if size == 0 {
            return Err(RangeError::ZeroSize);
        }
        if base % PAGE != 0 {
            return Err(RangeError::UnalignedBase);
        }
        if size % PAGE != 0 {
            return Err(RangeError::UnalignedSize);
        }
        if base.checked_add(size - 1).is_none() {
            return Err(RangeError::Wraps);
        }
        // INVARIANT: all four conditions were checked above.
        Ok(Self { base, size })
    }

    pub(crate) fn base(&self) -> u64 {
        self.base
    }

    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    /// The last byte's address, as `/proc/iomem` prints it.
    pub(crate) fn last(&self) -> u64 {
        // No overflow: by the type invariant.
        self.base + (self.size - 1)
    }

    /// The window `[offset, offset + len)` of this range, if it lies inside it.
    pub(crate) fn window(&self, offset: u64, len: u64) -> Result<Window, WindowError> {
        let end = offset.checked_add(len).ok_or(WindowError::Overflow)?;
        if len == 0 || end > self.size {
            return Err(WindowError::OutOfRange);
        }
        Ok(Window {
            // No overflow: `offset < end <= size` and `base + size` fits by the invariant.
            phys: self.base + offset,
            len,
        })
    }
}

/// Parses a number the way configfs and `memmap=` write addresses and sizes: decimal, or hex
/// with `0x`, optionally followed by `K`, `M` or `G` (binary multiples). White space around it
/// (a trailing newline from `echo`) is ignored. `None` for anything else or an overflow.
pub(crate) fn parse_u64(text: &[u8]) -> Option<u64> {
    let text = core::str::from_utf8(text.trim_ascii()).ok()?;
    let (digits, shift) = match text.as_bytes().last()? {
        b'K' | b'k' => (&text[..text.len() - 1], 10),
        b'M' | b'm' => (&text[..text.len() - 1], 20),
        b'G' | b'g' => (&text[..text.len() - 1], 30),
        _ => (text, 0),
    };
    let value = match digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        Some(hex) => u64::from_str_radix(hex, 16).ok()?,
        None => digits.parse::<u64>().ok()?,
    };
    value.checked_mul(1 << shift)
}

/// Parses octal permission bits (`660`, `0660`): `None` for anything else or bits above 0o777.
pub(crate) fn parse_mode(text: &[u8]) -> Option<u16> {
    let text = core::str::from_utf8(text.trim_ascii()).ok()?;
    let mode = u16::from_str_radix(text, 8).ok()?;
    (mode <= 0o777).then_some(mode)
}

/// Bytes a user wrote, shown as text in error lines: the text if it is short UTF-8, else its
/// length.
pub(crate) struct BStrLossy<'a>(pub(crate) &'a [u8]);

impl core::fmt::Debug for BStrLossy<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let text = self.0.trim_ascii();
        match core::str::from_utf8(text) {
            Ok(text) if text.len() <= 32 => write!(f, "{text:?}"),
            _ => write!(f, "<{} bytes>", text.len()),
        }
    }
}

#[kunit_tests(carveout_range)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn accepts_aligned_range() {
        let r = PhysRange::new(128 * MIB, 64 * MIB);
        assert_eq!(
            r.map(|r| (r.base(), r.size(), r.last())),
            Ok((128 * MIB, 64 * MIB, 192 * MIB - 1))
        );
    }

    #[test]
    fn refuses_bad_ranges() {
        assert_eq!(PhysRange::new(128 * MIB, 0), Err(RangeError::ZeroSize));
        assert_eq!(
            PhysRange::new(128 * MIB + 1, MIB),
            Err(RangeError::UnalignedBase)
        );
        assert_eq!(
            PhysRange::new(128 * MIB, MIB + 8),
            Err(RangeError::UnalignedSize)
        );
        assert_eq!(
            PhysRange::new(u64::MAX - PAGE + 1, 2 * PAGE),
            Err(RangeError::Wraps)
        );
        assert!(PhysRange::new(u64::MAX - PAGE + 1, PAGE).is_ok());
    }

    #[test]
    fn parses_numbers() {
        assert_eq!(parse_u64(b"0x8000000\n"), Some(0x800_0000));
        assert_eq!(parse_u64(b"134217728"), Some(128 * MIB));
        assert_eq!(parse_u64(b"64M"), Some(64 * MIB));
        assert_eq!(parse_u64(b"2G"), Some(2048 * MIB));
        assert_eq!(parse_u64(b"4k"), Some(4096));
        assert_eq!(parse_u64(b""), None);
        assert_eq!(parse_u64(b"-1"), None);
        assert_eq!(parse_u64(b"12abc"), None);
        assert_eq!(parse_u64(b"0x"), None);
        assert_eq!(parse_u64(b"99999999999999999999"), None);
        assert_eq!(parse_u64(b"17179869184G"), None);
    }

    #[test]
    fn parses_modes() {
        assert_eq!(parse_mode(b"0660\n"), Some(0o660));
        assert_eq!(parse_mode(b"600"), Some(0o600));
        assert_eq!(parse_mode(b"0888"), None);
        assert_eq!(parse_mode(b"1777"), None);
        assert_eq!(parse_mode(b"rw"), None);
    }

    #[test]
    fn windows_stay_inside() -> Result {
        let r = PhysRange::new(128 * MIB, 64 * MIB).map_err(|_| EINVAL)?;
        assert_eq!(
            r.window(0, 64 * MIB),
            Ok(Window {
                phys: 128 * MIB,
                len: 64 * MIB
            })
        );
        assert_eq!(
            r.window(MIB, PAGE),
            Ok(Window {
                phys: 129 * MIB,
                len: PAGE
            })
        );
        assert_eq!(r.window(64 * MIB, PAGE), Err(WindowError::OutOfRange));
        assert_eq!(r.window(63 * MIB, 2 * MIB), Err(WindowError::OutOfRange));
        assert_eq!(
            r.window(u64::MAX - PAGE + 1, 2 * PAGE),
            Err(WindowError::Overflow)
        );
        assert_eq!(r.window(0, 0), Err(WindowError::OutOfRange));
        Ok(())
    }
}
