//! Names in BTF (kernel/bpf/btf.c, lib/ctype.c): the one identifier checker
//! [`btf_name_valid_identifier`], [`btf_name_valid_section`], the kernel's Latin-1
//! `_ctype` they use, and [`Names`], which proves most identifiers of a string section
//! by one bit and hands every other name to the same checker.
//!
//! The kernel's `isalpha`/`isalnum`/`isprint` are those of lib/ctype.c, a Latin-1
//! table: 0xc0..=0xff are letters (but 0xd7 and 0xf7, which are punctuation), 0xa0 is a
//! space and 0xa1..=0xbf punctuation. A name is bytes, never decoded as UTF-8.
//!
//! No profile flag changes these rules.

use alloc::vec;
use alloc::vec::Vec;

use super::uapi::KSYM_NAME_LEN;

/// `_ctype` of lib/ctype.c: bit 0 upper, 1 lower, 2 digit, 3 punct, 4 hard space.
static CTYPE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = ctype_of(i as u8);
        i += 1;
    }
    t
};

const fn ctype_of(c: u8) -> u8 {
    const U: u8 = 1;
    const L: u8 = 2;
    const D: u8 = 4;
    const P: u8 = 8;
    const SP: u8 = 16;
    match c {
        b'A'..=b'Z' => U,
        b'a'..=b'z' => L,
        b'0'..=b'9' => D,
        b' ' => SP,
        0x21..=0x2f | 0x3a..=0x40 | 0x5b..=0x60 | 0x7b..=0x7e => P,
        0xa0 => SP,
        0xa1..=0xbf => P,
        0xd7 | 0xf7 => P,
        0xc0..=0xde => U,
        0xdf..=0xff => L,
        _ => 0,
    }
}

/// `isprint` (include/linux/ctype.h) with the kernel's `_ctype`.
fn isprint(c: u8) -> bool {
    CTYPE[c as usize] != 0
}

/// `__btf_name_char_ok` as two tables: [first char, later chars].
static NAME_OK: [[bool; 256]; 2] = {
    let mut t = [[false; 256]; 2];
    let mut i = 0;
    while i < 256 {
        let c = i as u8;
        let special = c == b'_' || c == b'.';
        t[0][i] = ctype_of(c) & 3 != 0 || special;
        t[1][i] = ctype_of(c) & 7 != 0 || special;
        i += 1;
    }
    t
};

/// `__btf_name_char_ok(c, true)`: `isalpha(c) || c == '_' || c == '.'` with the
/// kernel's Latin-1 `_ctype`.
#[inline(always)]
pub(crate) fn name_char_first_ok(c: u8) -> bool {
    NAME_OK[0][c as usize]
}

/// `__btf_name_char_ok(c, false)`: `isalnum(c) || c == '_' || c == '.'` with the
/// kernel's Latin-1 `_ctype` (also `bpf_obj_name_cpy`'s test, kernel/bpf/syscall.c).
#[inline(always)]
pub(crate) fn name_char_rest_ok(c: u8) -> bool {
    NAME_OK[1][c as usize]
}

/// `btf_name_valid_identifier` (kernel/bpf/btf.c) of the name at the start of `s`, the
/// bytes from the name's offset to the end of its string section: a first byte that
/// may start an identifier, then identifier bytes up to a NUL, at most
/// `KSYM_NAME_LEN` bytes in all (the kernel reads `src[KSYM_NAME_LEN]` and wants the
/// NUL there). Eight bytes at a time while they are ASCII. No profile flag changes it.
pub(crate) fn btf_name_valid_identifier(s: &[u8]) -> bool {
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

/// `btf_name_valid_section` (kernel/bpf/btf.c) of the name at the start of `s`: not
/// empty, printable bytes (`isprint`, Latin-1) up to a NUL, at most `KSYM_NAME_LEN`.
/// No profile flag changes it.
pub(crate) fn btf_name_valid_section(s: &[u8]) -> bool {
    let at = |i: usize| s.get(i).copied().unwrap_or(0);
    if at(0) == 0 {
        return false;
    }
    let mut i = 0;
    while at(i) != 0 && i < KSYM_NAME_LEN {
        if !isprint(at(i)) {
            return false;
        }
        i += 1;
    }
    at(i) == 0
}

/// A string section classified for [`btf_name_valid_identifier`]: one pass over its
/// 64-byte blocks finds those that hold only identifier bytes and NULs, and those that
/// also hold a NUL. A name whose first byte may start an identifier, in a block that is
/// clean and followed by a clean block holding a NUL, ends within 128 bytes on
/// identifier bytes only: it is valid. One bit per byte of the section says so (the
/// byte is an ASCII letter, `_` or `.`, in such a block), and a name check is that bit:
/// neither the name's bytes nor any other table are read. Any other name goes to
/// [`btf_name_valid_identifier`].
pub(crate) struct Names<'a> {
    pub(crate) s: &'a [u8],
    /// Per 64-byte block, bit `j`: byte `j` of the block starts a name proven valid.
    starts: Vec<u64>,
}

