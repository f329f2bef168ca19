//! A zero-copy view of BTF types: [`BtfData`] keeps the blob and one offset per type;
//! [`TypeRef`] reads a type's fields straight out of the blob.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::ptr::NonNull;

use super::uapi::*;

static VOID: [u8; BTF_TYPE_SIZE] = [0; BTF_TYPE_SIZE];

/// [`BtfKind`] of each 5-bit kind number, `Unkn` for those the format does not define.
const KIND_OF: [BtfKind; 32] = {
    let mut t = [BtfKind::Unkn; 32];
    let mut k = 0;
    while k < 32 {
        if let Some(kind) = BtfKind::from_u8(k as u8) {
            t[k] = kind;
        }
        k += 1;
    }
    t
};

/// Offset sentinel for the implicit `void` (id 0 of a base BTF).
pub(crate) const VOID_OFF: u32 = u32::MAX;

#[inline]
pub(crate) fn rd32(b: &[u8], off: usize) -> u32 {
    match b.get(off..off + 4) {
        Some(s) => u32::from_ne_bytes([s[0], s[1], s[2], s[3]]),
        None => 0,
    }
}

/// Bytes before the first NUL of `s` (all of `s` without one); eight at a time.
pub(crate) fn cstr_len(s: &[u8]) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut chunks = s.chunks_exact(8);
    let mut i = 0;
    for c in chunks.by_ref() {
        let mut b = [0u8; 8];
        b.copy_from_slice(c);
        let x = u64::from_le_bytes(b);
        // The lowest flagged byte is exactly the first zero byte.
        let z = x.wrapping_sub(ONES) & !x & HIGH;
        if z != 0 {
            return i + (z.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    let rest = chunks.remainder();
    i + rest.iter().position(|&c| c == 0).unwrap_or(rest.len())
}

/// One type of a BTF, borrowed from its blob.
#[derive(Clone, Copy)]
pub struct TypeRef<'a> {
    raw: &'a [u8],
    id: u32,
    /// The record's header words, read once: `name_off`, `info`, `size`/`type`.
    hdr: [u32; 3],
}

impl<'a> TypeRef<'a> {
    #[inline]
    pub(crate) fn new(raw: &'a [u8], id: u32) -> Self {
        let hdr = match raw.get(..BTF_TYPE_SIZE) {
            Some(h) => [rd32(h, 0), rd32(h, 4), rd32(h, 8)],
            None => [rd32(raw, 0), rd32(raw, 4), rd32(raw, 8)],
        };
        TypeRef { raw, id, hdr }
    }

    /// The implicit `void` type (`btf_void` (kernel/bpf/btf.c)).
    pub fn void() -> TypeRef<'static> {
        TypeRef {
            raw: &VOID,
            id: 0,
            hdr: [0; 3],
        }
    }

    /// Type id.
    pub fn id(&self) -> u32 {
        self.id
    }
    /// `name_off` (include/uapi/linux/btf.h).
    #[inline]
    pub fn name_off(&self) -> u32 {
        self.hdr[0]
    }
    /// `info` (include/uapi/linux/btf.h).
    #[inline]
    pub fn info(&self) -> u32 {
        self.hdr[1]
    }
    /// `size` / `type` union.
    #[inline]
    pub fn size_or_type(&self) -> u32 {
        self.hdr[2]
    }
    /// `t->size`.
    pub fn size(&self) -> u32 {
        self.size_or_type()
    }
    /// `t->type`.
    pub fn type_id(&self) -> u32 {
        self.size_or_type()
    }
    /// Raw kind number (`BTF_INFO_KIND`).
    pub fn kind_raw(&self) -> u8 {
        btf_info_kind(self.info())
    }
    /// Kind; `Unkn` for a number the format does not define.
    #[inline]
    pub fn kind(&self) -> BtfKind {
        KIND_OF[usize::from(self.kind_raw() & 31)]
    }
    /// `btf_type_vlen` (include/linux/btf.h).
    pub fn vlen(&self) -> u16 {
        btf_info_vlen(self.info())
    }
    /// `btf_type_kflag` (include/linux/btf.h).
    pub fn kflag(&self) -> bool {
        btf_info_kflag(self.info())
    }
    /// The bytes after the 12-byte header (kind-specific data and beyond).
    pub fn trailing(&self) -> &'a [u8] {
        self.raw.get(BTF_TYPE_SIZE..).unwrap_or(&[])
    }
    #[inline]
    fn tr32(&self, off: usize) -> u32 {
        rd32(self.raw, BTF_TYPE_SIZE + off)
    }

    /// `btf_type_is_void` (kernel/bpf/btf.c).
    pub fn is_void(&self) -> bool {
        core::ptr::eq(self.raw.as_ptr(), VOID.as_ptr())
    }
    /// `btf_type_is_modifier` (include/linux/btf.h): TYPEDEF, VOLATILE, CONST, RESTRICT, TYPE_TAG.
    pub fn is_modifier(&self) -> bool {
        matches!(
            self.kind(),
            BtfKind::Typedef
                | BtfKind::Volatile
                | BtfKind::Const
                | BtfKind::Restrict
                | BtfKind::TypeTag
        )
    }
    /// `btf_type_is_struct` (include/linux/btf.h): STRUCT or UNION.
    pub fn is_struct(&self) -> bool {
        matches!(self.kind(), BtfKind::Struct | BtfKind::Union)
    }
    /// `__btf_type_is_struct` (kernel/bpf/btf.c): STRUCT only.
    pub fn is_struct_only(&self) -> bool {
        self.kind() == BtfKind::Struct
    }
    /// Kind test.
    pub fn is(&self, k: BtfKind) -> bool {
        self.kind() == k
    }

    /// `btf_type_int` (kernel/bpf/btf.c) data word.
    pub fn int_data(&self) -> u32 {
        self.tr32(0)
    }
    /// `btf_type_array` (kernel/bpf/btf.c): (elem type, index type, nelems).
    pub fn array(&self) -> (u32, u32, u32) {
        (self.tr32(0), self.tr32(4), self.tr32(8))
    }
    /// Member `i` of a STRUCT/UNION: (name_off, type, offset).
    pub fn member(&self, i: u16) -> BtfMember {
        let o = i as usize * BTF_MEMBER_SIZE;
        BtfMember {
            name_off: self.tr32(o),
            type_id: self.tr32(o + 4),
            offset: self.tr32(o + 8),
        }
    }
    /// Members of a STRUCT/UNION.
    pub fn members(&self) -> impl Iterator<Item = BtfMember> + 'a {
        let t = *self;
        (0..self.vlen()).map(move |i| t.member(i))
    }
    /// `__btf_member_bit_offset` (include/linux/btf.h): the bit offset, decoded with this
    /// struct's kflag.
    pub fn member_bit_offset(&self, m: &BtfMember) -> u32 {
        if self.kflag() {
            btf_member_bit_offset(m.offset)
        } else {
            m.offset
        }
    }
    /// `__btf_member_bitfield_size` (include/linux/btf.h).
    pub fn member_bitfield_size(&self, m: &BtfMember) -> u32 {
        if self.kflag() {
            btf_member_bitfield_size(m.offset)
        } else {
            0
        }
    }
    /// Enumerator `i` of an ENUM: (name_off, val).
    pub fn enum_val(&self, i: u16) -> (u32, i32) {
        let o = i as usize * BTF_ENUM_SIZE;
        (self.tr32(o), self.tr32(o + 4) as i32)
    }
    /// Enumerator `i` of an ENUM64: (name_off, val).
    pub fn enum64_val(&self, i: u16) -> (u32, u64) {
        let o = i as usize * BTF_ENUM64_SIZE;
        let lo = self.tr32(o + 4) as u64;
        let hi = self.tr32(o + 8) as u64;
        (self.tr32(o), (hi << 32) | lo)
    }
    /// Parameter `i` of a FUNC_PROTO: (name_off, type).
    pub fn param(&self, i: u16) -> (u32, u32) {
        let o = i as usize * BTF_PARAM_SIZE;
        (self.tr32(o), self.tr32(o + 4))
    }
    /// `btf_type_var(t)->linkage`.
    pub fn var_linkage(&self) -> u32 {
        self.tr32(0)
    }
    /// Entry `i` of a DATASEC.
    pub fn var_secinfo(&self, i: u16) -> BtfVarSecinfo {
        let o = i as usize * BTF_VAR_SECINFO_SIZE;
        BtfVarSecinfo {
            type_id: self.tr32(o),
            offset: self.tr32(o + 4),
            size: self.tr32(o + 8),
        }
    }
    /// `btf_type_decl_tag(t)->component_idx`.
    pub fn decl_tag_component_idx(&self) -> i32 {
        self.tr32(0) as i32
    }

    /// Size of the kind-specific data after the header, from `info` (include/uapi/linux/btf.h)
    /// alone.
    pub fn trailing_len(&self) -> usize {
        btf_type_trailing_len(self.info()).unwrap_or(0)
    }
}

