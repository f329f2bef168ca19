//! The BTF format as `include/uapi/linux/btf.h` defines it: header, type record, the
//! kinds and their trailing data. Sizes are pinned with `static_assertions`.

use static_assertions::const_assert_eq;

/// `BTF_MAGIC`.
pub const BTF_MAGIC: u16 = 0xeb9f;
/// `BTF_VERSION`.
pub const BTF_VERSION: u8 = 1;
/// `BTF_MAX_TYPE`: the largest type id.
pub const BTF_MAX_TYPE: u32 = 0x000f_ffff;
/// `BTF_MAX_NAME_OFFSET`.
pub const BTF_MAX_NAME_OFFSET: u32 = 0x00ff_ffff;
/// `BTF_MAX_VLEN`.
pub const BTF_MAX_VLEN: u32 = 0xffff;
/// `BTF_MAX_SIZE` (kernel/bpf/btf.c): the largest blob `BPF_BTF_LOAD` accepts.
pub const BTF_MAX_SIZE: u32 = 16 * 1024 * 1024;
/// `BTF_INFO_MASK` (kernel/bpf/btf.c): bits of `info` that may be set.
pub const BTF_INFO_MASK: u32 = 0x9f00_ffff;
/// `BTF_INT_MASK` (kernel/bpf/btf.c).
pub const BTF_INT_MASK: u32 = 0x0fff_ffff;
/// `KSYM_NAME_LEN` (include/linux/kallsyms.h): identifier length limit.
pub const KSYM_NAME_LEN: usize = 512;
/// `MAX_RESOLVE_DEPTH` (kernel/bpf/btf.c).
pub const MAX_RESOLVE_DEPTH: usize = 32;

/// `struct btf_header` size as this model writes it.
pub const BTF_HEADER_SIZE: usize = 24;
/// `struct btf_type` size.
pub const BTF_TYPE_SIZE: usize = 12;
/// `struct btf_member` size.
pub const BTF_MEMBER_SIZE: usize = 12;
/// `struct btf_array` size.
pub const BTF_ARRAY_SIZE: usize = 12;
/// `struct btf_enum` size.
pub const BTF_ENUM_SIZE: usize = 8;
/// `struct btf_enum64` size.
pub const BTF_ENUM64_SIZE: usize = 12;
/// `struct btf_param` size.
pub const BTF_PARAM_SIZE: usize = 8;
/// `struct btf_var` size.
pub const BTF_VAR_SIZE: usize = 4;
/// `struct btf_var_secinfo` size.
pub const BTF_VAR_SECINFO_SIZE: usize = 12;
/// `struct btf_decl_tag` size.
pub const BTF_DECL_TAG_SIZE: usize = 4;

/// `struct btf_header`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BtfHeader {
    /// `BTF_MAGIC`.
    pub magic: u16,
    /// `BTF_VERSION`.
    pub version: u8,
    /// Must be 0.
    pub flags: u8,
    /// Header length; the sections follow it.
    pub hdr_len: u32,
    /// Type section offset, relative to the end of the header.
    pub type_off: u32,
    /// Type section length.
    pub type_len: u32,
    /// String section offset, relative to the end of the header.
    pub str_off: u32,
    /// String section length.
    pub str_len: u32,
}

const_assert_eq!(core::mem::size_of::<BtfHeader>(), BTF_HEADER_SIZE);

/// A BTF kind (`BTF_KIND_*`).
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[allow(missing_docs)]
pub enum BtfKind {
    Unkn = 0,
    Int = 1,
    Ptr = 2,
    Array = 3,
    Struct = 4,
    Union = 5,
    Enum = 6,
    Fwd = 7,
    Typedef = 8,
    Volatile = 9,
    Const = 10,
    Restrict = 11,
    Func = 12,
    FuncProto = 13,
    Var = 14,
    Datasec = 15,
    Float = 16,
    DeclTag = 17,
    TypeTag = 18,
    Enum64 = 19,
}

/// `BTF_KIND_MAX`.
pub const BTF_KIND_MAX: u8 = 19;

impl BtfKind {
    /// Kind from its number; `None` above `BTF_KIND_MAX`.
    pub const fn from_u8(k: u8) -> Option<BtfKind> {
        use BtfKind::*;
        Some(match k {
            0 => Unkn,
            1 => Int,
            2 => Ptr,
            3 => Array,
            4 => Struct,
            5 => Union,
            6 => Enum,
            7 => Fwd,
            8 => Typedef,
            9 => Volatile,
            10 => Const,
            11 => Restrict,
            12 => Func,
            13 => FuncProto,
            14 => Var,
            15 => Datasec,
            16 => Float,
            17 => DeclTag,
            18 => TypeTag,
            19 => Enum64,
            _ => return None,
        })
    }

