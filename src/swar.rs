//! Byte search inside one `u64` word ("SIMD within a register"), for the short keys, values
//! and path segments of the hot path, where a call to a vectorized searcher costs more than
//! the search.

/// The bytes of `word` equal to `needle`, flagged by their high bit: the zero-byte test on
/// `word ^ needle * 0x01..01`. Borrows only run upwards, so the **lowest** flag is exact (a
/// higher one may be a false positive), and the result is zero exactly when no byte matches.
#[inline(always)]
pub(crate) fn flag_bytes(word: u64, needle: u8) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let x = word ^ (ONES * u64::from(needle));
    x.wrapping_sub(ONES) & !x & HIGHS
}

/// The index of the lowest flagged byte of a non-zero [`flag_bytes`] result (little-endian:
/// byte 0 is the word's first byte in memory).
#[inline(always)]
pub(crate) fn first_flagged(flags: u64) -> usize {
    (flags.trailing_zeros() / 8) as usize
}

/// Whether any byte of `word` has its high bit set (is not ASCII).
#[inline(always)]
pub(crate) fn any_high(word: u64) -> bool {
    word & 0x8080_8080_8080_8080 != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lowest_flag_is_the_first_match_and_zero_means_none() {
        // every position of the needle, with neighbours one below and above it (where a
        // borrow could go wrong) and a zero byte
        let needle = b'%';
        for at in 0..=8 {
            for fill in [needle - 1, needle + 1, 0, 0xff] {
                let mut bytes = [fill; 8];
                if at < 8 {
                    bytes[at] = needle;
                }
                let flags = flag_bytes(u64::from_le_bytes(bytes), needle);
                if at < 8 {
                    assert_eq!(first_flagged(flags), at, "{bytes:?}");
                } else {
                    assert_eq!(flags, 0, "{bytes:?}");
                }
            }
        }
        assert!(any_high(u64::from_le_bytes(*b"abc\x80defg")));
        assert!(!any_high(u64::from_le_bytes(*b"abcdefgh")));
    }
}
