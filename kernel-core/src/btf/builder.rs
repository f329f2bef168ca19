//! A BTF writer for tests and tools: exact, possibly malformed, blobs. Types get ids in
//! the order they are added, from 1 (or from `start_id` for split BTF).

use alloc::vec::Vec;

use super::uapi::*;

/// Builds a raw BTF blob.
#[derive(Clone, Debug)]
pub struct BtfBuilder {
    types: Vec<u8>,
    strings: Vec<u8>,
    next_id: u32,
    str_base: u32,
}

impl Default for BtfBuilder {
    fn default() -> Self {
        Self::new()
    }
}

fn push32(v: &mut Vec<u8>, x: u32) {
    v.extend_from_slice(&x.to_ne_bytes());
}

impl BtfBuilder {
    /// An empty base BTF (string section starts with the empty string).
    pub fn new() -> Self {
        BtfBuilder {
            types: Vec::new(),
            strings: alloc::vec![0],
            next_id: 1,
            str_base: 0,
        }
    }

    /// An empty split BTF whose first id is `start_id` and whose strings start at
    /// `start_str_off` (the base's type count and string length).
    pub fn new_split(start_id: u32, start_str_off: u32) -> Self {
        BtfBuilder {
            types: Vec::new(),
            strings: Vec::new(),
            next_id: start_id,
            str_base: start_str_off,
        }
    }

    /// Adds a string; returns its offset ("" is offset 0, the base's empty string in
    /// a split BTF).
    pub fn add_str(&mut self, s: &str) -> u32 {
        if s.is_empty() {
            return 0;
        }
        let off = self.str_base + self.strings.len() as u32;
        self.strings.extend_from_slice(s.as_bytes());
        self.strings.push(0);
        off
    }

    /// Appends raw bytes to the string section.
    pub fn raw_strings(&mut self, bytes: &[u8]) -> u32 {
        let off = self.str_base + self.strings.len() as u32;
        self.strings.extend_from_slice(bytes);
        off
    }

