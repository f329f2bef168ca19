//! The verifier's accepting path without the log: `btf_check_all_metas`,
//! `btf_check_all_types` and `btf_check_type_tags` (kernel/bpf/btf.c) over the raw
//! type words, one 8-byte slot per type id (kind, visit state, size or resolved id,
//! and what `btf_type_id_size` gives) and a string section classified once
//! ([`super::names`]).
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
    NOT_VISITED, RESOLVED, VISITED, int_data_is_regular, int_member_fits, name_valid_section,
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
const ENUMS: u32 = bit(ENUM) | bit(ENUM64);
/// Member kinds checked as whole bytes at a byte offset (`btf_ptr_check_member`,
/// `btf_array_check_member`, `btf_struct_check_member`, `btf_enum_check_member`).
const BYTE_SIZED: u32 = bit(PTR) | bit(ARRAY) | STRUCTS | ENUMS;

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

/// What the resolve pass reads of one type id, in one word, so that following an edge
/// of the type graph is one load. It is only ever read and written whole: a narrower
/// store followed by the word's load would stall store-to-load forwarding.
///
/// Bits 0..32: for a kind with a size (`btf_type_has_size`) `t->size`; for any other
/// its `resolved_ids` entry once resolved, before that `t->type` for the `REFS`
/// kinds and 0 for the rest. Bits 32..40: the kind. 40..48: the
/// `visit_state`. 48..56: where `TIS` is set, the kind of the type `btf_type_id_size`
/// ends at. 56..64: flags (`TIS`, `BAD_PARAM`, `DONE`).
#[derive(Clone, Copy, Default)]
struct Node(u64);

impl Node {
    #[inline(always)]
    const fn new(a: u32, kind: u8, visit: u8, rkind: u8, flags: u8) -> Self {
        Node(
            a as u64
                | (kind as u64) << 32
                | (visit as u64) << 40
                | (rkind as u64) << 48
                | (flags as u64) << 56,
        )
    }
    #[inline(always)]
    const fn a(self) -> u32 {
        self.0 as u32
    }
    #[inline(always)]
    const fn kind(self) -> u8 {
        (self.0 >> 32) as u8
    }
    #[inline(always)]
    const fn visit(self) -> u8 {
        (self.0 >> 40) as u8
    }
    #[inline(always)]
    const fn rkind(self) -> u8 {
        (self.0 >> 48) as u8
    }
    #[inline(always)]
    const fn flags(self) -> u8 {
        (self.0 >> 56) as u8
    }
    #[inline(always)]
    const fn with_a(self, a: u32) -> Self {
        Node(self.0 & !0xffff_ffff | a as u64)
    }
    #[inline(always)]
    const fn with_visit(self, v: u8) -> Self {
        Node(self.0 & !(0xff << 40) | (v as u64) << 40)
    }
    #[inline(always)]
    const fn with_rkind(self, k: u8) -> Self {
        Node(self.0 & !(0xff << 48) | (k as u64) << 48)
    }
    #[inline(always)]
    const fn or_flags(self, f: u8) -> Self {
        Node(self.0 | (f as u64) << 56)
    }
}

/// `btf_type_id_size` of the id succeeds (fixed once the id is resolved).
const TIS: u8 = 1;
/// A FUNC_PROTO with a parameter that has no name but a type, which `btf_func_check`
/// refuses for any FUNC of that prototype.
const BAD_PARAM: u8 = 2;
/// Resolved, or of a kind that never needs it (`btf_type_needs_resolve`): one test
/// where the kernel asks both.
const DONE: u8 = 4;

/// Kinds whose slot holds `t->type` until they are resolved.
const REFS: u32 = MODIFIER | bit(PTR) | bit(VAR) | bit(DECL_TAG) | bit(FUNC);
/// Kinds `btf_type_id_size` sizes by themselves.
const SIZED: u32 = HAS_SIZE | bit(PTR) | bit(ARRAY);

/// The id lists the meta pass gathers.
struct Lists {
    /// The modifiers, ascending: the type-tag pass walks only them.
    mods: Vec<u32>,
    /// FUNC_PROTOs with a parameter that has no name but a type.
    bad_params: Vec<u32>,
}