impl<'a> Names<'a> {
    pub(crate) fn new(s: &'a [u8]) -> Self {
        let whole = s.len() / 64;
        let mut starts = vec![0u64; s.len().div_ceil(64)];
        // The last block, zero-padded: (clean, holds a NUL, start bits).
        let rest = s.chunks_exact(64).remainder();
        let tail = (!rest.is_empty()).then(|| {
            let mut b = [0u8; 64];
            b[..rest.len()].copy_from_slice(rest);
            let (good, nul) = classify64(&b);
            (good, good && nul, start_bits(&b))
        });
        // The block after the whole blocks is the tail, or past the end of the
        // section, which counts as clean and holding a NUL.
        let after = tail.is_none_or(|(_, good_nul, _)| good_nul);
        classify_blocks(s, &mut starts, after);
        if let (Some((good, _, first)), Some(w)) = (tail, starts.get_mut(whole)) {
            // After the tail: past the end.
            *w = if good { first } else { 0 };
        }
        Names { s, starts }
    }

    /// Whether the bit of offset `off` proves the name there valid (so is the offset).
    #[inline(always)]
    pub(crate) fn proven(&self, off: u32) -> bool {
        let i = off as usize;
        self.starts
            .get(i / 64)
            .is_some_and(|&w| w >> (i % 64) & 1 != 0)
    }

    /// [`btf_name_valid_identifier`] at offset `off` of this section (a valid offset).
    #[inline(always)]
    pub(crate) fn ident(&self, off: u32) -> bool {
        self.proven(off) || self.ident_unproven(off)
    }

    /// [`Self::ident`] where the classification proves nothing: the name read byte
    /// by byte (out of line, to keep the callers' loops small).
    #[cold]
    #[inline(never)]
    fn ident_unproven(&self, off: u32) -> bool {
        match self.s.get(off as usize..) {
            Some(name) => btf_name_valid_identifier(name),
            None => false,
        }
    }

    /// The string at `off` is not empty (`value[0]` of a tag's value), `off` valid.
    #[inline(always)]
    pub(crate) fn nonempty(&self, off: u32) -> bool {
        self.s.get(off as usize).is_some_and(|&c| c != 0)
    }
}

/// The proven start bits of every whole 64-byte block of `s` into `starts` (see
/// [`Names::new`]): a block's [`start_bits`] where it is clean and the next block
/// is clean and holds a NUL (`after`: so is the block after the last), else 0. With
/// AVX2 where the host has it.
fn classify_blocks(s: &[u8], starts: &mut [u64], after: bool) {
    #[cfg(all(feature = "std", target_arch = "x86_64"))]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2 (checked just above).
        unsafe { classify_blocks_avx2(s, starts, after) };
        return;
    }
    classify_blocks_sse2(s, starts, after);
}

/// [`classify_blocks`] with [`classify64`] (16-byte vectors on x86_64).
fn classify_blocks_sse2(s: &[u8], starts: &mut [u64], after: bool) {
    let mut prev = (false, 0u64);
    for (i, c) in s.chunks_exact(64).enumerate() {
        let mut b = [0u8; 64];
        b.copy_from_slice(c);
        let (good, nul) = classify64(&b);
        prove(starts, i.wrapping_sub(1), prev, good && nul);
        prev = (good, start_bits(&b));
    }
    if let Some(last) = (s.len() / 64).checked_sub(1) {
        prove(starts, last, prev, after);
    }
}

/// Block `i`'s proven start bits from its (clean, start bits) `block` and whether
/// the next block is clean and holds a NUL (no block when `i` is out of range).
#[inline(always)]
fn prove(starts: &mut [u64], i: usize, block: (bool, u64), next: bool) {
    if let Some(w) = starts.get_mut(i) {
        *w = if block.0 && next { block.1 } else { 0 };
    }
}