/// `enum visit_state` (kernel/bpf/btf.c).
pub(crate) const NOT_VISITED: u8 = 0;
/// On the resolve stack.
pub(crate) const VISITED: u8 = 1;
/// Resolved.
pub(crate) const RESOLVED: u8 = 2;

/// What the verifier keeps of one type id, in one word (its slot), and what a
/// verified [`BtfData`] keeps of it: the kernel's `visit_states`, `resolved_ids` and
/// `resolved_sizes` in one.
///
/// Bits 0..32: for a kind with a size (`btf_type_has_size`) `t->size`; for an ARRAY
/// its `resolved_sizes` entry (0 until it is resolved); for any other its
/// `resolved_ids` entry once resolved, before that `t->type` for the `REFS` kinds and
/// 0 for the rest. So the size `btf_type_id_size` gives is this word of the type it
/// ends at, but for a PTR. Bits 32..40: the kind. 40..48: the `visit_state`. 48..56:
/// where `TIS` is set, the kind of the type `btf_type_id_size` ends at. 56..64: flags
/// (the verifier's; see `verifier.rs`).
///
/// An ARRAY's resolved id (its element's, through `btf_type_id_size`) is read by no
/// check of the verifier; [`BtfData::resolved_type_id`] finds it from the element.
#[derive(Clone, Copy, Default, Debug)]
pub(crate) struct Node(pub(crate) u64);

