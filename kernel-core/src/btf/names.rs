//! The string section classified for `btf_name_valid_identifier` (kernel/bpf/btf.c):
//! one pass marks the 64-byte blocks that hold a byte no identifier has, so the fast
//! path proves most names valid with one bit; a name near such a byte, or a section
//! with a string longer than the window, gets the byte-by-byte check.

use alloc::vec;
use alloc::vec::Vec;

use super::uapi::KSYM_NAME_LEN;
use super::verifier::{name_char_first_ok, name_char_rest_ok};

/// The string section, classified once: which 64-byte blocks hold a byte that cannot
/// be in an identifier (anything but NUL, `.`, `_`, ASCII letters and digits), and
/// whether every string is shorter than the identifier limit.
pub(crate) struct Names<'a> {
    pub(crate) s: &'a [u8],
    /// One bit per 64-byte block: the block or one of the `WINDOW - 1` after it holds
    /// a byte that cannot be in an identifier.
    dirty_near: Vec<u64>,
    /// Every run of non-NUL bytes is shorter than `SHORT`.
    all_short: bool,
}

/// Blocks a name of up to `SHORT` bytes can touch from its first byte.
const WINDOW: u32 = (SHORT as u32).div_ceil(64) + 1;

/// Longest string (without its NUL) for which a clean window proves a name valid.
const SHORT: usize = KSYM_NAME_LEN - 16;

impl<'a> Names<'a> {
    pub(crate) fn new(s: &'a [u8]) -> Self {
        let blocks = s.len().div_ceil(64);
        let mut dirty = vec![0u64; blocks.div_ceil(64)];
        let mut run = 0usize;
        let mut longest = 0usize;
        let mut chunks = s.chunks_exact(16);
        for (ci, c) in chunks.by_ref().enumerate() {
            let mut b = [0u8; 16];
            b.copy_from_slice(c);
            let (bad, nul) = classify16(&b);
            if bad != 0 {
                let blk = ci / 4;
                dirty[blk / 64] |= 1 << (blk % 64);
            }
            if nul == 0 {
                run += 16;
            } else {
                longest = longest.max(run + nul.trailing_zeros() as usize);
                run = 15 - (31 - nul.leading_zeros()) as usize;
            }
        }
        let base = s.len() - chunks.remainder().len();
        for (j, &c) in chunks.remainder().iter().enumerate() {
            if !ident_or_nul(c) {
                let blk = (base + j) / 64;
                dirty[blk / 64] |= 1 << (blk % 64);
            }
            if c == 0 {
                longest = longest.max(run);
                run = 0;
            } else {
                run += 1;
            }
        }
        longest = longest.max(run);
        // Spread each dirty block back over the WINDOW - 1 blocks before it.
        let dirty_near = (0..dirty.len())
            .map(|w| {
                let (x, y) = (dirty[w], dirty.get(w + 1).copied().unwrap_or(0));
                (1..WINDOW).fold(x, |acc, k| acc | (x >> k) | (y << (64 - k)))
            })
            .collect();
        Names {
            s,
            dirty_near,
            all_short: longest < SHORT,
        }
    }

    /// `btf_name_valid_identifier` at a valid offset.
    #[inline(always)]
    pub(crate) fn ident(&self, off: u32) -> bool {
        let i = off as usize;
        let Some(&first) = self.s.get(i) else {
            return false;
        };
        if !name_char_first_ok(first) {
            return false;
        }
        if self.all_short {
            // The name ends before i + SHORT; clean blocks up to there prove it.
            let b = i / 64;
            let near = self.dirty_near.get(b / 64).copied().unwrap_or(u64::MAX);
            if near & (1 << (b % 64)) == 0 {
                return true;
            }
        }
        self.s.get(i..).is_some_and(valid_identifier_bytes)
    }
}

/// NUL, `.`, `_`, ASCII letters and digits.
fn ident_or_nul(c: u8) -> bool {
    c == 0 || c == b'.' || c == b'_' || c.is_ascii_alphanumeric()
}

/// (bytes that are not [`ident_or_nul`], NUL bytes) of 16 bytes, one bit per byte.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
fn classify16(b: &[u8; 16]) -> (u32, u32) {
    use core::arch::x86_64::*;
    // SAFETY: SSE2 is enabled (cfg above); `b` is 16 readable bytes and the unaligned
    // load has no alignment requirement.
    unsafe {
        let x = _mm_loadu_si128(b.as_ptr().cast());
        let set = |c: u8| _mm_set1_epi8(c as i8);
        let between = |v, lo: u8, hi: u8| {
            _mm_and_si128(
                _mm_cmpgt_epi8(v, set(lo - 1)),
                _mm_cmplt_epi8(v, set(hi + 1)),
            )
        };
        let letter = between(_mm_or_si128(x, set(0x20)), b'a', b'z');
        let digit = between(x, b'0', b'9');
        let nul = _mm_cmpeq_epi8(x, _mm_setzero_si128());
        let punct = _mm_or_si128(_mm_cmpeq_epi8(x, set(b'_')), _mm_cmpeq_epi8(x, set(b'.')));
        let good = _mm_or_si128(_mm_or_si128(letter, digit), _mm_or_si128(nul, punct));
        (
            !(_mm_movemask_epi8(good) as u32) & 0xffff,
            _mm_movemask_epi8(nul) as u32,
        )
    }
}