/// [`classify_blocks`] with 32-byte vectors: a byte's class is the AND of two
/// 16-entry tables, one indexed by its low nibble and one by its high nibble
/// ([`NIBBLE_LO`], [`NIBBLE_HI`]); the byte is [`ident_or_nul`] where that is not 0.
///
/// # Safety
///
/// The CPU must have AVX2.
#[cfg(all(feature = "std", target_arch = "x86_64"))]
#[target_feature(enable = "avx2")]
unsafe fn classify_blocks_avx2(s: &[u8], starts: &mut [u64], after: bool) {
    use core::arch::x86_64::*;
    // SAFETY: each table is 16 readable bytes; the loads have no alignment
    // requirement.
    let (lo_t, hi_t) = unsafe {
        (
            _mm256_broadcastsi128_si256(_mm_loadu_si128(NIBBLE_LO.as_ptr().cast())),
            _mm256_broadcastsi128_si256(_mm_loadu_si128(NIBBLE_HI.as_ptr().cast())),
        )
    };
    let low = _mm256_set1_epi8(0x0f);
    let zero = _mm256_setzero_si256();
    // The classes of an ASCII letter, `_` and `.` (see NIBBLE_LO).
    let start = _mm256_set1_epi8(0x3a);
    let mut prev = (false, 0u64);
    for (i, c) in s.chunks_exact(64).enumerate() {
        let (mut bad, mut nul, mut first) = (0u32, 0u32, 0u64);
        for (j, half) in c.chunks_exact(32).enumerate() {
            // SAFETY: `half` is 32 readable bytes; the load has no alignment
            // requirement.
            let x = unsafe { _mm256_loadu_si256(half.as_ptr().cast()) };
            let lo = _mm256_shuffle_epi8(lo_t, _mm256_and_si256(x, low));
            let hi = _mm256_shuffle_epi8(hi_t, _mm256_and_si256(_mm256_srli_epi16(x, 4), low));
            let both = _mm256_and_si256(lo, hi);
            bad |= _mm256_movemask_epi8(_mm256_cmpeq_epi8(both, zero)) as u32;
            nul |= _mm256_movemask_epi8(_mm256_cmpeq_epi8(x, zero)) as u32;
            let not_start = _mm256_cmpeq_epi8(_mm256_and_si256(both, start), zero);
            first |= u64::from(!(_mm256_movemask_epi8(not_start) as u32)) << (32 * j);
        }
        let good = bad == 0;
        prove(starts, i.wrapping_sub(1), prev, good && nul != 0);
        prev = (good, first);
    }
    if let Some(last) = (s.len() / 64).checked_sub(1) {
        prove(starts, last, prev, after);
    }
}

/// The classes of [`ident_or_nul`] bytes by low nibble: bit 0 NUL (high nibble 0), 1
/// `.` (2), 2 digits (3), 3 `A`-`O` and `a`-`o` (4, 6), 4 `P`-`Z` and `p`-`z` (5, 7),
/// 5 `_` (5).
#[cfg(any(test, all(feature = "std", target_arch = "x86_64")))]
static NIBBLE_LO: [u8; 16] = {
    let mut t = [0u8; 16];
    let mut l = 0;
    while l < 16 {
        t[l] = (l == 0) as u8
            | ((l == 0xe) as u8) << 1
            | ((l <= 9) as u8) << 2
            | ((l >= 1) as u8) << 3
            | ((l <= 0xa) as u8) << 4
            | ((l == 0xf) as u8) << 5;
        l += 1;
    }
    t
};

/// The classes of [`NIBBLE_LO`] each high nibble takes (none from 8 up).
#[cfg(any(test, all(feature = "std", target_arch = "x86_64")))]
static NIBBLE_HI: [u8; 16] = [1, 0, 2, 4, 8, 16 | 32, 8, 16, 0, 0, 0, 0, 0, 0, 0, 0];

