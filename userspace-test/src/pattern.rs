//! The test pattern shared with the C program: 64-bit word `i` of seed `s` is splitmix64.

/// Word `index` of the pattern for `seed`.
pub fn word(seed: u64, index: u64) -> u64 {
    let mut z = seed.wrapping_add(index.wrapping_add(1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The pattern's bytes for `[offset, offset + len)` of a region (words in native byte order).
pub fn bytes(seed: u64, offset: u64, len: usize) -> Vec<u8> {
    (offset..offset + len as u64)
        .map(|o| word(seed, o / 8).to_ne_bytes()[(o % 8) as usize])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_differ_by_seed_and_index() {
        assert_ne!(word(1, 0), word(2, 0));
        assert_ne!(word(1, 0), word(1, 1));
        assert_eq!(word(7, 3), word(7, 3));
    }

    #[test]
    fn bytes_follow_words() {
        let b = bytes(9, 13, 20);
        assert_eq!(b[3], word(9, 2).to_ne_bytes()[0]);
        assert_eq!(b, bytes(9, 0, 40)[13..33]);
    }
}
