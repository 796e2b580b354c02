//! The test pattern shared with the C program: 64-bit word `i` of seed `s` is splitmix64, where
//! `i` counts words from the start of the region (so a part filled alone matches a whole fill).

use serde::Serialize;

/// Word `index` of the pattern for `seed`.
pub fn word(seed: u64, index: u64) -> u64 {
    let mut z = seed.wrapping_add(index.wrapping_add(1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The pattern's bytes for `[offset, offset + len)` of a region (words in native byte order).
pub fn bytes(seed: u64, offset: u64, len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    fill_bytes(seed, offset, &mut buf);
    buf
}

/// Fills `buf` with the pattern's bytes for `[offset, offset + buf.len())` of a region, a word
/// at a time.
pub fn fill_bytes(seed: u64, offset: u64, buf: &mut [u8]) {
    let mut k = 0;
    while k < buf.len() {
        let o = offset + k as u64;
        let word = word(seed, o / 8).to_ne_bytes();
        let start = (o % 8) as usize;
        let n = (8 - start).min(buf.len() - k);
        buf[k..k + n].copy_from_slice(&word[start..start + n]);
        k += n;
    }
}

/// Where a pattern check first failed, and how much differed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Mismatch {
    /// Offset (from the start of the region) of the first byte that differs.
    pub offset: u64,
    /// Bytes that differ.
    pub bytes: u64,
    /// 64-bit words that differ.
    pub words: u64,
    /// The first differing word: what the pattern says and what memory holds.
    pub expected: u64,
    pub found: u64,
}

/// Collects the differences of a pattern check, word by word.
#[derive(Debug, Default)]
pub struct Tally {
    first: Option<Mismatch>,
    bytes: u64,
    words: u64,
}

impl Tally {
    /// Records the word at region offset `offset` (8-aligned) holding `found`.
    #[inline]
    pub fn word(&mut self, offset: u64, expected: u64, found: u64) {
        let diff = expected ^ found;
        if diff == 0 {
            return;
        }
        let diff = diff.to_ne_bytes();
        let differing = diff.iter().filter(|&&b| b != 0).count() as u64;
        self.bytes += differing;
        self.words += 1;
        if self.first.is_none() {
            let byte = diff.iter().position(|&b| b != 0).unwrap_or(0) as u64;
            self.first = Some(Mismatch {
                offset: offset + byte,
                bytes: 0,
                words: 0,
                expected,
                found,
            });
        }
    }

    /// `Ok` when nothing differed.
    pub fn finish(self) -> Result<(), Mismatch> {
        match self.first {
            None => Ok(()),
            Some(first) => Err(Mismatch {
                bytes: self.bytes,
                words: self.words,
                ..first
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_follow_words() {
        let b = bytes(9, 13, 20);
        assert_eq!(b[3], word(9, 2).to_ne_bytes()[0]);
        assert_eq!(b, bytes(9, 0, 40)[13..33]);
        // Byte by byte, as the definition reads.
        let by_byte: Vec<u8> = (13..33u64)
            .map(|o| word(9, o / 8).to_ne_bytes()[(o % 8) as usize])
            .collect();
        assert_eq!(b, by_byte);
    }

    #[test]
    fn words_differ_by_seed_and_index() {
        assert_ne!(word(1, 0), word(2, 0));
        assert_ne!(word(1, 0), word(1, 1));
        assert_eq!(word(7, 3), word(7, 3));
        // Pinned: the C program computes the same numbers.
        assert_eq!(word(0, 0), 0xe220_a839_7b1d_cdaf);
    }

    #[test]
    fn tally_names_the_first_differing_byte_and_counts() {
        let mut t = Tally::default();
        t.word(0, 5, 5);
        // Byte 3 of the word at offset 0x10 (little-endian: bits 24..32).
        t.word(0x10, 0, 0xff00_0000);
        t.word(0x18, 0, 0x0101);
        let m = t.finish().expect_err("differs");
        assert_eq!(
            m.offset,
            if cfg!(target_endian = "little") {
                0x13
            } else {
                0x14
            }
        );
        assert_eq!((m.bytes, m.words), (3, 2));
        assert_eq!((m.expected, m.found), (0, 0xff00_0000));
        assert_eq!(Tally::default().finish(), Ok(()));
    }
}
