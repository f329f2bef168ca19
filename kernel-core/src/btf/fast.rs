//! The verifier's accepting path without the log: `btf_check_all_metas`,
//! `btf_check_all_types` and `btf_check_type_tags` (kernel/bpf/btf.c) over raw kind
//! numbers, a kind array and a bitmap of names already found valid.
//!
//! It decides only "accepted". At the first check that fails, or anything it does not
//! handle, it gives up and [`super::verifier`] runs the exact path from the start, which
//! finds the kernel's errno and log line. So for every input it either produces what the
//! exact path would (the type offsets, resolved ids and sizes) or nothing; the tests hold
//! the two paths to that over the kernel-judged blobs and the mutation corpus.
//!
//! The resolve pass keeps the kernel's order (a depth-first walk from each type in id
//! order, with the same sink rules per resolve mode), because that order decides where
//! `MAX_RESOLVE_DEPTH` and loop detection trigger.
//!
//! Profile flag: `btf_tag_kflag` (kind_flag allowed on TYPE_TAG and DECL_TAG).

use alloc::vec;
use alloc::vec::Vec;

use super::names::Names;
use super::types::{BtfData, VOID_OFF, View};
use super::uapi::*;
use super::verifier::{
    NOT_VISITED, RESOLVED, ResolveMode as Mode, TypesCap, VISITED, int_data_is_regular,
    int_member_fits, name_valid_section,
};
use crate::profile::Semantics;

const INT: u8 = 1;
const PTR: u8 = 2;
const ARRAY: u8 = 3;
const STRUCT: u8 = 4;
const UNION: u8 = 5;
const ENUM: u8 = 6;
const FWD: u8 = 7;
const TYPEDEF: u8 = 8;
const VOLATILE: u8 = 9;
const CONST: u8 = 10;
const RESTRICT: u8 = 11;
const FUNC: u8 = 12;
const FUNC_PROTO: u8 = 13;
const VAR: u8 = 14;
const DATASEC: u8 = 15;
const FLOAT: u8 = 16;
const DECL_TAG: u8 = 17;
const TYPE_TAG: u8 = 18;
const ENUM64: u8 = 19;

const fn bit(k: u8) -> u32 {
    1 << k
}
/// `btf_type_is_modifier`.
const MODIFIER: u32 = bit(TYPEDEF) | bit(VOLATILE) | bit(CONST) | bit(RESTRICT) | bit(TYPE_TAG);
/// `btf_type_needs_resolve`.
const NEEDS_RESOLVE: u32 = MODIFIER
    | bit(PTR)
    | bit(STRUCT)
    | bit(UNION)
    | bit(ARRAY)
    | bit(VAR)
    | bit(FUNC)
    | bit(DECL_TAG)
    | bit(DATASEC);
/// `btf_type_nosize` (void is kind 0 here).
const NOSIZE: u32 = bit(0) | bit(FWD) | bit(FUNC) | bit(FUNC_PROTO) | bit(DECL_TAG);
/// `btf_type_has_size`.
const HAS_SIZE: u32 =
    bit(INT) | bit(STRUCT) | bit(UNION) | bit(ENUM) | bit(DATASEC) | bit(FLOAT) | bit(ENUM64);
/// `btf_type_is_resolve_source_only`.
const SOURCE_ONLY: u32 = bit(VAR) | bit(DECL_TAG) | bit(DATASEC);
const STRUCTS: u32 = bit(STRUCT) | bit(UNION);

#[inline(always)]
fn is(set: u32, k: u8) -> bool {
    set & bit(k & 31) != 0
}

/// What the accepting path hands back: `btf->types` and, after the resolve pass, the
/// resolved ids and sizes.
pub(crate) struct Accepted {
    pub(crate) types: Vec<u32>,
    pub(crate) resolved: Option<(Vec<u32>, Vec<u32>)>,
}

/// `None` gives up: the exact path will say why.
type Ok = Option<()>;
const NO: Ok = None;
const YES: Ok = Some(());