/// (bytes that are not [`ident_or_nul`], NUL bytes) of 16 bytes, one bit per byte.
#[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
fn classify16(b: &[u8; 16]) -> (u32, u32) {
    classify16_bytes(b)
}

#[cfg_attr(all(target_arch = "x86_64", target_feature = "sse2"), allow(dead_code))]
fn classify16_bytes(b: &[u8; 16]) -> (u32, u32) {
    let (mut bad, mut nul) = (0u32, 0u32);
    for (j, &c) in b.iter().enumerate() {
        bad |= u32::from(!ident_or_nul(c)) << j;
        nul |= u32::from(c == 0) << j;
    }
    (bad, nul)
}

/// `btf_name_valid_identifier` over the bytes from the name to the end of the string
/// section (which ends in NUL). Eight bytes at a time while they are ASCII.
fn valid_identifier_bytes(s: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    // Per byte of an ASCII word: high bit set where lo <= byte <= hi.
    const fn in_range(x: u64, lo: u8, hi: u8) -> u64 {
        let ge = x.wrapping_add(ONES * (0x80 - lo as u64));
        let gt = x.wrapping_add(ONES * (0x7f - hi as u64));
        ge & !gt & HIGH
    }
    // Per byte: high bit set where byte == c.
    const fn eq(x: u64, c: u8) -> u64 {
        let y = x ^ (ONES * c as u64);
        !(((y & LOW7).wrapping_add(LOW7)) | y) & HIGH
    }
    let Some(&first) = s.first() else {
        return false;
    };
    if !name_char_first_ok(first) {
        return false;
    }
    let lim = s.len().min(KSYM_NAME_LEN);
    let mut j = 1;
    while j + 8 <= lim {
        let Some(w) = s.get(j..j + 8) else { break };
        let mut b = [0u8; 8];
        b.copy_from_slice(w);
        let x = u64::from_le_bytes(b);
        if x & HIGH != 0 {
            break;
        }
        let ok = in_range(x | (ONES * 0x20), b'a', b'z')
            | in_range(x, b'0', b'9')
            | eq(x, b'_')
            | eq(x, b'.');
        let bad = !ok & HIGH;
        if bad != 0 {
            let at = (bad.trailing_zeros() / 8) as usize;
            return b[at] == 0;
        }
        j += 8;
    }
    while j < lim {
        let c = s[j];
        if c == 0 {
            return true;
        }
        if !name_char_rest_ok(c) {
            return false;
        }
        j += 1;
    }
    s.get(lim).is_none_or(|&c| c == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The word-at-a-time identifier check agrees with the byte loop on every
    /// single-byte substitution, at every position of a word and across the limit.
    #[test]
    fn identifier_words_match_bytes() {
        let bytewise = |s: &[u8]| {
            let Some(&f) = s.first() else { return false };
            if !name_char_first_ok(f) {
                return false;
            }
            let lim = s.len().min(KSYM_NAME_LEN);
            for &c in &s[1..lim] {
                if c == 0 {
                    return true;
                }
                if !name_char_rest_ok(c) {
                    return false;
                }
            }
            s.get(lim).is_none_or(|&c| c == 0)
        };
        let mut checked = 0;
        for len in [1usize, 7, 8, 9, 16, 17, 511, 512, 513] {
            for pos in 0..len.min(20) {
                for c in 0..=255u8 {
                    let mut s = vec![b'a'; len];
                    s[pos] = c;
                    s.push(0);
                    s.extend_from_slice(b"zz\0");
                    assert_eq!(
                        valid_identifier_bytes(&s),
                        bytewise(&s),
                        "len {len} pos {pos} byte {c:#x}"
                    );
                    checked += 1;
                }
            }
        }
        assert!(checked > 10_000);
        let mut long = vec![b'x'; 600];
        long.push(0);
        assert!(!valid_identifier_bytes(&long));
        long.truncate(512);
        long.push(0);
        assert!(valid_identifier_bytes(&long));
    }

    /// The 16-byte classifier in use (SSE2 on x86_64) agrees with the byte loop for
    /// every byte value at every position.
    #[test]
    fn classify16_matches_bytes() {
        for pos in 0..16 {
            for c in 0..=255u8 {
                let mut b = *b"abc_.09XYZ\0zz_qr";
                b[10] = 0;
                b[pos] = c;
                assert_eq!(
                    classify16(&b),
                    classify16_bytes(&b),
                    "pos {pos} byte {c:#x}"
                );
            }
        }
    }

    /// A name next to a non-identifier byte, and strings too long for the window,
    /// are decided by the byte check.
    #[test]
    fn names_window_falls_back_near_dirty_bytes() {
        let mut s = b"\0good\0a b\0".to_vec();
        let n = Names::new(&s);
        assert!(n.ident(1) && !n.ident(6));
        s.extend(core::iter::repeat_n(b'x', 600));
        s.push(0);
        let n = Names::new(&s);
        assert!(!n.all_short);
        assert!(n.ident(1) && !n.ident(6) && !n.ident(10));
    }
}
