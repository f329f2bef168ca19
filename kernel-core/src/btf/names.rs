//! The string section classified for `btf_name_valid_identifier` (kernel/bpf/btf.c):
//! one pass over its 64-byte blocks finds those that hold only identifier bytes and
//! NULs, and those that also hold a NUL. A name whose first byte may start an
//! identifier is then proven valid by one bit: its block and the next are clean and
//! the next holds a NUL, so the name ends within 128 bytes on identifier bytes only.
//! Any other name gets the byte-by-byte check.

use alloc::vec;
use alloc::vec::Vec;

use super::uapi::KSYM_NAME_LEN;
use super::verifier::{name_char_first_ok, name_char_rest_ok};

/// The string section, classified once.
pub(crate) struct Names<'a> {
    pub(crate) s: &'a [u8],
    /// One bit per 64-byte block `b`: blocks `b` and `b + 1` hold only NUL, `.`, `_`,
    /// ASCII letters and digits, and `b + 1` holds a NUL (past the section's end
    /// counts as such a block).
    proven: Vec<u64>,
}

impl<'a> Names<'a> {
    pub(crate) fn new(s: &'a [u8]) -> Self {
        let blocks = s.len().div_ceil(64);
        let words = blocks.div_ceil(64) + 1;
        // Bit per block: clean; clean and holding a NUL. Blocks past the end are both.
        let mut clean = vec![u64::MAX; words];
        let mut with_nul = vec![u64::MAX; words];
        let mut mark = |bi: usize, (good, nul): (bool, bool)| {
            let bit = 1u64 << (bi % 64);
            clean[bi / 64] &= !bit | u64::from(good).wrapping_neg();
            with_nul[bi / 64] &= !bit | u64::from(good && nul).wrapping_neg();
        };
        let mut chunks = s.chunks_exact(64);
        for (bi, c) in chunks.by_ref().enumerate() {
            let mut b = [0u8; 64];
            b.copy_from_slice(c);
            mark(bi, classify64(&b));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            // The zero tail is clean and holds a NUL.
            let mut b = [0u8; 64];
            b[..rest.len()].copy_from_slice(rest);
            mark(s.len() / 64, classify64(&b));
        }
        let proven = (0..words)
            .map(|w| {
                let next = with_nul.get(w + 1).copied().unwrap_or(u64::MAX);
                clean[w] & ((with_nul[w] >> 1) | (next << 63))
            })
            .collect();
        Names { s, proven }
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
        let b = i / 64;
        let proven = self.proven.get(b / 64).copied().unwrap_or(0);
        if proven >> (b % 64) & 1 != 0 {
            return true;
        }
        valid_identifier_bytes(&self.s[i..])
    }
}

/// NUL, `.`, `_`, ASCII letters and digits.
fn ident_or_nul(c: u8) -> bool {
    c == 0 || c == b'.' || c == b'_' || c.is_ascii_alphanumeric()
}

/// (every byte is [`ident_or_nul`], some byte is NUL) of 64 bytes.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
fn classify64(b: &[u8; 64]) -> (bool, bool) {
    use core::arch::x86_64::*;
    // SAFETY: SSE2 is enabled (cfg above); each unaligned load reads 16 of the 64
    // bytes of `b` and has no alignment requirement.
    unsafe {
        let set = |c: u8| _mm_set1_epi8(c as i8);
        // Byte in lo..lo + n: after adding 0x80 - lo, the range starts at i8::MIN.
        let within = |v, lo: u8, n: u8| {
            _mm_cmplt_epi8(
                _mm_add_epi8(v, set(0x80u8.wrapping_sub(lo))),
                set(0x80u8.wrapping_add(n)),
            )
        };
        let mut good = set(0xff);
        let mut nul = _mm_setzero_si128();
        for j in 0..4 {
            let x = _mm_loadu_si128(b.as_ptr().add(16 * j).cast());
            let z = _mm_cmpeq_epi8(x, _mm_setzero_si128());
            let letter = within(_mm_or_si128(x, set(0x20)), b'a', 26);
            let digit = within(x, b'0', 10);
            let punct = _mm_or_si128(_mm_cmpeq_epi8(x, set(b'_')), _mm_cmpeq_epi8(x, set(b'.')));
            let g = _mm_or_si128(_mm_or_si128(letter, digit), _mm_or_si128(z, punct));
            good = _mm_and_si128(good, g);
            nul = _mm_or_si128(nul, z);
        }
        (
            _mm_movemask_epi8(good) == 0xffff,
            _mm_movemask_epi8(nul) != 0,
        )
    }
}

/// (every byte is [`ident_or_nul`], some byte is NUL) of 64 bytes.
#[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
fn classify64(b: &[u8; 64]) -> (bool, bool) {
    classify64_bytes(b)
}

#[cfg_attr(all(target_arch = "x86_64", target_feature = "sse2"), allow(dead_code))]
fn classify64_bytes(b: &[u8; 64]) -> (bool, bool) {
    (b.iter().all(|&c| ident_or_nul(c)), b.contains(&0))
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

    /// The 64-byte classifier in use (SSE2 on x86_64) agrees with the byte loop for
    /// every byte value at every position, with and without a NUL elsewhere.
    #[test]
    fn classify64_matches_bytes() {
        let mut seen = [0usize; 4];
        for pos in 0..64 {
            for c in 0..=255u8 {
                for nul_at in [None, Some((pos + 17) % 64)] {
                    let mut b = [b'a'; 64];
                    b[..16].copy_from_slice(b"abc_.09XYZ_zz_qr");
                    if let Some(z) = nul_at {
                        b[z] = 0;
                    }
                    b[pos] = c;
                    let got = classify64(&b);
                    assert_eq!(got, classify64_bytes(&b), "pos {pos} byte {c:#x}");
                    seen[got.0 as usize * 2 + got.1 as usize] += 1;
                }
            }
        }
        assert!(
            seen.iter().all(|&n| n > 0),
            "every outcome occurs: {seen:?}"
        );
    }

    /// The one-bit proof agrees with the byte check at every offset of sections
    /// holding a non-identifier byte, a long name, names across block edges and a
    /// section end inside a block.
    #[test]
    fn proven_names_match_the_byte_check() {
        let mut sections: Vec<Vec<u8>> = Vec::new();
        let mut s = b"\0good\0a b\0".to_vec();
        sections.push(s.clone());
        s.extend(core::iter::repeat_n(b'x', 600));
        s.push(0);
        sections.push(s.clone());
        let mut t = vec![0u8];
        for i in 0..300 {
            t.extend(core::iter::repeat_n(b'a' + (i % 26) as u8, 1 + i % 70));
            t.push(if i % 37 == 5 { b'-' } else { 0 });
        }
        t.push(0);
        sections.push(t);
        let mut proven = 0;
        for s in &sections {
            let n = Names::new(s);
            for off in 0..s.len() {
                let byte = valid_identifier_bytes(&s[off..]);
                assert_eq!(n.ident(off as u32), byte, "offset {off}");
                let b = off / 64;
                proven += (n.proven[b / 64] >> (b % 64) & 1) as usize;
            }
        }
        assert!(proven > 1000, "only {proven} offsets in proven blocks");
        let n = Names::new(&sections[0]);
        assert!(n.ident(1) && !n.ident(6));
    }
}