struct Fast<'a> {
    /// The type section as native-endian words.
    w: &'a [u32],
    /// Byte offset of the type section in the blob.
    sec: usize,
    /// Per id: the blob offset of its record (`VOID_OFF` for void): `btf->types`.
    rec: Vec<u32>,
    /// Per id: kind, resolve state, size or resolved id.
    nodes: Vec<Node>,
    /// `resolved_sizes`: only an ARRAY's is ever set.
    rsizes: Vec<u32>,
    /// The modifiers, ascending.
    mods: Vec<u32>,
    names: Names<'a>,
    v: View<'a>,
    sem: Semantics,
    /// The resolve pass runs (`btf_check_all_types`).
    resolve: bool,
    stack: [(u32, u16); MAX_RESOLVE_DEPTH],
    top: usize,
    /// The kinds that are not sinks in the current `env->resolve_mode`.
    mode: u32,
}

/// `RESOLVE_TBD`, `RESOLVE_PTR`, `RESOLVE_STRUCT_OR_ARRAY` as the kinds that are not
/// sinks in them (`env_type_is_resolve_sink`).
const MODE_TBD: u32 = NEEDS_RESOLVE;
const MODE_PTR: u32 = MODIFIER | bit(PTR);
const MODE_STRUCT_OR_ARRAY: u32 = MODIFIER | STRUCTS | bit(ARRAY);
/// The mode `env_stack_push` leaves after pushing a type of each kind in
/// `RESOLVE_TBD`.
const AFTER_PUSH: [u32; 32] = {
    let mut t = [MODE_TBD; 32];
    t[PTR as usize] = MODE_PTR;
    t[STRUCT as usize] = MODE_STRUCT_OR_ARRAY;
    t[UNION as usize] = MODE_STRUCT_OR_ARRAY;
    t[ARRAY as usize] = MODE_STRUCT_OR_ARRAY;
    t
};

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
    let names = Names::new(strs);
    let mut f = Fast {
        w,
        sec: cur0,
        rec: Vec::new(),
        nodes: Vec::new(),
        rsizes: Vec::new(),
        mods: Vec::new(),
        names,
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
        resolve,
        stack: [(0, 0); MAX_RESOLVE_DEPTH],
        top: 0,
        mode: MODE_TBD,
    };
    f.check_all_metas()?;
    let resolved = if resolve {
        f.check_all_types()?;
        let rids = f
            .nodes
            .iter()
            .map(|n| {
                if is(HAS_SIZE, n.kind()) || n.visit() != RESOLVED {
                    0
                } else {
                    n.a()
                }
            })
            .collect();
        Some((rids, core::mem::take(&mut f.rsizes)))
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

    /// The slot of `id`; `None` past the last type.
    #[inline(always)]
    fn node(&self, id: u32) -> Option<Node> {
        self.nodes.get(id as usize).copied()
    }

    /// Kind of `id`; `None` past the last type.
    #[inline(always)]
    fn kind(&self, id: u32) -> Option<u8> {
        self.nodes.get(id as usize).map(|n| n.kind())
    }

    /// `t->size` / `t->type` of `id` (0 for void and unknown ids).
    #[inline(always)]
    fn st(&self, id: u32) -> u32 {
        self.w
            .get(self.word_index(id).wrapping_add(2))
            .copied()
            .unwrap_or(0)
    }

    /// The words of `id`'s record after its 12-byte header, `n` of them.
    #[inline(always)]
    fn data(&self, id: u32, n: usize) -> &'a [u32] {
        let r = self.word_index(id).wrapping_add(3);
        self.w.get(r..r.wrapping_add(n)).unwrap_or(&[])
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

    /// `resolved_ids[id]`.
    #[inline(always)]
    fn rid(&self, id: u32) -> u32 {
        self.node(id).map_or(0, |n| {
            if is(HAS_SIZE, n.kind()) || n.visit() != RESOLVED {
                0
            } else {
                n.a()
            }
        })
    }

    /// `resolved_sizes[id]`.
    #[inline(always)]
    fn rsize(&self, id: u32) -> u32 {
        self.rsizes.get(id as usize).copied().unwrap_or(0)
    }

    /// `btf_type_id_size` of `id`, whose slot is `n`: (resolved id, size, its kind).
    #[inline(always)]
    fn tis(&self, id: u32, n: Node) -> Option<(u32, u32, u8)> {
        if n.flags() & TIS == 0 {
            return None;
        }
        let r = if is(MODIFIER | bit(VAR), n.kind()) {
            n.a()
        } else {
            id
        };
        if n.rkind() == ARRAY {
            return Some((r, self.rsize(r), ARRAY));
        }
        // A load and a select: whether `r` is `id` follows no pattern.
        let own = self.node(r).map_or(0, |x| x.a());
        let size = if n.rkind() == PTR { 8 } else { own };
        Some((r, size, n.rkind()))
    }

    /// `btf_type_id_size`: (resolved id, size, resolved kind).
    #[inline(always)]
    fn type_id_size(&self, id: u32) -> Option<(u32, u32, u8)> {
        self.tis(id, self.node(id)?)
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

    /// `btf_check_all_metas`: each record in id order, its slot, and the id lists the
    /// later passes walk.
    fn check_all_metas(&mut self) -> Ok {
        let n = self.w.len();
        // At most one type per 3 words, and void: no push below reallocates.
        let max = n / 3 + 1;
        let mut rec = Vec::with_capacity(max);
        let mut nodes = Vec::with_capacity(max);
        let mut lists = Lists {
            mods: Vec::new(),
            bad_params: Vec::new(),
        };
        rec.push(VOID_OFF);
        nodes.push(Node::default());
        let mut cur = 0usize;
        while cur < n {
            let id = rec.len() as u32;
            let (words, k, st) = self.check_meta(cur, id, &mut lists)?;
            rec.push((self.sec + cur * 4) as u32);
            nodes.push(Node::new(
                if is(HAS_SIZE | REFS, k) { st } else { 0 },
                k,
                NOT_VISITED,
                k,
                (if is(SIZED, k) { TIS } else { 0 })
                    | (if is(NEEDS_RESOLVE, k) { 0 } else { DONE }),
            ));
            cur += words;
        }
        // btf_add_type refuses the type that would take id BTF_MAX_TYPE.
        if rec.len() > BTF_MAX_TYPE as usize {
            return NO;
        }
        for &id in &lists.bad_params {
            let n = nodes.get_mut(id as usize)?;
            *n = n.or_flags(BAD_PARAM);
        }
        self.rec = rec;
        self.nodes = nodes;
        self.mods = lists.mods;
        YES
    }

    /// `btf_check_meta` of the record at word `cur`, type `id`: (its words, kind,
    /// size/type word).
    #[inline(always)]
    fn check_meta(&self, cur: usize, id: u32, lists: &mut Lists) -> Option<(usize, u8, u32)> {
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
        let var = match k {
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
                ok.then_some(1)?
            }
            PTR => {
                let ok = vlen == 0 && !kflag && st <= BTF_MAX_TYPE && name == 0;
                ok.then_some(0)?
            }
            TYPEDEF | VOLATILE | CONST | RESTRICT | TYPE_TAG => {
                let kflag_ok = k == TYPE_TAG && self.sem.btf_tag_kflag;
                if vlen != 0 || (kflag && !kflag_ok) || st > BTF_MAX_TYPE {
                    return None;
                }
                let ok = match k {
                    TYPEDEF => self.named(name),
                    TYPE_TAG => self.nonempty_str(name),
                    _ => name == 0,
                };
                lists.mods.push(id);
                ok.then_some(0)?
            }
            ARRAY => {
                let a = words(3)?;
                let ok = name == 0
                    && vlen == 0
                    && !kflag
                    && st == 0
                    && (1..=BTF_MAX_TYPE).contains(&a[0])
                    && (1..=BTF_MAX_TYPE).contains(&a[1]);
                ok.then_some(3)?
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
                ms.len()
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
                es.len()
            }
            FWD => (vlen == 0 && st == 0 && self.named(name)).then_some(0)?,
            FUNC => {
                let ok = self.named(name) && vlen <= BTF_FUNC_GLOBAL as usize && !kflag;
                ok.then_some(0)?
            }
            FUNC_PROTO => {
                let ps = words(vlen * 2)?;
                if name != 0 || kflag {
                    return None;
                }
                // btf_func_proto_check's argument names, taken here where the names
                // are read in section order; it runs only with the resolve pass.
                if self.resolve
                    && !ps.chunks_exact(2).all(|p| {
                        p[0] == 0 || (self.name_offset_valid(p[0]) && self.names.ident(p[0]))
                    })
                {
                    return None;
                }
                if ps.chunks_exact(2).any(|p| p[0] == 0 && p[1] != 0) {
                    lists.bad_params.push(id);
                }
                ps.len()
            }
            VAR => {
                let l = words(1)?[0];
                let ok = vlen == 0
                    && !kflag
                    && self.named(name)
                    && (1..=BTF_MAX_TYPE).contains(&st)
                    && (l == BTF_VAR_STATIC || l == BTF_VAR_GLOBAL_ALLOCATED);
                ok.then_some(1)?
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
                (size >= sum).then_some(vs.len())?
            }
            FLOAT => {
                let ok = vlen == 0 && !kflag && matches!(st, 2 | 4 | 8 | 12 | 16);
                ok.then_some(0)?
            }
            DECL_TAG => {
                let idx = words(1)?[0] as i32;
                let ok = self.nonempty_str(name)
                    && vlen == 0
                    && (!kflag || self.sem.btf_tag_kflag)
                    && idx >= -1;
                ok.then_some(1)?
            }
            _ => return None,
        };
        Some((3 + var, k, st))
    }

    // -----------------------------------------------------------------------------
    // btf_check_all_types
    // -----------------------------------------------------------------------------

    /// `env_type_is_resolve_sink` in the current mode.
    #[inline(always)]
    fn sink(&self, k: u8) -> bool {
        !is(self.mode, k)
    }

    #[inline(always)]
    fn is_resolved(&self, id: u32) -> bool {
        self.nodes
            .get(id as usize)
            .is_some_and(|n| n.visit() == RESOLVED)
    }

    /// `env_stack_push`.
    fn push(&mut self, id: u32, k: u8) -> Ok {
        let n = self.nodes.get_mut(id as usize)?;
        if self.top == MAX_RESOLVE_DEPTH || n.visit() != NOT_VISITED {
            return NO;
        }
        *n = n.with_visit(VISITED);
        self.stack[self.top] = (id, 0);
        self.top += 1;
        let next = AFTER_PUSH[(k & 31) as usize];
        self.mode = if self.mode == MODE_TBD {
            next
        } else {
            self.mode
        };
        YES
    }

    /// Pushes `id` (slot `n`) unless it is a sink or resolved: `Some(true)` when pushed.
    #[inline(always)]
    fn push_unless_done(&mut self, id: u32, n: Node) -> Option<bool> {
        if n.flags() & DONE == 0 && !self.sink(n.kind()) {
            self.push(id, n.kind())?;
            return Some(true);
        }
        Some(false)
    }

    /// `env_stack_pop_resolved`. A modifier or VAR also notes whether
    /// `btf_type_id_size` now succeeds through its resolved id, and at which kind.
    #[inline(always)]
    fn pop(&mut self, rid: u32, rsize: u32) {
        self.top -= 1;
        let i = self.stack[self.top].0 as usize;
        let rk = self.kind(rid).unwrap_or(0);
        if let Some(slot) = self.nodes.get_mut(i) {
            let mut n = slot.with_visit(RESOLVED).or_flags(DONE);
            if !is(HAS_SIZE, n.kind()) {
                n = n.with_a(rid);
            }
            if is(MODIFIER | bit(VAR), n.kind()) && is(SIZED, rk) {
                n = n.or_flags(TIS).with_rkind(rk);
            }
            *slot = n;
        }
        if let Some(s) = self.rsizes.get_mut(i) {
            *s = rsize;
        }
    }

    /// `btf_resolve` of a FUNC from `btf_check_all_types`: its only step is
    /// `btf_func_check`'s FUNC_PROTO test, and it resolves to that prototype.
    fn func_resolve(&mut self, id: u32) -> Ok {
        let proto = self.node(id)?.a();
        if !self.func_proto_ok(proto) {
            return NO;
        }
        let n = self.nodes.get_mut(id as usize)?;
        *n = n.with_a(proto).with_visit(RESOLVED).or_flags(DONE);
        YES
    }

    /// `btf_type_int_is_regular` of an INT id.
    fn int_is_regular(&self, id: u32) -> bool {
        int_data_is_regular(self.at(id, 0))
    }

    /// `btf_*_check_member` (`kflag` false) and `btf_*_check_kflag_member` of a member
    /// at offset word `mo` whose type is, through `btf_type_id_size`, `r` of kind `rk`
    /// and size `sz` (a modifier's check is its resolved type's).
    #[inline(always)]
    fn check_member(&self, size: u32, kflag: bool, (r, sz, rk): (u32, u32, u8), mo: u32) -> Ok {
        let (off, bf) = if kflag {
            (btf_member_bit_offset(mo), btf_member_bitfield_size(mo))
        } else {
            (mo, 0)
        };
        // Most members take one of the two first tests; the kind is not tested by a
        // table jump, whose target would follow the members' kinds.
        if is(BYTE_SIZED, rk) && !(kflag && is(ENUMS, rk)) {
            return (bf == 0 && off & 7 == 0 && size.wrapping_sub(off / 8) >= sz).then_some(());
        }
        if rk == INT {
            let d = self.at(r, 0);
            let nr_bits = if !kflag {
                if u32::MAX - off < btf_int_offset(d) {
                    return NO;
                }
                return int_member_fits(size, off + btf_int_offset(d), btf_int_bits(d)).ok();
            } else if !int_data_is_regular(d) {
                return NO;
            } else if bf == 0 {
                if off & 7 != 0 {
                    return NO;
                }
                btf_int_bits(d)
            } else if bf > btf_int_bits(d) {
                return NO;
            } else {
                bf
            };
            return int_member_fits(size, off, nr_bits).ok();
        }
        let ok = match rk {
            ENUM | ENUM64 => {
                let nr_bits = if bf == 0 {
                    if off & 7 != 0 {
                        return NO;
                    }
                    32
                } else if bf > 32 {
                    return NO;
                } else {
                    bf
                };
                size >= (off + nr_bits).div_ceil(8)
            }
            FLOAT => {
                let fsize = sz as u64;
                let align_bits = 8u64.min(fsize) * 8;
                bf == 0
                    && align_bits != 0
                    && (off as u64).is_multiple_of(align_bits)
                    && (off as u64) / 8 + fsize <= size as u64
            }
            _ => false,
        };
        ok.then_some(())
    }

    /// `btf_modifier_resolve`, `btf_ptr_resolve`, `btf_var_resolve`.
    fn ref_resolve(&mut self, k: u8, st: u32) -> Ok {
        let mut next_id = st;
        let nn = self.node(next_id)?;
        let mut nk = nn.kind();
        if is(SOURCE_ONLY, nk) {
            return NO;
        }
        if self.push_unless_done(next_id, nn)? {
            return YES;
        }
        if (k == PTR || k == VAR) && is(MODIFIER, nk) {
            let r = nn.a();
            if let Some(rn) = self.node(r)
                && rn.kind() == PTR
                && self.push_unless_done(r, rn)?
            {
                return YES;
            }
        }
        match self.tis(next_id, nn) {
            Some((r, _, _)) => next_id = r,
            None if k == VAR => return NO,
            None => {
                if nn.visit() == RESOLVED {
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
        let inn = self.node(index)?;
        if is(NOSIZE | SOURCE_ONLY, inn.kind()) {
            return NO;
        }
        if self.push_unless_done(index, inn)? {
            return YES;
        }
        match self.tis(index, inn) {
            Some((r, _, INT)) if self.int_is_regular(r) => {}
            _ => return NO,
        }
        let en = self.node(elem)?;
        if is(NOSIZE | SOURCE_ONLY, en.kind()) {
            return NO;
        }
        if self.push_unless_done(elem, en)? {
            return YES;
        }
        let (eid, esize, ek) = self.tis(elem, en)?;
        if ek == INT && !self.int_is_regular(eid) {
            return NO;
        }
        if nelems != 0 && esize > u32::MAX / nelems {
            return NO;
        }
        self.pop(eid, esize.wrapping_mul(nelems));
        YES
    }

    fn struct_resolve(&mut self, id: u32, size: u32, next_member: u16) -> Ok {
        let info = self.info(id);
        let (kflag, vlen) = (btf_info_kflag(info), btf_info_vlen(info));
        let ms = self.data(id, vlen as usize * 3);
        let mut i = next_member as usize;
        if i != 0 {
            let m = ms.get((i - 1) * 3..i * 3)?;
            let n = self.node(m[1])?;
            if n.visit() != RESOLVED {
                return NO;
            }
            self.check_member(size, kflag, self.tis(m[1], n)?, m[2])?;
        }
        for m in ms.get(i * 3..)?.chunks_exact(3) {
            i += 1;
            let (mt, mo) = (m[1], m[2]);
            let n = self.node(mt)?;
            if is(NOSIZE | SOURCE_ONLY, n.kind()) {
                return NO;
            }
            if n.flags() & DONE == 0 && !self.sink(n.kind()) {
                self.stack[self.top - 1].1 = i as u16;
                return self.push(mt, n.kind());
            }
            self.check_member(size, kflag, self.tis(mt, n)?, mo)?;
        }
        self.pop(0, 0);
        YES
    }

    fn datasec_resolve(&mut self, id: u32, next_member: u16) -> Ok {
        self.mode = MODE_TBD;
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

    fn decl_tag_resolve(&mut self, id: u32, st: u32) -> Ok {
        let next_id = st;
        let nn = self.node(next_id)?;
        let nk = nn.kind();
        if !matches!(nk, FUNC | STRUCT | UNION | VAR | TYPEDEF) {
            return NO;
        }
        if self.push_unless_done(next_id, nn)? {
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

    /// `btf_func_check`'s part here: the FUNC's type is a FUNC_PROTO with no unnamed
    /// typed parameter.
    #[inline(always)]
    fn func_proto_ok(&self, proto: u32) -> bool {
        self.node(proto)
            .is_some_and(|p| p.kind() == FUNC_PROTO && p.flags() & BAD_PARAM == 0)
    }

    fn resolve_one(&mut self, id: u32, next_member: u16) -> Ok {
        let n = self.node(id)?;
        match n.kind() {
            TYPEDEF | VOLATILE | CONST | RESTRICT | TYPE_TAG | PTR | VAR => {
                self.ref_resolve(n.kind(), n.a())
            }
            ARRAY => self.array_resolve(id),
            STRUCT | UNION => self.struct_resolve(id, n.a(), next_member),
            DATASEC => self.datasec_resolve(id, next_member),
            DECL_TAG => self.decl_tag_resolve(id, n.a()),
            FUNC => {
                let proto = n.a();
                if !self.func_proto_ok(proto) {
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
        self.mode = MODE_TBD;
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
        let n = self.node(id)?;
        if is(SOURCE_ONLY, n.kind()) {
            return NO;
        }
        if n.flags() & DONE == 0 {
            self.resolve(id, n.kind())?;
            return self.type_id_size(id).map(|_| ());
        }
        self.tis(id, n).map(|_| ())
    }

    /// `btf_func_proto_check`.
    fn func_proto_check(&mut self, id: u32, ret: u32) -> Ok {
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
        // The argument names were checked with the metas.
        for p in ps.chunks_exact(2) {
            self.resolve_sized(p[1])?;
        }
        YES
    }

    /// `btf_check_all_types`: `btf_resolve` from each type in id order that needs it,
    /// and `btf_func_proto_check` of each FUNC_PROTO.
    fn check_all_types(&mut self) -> Ok {
        self.rsizes = vec![0; self.nodes.len()];
        for i in 1..self.nodes.len() as u32 {
            let n = self.node(i)?;
            if n.kind() == FUNC {
                // btf_resolve of a FUNC, whose only step is btf_func_check.
                if n.visit() != RESOLVED {
                    self.func_resolve(i)?;
                }
            } else if n.kind() == FUNC_PROTO {
                self.func_proto_check(i, self.st(i))?;
            } else if n.flags() & DONE == 0 {
                self.resolve(i, n.kind())?;
            }
        }
        YES
    }

    // -----------------------------------------------------------------------------
    // btf_check_type_tags
    // -----------------------------------------------------------------------------

    /// `btf_check_type_tags` over the modifiers in id order (the others are skipped
    /// by its loop).
    fn check_type_tags(&self) -> Ok {
        let mut good_id = 0i64;
        for &i in &self.mods {
            let mut k = self.kind(i)?;
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