impl Node {
    #[inline(always)]
    pub(crate) const fn new(a: u32, kind: u8, visit: u8, rkind: u8, flags: u8) -> Self {
        Node(
            a as u64
                | (kind as u64) << 32
                | (visit as u64) << 40
                | (rkind as u64) << 48
                | (flags as u64) << 56,
        )
    }
    #[inline(always)]
    pub(crate) const fn a(self) -> u32 {
        self.0 as u32
    }
    #[inline(always)]
    pub(crate) const fn kind(self) -> u8 {
        (self.0 >> 32) as u8
    }
    #[inline(always)]
    pub(crate) const fn visit(self) -> u8 {
        (self.0 >> 40) as u8
    }
    #[inline(always)]
    pub(crate) const fn rkind(self) -> u8 {
        (self.0 >> 48) as u8
    }
    #[inline(always)]
    pub(crate) const fn flags(self) -> u8 {
        (self.0 >> 56) as u8
    }
    #[inline(always)]
    pub(crate) const fn with_a(self, a: u32) -> Self {
        Node(self.0 & !0xffff_ffff | a as u64)
    }
    #[inline(always)]
    pub(crate) const fn with_visit(self, v: u8) -> Self {
        Node(self.0 & !(0xff << 40) | (v as u64) << 40)
    }
    #[inline(always)]
    pub(crate) const fn with_rkind(self, k: u8) -> Self {
        Node(self.0 & !(0xff << 48) | (k as u64) << 48)
    }
    #[inline(always)]
    pub(crate) const fn or_flags(self, f: u8) -> Self {
        Node(self.0 | (f as u64) << 56)
    }
}

/// `struct btf_member`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BtfMember {
    /// `name_off`.
    pub name_off: u32,
    /// `type`.
    pub type_id: u32,
    /// `offset` (bit offset, or bitfield size and bit offset when the struct has kflag).
    pub offset: u32,
}

/// `struct btf_var_secinfo`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BtfVarSecinfo {
    /// The VAR's type id.
    pub type_id: u32,
    /// Offset in the section.
    pub offset: u32,
    /// Size in the section.
    pub size: u32,
}