/// Bit `j` set where byte `j` is an ASCII letter, `_` or `.` (where the block is
/// clean, exactly the bytes that may start an identifier, `name_char_first_ok`).
fn start_bits(b: &[u8; 64]) -> u64 {
    let mut w = 0u64;
    for (j, &c) in b.iter().enumerate() {
        if c.is_ascii_alphabetic() || c == b'_' || c == b'.' {
            w |= 1 << j;
        }
    }
    w
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ctype_matches_kernel_table() {
        let [first, rest] = &NAME_OK;
        assert!(first[b'a' as usize] && first[b'Z' as usize] && !first[b'0' as usize]);
        assert!(rest[b'7' as usize] && rest[b'_' as usize] && !rest[b'-' as usize]);
        assert!(first[0xc0] && first[0xff] && !first[0xd7] && !first[0xf7] && !first[0x80]);
        assert!(!isprint(0x80) && isprint(0xa0) && isprint(b' ') && !isprint(b'\n'));
        assert!(!isprint(0x7f));
        // Latin-1 letters start and continue identifiers; section names take any
        // printable byte.
        assert!(btf_name_valid_identifier(b"\xe9t\xe9\0"));
        assert!(!btf_name_valid_identifier(b"a\xd7b\0"));
        assert!(btf_name_valid_section(b".data a\xd7\0") && !btf_name_valid_section(b"\0"));
        assert!(!btf_name_valid_section(b"a\x7f\0"));
    }

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
                        btf_name_valid_identifier(&s),
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
        assert!(!btf_name_valid_identifier(&long));
        long.truncate(512);
        long.push(0);
        assert!(btf_name_valid_identifier(&long));
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

    /// The nibble tables of the AVX2 classifier give [`ident_or_nul`] for every byte.
    #[test]
    fn nibble_tables_match_bytes() {
        for c in 0..=255u8 {
            let class = NIBBLE_LO[usize::from(c & 15)] & NIBBLE_HI[usize::from(c >> 4)];
            assert_eq!(class != 0, ident_or_nul(c), "byte {c:#x}");
        }
    }

    /// Every block's proven start bits, on the path in use (AVX2 where the host has
    /// it) and on SSE2, agree with the byte loop: each byte value
    /// at each position of a block with and without a NUL elsewhere.
    #[test]
    fn classify_blocks_matches_bytes() {
        let mut s = Vec::new();
        for pos in 0..64 {
            for c in (0..=255u8).step_by(3) {
                for nul_at in [None, Some((pos + 29) % 64)] {
                    let mut b = [b'q'; 64];
                    if let Some(z) = nul_at {
                        b[z] = 0;
                    }
                    b[pos] = c;
                    s.extend_from_slice(&b);
                }
            }
        }
        let blocks = s.len() / 64;
        let mut starts = vec![0u64; blocks];
        classify_blocks(&s, &mut starts, true);
        let mut sse2 = vec![0u64; blocks];
        classify_blocks_sse2(&s, &mut sse2, true);
        assert_eq!(starts, sse2);
        let by_bytes: Vec<(bool, bool, u64)> = s
            .chunks_exact(64)
            .map(|c| {
                let mut b = [0u8; 64];
                b.copy_from_slice(c);
                let (good, nul) = classify64_bytes(&b);
                assert_eq!(classify64(&b), (good, nul));
                let first = (0..64).fold(0u64, |w, j| {
                    let c = b[j];
                    let start = c.is_ascii() && c != 0 && name_char_first_ok(c);
                    w | u64::from(start) << j
                });
                (good, nul, first)
            })
            .collect();
        let mut proven = 0;
        for i in 0..blocks {
            let (good, _, first) = by_bytes[i];
            let next = by_bytes.get(i + 1).is_none_or(|&(g, n, _)| g && n);
            let want = if good && next { first } else { 0 };
            assert_eq!(starts[i], want, "block {i}");
            proven += usize::from(want != 0);
        }
        assert!(proven > 100, "only {proven} blocks proven");
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
            // First bytes that may and may not start an identifier, in clean blocks.
            t.push(b"aZ_.9q0"[i % 7]);
            t.extend(core::iter::repeat_n(b'a' + (i % 26) as u8, i % 70));
            t.push(if i % 37 == 5 { b'-' } else { 0 });
        }
        t.push(0);
        sections.push(t);
        let mut proven = 0;
        for s in &sections {
            let n = Names::new(s);
            for off in 0..s.len() {
                let byte = btf_name_valid_identifier(&s[off..]);
                assert_eq!(n.ident(off as u32), byte, "offset {off}");
                proven += (n.starts[off / 64] >> (off % 64) & 1) as usize;
            }
        }
        assert!(proven > 1000, "only {proven} offsets proven by their bit");
        let n = Names::new(&sections[0]);
        assert!(n.ident(1) && !n.ident(6));
    }
}