    /// Appends one type record verbatim; returns its id.
    pub fn raw_type(
        &mut self,
        name_off: u32,
        info: u32,
        size_or_type: u32,
        trailing: &[u8],
    ) -> u32 {
        push32(&mut self.types, name_off);
        push32(&mut self.types, info);
        push32(&mut self.types, size_or_type);
        self.types.extend_from_slice(trailing);
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Appends one type record with a name string; returns its id.
    pub fn raw_named(&mut self, name: &str, info: u32, size_or_type: u32, trailing: &[u8]) -> u32 {
        let n = self.add_str(name);
        self.raw_type(n, info, size_or_type, trailing)
    }

    /// Appends raw bytes to the type section (no id is assigned).
    pub fn raw_type_bytes(&mut self, bytes: &[u8]) {
        self.types.extend_from_slice(bytes);
    }

    /// The id the next type will get.
    pub fn next_id(&self) -> u32 {
        self.next_id
    }

    fn named(
        &mut self,
        name: &str,
        kind: BtfKind,
        kflag: bool,
        vlen: u16,
        st: u32,
        tr: &[u8],
    ) -> u32 {
        let n = self.add_str(name);
        self.raw_type(n, btf_info_enc(kind as u8, kflag, vlen), st, tr)
    }

    /// INT.
    pub fn int(&mut self, name: &str, size: u32, encoding: u8, bits: u8) -> u32 {
        let d = btf_int_enc(encoding, 0, bits);
        self.named(name, BtfKind::Int, false, 0, size, &d.to_ne_bytes())
    }
    /// PTR.
    pub fn ptr(&mut self, target: u32) -> u32 {
        self.named("", BtfKind::Ptr, false, 0, target, &[])
    }
    /// TYPEDEF.
    pub fn typedef(&mut self, name: &str, target: u32) -> u32 {
        self.named(name, BtfKind::Typedef, false, 0, target, &[])
    }
    /// VOLATILE.
    pub fn volatile(&mut self, target: u32) -> u32 {
        self.named("", BtfKind::Volatile, false, 0, target, &[])
    }
    /// CONST.
    pub fn const_(&mut self, target: u32) -> u32 {
        self.named("", BtfKind::Const, false, 0, target, &[])
    }
    /// RESTRICT.
    pub fn restrict(&mut self, target: u32) -> u32 {
        self.named("", BtfKind::Restrict, false, 0, target, &[])
    }
    /// TYPE_TAG.
    pub fn type_tag(&mut self, tag: &str, target: u32) -> u32 {
        self.named(tag, BtfKind::TypeTag, false, 0, target, &[])
    }
    /// ARRAY.
    pub fn array(&mut self, elem: u32, index: u32, nelems: u32) -> u32 {
        let mut tr = Vec::new();
        push32(&mut tr, elem);
        push32(&mut tr, index);
        push32(&mut tr, nelems);
        self.named("", BtfKind::Array, false, 0, 0, &tr)
    }
    fn composite(
        &mut self,
        kind: BtfKind,
        name: &str,
        size: u32,
        kflag: bool,
        m: &[(&str, u32, u32)],
    ) -> u32 {
        let mut tr = Vec::new();
        for (mn, ty, off) in m {
            let no = self.add_str(mn);
            push32(&mut tr, no);
            push32(&mut tr, *ty);
            push32(&mut tr, *off);
        }
        self.named(name, kind, kflag, m.len() as u16, size, &tr)
    }
    /// STRUCT with members (name, type, bit offset).
    pub fn struct_(&mut self, name: &str, size: u32, members: &[(&str, u32, u32)]) -> u32 {
        self.composite(BtfKind::Struct, name, size, false, members)
    }
    /// STRUCT with kind_flag: member offsets are `bitfield_size << 24 | bit_offset`.
    pub fn struct_kflag(&mut self, name: &str, size: u32, members: &[(&str, u32, u32)]) -> u32 {
        self.composite(BtfKind::Struct, name, size, true, members)
    }
    /// UNION.
    pub fn union_(&mut self, name: &str, size: u32, members: &[(&str, u32, u32)]) -> u32 {
        self.composite(BtfKind::Union, name, size, false, members)
    }
    /// ENUM (kflag = signed).
    pub fn enum_(&mut self, name: &str, size: u32, signed: bool, vals: &[(&str, i32)]) -> u32 {
        let mut tr = Vec::new();
        for (n, v) in vals {
            let no = self.add_str(n);
            push32(&mut tr, no);
            push32(&mut tr, *v as u32);
        }
        self.named(name, BtfKind::Enum, signed, vals.len() as u16, size, &tr)
    }
    /// ENUM64 (kflag = signed).
    pub fn enum64(&mut self, name: &str, size: u32, signed: bool, vals: &[(&str, u64)]) -> u32 {
        let mut tr = Vec::new();
        for (n, v) in vals {
            let no = self.add_str(n);
            push32(&mut tr, no);
            push32(&mut tr, *v as u32);
            push32(&mut tr, (*v >> 32) as u32);
        }
        self.named(name, BtfKind::Enum64, signed, vals.len() as u16, size, &tr)
    }
    /// FWD (kflag = union).
    pub fn fwd(&mut self, name: &str, is_union: bool) -> u32 {
        self.named(name, BtfKind::Fwd, is_union, 0, 0, &[])
    }
    /// FUNC_PROTO with params (name, type); a last (\"\", 0) is a vararg.
    pub fn func_proto(&mut self, ret: u32, params: &[(&str, u32)]) -> u32 {
        let mut tr = Vec::new();
        for (n, t) in params {
            let no = self.add_str(n);
            push32(&mut tr, no);
            push32(&mut tr, *t);
        }
        self.named("", BtfKind::FuncProto, false, params.len() as u16, ret, &tr)
    }
    /// FUNC with linkage (0 static, 1 global, 2 extern).
    pub fn func(&mut self, name: &str, proto: u32, linkage: u16) -> u32 {
        self.named(name, BtfKind::Func, false, linkage, proto, &[])
    }
    /// VAR with linkage.
    pub fn var(&mut self, name: &str, ty: u32, linkage: u32) -> u32 {
        self.named(name, BtfKind::Var, false, 0, ty, &linkage.to_ne_bytes())
    }
    /// DATASEC with entries (var id, offset, size).
    pub fn datasec(&mut self, name: &str, size: u32, vars: &[(u32, u32, u32)]) -> u32 {
        let mut tr = Vec::new();
        for (t, o, s) in vars {
            push32(&mut tr, *t);
            push32(&mut tr, *o);
            push32(&mut tr, *s);
        }
        self.named(name, BtfKind::Datasec, false, vars.len() as u16, size, &tr)
    }
    /// FLOAT.
    pub fn float(&mut self, name: &str, size: u32) -> u32 {
        self.named(name, BtfKind::Float, false, 0, size, &[])
    }
    /// DECL_TAG on `target` (component -1 = the type itself).
    pub fn decl_tag(&mut self, value: &str, target: u32, component_idx: i32) -> u32 {
        self.named(
            value,
            BtfKind::DeclTag,
            false,
            0,
            target,
            &component_idx.to_ne_bytes(),
        )
    }

    /// The header this builder writes.
    pub fn header(&self) -> BtfHeader {
        BtfHeader {
            magic: BTF_MAGIC,
            version: BTF_VERSION,
            flags: 0,
            hdr_len: BTF_HEADER_SIZE as u32,
            type_off: 0,
            type_len: self.types.len() as u32,
            str_off: self.types.len() as u32,
            str_len: self.strings.len() as u32,
        }
    }

    /// The blob.
    pub fn build(&self) -> Vec<u8> {
        self.build_with(|_| {})
    }

    /// The blob, with the header edited first (to write malformed headers).
    pub fn build_with(&self, edit: impl FnOnce(&mut BtfHeader)) -> Vec<u8> {
        let mut h = self.header();
        edit(&mut h);
        let mut out = Vec::with_capacity(BTF_HEADER_SIZE + self.types.len() + self.strings.len());
        out.extend_from_slice(&h.magic.to_ne_bytes());
        out.push(h.version);
        out.push(h.flags);
        push32(&mut out, h.hdr_len);
        push32(&mut out, h.type_off);
        push32(&mut out, h.type_len);
        push32(&mut out, h.str_off);
        push32(&mut out, h.str_len);
        out.extend_from_slice(&self.types);
        out.extend_from_slice(&self.strings);
        out
    }
}