#[derive(Clone, Copy, Default)]
struct Meta {
    st: u32,
    kind: u8,
    visit: u8,
}
/// Set on a FUNC_PROTO's kind byte when a parameter has no name but a type, which
/// `btf_func_check` refuses for any FUNC of that prototype.
const BAD_PARAM: u8 = 0x80;

struct Fast<'a> {
    /// The type section as native-endian words.
    w: &'a [u32],
    /// Byte offset of the type section in the blob.
    sec: usize,
    /// Per id: the blob offset of its record (`VOID_OFF` for void): `btf->types`.
    rec: Vec<u32>,
    /// Per id: kind (with `BAD_PARAM`), size/type word and resolve state together,
    /// where the resolve pass reads them.
    m: Vec<Meta>,
    names: Names<'a>,
    v: View<'a>,
    sem: Semantics,
    rids: Vec<u32>,
    rsizes: Vec<u32>,
    stack: [(u32, u16); MAX_RESOLVE_DEPTH],
    top: usize,
    mode: Mode,
}

/// Runs the three passes over a base BTF `b` (header and string section already
/// checked). `None`: the exact path must run. Split BTF always takes the exact path.
pub(crate) fn verify(b: &BtfData, resolve: bool, sem: Semantics) -> Option<Accepted> {
    if b.base.is_some() || b.start_id != 0 {
        return None;
    }
    let h = b.hdr;
    let cur0 = h.hdr_len as usize + h.type_off as usize;
    let end = cur0.checked_add(h.type_len as usize)?;
    if !h.type_len.is_multiple_of(4) {
        return None;
    }
    let sec = b.data.get(cur0..end)?;
    // SAFETY: every bit pattern is a valid u32, and `align_to` returns only the
    // correctly aligned middle part of `sec`.
    let (pre, mid, post) = unsafe { sec.align_to::<u32>() };
    let copy: Vec<u32>;
    let w: &[u32] = if pre.is_empty() && post.is_empty() {
        mid
    } else {
        copy = sec
            .chunks_exact(4)
            .map(|c| u32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        &copy
    };
    let strs = b.data.get(b.str_start..b.str_start + h.str_len as usize)?;
    let mut f = Fast {
        w,
        sec: cur0,
        rec: Vec::new(),
        m: Vec::new(),
        names: Names::new(strs),
        v: View {
            data: &b.data,
            types: &[],
            start_id: 0,
            start_str_off: 0,
            str_start: b.str_start,
            str_len: h.str_len,
            types_end: end,
            base: None,
        },
        sem,
        rids: Vec::new(),
        rsizes: Vec::new(),
        stack: [(0, 0); MAX_RESOLVE_DEPTH],
        top: 0,
        mode: Mode::Tbd,
    };
    f.check_all_metas()?;
    let resolved = if resolve {
        f.check_all_types()?;
        Some((core::mem::take(&mut f.rids), core::mem::take(&mut f.rsizes)))
    } else {
        None
    };
    f.check_type_tags()?;
    Some(Accepted {
        types: f.rec,
        resolved,
    })
}

impl<'a> Fast<'a> {
    // -----------------------------------------------------------------------------
    // access
    // -----------------------------------------------------------------------------

    /// Kind of `id`; `None` past the last type.
    #[inline(always)]
    fn kind(&self, id: u32) -> Option<u8> {
        self.m.get(id as usize).map(|m| m.kind & !BAD_PARAM)
    }

    /// `t->size` / `t->type` of `id` (0 for void and unknown ids).
    #[inline(always)]
    fn st(&self, id: u32) -> u32 {
        self.m.get(id as usize).map_or(0, |m| m.st)
    }

    /// The words of `id`'s record after its 12-byte header, `n` of them.
    #[inline(always)]
    fn data(&self, id: u32, n: usize) -> &'a [u32] {
        let r = self.word_index(id) + 3;
        self.w.get(r..r + n).unwrap_or(&[])
    }

    /// Word index of `id`'s record in the type section (out of range for void).
    #[inline(always)]
    fn word_index(&self, id: u32) -> usize {
        let r = self.rec.get(id as usize).copied().unwrap_or(VOID_OFF);
        (r as usize).wrapping_sub(self.sec) / 4
    }

    /// Kind-specific word `i` of `id` (0 when absent).
    #[inline(always)]
    fn at(&self, id: u32, i: usize) -> u32 {
        self.data(id, i + 1).get(i).copied().unwrap_or(0)
    }

    fn info(&self, id: u32) -> u32 {
        self.w
            .get(self.word_index(id).wrapping_add(1))
            .copied()
            .unwrap_or(0)
    }

    #[inline(always)]
    fn rid(&self, id: u32) -> u32 {
        self.rids.get(id as usize).copied().unwrap_or(0)
    }

    #[inline(always)]
    fn rsize(&self, id: u32) -> u32 {
        self.rsizes.get(id as usize).copied().unwrap_or(0)
    }

    /// `btf_type_id_size`: (resolved id, size, resolved kind).
    fn type_id_size(&self, id: u32) -> Option<(u32, u32, u8)> {
        let k = self.kind(id)?;
        if is(HAS_SIZE, k) {
            return Some((id, self.st(id), k));
        }
        if k == PTR {
            return Some((id, 8, k));
        }
        if k == ARRAY {
            return Some((id, self.rsize(id), k));
        }
        if !is(MODIFIER, k) && k != VAR {
            return None;
        }
        let r = self.rid(id);
        let rk = self.kind(r)?;
        if is(HAS_SIZE, rk) {
            Some((r, self.st(r), rk))
        } else if rk == PTR {
            Some((r, 8, rk))
        } else if rk == ARRAY {
            Some((r, self.rsize(r), rk))
        } else {
            None
        }
    }

    /// `btf_name_offset_valid`.
    #[inline(always)]
    fn name_offset_valid(&self, off: u32) -> bool {
        off <= BTF_MAX_NAME_OFFSET && off < self.v.str_len
    }

    /// A name that must be set and be an identifier.
    #[inline(always)]
    fn named(&self, off: u32) -> bool {
        off != 0 && self.names.ident(off)
    }

    /// A name that may be anonymous, else an identifier.
    #[inline(always)]
    fn anon_or_named(&self, off: u32) -> bool {
        off == 0 || self.names.ident(off)
    }

    /// `btf_str_by_offset` non-empty (offset already valid).
    fn nonempty_str(&self, off: u32) -> bool {
        self.names.s.get(off as usize).is_some_and(|&c| c != 0)
    }

    // -----------------------------------------------------------------------------
    // btf_check_all_metas
    // -----------------------------------------------------------------------------

    fn check_all_metas(&mut self) -> Ok {
        let n = self.w.len();
        // At most one type per 3 words, and void.
        let max = n / 3 + 1;
        self.rec = Vec::with_capacity(max);
        self.m = Vec::with_capacity(max);
        let mut cap = TypesCap { size: 0 };
        if cap.add(0, 0) {
            self.rec.push(VOID_OFF);
            self.m.push(Meta::default());
        }
        let mut cur = 0usize;
        while cur < n {
            let (words, k, st) = self.check_meta(cur)?;
            if !cap.add(self.rec.len() as u32, 0) {
                return NO;
            }
            self.rec.push((self.sec + cur * 4) as u32);
            self.m.push(Meta {
                st,
                kind: k,
                visit: NOT_VISITED,
            });
            cur += words;
        }
        YES
    }

    /// `btf_check_meta` of the record at word `cur`: (record words, kind byte, size/type).
    fn check_meta(&self, cur: usize) -> Option<(usize, u8, u32)> {
        let hdr = self.w.get(cur..cur + 3)?;
        let (name, info, st) = (hdr[0], hdr[1], hdr[2]);
        let k = btf_info_kind(info);
        if info & !BTF_INFO_MASK != 0 || k == 0 || k > BTF_KIND_MAX {
            return None;
        }
        if !self.name_offset_valid(name) {
            return None;
        }
        let vlen = btf_info_vlen(info) as usize;
        let kflag = btf_info_kflag(info);
        let words = |n: usize| self.w.get(cur + 3..cur + 3 + n);
        let (var, kb) = match k {
            INT => {
                let x = words(1)?[0];
                let nr_bits = btf_int_bits(x) + btf_int_offset(x);
                let enc = btf_int_encoding(x);
                let ok = vlen == 0
                    && !kflag
                    && x & !BTF_INT_MASK == 0
                    && nr_bits <= 128
                    && nr_bits.div_ceil(8) <= st
                    && (enc == 0
                        || enc == BTF_INT_SIGNED
                        || enc == BTF_INT_CHAR
                        || enc == BTF_INT_BOOL);
                (ok.then_some(1)?, k)
            }
            PTR | TYPEDEF | VOLATILE | CONST | RESTRICT | TYPE_TAG => {
                let kflag_ok = k == TYPE_TAG && self.sem.btf_tag_kflag;
                if vlen != 0 || (kflag && !kflag_ok) || st > BTF_MAX_TYPE {
                    return None;
                }
                let ok = match k {
                    TYPEDEF => self.named(name),
                    TYPE_TAG => self.nonempty_str(name),
                    _ => name == 0,
                };
                (ok.then_some(0)?, k)
            }
            ARRAY => {
                let a = words(3)?;
                let ok = name == 0
                    && vlen == 0
                    && !kflag
                    && st == 0
                    && (1..=BTF_MAX_TYPE).contains(&a[0])
                    && (1..=BTF_MAX_TYPE).contains(&a[1]);
                (ok.then_some(3)?, k)
            }
            STRUCT | UNION => {
                let ms = words(vlen * 3)?;
                if !self.anon_or_named(name) {
                    return None;
                }
                let mut last = 0u32;
                for m in ms.chunks_exact(3) {
                    let (mn, mt, mo) = (m[0], m[1], m[2]);
                    let off = if kflag { btf_member_bit_offset(mo) } else { mo };
                    if !self.name_offset_valid(mn)
                        || !self.anon_or_named(mn)
                        || !(1..=BTF_MAX_TYPE).contains(&mt)
                        || (k == UNION && off != 0)
                        || last > off
                        || off.div_ceil(8) > st
                    {
                        return None;
                    }
                    last = off;
                }
                (ms.len(), k)
            }
            ENUM | ENUM64 => {
                let esz = if k == ENUM64 { 3 } else { 2 };
                let es = words(vlen * esz)?;
                if st > 8 || !st.is_power_of_two() || !self.anon_or_named(name) {
                    return None;
                }
                for e in es.chunks_exact(esz) {
                    if !self.name_offset_valid(e[0]) || !self.named(e[0]) {
                        return None;
                    }
                }
                (es.len(), k)
            }
            FWD => ((vlen == 0 && st == 0 && self.named(name)).then_some(0)?, k),
            FUNC => {
                let ok = self.named(name) && vlen <= BTF_FUNC_GLOBAL as usize && !kflag;
                (ok.then_some(0)?, k)
            }
            FUNC_PROTO => {
                let ps = words(vlen * 2)?;
                if name != 0 || kflag {
                    return None;
                }
                let bad = ps.chunks_exact(2).any(|p| p[0] == 0 && p[1] != 0);
                (ps.len(), if bad { k | BAD_PARAM } else { k })
            }
            VAR => {
                let l = words(1)?[0];
                let ok = vlen == 0
                    && !kflag
                    && self.named(name)
                    && (1..=BTF_MAX_TYPE).contains(&st)
                    && (l == BTF_VAR_STATIC || l == BTF_VAR_GLOBAL_ALLOCATED);
                (ok.then_some(1)?, k)
            }
            DATASEC => {
                let vs = words(vlen * 3)?;
                if st == 0 || kflag || name == 0 || !name_valid_section(&self.v, name) {
                    return None;
                }
                let size = st as u64;
                let (mut last_end, mut sum) = (0u64, 0u64);
                for e in vs.chunks_exact(3) {
                    let (ty, off, sz) = (e[0], e[1], e[2]);
                    if !(1..=BTF_MAX_TYPE).contains(&ty)
                        || (off as u64) < last_end
                        || off as u64 >= size
                        || sz == 0
                        || sz as u64 > size
                    {
                        return None;
                    }
                    // The kernel adds two u32s before widening.
                    last_end = off.wrapping_add(sz) as u64;
                    if last_end > size {
                        return None;
                    }
                    sum += sz as u64;
                }
                ((size >= sum).then_some(vs.len())?, k)
            }
            FLOAT => {
                let ok = vlen == 0 && !kflag && matches!(st, 2 | 4 | 8 | 12 | 16);
                (ok.then_some(0)?, k)
            }
            DECL_TAG => {
                let idx = words(1)?[0] as i32;
                let ok = self.nonempty_str(name)
                    && vlen == 0
                    && (!kflag || self.sem.btf_tag_kflag)
                    && idx >= -1;
                (ok.then_some(1)?, k)
            }
            _ => return None,
        };
        Some((3 + var, kb, st))
    }

    // -----------------------------------------------------------------------------
    // btf_check_all_types
    // -----------------------------------------------------------------------------

    #[inline(always)]
    fn sink(&self, k: u8) -> bool {
        match self.mode {
            Mode::Tbd => !is(NEEDS_RESOLVE, k),
            Mode::Ptr => !is(MODIFIER, k) && k != PTR,
            Mode::StructOrArray => !is(MODIFIER | STRUCTS, k) && k != ARRAY,
        }
    }

    #[inline(always)]
    fn is_resolved(&self, id: u32) -> bool {
        self.m.get(id as usize).is_some_and(|m| m.visit == RESOLVED)
    }

    fn push(&mut self, id: u32, k: u8) -> Ok {
        let m = self.m.get_mut(id as usize)?;
        if self.top == MAX_RESOLVE_DEPTH || m.visit != NOT_VISITED {
            return NO;
        }
        m.visit = VISITED;
        self.stack[self.top] = (id, 0);
        self.top += 1;
        if self.mode == Mode::Tbd {
            if k == PTR {
                self.mode = Mode::Ptr;
            } else if is(STRUCTS, k) || k == ARRAY {
                self.mode = Mode::StructOrArray;
            }
        }
        YES
    }

    /// Pushes `id` unless it is a sink or resolved: `Some(true)` when pushed.
    #[inline(always)]
    fn push_unless_done(&mut self, id: u32, k: u8) -> Option<bool> {
        if !self.sink(k) && !self.is_resolved(id) {
            self.push(id, k)?;
            return Some(true);
        }
        Some(false)
    }

    #[inline(always)]
    fn pop(&mut self, rid: u32, rsize: u32) {
        self.top -= 1;
        let i = self.stack[self.top].0 as usize;
        if let (Some(r), Some(s), Some(m)) = (
            self.rids.get_mut(i),
            self.rsizes.get_mut(i),
            self.m.get_mut(i),
        ) {
            (*r, *s, m.visit) = (rid, rsize, RESOLVED);
        }
    }

    /// `btf_type_int_is_regular` of an INT id.
    fn int_is_regular(&self, id: u32) -> bool {
        int_data_is_regular(self.at(id, 0))
    }

    /// `btf_*_check_member` without kind_flag: `off` is the member's `offset` word.
    fn check_member(&self, size: u32, mt: u32, mk: u8, off: u32) -> Ok {
        let fits = |need: u32| size.wrapping_sub(off / 8) >= need;
        let ok = match mk {
            INT => {
                let d = self.at(mt, 0);
                if u32::MAX - off < btf_int_offset(d) {
                    return NO;
                }
                int_member_fits(size, off + btf_int_offset(d), btf_int_bits(d)).is_ok()
            }
            TYPEDEF | VOLATILE | CONST | RESTRICT | TYPE_TAG => {
                let (rid, _, rk) = self.type_id_size(mt)?;
                return self.check_member(size, rid, rk, off);
            }
            PTR => off & 7 == 0 && fits(8),
            ARRAY => off & 7 == 0 && fits(self.type_id_size(mt).map_or(0, |x| x.1)),
            STRUCT | UNION | ENUM | ENUM64 => off & 7 == 0 && fits(self.st(mt)),
            FLOAT => {
                let fsize = self.st(mt) as u64;
                let align_bits = 8u64.min(fsize) * 8;
                align_bits != 0
                    && (off as u64).is_multiple_of(align_bits)
                    && (off as u64) / 8 + fsize <= size as u64
            }
            _ => false,
        };
        ok.then_some(())
    }

    /// `btf_*_check_kflag_member`: `mo` is the member's `offset` word.
    fn check_kflag_member(&self, size: u32, mt: u32, mk: u8, mo: u32) -> Ok {
        let bits_off = btf_member_bit_offset(mo);
        let bf = btf_member_bitfield_size(mo);
        let ok = match mk {
            INT => {
                if !self.int_is_regular(mt) {
                    return NO;
                }
                let int_bits = btf_int_bits(self.at(mt, 0));
                let nr_bits = if bf == 0 {
                    if bits_off & 7 != 0 {
                        return NO;
                    }
                    int_bits
                } else if bf > int_bits {
                    return NO;
                } else {
                    bf
                };
                int_member_fits(size, bits_off, nr_bits).is_ok()
            }
            ENUM | ENUM64 => {
                let nr_bits = if bf == 0 {
                    if bits_off & 7 != 0 {
                        return NO;
                    }
                    32
                } else if bf > 32 {
                    return NO;
                } else {
                    bf
                };
                size >= (bits_off + nr_bits).div_ceil(8)
            }
            TYPEDEF | VOLATILE | CONST | RESTRICT | TYPE_TAG => {
                let (rid, _, rk) = self.type_id_size(mt)?;
                return self.check_kflag_member(size, rid, rk, mo);
            }
            PTR | ARRAY | STRUCT | UNION | FLOAT => {
                return if bf != 0 {
                    NO
                } else {
                    self.check_member(size, mt, mk, mo)
                };
            }
            _ => false,
        };
        ok.then_some(())
    }

    /// `btf_modifier_resolve`, `btf_ptr_resolve`, `btf_var_resolve`.
    fn ref_resolve(&mut self, id: u32, k: u8) -> Ok {
        let mut next_id = self.st(id);
        let mut nk = self.kind(next_id)?;
        if is(SOURCE_ONLY, nk) {
            return NO;
        }
        if self.push_unless_done(next_id, nk)? {
            return YES;
        }
        if (k == PTR || k == VAR) && is(MODIFIER, nk) {
            let r = self.rid(next_id);
            if let Some(rk) = self.kind(r)
                && rk == PTR
                && self.push_unless_done(r, rk)?
            {
                return YES;
            }
        }
        match self.type_id_size(next_id) {
            Some((r, _, _)) => next_id = r,
            None if k == VAR => return NO,
            None => {
                if self.is_resolved(next_id) {
                    next_id = self.rid(next_id);
                    nk = self.kind(next_id)?;
                }
                if nk != 0 && nk != FWD && nk != FUNC_PROTO {
                    return NO;
                }
            }
        }
        self.pop(next_id, 0);
        YES
    }

    fn array_resolve(&mut self, id: u32) -> Ok {
        let a = self.data(id, 3);
        let [elem, index, nelems] = [*a.first()?, *a.get(1)?, *a.get(2)?];
        let ik = self.kind(index)?;
        if is(NOSIZE | SOURCE_ONLY, ik) {
            return NO;
        }
        if self.push_unless_done(index, ik)? {
            return YES;
        }
        match self.type_id_size(index) {
            Some((r, _, INT)) if self.int_is_regular(r) => {}
            _ => return NO,
        }
        let ek = self.kind(elem)?;
        if is(NOSIZE | SOURCE_ONLY, ek) {
            return NO;
        }
        if self.push_unless_done(elem, ek)? {
            return YES;
        }
        let (eid, esize, ek) = self.type_id_size(elem)?;
        if ek == INT && !self.int_is_regular(eid) {
            return NO;
        }
        if nelems != 0 && esize > u32::MAX / nelems {
            return NO;
        }
        self.pop(eid, esize.wrapping_mul(nelems));
        YES
    }

    fn struct_resolve(&mut self, id: u32, next_member: u16) -> Ok {
        let info = self.info(id);
        let (kflag, vlen, size) = (btf_info_kflag(info), btf_info_vlen(info), self.st(id));
        let ms = self.data(id, vlen as usize * 3);
        let check = |f: &Self, mt: u32, mk: u8, mo: u32| {
            if kflag {
                f.check_kflag_member(size, mt, mk, mo)
            } else {
                f.check_member(size, mt, mk, mo)
            }
        };
        let mut i = next_member as usize;
        if i != 0 {
            let m = ms.get((i - 1) * 3..i * 3)?;
            if !self.is_resolved(m[1]) {
                return NO;
            }
            check(self, m[1], self.kind(m[1])?, m[2])?;
        }
        for m in ms.get(i * 3..)?.chunks_exact(3) {
            i += 1;
            let (mt, mo) = (m[1], m[2]);
            let mk = self.kind(mt)?;
            if is(NOSIZE | SOURCE_ONLY, mk) {
                return NO;
            }
            if !self.sink(mk) && !self.is_resolved(mt) {
                self.stack[self.top - 1].1 = i as u16;
                return self.push(mt, mk);
            }
            check(self, mt, mk, mo)?;
        }
        self.pop(0, 0);
        YES
    }

    fn datasec_resolve(&mut self, id: u32, next_member: u16) -> Ok {
        self.mode = Mode::Tbd;
        let vlen = btf_info_vlen(self.info(id)) as usize;
        let mut i = next_member as usize;
        while i < vlen {
            let e = self.data(id, vlen * 3).get(i * 3..i * 3 + 3)?;
            let (var, vsize) = (e[0], e[2]);
            i += 1;
            if self.kind(var)? != VAR {
                return NO;
            }
            if !self.sink(VAR) && !self.is_resolved(var) {
                self.stack[self.top - 1].1 = i as u16;
                return self.push(var, VAR);
            }
            let (_, size, _) = self.type_id_size(self.st(var))?;
            if vsize < size {
                return NO;
            }
        }
        self.pop(0, 0);
        YES
    }

    fn decl_tag_resolve(&mut self, id: u32) -> Ok {
        let next_id = self.st(id);
        let nk = self.kind(next_id)?;
        if !matches!(nk, FUNC | STRUCT | UNION | VAR | TYPEDEF) {
            return NO;
        }
        if self.push_unless_done(next_id, nk)? {
            return YES;
        }
        let idx = self.at(id, 0) as i32;
        if idx != -1 {
            if nk == VAR || nk == TYPEDEF {
                return NO;
            }
            let vlen = if is(STRUCTS, nk) {
                btf_info_vlen(self.info(next_id))
            } else {
                btf_info_vlen(self.info(self.st(next_id)))
            };
            if idx as u32 >= vlen as u32 {
                return NO;
            }
        }
        self.pop(next_id, 0);
        YES
    }

    fn resolve_one(&mut self, id: u32, next_member: u16) -> Ok {
        let k = self.kind(id)?;
        match k {
            TYPEDEF | VOLATILE | CONST | RESTRICT | TYPE_TAG | PTR | VAR => self.ref_resolve(id, k),
            ARRAY => self.array_resolve(id),
            STRUCT | UNION => self.struct_resolve(id, next_member),
            DATASEC => self.datasec_resolve(id, next_member),
            DECL_TAG => self.decl_tag_resolve(id),
            FUNC => {
                // btf_func_check: a FUNC_PROTO with no unnamed typed parameter.
                let proto = self.st(id);
                if self.m.get(proto as usize).map(|m| m.kind) != Some(FUNC_PROTO) {
                    return NO;
                }
                self.pop(proto, 0);
                YES
            }
            _ => NO,
        }
    }

    /// `btf_resolve_valid`.
    fn resolve_valid(&self, id: u32, k: u8) -> bool {
        if !self.is_resolved(id) {
            return false;
        }
        if is(STRUCTS, k) || k == DATASEC {
            return self.rid(id) == 0 && self.rsize(id) == 0;
        }
        if k == DECL_TAG || k == FUNC {
            return self.rid(id) != 0 && self.rsize(id) == 0;
        }
        if is(MODIFIER, k) || k == PTR || k == VAR {
            return self
                .kind(self.rid(id))
                .is_some_and(|rk| !is(MODIFIER, rk) && rk != VAR && rk != DATASEC);
        }
        if k == ARRAY {
            let n = self.at(id, 2);
            return match self.type_id_size(self.at(id, 0)) {
                Some((_, es, ek)) => !is(MODIFIER, ek) && n.wrapping_mul(es) == self.rsize(id),
                None => false,
            };
        }
        false
    }

    /// `btf_resolve`.
    fn resolve(&mut self, id: u32, k: u8) -> Ok {
        self.mode = Mode::Tbd;
        self.push(id, k)?;
        while self.top > 0 {
            let (vid, next_member) = self.stack[self.top - 1];
            self.resolve_one(vid, next_member)?;
        }
        self.resolve_valid(id, k).then_some(())
    }

    /// A FUNC_PROTO's return type or parameter `id`: not source-only, resolved unless
    /// done, then sized.
    #[inline(always)]
    fn resolve_sized(&mut self, id: u32) -> Ok {
        let k = self.kind(id)?;
        if is(SOURCE_ONLY, k) {
            return NO;
        }
        if is(NEEDS_RESOLVE, k) && !self.is_resolved(id) {
            self.resolve(id, k)?;
        }
        self.type_id_size(id).map(|_| ())
    }

    /// `btf_func_proto_check`.
    fn func_proto_check(&mut self, id: u32) -> Ok {
        let ret = self.st(id);
        if ret != 0 {
            self.resolve_sized(ret)?;
        }
        let vlen = btf_info_vlen(self.info(id)) as usize;
        let mut ps = self.data(id, 2 * vlen);
        if ps.len() != 2 * vlen {
            return NO;
        }
        if let [.., name, 0] = ps {
            if *name != 0 {
                return NO;
            }
            ps = ps.get(..ps.len() - 2)?;
        }
        for p in ps.chunks_exact(2) {
            let (no, aid) = (p[0], p[1]);
            if is(SOURCE_ONLY, self.kind(aid)?) {
                return NO;
            }
            if no != 0 && (!self.name_offset_valid(no) || !self.names.ident(no)) {
                return NO;
            }
            self.resolve_sized(aid)?;
        }
        YES
    }

    fn check_all_types(&mut self) -> Ok {
        let n = self.m.len();
        self.rids = vec![0; n];
        self.rsizes = vec![0; n];
        for i in 1..n {
            let Meta { st, kind, visit } = self.m[i];
            let k = kind & !BAD_PARAM;
            if k == FUNC {
                // btf_resolve of a FUNC, whose only step is btf_func_check: a
                // FUNC_PROTO with no unnamed typed parameter; resolved to it.
                if visit != RESOLVED {
                    if self.m.get(st as usize).map(|m| m.kind) != Some(FUNC_PROTO) {
                        return NO;
                    }
                    self.rids[i] = st;
                    self.m[i].visit = RESOLVED;
                }
                continue;
            }
            if is(NEEDS_RESOLVE, k) && visit != RESOLVED {
                self.resolve(i as u32, k)?;
            }
            if k == FUNC_PROTO {
                self.func_proto_check(i as u32)?;
            }
        }
        YES
    }

    // -----------------------------------------------------------------------------
    // btf_check_type_tags
    // -----------------------------------------------------------------------------

    fn check_type_tags(&self) -> Ok {
        let n = self.m.len() as u32;
        let mut good_id = 0i64;
        for i in 1..n {
            let mut k = self.kind(i)?;
            if !is(MODIFIER, k) {
                continue;
            }
            let mut chain_limit = 32;
            let mut cur_id = i;
            let mut in_tags = k == TYPE_TAG;
            while is(MODIFIER, k) {
                if chain_limit == 0 {
                    return NO;
                }
                chain_limit -= 1;
                if k == TYPE_TAG {
                    if !in_tags {
                        return NO;
                    }
                } else {
                    in_tags = false;
                }
                if cur_id as i64 <= good_id {
                    break;
                }
                cur_id = self.st(cur_id);
                k = self.kind(cur_id)?;
            }
            good_id = i as i64;
        }
        YES
    }
}