/// The parsed contents of one `struct btf`: its blob, header, type index and (after
/// the resolve pass) the resolved ids and sizes. Split BTF points at its base.
pub struct BtfData {
    pub(crate) data: Box<[u8]>,
    pub(crate) hdr: BtfHeader,
    pub(crate) types: Vec<u32>,
    /// After the resolve pass, the verifier's slot of each local type ([`Node`]):
    /// `resolved_ids` and `resolved_sizes` are read from it.
    pub(crate) resolved: Vec<Node>,
    pub(crate) start_id: u32,
    pub(crate) start_str_off: u32,
    pub(crate) str_start: usize,
    /// The end of the type section in the blob (set with the header).
    pub(crate) types_end: usize,
    /// The base BTF's data (split BTF). It holds no count: whoever holds this data
    /// keeps the base alive (a verified BTF borrows it, the `Btf` object that owns the
    /// data holds the base's reference).
    pub(crate) base: Option<BasePtr>,
}

/// A split BTF's pointer to its base's data; counts nothing (see [`BtfData::base`]).
#[derive(Clone, Copy)]
pub(crate) struct BasePtr(NonNull<BtfData>);

// SAFETY: a `BasePtr` is used only as a `&BtfData`, which may be shared and sent
// between threads (`BtfData` is immutable once verified).
unsafe impl Send for BasePtr {}
// SAFETY: as for `Send`.
unsafe impl Sync for BasePtr {}

impl BtfData {
    /// The base's data (split BTF).
    #[inline]
    pub fn base_data(&self) -> Option<&BtfData> {
        // SAFETY: the base outlives this data: a verified BTF borrows its base for its
        // whole life, and the `Btf` object that owns verified data holds a counted
        // reference to the base's object until `btf_free` (whose memory a late reader
        // may still reach is kept in the IDR's quarantine, as the object's own).
        self.base.map(|p| unsafe { p.0.as_ref() })
    }
}

/// A borrowed view of one BTF level (blob, type offsets, string section) with the
/// base chain behind it; what the verifier and the readers share.
#[derive(Clone, Copy)]
pub struct View<'a> {
    pub(crate) data: &'a [u8],
    pub(crate) types: &'a [u32],
    pub(crate) start_id: u32,
    pub(crate) start_str_off: u32,
    pub(crate) str_start: usize,
    pub(crate) str_len: u32,
    pub(crate) types_end: usize,
    pub(crate) base: Option<&'a BtfData>,
}

impl<'a> View<'a> {
    /// `btf_type_by_id` (kernel/bpf/btf.c): `None` past the last type.
    pub fn type_by_id(&self, id: u32) -> Option<TypeRef<'a>> {
        if id < self.start_id {
            return self.base?.view().type_by_id(id);
        }
        let off = *self.types.get((id - self.start_id) as usize)?;
        if off == VOID_OFF {
            return Some(TypeRef::void());
        }
        let raw = self.data.get(off as usize..self.types_end)?;
        Some(TypeRef::new(raw, id))
    }

    /// `btf_str_by_offset` (kernel/bpf/btf.c): the NUL-terminated string at `off`, without its NUL.
    pub fn str_by_offset(&self, off: u32) -> Option<&'a [u8]> {
        if off < self.start_str_off {
            return self.base?.view().str_by_offset(off);
        }
        let off = off - self.start_str_off;
        if off >= self.str_len {
            return None;
        }
        let s = self
            .data
            .get(self.str_start + off as usize..self.str_start + self.str_len as usize)?;
        Some(&s[..cstr_len(s)])
    }

    /// `btf_name_offset_valid` (kernel/bpf/btf.c).
    pub fn name_offset_valid(&self, off: u32) -> bool {
        if off > BTF_MAX_NAME_OFFSET {
            return false;
        }
        if off < self.start_str_off {
            return match self.base {
                Some(b) => b.view().name_offset_valid(off),
                None => false,
            };
        }
        off - self.start_str_off < self.str_len
    }

    /// `__btf_name_by_offset` (kernel/bpf/btf.c) as the kernel prints it with `%s`: the
    /// name's bytes, "(anon)" for 0, "(invalid-name-offset)" when bad.
    pub fn name_bytes_by_offset(&self, off: u32) -> &'a [u8] {
        if off == 0 {
            return b"(anon)";
        }
        self.str_by_offset(off).unwrap_or(b"(invalid-name-offset)")
    }

    /// `__btf_name_by_offset` (kernel/bpf/btf.c): "(anon)" for 0, "(invalid-name-offset)" when bad.
    pub fn name_by_offset(&self, off: u32) -> &'a str {
        if off == 0 {
            return "(anon)";
        }
        match self.str_by_offset(off) {
            Some(s) => core::str::from_utf8(s).unwrap_or("(non-utf8-name)"),
            None => "(invalid-name-offset)",
        }
    }

    /// `btf_nr_types` (kernel/bpf/btf.c): types in the whole chain, void included.
    pub fn nr_types(&self) -> u32 {
        self.start_id + self.types.len() as u32
    }
}