    /// `btf_kind_str` (kernel/bpf/btf.c).
    pub const fn as_str(self) -> &'static str {
        use BtfKind::*;
        match self {
            Unkn => "UNKNOWN",
            Int => "INT",
            Ptr => "PTR",
            Array => "ARRAY",
            Struct => "STRUCT",
            Union => "UNION",
            Enum => "ENUM",
            Fwd => "FWD",
            Typedef => "TYPEDEF",
            Volatile => "VOLATILE",
            Const => "CONST",
            Restrict => "RESTRICT",
            Func => "FUNC",
            FuncProto => "FUNC_PROTO",
            Var => "VAR",
            Datasec => "DATASEC",
            Float => "FLOAT",
            DeclTag => "DECL_TAG",
            TypeTag => "TYPE_TAG",
            Enum64 => "ENUM64",
        }
    }

    /// Kind from a name as [`BtfKind::as_str`] prints it.
    pub fn from_name(s: &str) -> Option<BtfKind> {
        (0..=BTF_KIND_MAX)
            .filter_map(BtfKind::from_u8)
            .find(|k| k.as_str() == s)
    }
}

/// The kind numbers as `u8` constants, each from its [`BtfKind`] (for `match` patterns
/// on a raw `BTF_INFO_KIND` and for [`KindSet`]s).
#[allow(missing_docs)]
pub mod kind {
    use super::BtfKind;
    pub const UNKN: u8 = BtfKind::Unkn as u8;
    pub const INT: u8 = BtfKind::Int as u8;
    pub const PTR: u8 = BtfKind::Ptr as u8;
    pub const ARRAY: u8 = BtfKind::Array as u8;
    pub const STRUCT: u8 = BtfKind::Struct as u8;
    pub const UNION: u8 = BtfKind::Union as u8;
    pub const ENUM: u8 = BtfKind::Enum as u8;
    pub const FWD: u8 = BtfKind::Fwd as u8;
    pub const TYPEDEF: u8 = BtfKind::Typedef as u8;
    pub const VOLATILE: u8 = BtfKind::Volatile as u8;
    pub const CONST: u8 = BtfKind::Const as u8;
    pub const RESTRICT: u8 = BtfKind::Restrict as u8;
    pub const FUNC: u8 = BtfKind::Func as u8;
    pub const FUNC_PROTO: u8 = BtfKind::FuncProto as u8;
    pub const VAR: u8 = BtfKind::Var as u8;
    pub const DATASEC: u8 = BtfKind::Datasec as u8;
    pub const FLOAT: u8 = BtfKind::Float as u8;
    pub const DECL_TAG: u8 = BtfKind::DeclTag as u8;
    pub const TYPE_TAG: u8 = BtfKind::TypeTag as u8;
    pub const ENUM64: u8 = BtfKind::Enum64 as u8;
}

/// A set of kind numbers, one bit each: the kernel's kind predicates
/// (include/linux/btf.h, kernel/bpf/btf.c) as one test of a raw kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KindSet(pub u32);

impl KindSet {
    /// The set of `kinds`.
    pub const fn of(kinds: &[u8]) -> KindSet {
        let mut m = 0u32;
        let mut i = 0;
        while i < kinds.len() {
            m |= 1 << (kinds[i] & 31);
            i += 1;
        }
        KindSet(m)
    }

    /// Both sets together.
    pub const fn with(self, o: KindSet) -> KindSet {
        KindSet(self.0 | o.0)
    }

    /// Whether kind number `k` is in the set.
    #[inline(always)]
    pub const fn has(self, k: u8) -> bool {
        self.0 & (1 << (k & 31)) != 0
    }
}

/// `btf_type_is_modifier`: TYPEDEF, VOLATILE, CONST, RESTRICT, TYPE_TAG.
pub const MODIFIER_KINDS: KindSet = KindSet::of(&[
    kind::TYPEDEF,
    kind::VOLATILE,
    kind::CONST,
    kind::RESTRICT,
    kind::TYPE_TAG,
]);
/// `btf_type_is_struct`: STRUCT, UNION.
pub const STRUCT_KINDS: KindSet = KindSet::of(&[kind::STRUCT, kind::UNION]);
/// ENUM, ENUM64.
pub const ENUM_KINDS: KindSet = KindSet::of(&[kind::ENUM, kind::ENUM64]);
/// `btf_type_has_size`.
pub const HAS_SIZE_KINDS: KindSet = KindSet::of(&[
    kind::INT,
    kind::STRUCT,
    kind::UNION,
    kind::ENUM,
    kind::DATASEC,
    kind::FLOAT,
    kind::ENUM64,
]);
/// `btf_type_nosize` (void is kind 0 here).
pub const NOSIZE_KINDS: KindSet = KindSet::of(&[
    kind::UNKN,
    kind::FWD,
    kind::FUNC,
    kind::FUNC_PROTO,
    kind::DECL_TAG,
]);
/// `btf_type_is_resolve_source_only`: VAR, DECL_TAG, DATASEC.
pub const SOURCE_ONLY_KINDS: KindSet = KindSet::of(&[kind::VAR, kind::DECL_TAG, kind::DATASEC]);
/// `btf_type_needs_resolve`.
pub const NEEDS_RESOLVE_KINDS: KindSet = MODIFIER_KINDS.with(KindSet::of(&[
    kind::PTR,
    kind::STRUCT,
    kind::UNION,
    kind::ARRAY,
    kind::VAR,
    kind::FUNC,
    kind::DECL_TAG,
    kind::DATASEC,
]));
/// `btf_type_is_decl_tag_target`: FUNC, STRUCT, UNION, VAR, TYPEDEF.
pub const DECL_TAG_TARGET_KINDS: KindSet = KindSet::of(&[
    kind::FUNC,
    kind::STRUCT,
    kind::UNION,
    kind::VAR,
    kind::TYPEDEF,
]);