/// `btf_type_id_size` over any pair of resolved-id/size lookups (the finished arrays of
/// a [`BtfData`], or the verifier's arrays while it fills them).
pub(crate) fn type_id_size_with<'a>(
    v: &View<'a>,
    rid: impl Fn(u32) -> u32,
    rsize: impl Fn(u32) -> u32,
    id: u32,
) -> Option<(TypeRef<'a>, u32, u32)> {
    let t = v.type_by_id(id)?;
    if nosize(&t) {
        return None;
    }
    let k = t.kind();
    if has_size(k) {
        return Some((t, id, t.size()));
    }
    if k == BtfKind::Array {
        return Some((t, id, rsize(id)));
    }
    if k == BtfKind::Ptr {
        return Some((t, id, 8));
    }
    if !t.is_modifier() && k != BtfKind::Var {
        crate::sync::warn::warn("btf_type_id_size: not a modifier or var");
        return None;
    }
    let r = rid(id);
    let rt = v.type_by_id(r)?;
    if nosize(&rt) {
        return None;
    }
    let k = rt.kind();
    let size = if has_size(k) {
        rt.size()
    } else if k == BtfKind::Array {
        rsize(r)
    } else if k == BtfKind::Ptr {
        8
    } else {
        return None;
    };
    Some((rt, r, size))
}

impl BtfData {
    pub(crate) fn new(data: Box<[u8]>, base: Option<&BtfData>) -> Self {
        let (start_id, start_str_off) = match base {
            Some(b) => (b.nr_types(), b.hdr.str_len),
            None => (0, 0),
        };
        BtfData {
            data,
            hdr: BtfHeader::default(),
            types: Vec::new(),
            resolved: Vec::new(),
            start_id,
            start_str_off,
            str_start: 0,
            types_end: 0,
            base: base.map(|b| BasePtr(NonNull::from(b))),
        }
    }