/// `BTF_INFO_KIND(info)`.
#[inline]
pub const fn btf_info_kind(info: u32) -> u8 {
    ((info >> 24) & 0x1f) as u8
}
/// `BTF_INFO_VLEN(info)`.
#[inline]
pub const fn btf_info_vlen(info: u32) -> u16 {
    (info & 0xffff) as u16
}
/// `BTF_INFO_KFLAG(info)`.
#[inline]
pub const fn btf_info_kflag(info: u32) -> bool {
    info >> 31 != 0
}
/// Bytes of kind-specific data after a type's 12-byte header, from its `info` alone
/// (include/uapi/linux/btf.h); `None` for a kind number the format does not define.
pub const fn btf_type_trailing_len(info: u32) -> Option<usize> {
    let vlen = btf_info_vlen(info) as usize;
    let Some(kind) = BtfKind::from_u8(btf_info_kind(info)) else {
        return None;
    };
    Some(match kind {
        BtfKind::Int => 4,
        BtfKind::Array => BTF_ARRAY_SIZE,
        BtfKind::Struct | BtfKind::Union => vlen * BTF_MEMBER_SIZE,
        BtfKind::Enum => vlen * BTF_ENUM_SIZE,
        BtfKind::Enum64 => vlen * BTF_ENUM64_SIZE,
        BtfKind::FuncProto => vlen * BTF_PARAM_SIZE,
        BtfKind::Var => BTF_VAR_SIZE,
        BtfKind::Datasec => vlen * BTF_VAR_SECINFO_SIZE,
        BtfKind::DeclTag => BTF_DECL_TAG_SIZE,
        _ => 0,
    })
}

/// `BTF_INFO_ENC(kind, kind_flag, vlen)`.
#[inline]
pub const fn btf_info_enc(kind: u8, kflag: bool, vlen: u16) -> u32 {
    ((kflag as u32) << 31) | ((kind as u32 & 0x1f) << 24) | vlen as u32
}
/// `BTF_INT_ENCODING(int_data)`.
#[inline]
pub const fn btf_int_encoding(d: u32) -> u8 {
    ((d & 0x0f00_0000) >> 24) as u8
}
/// `BTF_INT_OFFSET(int_data)`.
#[inline]
pub const fn btf_int_offset(d: u32) -> u32 {
    (d & 0x00ff_0000) >> 16
}
/// `BTF_INT_BITS(int_data)`.
#[inline]
pub const fn btf_int_bits(d: u32) -> u32 {
    d & 0x0000_00ff
}
/// `BTF_INT_ENC(encoding, offset, bits)`.
#[inline]
pub const fn btf_int_enc(encoding: u8, offset: u8, bits: u8) -> u32 {
    ((encoding as u32) << 24) | ((offset as u32) << 16) | bits as u32
}
/// `BTF_INT_SIGNED`.
pub const BTF_INT_SIGNED: u8 = 1 << 0;
/// `BTF_INT_CHAR`.
pub const BTF_INT_CHAR: u8 = 1 << 1;
/// `BTF_INT_BOOL`.
pub const BTF_INT_BOOL: u8 = 1 << 2;
/// `BTF_MEMBER_BITFIELD_SIZE(offset)`.
#[inline]
pub const fn btf_member_bitfield_size(off: u32) -> u32 {
    off >> 24
}
/// `BTF_MEMBER_BIT_OFFSET(offset)`.
#[inline]
pub const fn btf_member_bit_offset(off: u32) -> u32 {
    off & 0x00ff_ffff
}
/// `BTF_VAR_STATIC`.
pub const BTF_VAR_STATIC: u32 = 0;
/// `BTF_VAR_GLOBAL_ALLOCATED`.
pub const BTF_VAR_GLOBAL_ALLOCATED: u32 = 1;
/// `BTF_VAR_GLOBAL_EXTERN`.
pub const BTF_VAR_GLOBAL_EXTERN: u32 = 2;
/// `BTF_FUNC_GLOBAL` (the largest FUNC linkage the kernel accepts).
pub const BTF_FUNC_GLOBAL: u16 = 1;