    /// The borrowed view the readers use.
    pub fn view(&self) -> View<'_> {
        View {
            data: &self.data,
            types: &self.types,
            start_id: self.start_id,
            start_str_off: self.start_str_off,
            str_start: self.str_start,
            str_len: self.hdr.str_len,
            types_end: self.types_end(),
            base: self.base_data(),
        }
    }

    /// The raw blob.
    pub fn raw(&self) -> &[u8] {
        &self.data
    }
    /// The header as parsed.
    pub fn header(&self) -> &BtfHeader {
        &self.hdr
    }
    /// First type id of this BTF (0 for a base BTF).
    pub fn start_id(&self) -> u32 {
        self.start_id
    }
    /// First string offset of this BTF (0 for a base BTF).
    pub fn start_str_off(&self) -> u32 {
        self.start_str_off
    }
    /// Types in this BTF alone (`btf->nr_types`, including void for a base BTF).
    pub fn nr_types_local(&self) -> u32 {
        self.types.len() as u32
    }
    /// `btf_nr_types` (kernel/bpf/btf.c): types in the whole chain, void included.
    pub fn nr_types(&self) -> u32 {
        self.start_id + self.types.len() as u32
    }
    /// Whether the resolve pass ran (user BTF, or kernel BTF verified fully).
    pub fn is_resolved(&self) -> bool {
        !self.resolved.is_empty() || self.types.len() <= 1
    }
    /// `btf_type_by_id` (kernel/bpf/btf.c).
    #[inline]
    pub fn type_by_id(&self, id: u32) -> Option<TypeRef<'_>> {
        if id < self.start_id {
            return self.base_data()?.type_by_id(id);
        }
        let off = *self.types.get((id - self.start_id) as usize)?;
        if off == VOID_OFF {
            return Some(TypeRef::void());
        }
        let end = self.types_end();
        let raw = self.data.get(off as usize..end)?;
        Some(TypeRef::new(raw, id))
    }
    /// `btf_str_by_offset` (kernel/bpf/btf.c).
    #[inline]
    pub fn str_by_offset(&self, off: u32) -> Option<&[u8]> {
        if off < self.start_str_off {
            return self.base_data()?.str_by_offset(off);
        }
        let off = off - self.start_str_off;
        if off >= self.hdr.str_len {
            return None;
        }
        let s = self
            .data
            .get(self.str_start + off as usize..self.str_start + self.hdr.str_len as usize)?;
        Some(&s[..cstr_len(s)])
    }

    /// Whether the string at `off` starts with `prefix` (no NUL in it), without
    /// finding the string's end; false for an invalid offset.
    #[inline]
    pub fn str_starts_with(&self, off: u32, prefix: &[u8]) -> bool {
        if off < self.start_str_off {
            return self
                .base_data()
                .is_some_and(|b| b.str_starts_with(off, prefix));
        }
        let off = (off - self.start_str_off) as usize;
        let end = self.str_start + self.hdr.str_len as usize;
        self.data
            .get(self.str_start + off..end)
            .is_some_and(|s| s.starts_with(prefix))
    }

    /// The end of the type section in the blob.
    #[inline]
    fn types_end(&self) -> usize {
        self.types_end
    }

    /// Sets the header and what follows from it.
    pub(crate) fn set_hdr(&mut self, hdr: BtfHeader) {
        self.hdr = hdr;
        self.types_end = (hdr.hdr_len as usize)
            .saturating_add(hdr.type_off as usize)
            .saturating_add(hdr.type_len as usize)
            .min(self.data.len());
    }
    /// `__btf_name_by_offset` (kernel/bpf/btf.c).
    pub fn name_by_offset(&self, off: u32) -> &str {
        self.view().name_by_offset(off)
    }
    /// Name of a type as raw bytes (`btf_name_by_offset` (kernel/bpf/btf.c), empty when
    /// anonymous or bad).
    pub fn type_name(&self, t: &TypeRef<'_>) -> &[u8] {
        self.str_by_offset(t.name_off()).unwrap_or(&[])
    }

    fn level(&self, id: u32) -> &BtfData {
        let mut b = self;
        while id < b.start_id {
            match b.base_data() {
                Some(base) => b = base,
                None => break,
            }
        }
        b
    }

    /// `btf_resolved_type_id` (kernel/bpf/btf.c): what the resolve pass resolved `id`
    /// to (0 for a kind with a size, and before or without the resolve pass). An
    /// ARRAY's is its element's, through `btf_type_id_size`, as `btf_array_resolve`
    /// popped it.
    pub fn resolved_type_id(&self, id: u32) -> u32 {
        let b = self.level(id);
        let i = id.wrapping_sub(b.start_id) as usize;
        let Some(&n) = b.resolved.get(i) else {
            return 0;
        };
        let k = n.kind();
        if n.visit() != RESOLVED || BtfKind::from_u8(k).is_some_and(has_size) {
            return 0;
        }
        if k == BtfKind::Array as u8 {
            let elem = b.type_by_id(id).map_or(0, |t| t.array().0);
            return self.type_id_size(elem).map_or(0, |x| x.1);
        }
        n.a()
    }

    /// `btf_resolved_type_size` (kernel/bpf/btf.c): an ARRAY's size once resolved,
    /// 0 for every other type.
    pub fn resolved_type_size(&self, id: u32) -> u32 {
        let b = self.level(id);
        let i = id.wrapping_sub(b.start_id) as usize;
        match b.resolved.get(i) {
            Some(n) if n.visit() == RESOLVED && n.kind() == BtfKind::Array as u8 => n.a(),
            _ => 0,
        }
    }

    /// `btf_type_skip_modifiers` (kernel/bpf/btf.c): follows modifiers; returns the first
    /// other type and its id. Bounded by the chain limit the loader enforces.
    pub fn skip_modifiers(&self, mut id: u32) -> (Option<TypeRef<'_>>, u32) {
        let mut t = self.type_by_id(id);
        let mut n = 0;
        while let Some(tt) = t {
            if !tt.is_modifier() || n > MAX_RESOLVE_DEPTH {
                break;
            }
            id = tt.type_id();
            t = self.type_by_id(id);
            n += 1;
        }
        (t, id)
    }

    /// `btf_type_id_size` (kernel/bpf/btf.c): the sized type behind `id` (following a resolved
    /// modifier or VAR), its id and its size; `None` for a type without size.
    pub fn type_id_size(&self, id: u32) -> Option<(TypeRef<'_>, u32, u32)> {
        type_id_size_with(
            &self.view(),
            |i| self.resolved_type_id(i),
            |i| self.resolved_type_size(i),
            id,
        )
    }

    /// `btf_member_is_reg_int` (kernel/bpf/btf.c): member `m` of struct `s` is a
    /// regular integer of `expected_size` bytes at byte `expected_offset`. The member's
    /// type is resolved first (`btf_type_id_size`: typedefs and modifiers), then must be
    /// an INT. With the struct's kind_flag the member must not be a bitfield and its
    /// bit offset and the int's bits are rounded up to bytes (`BITS_ROUNDUP_BYTES`);
    /// without it the int has no bit offset, and the member's offset and the int's bits
    /// are whole bytes. No profile flag changes it.
    pub fn btf_member_is_reg_int(
        &self,
        s: &TypeRef<'_>,
        m: &BtfMember,
        expected_offset: u32,
        expected_size: u32,
    ) -> bool {
        let Some((t, _, _)) = self.type_id_size(m.type_id) else {
            return false;
        };
        if t.kind() != BtfKind::Int {
            return false;
        }
        let int_data = t.int_data();
        let nr_bits = btf_int_bits(int_data);
        if s.kflag() {
            return btf_member_bitfield_size(m.offset) == 0
                && btf_member_bit_offset(m.offset).div_ceil(8) == expected_offset
                && nr_bits.div_ceil(8) == expected_size;
        }
        btf_int_offset(int_data) == 0
            && m.offset.is_multiple_of(8)
            && m.offset / 8 == expected_offset
            && nr_bits.is_multiple_of(8)
            && nr_bits / 8 == expected_size
    }

    /// This BTF's own types (not the base's).
    pub fn local_types(&self) -> impl Iterator<Item = TypeRef<'_>> + '_ {
        let first = if self.base.is_some() { 0 } else { 1 };
        (first..self.types.len() as u32).filter_map(move |i| self.type_by_id(self.start_id + i))
    }

    /// [`Self::local_types`] through a view made once.
    pub(crate) fn local_types_in<'v>(
        &self,
        v: &'v View<'v>,
    ) -> impl Iterator<Item = TypeRef<'v>> + 'v {
        let first = if self.base.is_some() { 0 } else { 1 };
        let start = self.start_id;
        (first..self.types.len() as u32).filter_map(move |i| v.type_by_id(start + i))
    }
}

/// `btf_type_has_size` (kernel/bpf/btf.c).
pub fn has_size(k: BtfKind) -> bool {
    matches!(
        k,
        BtfKind::Int
            | BtfKind::Struct
            | BtfKind::Union
            | BtfKind::Enum
            | BtfKind::Datasec
            | BtfKind::Float
            | BtfKind::Enum64
    )
}

/// `btf_type_nosize` (kernel/bpf/btf.c): void, FWD, FUNC, FUNC_PROTO, DECL_TAG.
pub fn nosize(t: &TypeRef<'_>) -> bool {
    t.is_void()
        || matches!(
            t.kind(),
            BtfKind::Fwd | BtfKind::Func | BtfKind::FuncProto | BtfKind::DeclTag
        )
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::cstr_len;

    #[test]
    fn cstr_len_finds_the_first_nul() {
        for len in 0..40usize {
            for nul in 0..=len {
                let mut s = alloc::vec![0x01u8; len];
                if nul < len {
                    s[nul] = 0;
                    if nul + 1 < len {
                        s[nul + 1] = 0;
                    }
                }
                let want = s.iter().position(|&c| c == 0).unwrap_or(len);
                assert_eq!(cstr_len(&s), want, "len {len} nul {nul}");
            }
        }
    }
}
