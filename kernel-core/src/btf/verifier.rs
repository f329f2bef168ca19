//! The BTF verifier `btf_parse` runs (kernel/bpf/btf.c): header and section checks,
//! the string section, the per-kind meta pass (`btf_check_all_metas`), the resolve
//! pass (`btf_check_all_types`) and the type-tag chain check (`btf_check_type_tags`),
//! with the kernel's errno and, at log level 1, the kernel's log text byte for byte.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

use super::log::{LogName, VerifierLog};
use super::object::BtfRef;
use super::types::{
    BtfData, BtfMember, BtfVarSecinfo, TypeRef, VOID_OFF, View, nosize, rd32, type_id_size_with,
};
use super::uapi::*;
use crate::errno::Errno;
use crate::profile::Semantics;

/// Why a BTF blob was refused: the kernel's errno, the failing check's message (its
/// format string, as in the kernel source) and, at log level 1, the full verifier log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BtfParseError {
    /// The errno `BPF_BTF_LOAD` returns.
    pub errno: Errno,
    /// The failing check's message template, e.g. `"Invalid magic"`.
    pub reason: &'static str,
    /// The verifier log's bytes (empty at log level 0).
    pub log: Vec<u8>,
}

impl BtfParseError {
    /// The last line of the log (the kernel's message for the failing check), or the
    /// reason when no log was kept.
    pub fn message(&self) -> String {
        let mut log = &self.log[..];
        while let Some(l) = log.strip_suffix(b"\n") {
            log = l;
        }
        match log.rsplit(|&b| b == b'\n').next() {
            Some(l) if !l.is_empty() => String::from_utf8_lossy(l).into_owned(),
            _ => String::from(self.reason),
        }
    }
}

impl fmt::Display for BtfParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.errno, self.message())
    }
}

/// Options of one verifier run.
#[derive(Clone, Copy, Debug)]
pub struct ParseOpts {
    /// `log_level` (0 or 1).
    pub log_level: u32,
    /// Run the resolve pass (always for user BTF; the kernel skips it for its own BTF).
    pub resolve: bool,
    /// Behaviour switches of the kernel profile.
    pub sem: Semantics,
}

#[derive(Clone, Copy)]
struct Fail {
    errno: Errno,
    reason: &'static str,
}

type VResult<T> = Result<T, Fail>;

const fn fail(errno: Errno, reason: &'static str) -> Fail {
    Fail { errno, reason }
}

const EINVAL: Errno = Errno::EINVAL;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    CheckMeta,
    CheckType,
}

/// `enum resolve_mode`: what ends a walk (the sink rule).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum ResolveMode {
    Tbd,
    Ptr,
    StructOrArray,
}

/// `enum visit_state`.
pub(crate) const NOT_VISITED: u8 = 0;
pub(crate) const VISITED: u8 = 1;
pub(crate) const RESOLVED: u8 = 2;

#[derive(Clone, Copy)]
struct Vertex<'a> {
    t: TypeRef<'a>,
    type_id: u32,
    next_member: u16,
}

/// `struct btf_verifier_env`.
struct Env<'a, 'l> {
    v: View<'a>,
    log: &'l mut VerifierLog,
    log_type_id: u32,
    phase: Phase,
    resolve_mode: ResolveMode,
    visit: Vec<u8>,
    rids: Vec<u32>,
    rsizes: Vec<u32>,
    stack: [Option<Vertex<'a>>; MAX_RESOLVE_DEPTH],
    top: usize,
    sem: Semantics,
    /// `btf_name_valid_identifier` per local string offset: 0 unknown, 1 yes, 2 no.
    ident_cache: Vec<u8>,
}

macro_rules! vlog {
    ($env:expr, $($arg:tt)*) => {
        if $env.log.needed() {
            $env.log.write(format_args!($($arg)*));
        }
    };
}

// ---------------------------------------------------------------------------------
// name checks (kernel/bpf/btf.c, lib/ctype.c)
// ---------------------------------------------------------------------------------

/// `_ctype` of lib/ctype.c (Latin-1): bit 0 upper, 1 lower, 2 digit, 3 punct,
/// 4 hard space.
static CTYPE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = ctype_of(i as u8);
        i += 1;
    }
    t
};

#[inline]
fn ctype(c: u8) -> u8 {
    CTYPE[c as usize]
}

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

fn isprint(c: u8) -> bool {
    ctype(c) != 0
}

/// Reads up to `KSYM_NAME_LEN + 1` bytes of the string at `off` (the kernel never
/// looks further).
fn raw_str_at<'a>(v: &View<'a>, off: u32) -> &'a [u8] {
    if off < v.start_str_off {
        return match v.base {
            Some(b) => raw_str_at(&b.view(), off),
            None => &[],
        };
    }
    let o = v.str_start + (off - v.start_str_off) as usize;
    let end = (v.str_start + v.str_len as usize).min(v.data.len());
    v.data.get(o..end).unwrap_or(&[])
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

/// `isalpha(c) || c == '_' || c == '.'` with the kernel's Latin-1 `_ctype`.
pub(crate) fn name_char_first_ok(c: u8) -> bool {
    NAME_OK[0][c as usize]
}

/// `isalnum(c) || c == '_' || c == '.'` with the kernel's Latin-1 `_ctype`.
pub(crate) fn name_char_rest_ok(c: u8) -> bool {
    NAME_OK[1][c as usize]
}

/// `btf_name_valid_identifier`.
pub(crate) fn name_valid_identifier(v: &View<'_>, off: u32) -> bool {
    let s = raw_str_at(v, off);
    let Some(&first) = s.first() else {
        return false;
    };
    if !NAME_OK[0][first as usize] {
        return false;
    }
    let lim = s.len().min(KSYM_NAME_LEN);
    for &c in &s[1..lim] {
        if c == 0 {
            return true;
        }
        if !NAME_OK[1][c as usize] {
            return false;
        }
    }
    s.get(lim).is_none_or(|&c| c == 0)
}

/// `btf_name_valid_section`.
pub(crate) fn name_valid_section(v: &View<'_>, off: u32) -> bool {
    let s = raw_str_at(v, off);
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

impl Env<'_, '_> {
    /// `btf_name_valid_identifier`, memoised per string offset of this level.
    fn ident_ok(&mut self, off: u32) -> bool {
        let Some(i) = off.checked_sub(self.v.start_str_off) else {
            return name_valid_identifier(&self.v, off);
        };
        if self.ident_cache.is_empty() {
            self.ident_cache = vec![0; self.v.str_len as usize];
        }
        match self.ident_cache.get(i as usize) {
            Some(1) => true,
            Some(2) => false,
            Some(_) => {
                let ok = name_valid_identifier(&self.v, off);
                self.ident_cache[i as usize] = if ok { 1 } else { 2 };
                ok
            }
            None => name_valid_identifier(&self.v, off),
        }
    }
}

// ---------------------------------------------------------------------------------
// logging (__btf_verifier_log_type, btf_verifier_log_member, btf_verifier_log_vsi)
// ---------------------------------------------------------------------------------

impl<'a> Env<'a, '_> {
    fn log_details(&mut self, t: &TypeRef<'a>) {
        let v = self.v;
        match t.kind() {
            BtfKind::Int => {
                let d = t.int_data();
                let enc = match btf_int_encoding(d) {
                    0 => "(none)",
                    BTF_INT_SIGNED => "SIGNED",
                    BTF_INT_CHAR => "CHAR",
                    BTF_INT_BOOL => "BOOL",
                    _ => "UNKN",
                };
                vlog!(
                    self,
                    "size={} bits_offset={} nr_bits={} encoding={}",
                    t.size(),
                    btf_int_offset(d),
                    btf_int_bits(d),
                    enc
                );
            }
            BtfKind::Ptr
            | BtfKind::Typedef
            | BtfKind::Volatile
            | BtfKind::Const
            | BtfKind::Restrict
            | BtfKind::TypeTag
            | BtfKind::Func => vlog!(self, "type_id={}", t.type_id()),
            BtfKind::Array => {
                let (ty, idx, n) = t.array();
                vlog!(self, "type_id={} index_type_id={} nr_elems={}", ty, idx, n);
            }
            BtfKind::Struct
            | BtfKind::Union
            | BtfKind::Enum
            | BtfKind::Enum64
            | BtfKind::Datasec => vlog!(self, "size={} vlen={}", t.size(), t.vlen()),
            BtfKind::Fwd => vlog!(self, "{}", if t.kflag() { "union" } else { "struct" }),
            BtfKind::FuncProto => {
                let n = t.vlen();
                vlog!(self, "return={} args=(", t.type_id());
                if n == 0 {
                    vlog!(self, "void");
                } else if n == 1 && t.param(0).1 == 0 {
                    vlog!(self, "vararg");
                } else {
                    let (no, ty) = t.param(0);
                    vlog!(self, "{} {}", ty, LogName(v.name_bytes_by_offset(no)));
                    for i in 1..n - 1 {
                        let (no, ty) = t.param(i);
                        vlog!(self, ", {} {}", ty, LogName(v.name_bytes_by_offset(no)));
                    }
                    if n > 1 {
                        let (no, ty) = t.param(n - 1);
                        if ty != 0 {
                            vlog!(self, ", {} {}", ty, LogName(v.name_bytes_by_offset(no)));
                        } else {
                            vlog!(self, ", vararg");
                        }
                    }
                }
                vlog!(self, ")");
            }
            BtfKind::Var => vlog!(self, "type_id={} linkage={}", t.type_id(), t.var_linkage()),
            BtfKind::Float => vlog!(self, "size={}", t.size()),
            BtfKind::DeclTag => vlog!(
                self,
                "type={} component_idx={}",
                t.type_id(),
                t.decl_tag_component_idx()
            ),
            BtfKind::Unkn => {}
        }
    }

    /// `__btf_verifier_log_type`.
    fn log_type_impl(&mut self, t: &TypeRef<'a>, details: bool, msg: Option<fmt::Arguments<'_>>) {
        if !self.log.needed() {
            return;
        }
        let name = LogName(self.v.name_bytes_by_offset(t.name_off()));
        let kind = BtfKind::from_u8(t.kind_raw())
            .unwrap_or(BtfKind::Unkn)
            .as_str();
        vlog!(
            self,
            "[{}] {} {}{}",
            self.log_type_id,
            kind,
            name,
            if details { " " } else { "" }
        );
        if details {
            self.log_details(t);
        }
        if let Some(m) = msg {
            vlog!(self, " {}", m);
        }
        vlog!(self, "\n");
    }

    fn log_type(&mut self, t: &TypeRef<'a>, msg: &str) {
        self.log_type_impl(t, true, Some(format_args!("{msg}")));
    }

    fn log_type_plain(&mut self, t: &TypeRef<'a>) {
        self.log_type_impl(t, true, None);
    }

    /// `btf_verifier_log_member`.
    fn log_member(&mut self, st: &TypeRef<'a>, m: &BtfMember, msg: Option<fmt::Arguments<'_>>) {
        if !self.log.needed() {
            return;
        }
        if self.phase != Phase::CheckMeta {
            self.log_type_plain(st);
        }
        let name = LogName(self.v.name_bytes_by_offset(m.name_off));
        if st.kflag() {
            vlog!(
                self,
                "\t{} type_id={} bitfield_size={} bits_offset={}",
                name,
                m.type_id,
                btf_member_bitfield_size(m.offset),
                btf_member_bit_offset(m.offset)
            );
        } else {
            vlog!(
                self,
                "\t{} type_id={} bits_offset={}",
                name,
                m.type_id,
                m.offset
            );
        }
        if let Some(m) = msg {
            vlog!(self, " {}", m);
        }
        vlog!(self, "\n");
    }

    fn member_fail(&mut self, st: &TypeRef<'a>, m: &BtfMember, msg: &'static str) -> Fail {
        self.log_member(st, m, Some(format_args!("{msg}")));
        fail(EINVAL, msg)
    }

    /// `btf_verifier_log_vsi`.
    fn log_vsi(&mut self, ds: &TypeRef<'a>, vsi: &BtfVarSecinfo, msg: Option<&'static str>) {
        if !self.log.needed() {
            return;
        }
        if self.phase != Phase::CheckMeta {
            self.log_type_plain(ds);
        }
        vlog!(
            self,
            "\t type_id={} offset={} size={}",
            vsi.type_id,
            vsi.offset,
            vsi.size
        );
        if let Some(m) = msg {
            vlog!(self, " {}", m);
        }
        vlog!(self, "\n");
    }

    fn vsi_fail(&mut self, ds: &TypeRef<'a>, vsi: &BtfVarSecinfo, msg: &'static str) -> Fail {
        self.log_vsi(ds, vsi, Some(msg));
        fail(EINVAL, msg)
    }

    fn type_fail(&mut self, t: &TypeRef<'a>, msg: &'static str) -> Fail {
        self.log_type(t, msg);
        fail(EINVAL, msg)
    }

    fn basic_meta_fail(&mut self, t: &TypeRef<'a>, left: u32, needed: u32) -> Fail {
        self.log_type_impl(
            t,
            false,
            Some(format_args!("meta_left:{left} meta_needed:{needed}")),
        );
        fail(EINVAL, "meta_left:%u meta_needed:%u")
    }
}

// ---------------------------------------------------------------------------------
// the meta pass (btf_check_meta and the kinds' check_meta)
// ---------------------------------------------------------------------------------

impl<'a> Env<'a, '_> {
    fn int_check_meta(&mut self, t: &TypeRef<'a>, left: u32) -> VResult<u32> {
        if left < 4 {
            return Err(self.basic_meta_fail(t, left, 4));
        }
        if t.vlen() != 0 {
            return Err(self.type_fail(t, "vlen != 0"));
        }
        if t.kflag() {
            return Err(self.type_fail(t, "Invalid btf_info kind_flag"));
        }
        let d = t.int_data();
        if d & !BTF_INT_MASK != 0 {
            self.log_type_impl(t, false, Some(format_args!("Invalid int_data:{d:x}")));
            return Err(fail(EINVAL, "Invalid int_data:%x"));
        }
        let nr_bits = btf_int_bits(d) + btf_int_offset(d);
        if nr_bits > 128 {
            self.log_type_impl(t, true, Some(format_args!("nr_bits exceeds 128")));
            return Err(fail(EINVAL, "nr_bits exceeds %zu"));
        }
        if nr_bits.div_ceil(8) > t.size() {
            return Err(self.type_fail(t, "nr_bits exceeds type_size"));
        }
        let enc = btf_int_encoding(d);
        if enc != 0 && enc != BTF_INT_SIGNED && enc != BTF_INT_CHAR && enc != BTF_INT_BOOL {
            self.log_type(t, "Unsupported encoding");
            return Err(fail(Errno::ENOTSUPP, "Unsupported encoding"));
        }
        self.log_type_plain(t);
        Ok(4)
    }

    fn ref_type_check_meta(&mut self, t: &TypeRef<'a>) -> VResult<u32> {
        if t.vlen() != 0 {
            return Err(self.type_fail(t, "vlen != 0"));
        }
        let tag_kflag_ok = t.kind() == BtfKind::TypeTag && self.sem.btf_tag_kflag;
        if t.kflag() && !tag_kflag_ok {
            return Err(self.type_fail(t, "Invalid btf_info kind_flag"));
        }
        if t.type_id() > BTF_MAX_TYPE {
            return Err(self.type_fail(t, "Invalid type_id"));
        }
        match t.kind() {
            BtfKind::Typedef => {
                if t.name_off() == 0 || !self.ident_ok(t.name_off()) {
                    return Err(self.type_fail(t, "Invalid name"));
                }
            }
            BtfKind::TypeTag => {
                if self
                    .v
                    .str_by_offset(t.name_off())
                    .is_none_or(|s| s.is_empty())
                {
                    return Err(self.type_fail(t, "Invalid name"));
                }
            }
            _ => {
                if t.name_off() != 0 {
                    return Err(self.type_fail(t, "Invalid name"));
                }
            }
        }
        self.log_type_plain(t);
        Ok(0)
    }

    fn fwd_check_meta(&mut self, t: &TypeRef<'a>) -> VResult<u32> {
        if t.vlen() != 0 {
            return Err(self.type_fail(t, "vlen != 0"));
        }
        if t.type_id() != 0 {
            return Err(self.type_fail(t, "type != 0"));
        }
        if t.name_off() == 0 || !self.ident_ok(t.name_off()) {
            return Err(self.type_fail(t, "Invalid name"));
        }
        self.log_type_plain(t);
        Ok(0)
    }

    fn array_check_meta(&mut self, t: &TypeRef<'a>, left: u32) -> VResult<u32> {
        let needed = BTF_ARRAY_SIZE as u32;
        if left < needed {
            return Err(self.basic_meta_fail(t, left, needed));
        }
        if t.name_off() != 0 {
            return Err(self.type_fail(t, "Invalid name"));
        }
        if t.vlen() != 0 {
            return Err(self.type_fail(t, "vlen != 0"));
        }
        if t.kflag() {
            return Err(self.type_fail(t, "Invalid btf_info kind_flag"));
        }
        if t.size() != 0 {
            return Err(self.type_fail(t, "size != 0"));
        }
        let (elem, index, _) = t.array();
        if elem == 0 || elem > BTF_MAX_TYPE {
            return Err(self.type_fail(t, "Invalid elem"));
        }
        if index == 0 || index > BTF_MAX_TYPE {
            return Err(self.type_fail(t, "Invalid index"));
        }
        self.log_type_plain(t);
        Ok(needed)
    }

    fn struct_check_meta(&mut self, t: &TypeRef<'a>, left: u32) -> VResult<u32> {
        let is_union = t.kind() == BtfKind::Union;
        let needed = t.vlen() as u32 * BTF_MEMBER_SIZE as u32;
        if left < needed {
            return Err(self.basic_meta_fail(t, left, needed));
        }
        if t.name_off() != 0 && !self.ident_ok(t.name_off()) {
            return Err(self.type_fail(t, "Invalid name"));
        }
        self.log_type_plain(t);
        let struct_size = t.size();
        let mut last_offset = 0u32;
        for m in t.members() {
            if !self.v.name_offset_valid(m.name_off) {
                self.log_member(
                    t,
                    &m,
                    Some(format_args!("Invalid member name_offset:{}", m.name_off)),
                );
                return Err(fail(EINVAL, "Invalid member name_offset:%u"));
            }
            if m.name_off != 0 && !self.ident_ok(m.name_off) {
                return Err(self.member_fail(t, &m, "Invalid name"));
            }
            if m.type_id == 0 || m.type_id > BTF_MAX_TYPE {
                return Err(self.member_fail(t, &m, "Invalid type_id"));
            }
            let offset = t.member_bit_offset(&m);
            if is_union && offset != 0 {
                return Err(self.member_fail(t, &m, "Invalid member bits_offset"));
            }
            if last_offset > offset {
                return Err(self.member_fail(t, &m, "Invalid member bits_offset"));
            }
            if offset.div_ceil(8) > struct_size {
                return Err(self.member_fail(t, &m, "Member bits_offset exceeds its struct size"));
            }
            self.log_member(t, &m, None);
            last_offset = offset;
        }
        Ok(needed)
    }

    fn enum_check_meta(&mut self, t: &TypeRef<'a>, left: u32, is64: bool) -> VResult<u32> {
        let esz = if is64 { BTF_ENUM64_SIZE } else { BTF_ENUM_SIZE } as u32;
        let n = t.vlen();
        let needed = n as u32 * esz;
        if left < needed {
            return Err(self.basic_meta_fail(t, left, needed));
        }
        if t.size() > 8 || !t.size().is_power_of_two() {
            return Err(self.type_fail(t, "Unexpected size"));
        }
        if t.name_off() != 0 && !self.ident_ok(t.name_off()) {
            return Err(self.type_fail(t, "Invalid name"));
        }
        self.log_type_plain(t);
        for i in 0..n {
            let (name_off, v32, v64) = if is64 {
                let (no, v) = t.enum64_val(i);
                (no, 0, v)
            } else {
                let (no, v) = t.enum_val(i);
                (no, v, 0)
            };
            if !self.v.name_offset_valid(name_off) {
                vlog!(self, "\tInvalid name_offset:{}", name_off);
                return Err(fail(EINVAL, "\tInvalid name_offset:%u"));
            }
            if name_off == 0 || !self.ident_ok(name_off) {
                return Err(self.type_fail(t, "Invalid name"));
            }
            if !self.log.needed() {
                continue;
            }
            let name = LogName(self.v.name_bytes_by_offset(name_off));
            match (is64, t.kflag()) {
                (false, true) => vlog!(self, "\t{} val={}\n", name, v32),
                (false, false) => vlog!(self, "\t{} val={}\n", name, v32 as u32),
                (true, true) => vlog!(self, "\t{} val={}\n", name, v64 as i64),
                (true, false) => vlog!(self, "\t{} val={}\n", name, v64),
            }
        }
        Ok(needed)
    }

    fn func_proto_check_meta(&mut self, t: &TypeRef<'a>, left: u32) -> VResult<u32> {
        let needed = t.vlen() as u32 * BTF_PARAM_SIZE as u32;
        if left < needed {
            return Err(self.basic_meta_fail(t, left, needed));
        }
        if t.name_off() != 0 {
            return Err(self.type_fail(t, "Invalid name"));
        }
        if t.kflag() {
            return Err(self.type_fail(t, "Invalid btf_info kind_flag"));
        }
        self.log_type_plain(t);
        Ok(needed)
    }

    fn func_check_meta(&mut self, t: &TypeRef<'a>) -> VResult<u32> {
        if t.name_off() == 0 || !self.ident_ok(t.name_off()) {
            return Err(self.type_fail(t, "Invalid name"));
        }
        if t.vlen() > BTF_FUNC_GLOBAL {
            return Err(self.type_fail(t, "Invalid func linkage"));
        }
        if t.kflag() {
            return Err(self.type_fail(t, "Invalid btf_info kind_flag"));
        }
        self.log_type_plain(t);
        Ok(0)
    }

    fn var_check_meta(&mut self, t: &TypeRef<'a>, left: u32) -> VResult<u32> {
        let needed = BTF_VAR_SIZE as u32;
        if left < needed {
            return Err(self.basic_meta_fail(t, left, needed));
        }
        if t.vlen() != 0 {
            return Err(self.type_fail(t, "vlen != 0"));
        }
        if t.kflag() {
            return Err(self.type_fail(t, "Invalid btf_info kind_flag"));
        }
        if t.name_off() == 0 || !self.ident_ok(t.name_off()) {
            return Err(self.type_fail(t, "Invalid name"));
        }
        if t.type_id() == 0 || t.type_id() > BTF_MAX_TYPE {
            return Err(self.type_fail(t, "Invalid type_id"));
        }
        let l = t.var_linkage();
        if l != BTF_VAR_STATIC && l != BTF_VAR_GLOBAL_ALLOCATED {
            return Err(self.type_fail(t, "Linkage not supported"));
        }
        self.log_type_plain(t);
        Ok(needed)
    }

    fn datasec_check_meta(&mut self, t: &TypeRef<'a>, left: u32) -> VResult<u32> {
        let needed = t.vlen() as u32 * BTF_VAR_SECINFO_SIZE as u32;
        if left < needed {
            return Err(self.basic_meta_fail(t, left, needed));
        }
        if t.size() == 0 {
            return Err(self.type_fail(t, "size == 0"));
        }
        if t.kflag() {
            return Err(self.type_fail(t, "Invalid btf_info kind_flag"));
        }
        if t.name_off() == 0 || !name_valid_section(&self.v, t.name_off()) {
            return Err(self.type_fail(t, "Invalid name"));
        }
        self.log_type_plain(t);
        let size = t.size() as u64;
        let mut last_end: u64 = 0;
        let mut sum: u64 = 0;
        for i in 0..t.vlen() {
            let vsi = t.var_secinfo(i);
            if vsi.type_id == 0 || vsi.type_id > BTF_MAX_TYPE {
                return Err(self.vsi_fail(t, &vsi, "Invalid type_id"));
            }
            if (vsi.offset as u64) < last_end || vsi.offset as u64 >= size {
                return Err(self.vsi_fail(t, &vsi, "Invalid offset"));
            }
            if vsi.size == 0 || vsi.size as u64 > size {
                return Err(self.vsi_fail(t, &vsi, "Invalid size"));
            }
            // The kernel adds two u32s before widening: the sum wraps at 2^32.
            last_end = vsi.offset.wrapping_add(vsi.size) as u64;
            if last_end > size {
                return Err(self.vsi_fail(t, &vsi, "Invalid offset+size"));
            }
            self.log_vsi(t, &vsi, None);
            sum += vsi.size as u64;
        }
        if size < sum {
            return Err(self.type_fail(t, "Invalid btf_info size"));
        }
        Ok(needed)
    }

    fn float_check_meta(&mut self, t: &TypeRef<'a>) -> VResult<u32> {
        if t.vlen() != 0 {
            return Err(self.type_fail(t, "vlen != 0"));
        }
        if t.kflag() {
            return Err(self.type_fail(t, "Invalid btf_info kind_flag"));
        }
        if !matches!(t.size(), 2 | 4 | 8 | 12 | 16) {
            return Err(self.type_fail(t, "Invalid type_size"));
        }
        self.log_type_plain(t);
        Ok(0)
    }

    fn decl_tag_check_meta(&mut self, t: &TypeRef<'a>, left: u32) -> VResult<u32> {
        let needed = BTF_DECL_TAG_SIZE as u32;
        if left < needed {
            return Err(self.basic_meta_fail(t, left, needed));
        }
        if self
            .v
            .str_by_offset(t.name_off())
            .is_none_or(|s| s.is_empty())
        {
            return Err(self.type_fail(t, "Invalid value"));
        }
        if t.vlen() != 0 {
            return Err(self.type_fail(t, "vlen != 0"));
        }
        if t.kflag() && !self.sem.btf_tag_kflag {
            return Err(self.type_fail(t, "Invalid btf_info kind_flag"));
        }
        if t.decl_tag_component_idx() < -1 {
            return Err(self.type_fail(t, "Invalid component_idx"));
        }
        self.log_type_plain(t);
        Ok(needed)
    }

    /// `btf_check_meta`: returns the record's size.
    fn check_meta(&mut self, t: &TypeRef<'a>, left: u32) -> VResult<u32> {
        if left < BTF_TYPE_SIZE as u32 {
            vlog!(
                self,
                "[{}] meta_left:{} meta_needed:{}",
                self.log_type_id,
                left,
                BTF_TYPE_SIZE
            );
            return Err(fail(EINVAL, "[%u] meta_left:%u meta_needed:%zu"));
        }
        let left = left - BTF_TYPE_SIZE as u32;
        if t.info() & !BTF_INFO_MASK != 0 {
            vlog!(
                self,
                "[{}] Invalid btf_info:{:x}",
                self.log_type_id,
                t.info()
            );
            return Err(fail(EINVAL, "[%u] Invalid btf_info:%x"));
        }
        let k = t.kind_raw();
        if k > BTF_KIND_MAX || k == 0 {
            vlog!(self, "[{}] Invalid kind:{}", self.log_type_id, k);
            return Err(fail(EINVAL, "[%u] Invalid kind:%u"));
        }
        if !self.v.name_offset_valid(t.name_off()) {
            vlog!(
                self,
                "[{}] Invalid name_offset:{}",
                self.log_type_id,
                t.name_off()
            );
            return Err(fail(EINVAL, "[%u] Invalid name_offset:%u"));
        }
        let var = match t.kind() {
            BtfKind::Int => self.int_check_meta(t, left)?,
            BtfKind::Ptr
            | BtfKind::Typedef
            | BtfKind::Volatile
            | BtfKind::Const
            | BtfKind::Restrict
            | BtfKind::TypeTag => self.ref_type_check_meta(t)?,
            BtfKind::Array => self.array_check_meta(t, left)?,
            BtfKind::Struct | BtfKind::Union => self.struct_check_meta(t, left)?,
            BtfKind::Enum => self.enum_check_meta(t, left, false)?,
            BtfKind::Enum64 => self.enum_check_meta(t, left, true)?,
            BtfKind::Fwd => self.fwd_check_meta(t)?,
            BtfKind::Func => self.func_check_meta(t)?,
            BtfKind::FuncProto => self.func_proto_check_meta(t, left)?,
            BtfKind::Var => self.var_check_meta(t, left)?,
            BtfKind::Datasec => self.datasec_check_meta(t, left)?,
            BtfKind::Float => self.float_check_meta(t)?,
            BtfKind::DeclTag => self.decl_tag_check_meta(t, left)?,
            BtfKind::Unkn => return Err(fail(EINVAL, "[%u] Invalid kind:%u")),
        };
        Ok(BTF_TYPE_SIZE as u32 + var)
    }
}

// ---------------------------------------------------------------------------------
// the resolve pass
// ---------------------------------------------------------------------------------

fn is_resolve_source_only(t: &TypeRef<'_>) -> bool {
    matches!(t.kind(), BtfKind::Var | BtfKind::DeclTag | BtfKind::Datasec)
}

fn needs_resolve(t: &TypeRef<'_>) -> bool {
    t.is_modifier()
        || matches!(
            t.kind(),
            BtfKind::Ptr
                | BtfKind::Struct
                | BtfKind::Union
                | BtfKind::Array
                | BtfKind::Var
                | BtfKind::Func
                | BtfKind::DeclTag
                | BtfKind::Datasec
        )
}

/// `btf_type_int_is_regular`.
fn int_is_regular(t: &TypeRef<'_>) -> bool {
    int_data_is_regular(t.int_data())
}

/// `btf_type_int_is_regular` on an INT's data word: whole bytes, no bit offset, 1, 2,
/// 4, 8 or 16 bytes.
pub(crate) fn int_data_is_regular(d: u32) -> bool {
    let nr_bits = btf_int_bits(d) as u8;
    let nr_bytes = nr_bits.div_ceil(8);
    !(nr_bits & 7 != 0 || btf_int_offset(d) != 0 || !matches!(nr_bytes, 1 | 2 | 4 | 8 | 16))
}

/// The common end of `btf_int_check_member` and `btf_int_check_kflag_member`:
/// `nr_bits` bits at bit offset `bits_off` need at most 128 copy bits and must lie
/// inside `struct_size` bytes; the failing check's message otherwise.
pub(crate) fn int_member_fits(
    struct_size: u32,
    bits_off: u32,
    nr_bits: u32,
) -> Result<(), &'static str> {
    let bytes_offset = bits_off / 8;
    let nr_copy_bits = nr_bits + (bits_off & 7);
    if nr_copy_bits > 128 {
        return Err("nr_copy_bits exceeds 128");
    }
    if struct_size < bytes_offset || struct_size - bytes_offset < nr_copy_bits.div_ceil(8) {
        return Err("Member exceeds struct_size");
    }
    Ok(())
}

impl<'a> Env<'a, '_> {
    fn rid(&self, id: u32) -> u32 {
        if id < self.v.start_id {
            return self.v.base.map_or(0, |b| b.resolved_type_id(id));
        }
        self.rids
            .get((id - self.v.start_id) as usize)
            .copied()
            .unwrap_or(0)
    }

    fn rsize(&self, id: u32) -> u32 {
        if id < self.v.start_id {
            return self.v.base.map_or(0, |b| b.resolved_type_size(id));
        }
        self.rsizes
            .get((id - self.v.start_id) as usize)
            .copied()
            .unwrap_or(0)
    }

    fn type_id_size(&self, id: u32) -> Option<(TypeRef<'a>, u32, u32)> {
        type_id_size_with(&self.v, |i| self.rid(i), |i| self.rsize(i), id)
    }

    /// `btf_type_id_resolve`.
    fn type_id_resolve(&self, id: u32) -> (Option<TypeRef<'a>>, u32) {
        let r = self.rid(id);
        (self.v.type_by_id(r), r)
    }

    fn is_resolve_sink(&self, next: &TypeRef<'_>) -> bool {
        match self.resolve_mode {
            ResolveMode::Tbd => !needs_resolve(next),
            ResolveMode::Ptr => !next.is_modifier() && next.kind() != BtfKind::Ptr,
            ResolveMode::StructOrArray => {
                !next.is_modifier() && next.kind() != BtfKind::Array && !next.is_struct()
            }
        }
    }

    fn is_resolved(&self, id: u32) -> bool {
        if id < self.v.start_id {
            return true;
        }
        self.visit.get((id - self.v.start_id) as usize) == Some(&RESOLVED)
    }

    fn stack_push(&mut self, t: TypeRef<'a>, id: u32) -> VResult<()> {
        if self.top == MAX_RESOLVE_DEPTH {
            return Err(fail(Errno::E2BIG, "Exceeded max resolving depth:%u"));
        }
        if id < self.v.start_id || self.visit[(id - self.v.start_id) as usize] != NOT_VISITED {
            return Err(fail(Errno::EEXIST, "Loop detected"));
        }
        self.visit[(id - self.v.start_id) as usize] = VISITED;
        self.stack[self.top] = Some(Vertex {
            t,
            type_id: id,
            next_member: 0,
        });
        self.top += 1;
        if self.resolve_mode == ResolveMode::Tbd {
            if t.kind() == BtfKind::Ptr {
                self.resolve_mode = ResolveMode::Ptr;
            } else if t.is_struct() || t.kind() == BtfKind::Array {
                self.resolve_mode = ResolveMode::StructOrArray;
            }
        }
        Ok(())
    }

    fn set_next_member(&mut self, next: u16) {
        if let Some(Some(v)) = self.stack.get_mut(self.top.wrapping_sub(1)) {
            v.next_member = next;
        }
    }

    fn pop_resolved(&mut self, rid: u32, rsize: u32) {
        self.top -= 1;
        let Some(v) = self.stack[self.top].take() else {
            return;
        };
        let i = (v.type_id - self.v.start_id) as usize;
        self.rsizes[i] = rsize;
        self.rids[i] = rid;
        self.visit[i] = RESOLVED;
    }

    fn check_member(&mut self, st: &TypeRef<'a>, m: &BtfMember, mt: &TypeRef<'a>) -> VResult<()> {
        let off = m.offset;
        match mt.kind() {
            BtfKind::Int => {
                let d = mt.int_data();
                if u32::MAX - off < btf_int_offset(d) {
                    return Err(self.member_fail(st, m, "bits_offset exceeds U32_MAX"));
                }
                let bits_off = off + btf_int_offset(d);
                int_member_fits(st.size(), bits_off, btf_int_bits(d))
                    .map_err(|msg| self.member_fail(st, m, msg))
            }
            BtfKind::Typedef
            | BtfKind::Volatile
            | BtfKind::Const
            | BtfKind::Restrict
            | BtfKind::TypeTag => {
                let Some((rt, rid, _)) = self.type_id_size(m.type_id) else {
                    return Err(self.member_fail(st, m, "Invalid member"));
                };
                let rm = BtfMember { type_id: rid, ..*m };
                self.check_member(st, &rm, &rt)
            }
            BtfKind::Ptr => {
                if off & 7 != 0 {
                    return Err(self.member_fail(st, m, "Member is not byte aligned"));
                }
                if st.size().wrapping_sub(off / 8) < 8 {
                    return Err(self.member_fail(st, m, "Member exceeds struct_size"));
                }
                Ok(())
            }
            BtfKind::Array => {
                if off & 7 != 0 {
                    return Err(self.member_fail(st, m, "Member is not byte aligned"));
                }
                let size = self.type_id_size(m.type_id).map_or(0, |x| x.2);
                if st.size().wrapping_sub(off / 8) < size {
                    return Err(self.member_fail(st, m, "Member exceeds struct_size"));
                }
                Ok(())
            }
            BtfKind::Struct | BtfKind::Union | BtfKind::Enum | BtfKind::Enum64 => {
                if off & 7 != 0 {
                    return Err(self.member_fail(st, m, "Member is not byte aligned"));
                }
                if st.size().wrapping_sub(off / 8) < mt.size() {
                    return Err(self.member_fail(st, m, "Member exceeds struct_size"));
                }
                Ok(())
            }
            BtfKind::Float => {
                let align_bits = 8u64.min(mt.size() as u64) * 8;
                if align_bits == 0 || !(off as u64).is_multiple_of(align_bits) {
                    return Err(self.member_fail(st, m, "Member is not properly aligned"));
                }
                if (off as u64) / 8 + mt.size() as u64 > st.size() as u64 {
                    return Err(self.member_fail(st, m, "Member exceeds struct_size"));
                }
                Ok(())
            }
            _ => {
                self.log_type_impl(st, false, Some(format_args!("Unsupported check_member")));
                Err(fail(EINVAL, "Unsupported check_member"))
            }
        }
    }

    fn check_kflag_member(
        &mut self,
        st: &TypeRef<'a>,
        m: &BtfMember,
        mt: &TypeRef<'a>,
    ) -> VResult<()> {
        match mt.kind() {
            BtfKind::Int => {
                if !int_is_regular(mt) {
                    return Err(self.member_fail(st, m, "Invalid member base type"));
                }
                let mut nr_bits = btf_member_bitfield_size(m.offset);
                let bits_off = btf_member_bit_offset(m.offset);
                let int_bits = btf_int_bits(mt.int_data());
                if nr_bits == 0 {
                    if bits_off & 7 != 0 {
                        return Err(self.member_fail(st, m, "Invalid member offset"));
                    }
                    nr_bits = int_bits;
                } else if nr_bits > int_bits {
                    return Err(self.member_fail(st, m, "Invalid member bitfield_size"));
                }
                int_member_fits(st.size(), bits_off, nr_bits)
                    .map_err(|msg| self.member_fail(st, m, msg))
            }
            BtfKind::Enum | BtfKind::Enum64 => {
                let bits_off = btf_member_bit_offset(m.offset);
                let mut nr_bits = btf_member_bitfield_size(m.offset);
                if nr_bits == 0 {
                    if bits_off & 7 != 0 {
                        return Err(self.member_fail(st, m, "Member is not byte aligned"));
                    }
                    nr_bits = 32;
                } else if nr_bits > 32 {
                    return Err(self.member_fail(st, m, "Invalid member bitfield_size"));
                }
                if st.size() < (bits_off + nr_bits).div_ceil(8) {
                    return Err(self.member_fail(st, m, "Member exceeds struct_size"));
                }
                Ok(())
            }
            BtfKind::Typedef
            | BtfKind::Volatile
            | BtfKind::Const
            | BtfKind::Restrict
            | BtfKind::TypeTag => {
                let Some((rt, rid, _)) = self.type_id_size(m.type_id) else {
                    return Err(self.member_fail(st, m, "Invalid member"));
                };
                let rm = BtfMember { type_id: rid, ..*m };
                self.check_kflag_member(st, &rm, &rt)
            }
            BtfKind::Ptr | BtfKind::Array | BtfKind::Struct | BtfKind::Union | BtfKind::Float => {
                if btf_member_bitfield_size(m.offset) != 0 {
                    return Err(self.member_fail(st, m, "Invalid member bitfield_size"));
                }
                self.check_member(st, m, mt)
            }
            _ => {
                self.log_type_impl(
                    st,
                    false,
                    Some(format_args!("Unsupported check_kflag_member")),
                );
                Err(fail(EINVAL, "Unsupported check_kflag_member"))
            }
        }
    }

    /// `btf_modifier_resolve` and `btf_ptr_resolve` (they differ only in the
    /// last-resolved-ptr step) and `btf_var_resolve`.
    fn ref_resolve(&mut self, v: Vertex<'a>) -> VResult<()> {
        let k = v.t.kind();
        let mut next_id = v.t.type_id();
        let next = self.v.type_by_id(next_id);
        let Some(mut next) = next.filter(|n| !is_resolve_source_only(n)) else {
            return Err(self.type_fail(&v.t, "Invalid type_id"));
        };
        if !self.is_resolve_sink(&next) && !self.is_resolved(next_id) {
            return self.stack_push(next, next_id);
        }
        if (k == BtfKind::Ptr || k == BtfKind::Var) && next.is_modifier() {
            let (rt, rid) = self.type_id_resolve(next_id);
            if let Some(rt) = rt
                && rt.kind() == BtfKind::Ptr
                && !self.is_resolve_sink(&rt)
                && !self.is_resolved(rid)
            {
                return self.stack_push(rt, rid);
            }
        }
        match self.type_id_size(next_id) {
            Some((_, rid, _)) => next_id = rid,
            None if k == BtfKind::Var => return Err(self.type_fail(&v.t, "Invalid type_id")),
            None => {
                if self.is_resolved(next_id) {
                    let (rt, rid) = self.type_id_resolve(next_id);
                    next_id = rid;
                    match rt {
                        Some(rt) => next = rt,
                        None => return Err(self.type_fail(&v.t, "Invalid type_id")),
                    }
                }
                if !next.is_void()
                    && next.kind() != BtfKind::Fwd
                    && next.kind() != BtfKind::FuncProto
                {
                    return Err(self.type_fail(&v.t, "Invalid type_id"));
                }
            }
        }
        self.pop_resolved(next_id, 0);
        Ok(())
    }

    fn array_resolve(&mut self, v: Vertex<'a>) -> VResult<()> {
        let (elem_id, index_id, nelems) = v.t.array();
        let index = self.v.type_by_id(index_id);
        let Some(index) = index.filter(|t| !nosize(t) && !is_resolve_source_only(t)) else {
            return Err(self.type_fail(&v.t, "Invalid index"));
        };
        if !self.is_resolve_sink(&index) && !self.is_resolved(index_id) {
            return self.stack_push(index, index_id);
        }
        match self.type_id_size(index_id) {
            Some((it, _, _)) if it.kind() == BtfKind::Int && int_is_regular(&it) => {}
            _ => return Err(self.type_fail(&v.t, "Invalid index")),
        }
        let elem = self.v.type_by_id(elem_id);
        let Some(elem) = elem.filter(|t| !nosize(t) && !is_resolve_source_only(t)) else {
            return Err(self.type_fail(&v.t, "Invalid elem"));
        };
        if !self.is_resolve_sink(&elem) && !self.is_resolved(elem_id) {
            return self.stack_push(elem, elem_id);
        }
        let Some((et, eid, esize)) = self.type_id_size(elem_id) else {
            return Err(self.type_fail(&v.t, "Invalid elem"));
        };
        if et.kind() == BtfKind::Int && !int_is_regular(&et) {
            return Err(self.type_fail(&v.t, "Invalid array of int"));
        }
        if nelems != 0 && esize > u32::MAX / nelems {
            return Err(self.type_fail(&v.t, "Array size overflows U32_MAX"));
        }
        self.pop_resolved(eid, esize.wrapping_mul(nelems));
        Ok(())
    }

    fn struct_resolve(&mut self, v: Vertex<'a>) -> VResult<()> {
        if v.next_member != 0 {
            let last = v.t.member(v.next_member - 1);
            let last_id = last.type_id;
            if !self.is_resolved(last_id) {
                crate::sync::warn::warn("btf_struct_resolve: last member not resolved");
                return Err(fail(EINVAL, "WARN: last member not resolved"));
            }
            let Some(lt) = self.v.type_by_id(last_id) else {
                return Err(fail(EINVAL, "WARN: last member not resolved"));
            };
            if v.t.kflag() {
                self.check_kflag_member(&v.t, &last, &lt)?;
            } else {
                self.check_member(&v.t, &last, &lt)?;
            }
        }
        for i in v.next_member..v.t.vlen() {
            let m = v.t.member(i);
            let mt = self.v.type_by_id(m.type_id);
            let Some(mt) = mt.filter(|t| !nosize(t) && !is_resolve_source_only(t)) else {
                return Err(self.member_fail(&v.t, &m, "Invalid member"));
            };
            if !self.is_resolve_sink(&mt) && !self.is_resolved(m.type_id) {
                self.set_next_member(i + 1);
                return self.stack_push(mt, m.type_id);
            }
            if v.t.kflag() {
                self.check_kflag_member(&v.t, &m, &mt)?;
            } else {
                self.check_member(&v.t, &m, &mt)?;
            }
        }
        self.pop_resolved(0, 0);
        Ok(())
    }

    fn datasec_resolve(&mut self, v: Vertex<'a>) -> VResult<()> {
        self.resolve_mode = ResolveMode::Tbd;
        for i in v.next_member..v.t.vlen() {
            let vsi = v.t.var_secinfo(i);
            let var = self.v.type_by_id(vsi.type_id);
            let Some(var) = var.filter(|t| t.kind() == BtfKind::Var) else {
                return Err(self.vsi_fail(&v.t, &vsi, "Not a VAR kind member"));
            };
            if !self.is_resolve_sink(&var) && !self.is_resolved(vsi.type_id) {
                self.set_next_member(i + 1);
                return self.stack_push(var, vsi.type_id);
            }
            let Some((_, _, size)) = self.type_id_size(var.type_id()) else {
                return Err(self.vsi_fail(&v.t, &vsi, "Invalid type"));
            };
            if vsi.size < size {
                return Err(self.vsi_fail(&v.t, &vsi, "Invalid size"));
            }
        }
        self.pop_resolved(0, 0);
        Ok(())
    }

    fn decl_tag_resolve(&mut self, v: Vertex<'a>) -> VResult<()> {
        let next_id = v.t.type_id();
        let next = self.v.type_by_id(next_id);
        let Some(next) = next.filter(|n| {
            matches!(
                n.kind(),
                BtfKind::Func | BtfKind::Struct | BtfKind::Union | BtfKind::Var | BtfKind::Typedef
            )
        }) else {
            return Err(self.type_fail(&v.t, "Invalid type_id"));
        };
        if !self.is_resolve_sink(&next) && !self.is_resolved(next_id) {
            return self.stack_push(next, next_id);
        }
        let idx = v.t.decl_tag_component_idx();
        if idx != -1 {
            if matches!(next.kind(), BtfKind::Var | BtfKind::Typedef) {
                return Err(self.type_fail(&v.t, "Invalid component_idx"));
            }
            let vlen = if next.is_struct() {
                next.vlen()
            } else {
                self.v.type_by_id(next.type_id()).map_or(0, |p| p.vlen())
            };
            if idx as u32 >= vlen as u32 {
                return Err(self.type_fail(&v.t, "Invalid component_idx"));
            }
        }
        self.pop_resolved(next_id, 0);
        Ok(())
    }

    /// `btf_func_check`.
    fn func_check(&mut self, t: &TypeRef<'a>) -> VResult<()> {
        let proto = self.v.type_by_id(t.type_id());
        let Some(proto) = proto.filter(|p| p.kind() == BtfKind::FuncProto) else {
            return Err(self.type_fail(t, "Invalid type_id"));
        };
        for i in 0..proto.vlen() {
            let (no, ty) = proto.param(i);
            if no == 0 && ty != 0 {
                self.log_type_impl(t, true, Some(format_args!("Invalid arg#{}", i + 1)));
                return Err(fail(EINVAL, "Invalid arg#%u"));
            }
        }
        Ok(())
    }

    fn resolve_one(&mut self, v: Vertex<'a>) -> VResult<()> {
        match v.t.kind() {
            BtfKind::Typedef
            | BtfKind::Volatile
            | BtfKind::Const
            | BtfKind::Restrict
            | BtfKind::TypeTag
            | BtfKind::Ptr
            | BtfKind::Var => self.ref_resolve(v),
            BtfKind::Array => self.array_resolve(v),
            BtfKind::Struct | BtfKind::Union => self.struct_resolve(v),
            BtfKind::Datasec => self.datasec_resolve(v),
            BtfKind::DeclTag => self.decl_tag_resolve(v),
            BtfKind::Func => {
                self.func_check(&v.t)?;
                self.pop_resolved(v.t.type_id(), 0);
                Ok(())
            }
            _ => {
                self.log_type_impl(&v.t, false, Some(format_args!("Unsupported resolve")));
                Err(fail(EINVAL, "Unsupported resolve"))
            }
        }
    }

    /// `btf_resolve_valid`.
    fn resolve_valid(&self, t: &TypeRef<'a>, id: u32) -> bool {
        if !self.is_resolved(id) {
            return false;
        }
        if t.is_struct() || t.kind() == BtfKind::Datasec {
            return self.rid(id) == 0 && self.rsize(id) == 0;
        }
        if matches!(t.kind(), BtfKind::DeclTag | BtfKind::Func) {
            return self.rid(id) != 0 && self.rsize(id) == 0;
        }
        if t.is_modifier() || matches!(t.kind(), BtfKind::Ptr | BtfKind::Var) {
            let (rt, _) = self.type_id_resolve(id);
            return rt.is_some_and(|rt| {
                !rt.is_modifier() && rt.kind() != BtfKind::Var && rt.kind() != BtfKind::Datasec
            });
        }
        if t.kind() == BtfKind::Array {
            let (elem, _, n) = t.array();
            return match self.type_id_size(elem) {
                Some((et, _, es)) => !et.is_modifier() && n.wrapping_mul(es) == self.rsize(id),
                None => false,
            };
        }
        false
    }

    /// `btf_resolve`.
    fn resolve(&mut self, t: TypeRef<'a>, id: u32) -> VResult<()> {
        let saved = self.log_type_id;
        self.resolve_mode = ResolveMode::Tbd;
        let mut res = self.stack_push(t, id);
        while res.is_ok() && self.top > 0 {
            let Some(v) = self.stack[self.top - 1] else {
                break;
            };
            self.log_type_id = v.type_id;
            res = self.resolve_one(v);
        }
        self.log_type_id = id;
        if let Err(f) = res {
            if f.errno == Errno::E2BIG {
                self.log_type_impl(
                    &t,
                    true,
                    Some(format_args!(
                        "Exceeded max resolving depth:{}",
                        MAX_RESOLVE_DEPTH
                    )),
                );
            } else if f.errno == Errno::EEXIST {
                self.log_type(&t, "Loop detected");
            }
        }
        if res.is_ok() && !self.resolve_valid(&t, id) {
            self.log_type(&t, "Invalid resolve state");
            res = Err(fail(EINVAL, "Invalid resolve state"));
        }
        self.log_type_id = saved;
        // A failed resolve leaves vertices on the stack; the kernel abandons the whole
        // env at that point, and so does the caller.
        res
    }

    /// `btf_func_proto_check`.
    fn func_proto_check(&mut self, t: &TypeRef<'a>) -> VResult<()> {
        if t.type_id() != 0 {
            let rid = t.type_id();
            let Some(rt) = self
                .v
                .type_by_id(rid)
                .filter(|r| !is_resolve_source_only(r))
            else {
                return Err(self.type_fail(t, "Invalid return type"));
            };
            if needs_resolve(&rt) && !self.is_resolved(rid) {
                self.resolve(rt, rid)?;
            }
            if self.type_id_size(rid).is_none() {
                return Err(self.type_fail(t, "Invalid return type"));
            }
        }
        let mut n = t.vlen();
        if n == 0 {
            return Ok(());
        }
        let (last_name, last_ty) = t.param(n - 1);
        if last_ty == 0 {
            if last_name != 0 {
                self.log_type_impl(t, true, Some(format_args!("Invalid arg#{}", n)));
                return Err(fail(EINVAL, "Invalid arg#%u"));
            }
            n -= 1;
        }
        for i in 0..n {
            let (no, aid) = t.param(i);
            let bad = |env: &mut Self| {
                env.log_type_impl(t, true, Some(format_args!("Invalid arg#{}", i + 1)));
                fail(EINVAL, "Invalid arg#%u")
            };
            let Some(at) = self
                .v
                .type_by_id(aid)
                .filter(|a| !is_resolve_source_only(a))
            else {
                return Err(bad(self));
            };
            if no != 0 && (!self.v.name_offset_valid(no) || !self.ident_ok(no)) {
                return Err(bad(self));
            }
            if needs_resolve(&at) && !self.is_resolved(aid) {
                self.resolve(at, aid)?;
            }
            if self.type_id_size(aid).is_none() {
                return Err(bad(self));
            }
        }
        Ok(())
    }

    /// `btf_check_all_types`.
    fn check_all_types(&mut self) -> VResult<()> {
        let n = self.v.types.len() as u32;
        self.visit = vec![NOT_VISITED; n as usize];
        self.rids = vec![0; n as usize];
        self.rsizes = vec![0; n as usize];
        self.phase = Phase::CheckType;
        let first = if self.v.base.is_some() { 0 } else { 1 };
        for i in first..n {
            let id = self.v.start_id + i;
            let Some(t) = self.v.type_by_id(id) else {
                return Err(fail(EINVAL, "Invalid type_id"));
            };
            self.log_type_id = id;
            if needs_resolve(&t) && !self.is_resolved(id) {
                self.resolve(t, id)?;
            }
            if t.kind() == BtfKind::FuncProto {
                self.func_proto_check(&t)?;
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------
// header, sections, type tags, and the drivers
// ---------------------------------------------------------------------------------

fn hdr_from(data: &[u8]) -> (BtfHeader, u32) {
    let hdr_len = rd32(data, 4);
    let copy = (hdr_len as usize).min(BTF_HEADER_SIZE).min(data.len());
    let mut b = [0u8; BTF_HEADER_SIZE];
    b[..copy].copy_from_slice(&data[..copy]);
    let h = BtfHeader {
        magic: u16::from_ne_bytes([b[0], b[1]]),
        version: b[2],
        flags: b[3],
        hdr_len: rd32(&b, 4),
        type_off: rd32(&b, 8),
        type_len: rd32(&b, 12),
        str_off: rd32(&b, 16),
        str_len: rd32(&b, 20),
    };
    (h, hdr_len)
}

struct Pre<'l> {
    log: &'l mut VerifierLog,
}

impl Pre<'_> {
    fn msg(&mut self, errno: Errno, m: &'static str) -> Fail {
        if self.log.needed() {
            self.log.write(format_args!("{m}"));
        }
        fail(errno, m)
    }
}

/// `btf_parse_hdr` and `btf_check_sec_info`.
fn parse_hdr(b: &mut BtfData, log: &mut VerifierLog) -> VResult<()> {
    let mut p = Pre { log };
    let size = b.data.len() as u32;
    if size < 8 {
        return Err(p.msg(EINVAL, "hdr_len not found"));
    }
    let (hdr, hdr_len) = hdr_from(&b.data);
    if size < hdr_len {
        return Err(p.msg(EINVAL, "btf_header not found"));
    }
    if hdr_len as usize > BTF_HEADER_SIZE
        && b.data[BTF_HEADER_SIZE..hdr_len as usize]
            .iter()
            .any(|&c| c != 0)
    {
        return Err(p.msg(Errno::E2BIG, "Unsupported btf_header"));
    }
    b.hdr = hdr;
    if p.log.needed() {
        p.log.write(format_args!(
            "magic: 0x{:x}\nversion: {}\nflags: 0x{:x}\nhdr_len: {}\ntype_off: {}\ntype_len: {}\nstr_off: {}\nstr_len: {}\nbtf_total_size: {}\n",
            hdr.magic, hdr.version, hdr.flags, hdr.hdr_len, hdr.type_off, hdr.type_len,
            hdr.str_off, hdr.str_len, size
        ));
    }
    if hdr.magic != BTF_MAGIC {
        return Err(p.msg(EINVAL, "Invalid magic"));
    }
    if hdr.version != BTF_VERSION {
        return Err(p.msg(Errno::ENOTSUPP, "Unsupported version"));
    }
    if hdr.flags != 0 {
        return Err(p.msg(Errno::ENOTSUPP, "Unsupported flags"));
    }
    if b.base.is_none() && size == hdr.hdr_len {
        return Err(p.msg(EINVAL, "No data"));
    }
    // btf_check_sec_info: sort (off, len) pairs with the kernel's int-cast comparator.
    let mut secs = [(hdr.type_off, hdr.type_len), (hdr.str_off, hdr.str_len)];
    let cmp = |x: (u32, u32), y: (u32, u32)| -> i32 {
        let d = x.0.wrapping_sub(y.0) as i32;
        if d != 0 {
            d
        } else {
            x.1.wrapping_sub(y.1) as i32
        }
    };
    if cmp(secs[0], secs[1]) > 0 {
        secs.swap(0, 1);
    }
    let mut total: u32 = 0;
    let expected = size.wrapping_sub(hdr.hdr_len);
    for (off, len) in secs {
        if expected < off {
            return Err(p.msg(EINVAL, "Invalid section offset"));
        }
        if total < off {
            return Err(p.msg(EINVAL, "Unsupported section found"));
        }
        if total > off {
            return Err(p.msg(EINVAL, "Section overlap found"));
        }
        if expected - total < len {
            return Err(p.msg(EINVAL, "Total section length too long"));
        }
        total += len;
    }
    if expected != total {
        return Err(p.msg(EINVAL, "Unsupported section found"));
    }
    Ok(())
}

/// `btf_parse_str_sec`.
fn parse_str_sec(b: &mut BtfData, log: &mut VerifierLog) -> VResult<()> {
    let mut p = Pre { log };
    let h = b.hdr;
    let start = h.hdr_len as usize + h.str_off as usize;
    let end = start + h.str_len as usize;
    if end != b.data.len() {
        return Err(p.msg(EINVAL, "String section is not at the end"));
    }
    b.str_start = start;
    if b.base.is_some() && h.str_len == 0 {
        return Ok(());
    }
    if h.str_len == 0 || h.str_len - 1 > BTF_MAX_NAME_OFFSET || b.data[end - 1] != 0 {
        return Err(p.msg(EINVAL, "Invalid string section"));
    }
    if b.base.is_none() && b.data[start] != 0 {
        return Err(p.msg(EINVAL, "Invalid string section"));
    }
    Ok(())
}

/// `btf_add_type`'s growth of the `types` array, kept to reproduce its limit check.
pub(crate) struct TypesCap {
    pub(crate) size: u32,
}

impl TypesCap {
    pub(crate) fn add(&mut self, nr_types: u32, start_id: u32) -> bool {
        if self.size == nr_types {
            if start_id.wrapping_add(self.size) == BTF_MAX_TYPE {
                return false;
            }
            let expand = (self.size >> 2).max(16);
            self.size = BTF_MAX_TYPE.min(self.size + expand);
        }
        true
    }
}

/// `btf_check_all_metas`: fills `b.types`.
fn check_all_metas(b: &mut BtfData, log: &mut VerifierLog, sem: Semantics) -> VResult<()> {
    let h = b.hdr;
    let cur0 = h.hdr_len as usize + h.type_off as usize;
    let end = cur0 + h.type_len as usize;
    let mut types = core::mem::take(&mut b.types);
    let mut cap = TypesCap { size: 0 };
    if b.base.is_none() {
        // btf_add_type lazily puts VOID first; it takes a slot of the first growth.
        if cap.add(0, b.start_id) {
            types.push(VOID_OFF);
        }
    }
    let res = {
        let v = View {
            data: &b.data,
            types: &[],
            start_id: b.start_id,
            start_str_off: b.start_str_off,
            str_start: b.str_start,
            str_len: h.str_len,
            types_end: end,
            base: b.base.as_ref().map(|x| x.data()),
        };
        let mut env = Env::new(v, log, sem);
        env.log_type_id = if b.base.is_some() { b.start_id } else { 1 };
        let mut cur = cur0;
        let mut res = Ok(());
        while cur < end {
            let t = TypeRef::new(&b.data[cur..end], env.log_type_id);
            match env.check_meta(&t, (end - cur) as u32) {
                Ok(sz) => {
                    if !cap.add(types.len() as u32, b.start_id) {
                        vlog!(env, "Exceeded max num of types");
                        res = Err(fail(Errno::E2BIG, "Exceeded max num of types"));
                        break;
                    }
                    types.push(cur as u32);
                    cur += sz as usize;
                    env.log_type_id += 1;
                }
                Err(e) => {
                    res = Err(e);
                    break;
                }
            }
        }
        res
    };
    b.types = types;
    res
}

/// `btf_check_type_tags`.
fn check_type_tags(b: &BtfData, log: &mut VerifierLog, start_id: u32) -> VResult<()> {
    let v = b.view();
    let n = v.nr_types();
    let mut good_id = start_id as i64 - 1;
    let mut p = Pre { log };
    for i in start_id..n {
        let Some(mut t) = v.type_by_id(i) else {
            return Err(fail(EINVAL, "type tags: bad id"));
        };
        if !t.is_modifier() {
            continue;
        }
        let mut chain_limit = 32i32;
        let mut cur_id = i;
        let mut in_tags = t.kind() == BtfKind::TypeTag;
        while t.is_modifier() {
            if chain_limit == 0 {
                return Err(p.msg(Errno::ELOOP, "Max chain length or cycle detected"));
            }
            chain_limit -= 1;
            if t.kind() == BtfKind::TypeTag {
                if !in_tags {
                    return Err(p.msg(EINVAL, "Type tags don't precede modifiers"));
                }
            } else if in_tags {
                in_tags = false;
            }
            if cur_id as i64 <= good_id {
                break;
            }
            cur_id = t.type_id();
            match v.type_by_id(cur_id) {
                Some(nt) => t = nt,
                None => return Err(fail(EINVAL, "type tags: bad id")),
            }
        }
        good_id = i as i64;
    }
    Ok(())
}

impl<'a, 'l> Env<'a, 'l> {
    fn new(v: View<'a>, log: &'l mut VerifierLog, sem: Semantics) -> Self {
        Env {
            v,
            log,
            log_type_id: 0,
            phase: Phase::CheckMeta,
            resolve_mode: ResolveMode::Tbd,
            visit: Vec::new(),
            rids: Vec::new(),
            rsizes: Vec::new(),
            stack: [None; MAX_RESOLVE_DEPTH],
            top: 0,
            sem,
            ident_cache: Vec::new(),
        }
    }
}

fn run(b: &mut BtfData, opts: &ParseOpts, log: &mut VerifierLog, fast: bool) -> VResult<()> {
    parse_hdr(b, log)?;
    parse_str_sec(b, log)?;
    let h = b.hdr;
    if h.type_off & 3 != 0 {
        return Err(Pre { log }.msg(EINVAL, "Unaligned type_off"));
    }
    if b.base.is_none() && h.type_len == 0 {
        return Err(Pre { log }.msg(EINVAL, "No type found"));
    }
    if fast
        && !log.needed()
        && let Some(acc) = super::fast::verify(b, opts.resolve, opts.sem)
    {
        b.types = acc.types;
        if let Some((rids, rsizes)) = acc.resolved {
            b.resolved_ids = rids;
            b.resolved_sizes = rsizes;
        }
        return Ok(());
    }
    check_all_metas(b, log, opts.sem)?;
    if opts.resolve {
        let (rids, rsizes) = {
            let mut env = Env::new(b.view(), log, opts.sem);
            env.check_all_types()?;
            (env.rids, env.rsizes)
        };
        b.resolved_ids = rids;
        b.resolved_sizes = rsizes;
    }
    let start = if b.base.is_some() { b.start_id } else { 1 };
    check_type_tags(b, log, start)
}

/// Runs the BTF verifier over `data`: what `btf_parse` (kernel/bpf/btf.c) does for
/// `BPF_BTF_LOAD` up to and including `btf_check_type_tags`; with `base` set, what
/// `btf_parse_module` does for a module's split BTF. Struct metas are built by the
/// caller ([`crate::btf::object::btf_parse`]).
///
/// At log level 0 it first tries the accepting path of `fast`, which either accepts
/// with the same result or hands over to the exact path ([`btf_verify_exact`]).
///
/// Profile flag: `btf_tag_kflag` (kind_flag allowed on TYPE_TAG and DECL_TAG).
pub fn btf_verify(
    data: Box<[u8]>,
    base: Option<BtfRef>,
    opts: &ParseOpts,
) -> Result<(BtfData, VerifierLog), BtfParseError> {
    verify_with(data, base, opts, true)
}

/// [`btf_verify`] on the exact path only (`btf_parse`, kernel/bpf/btf.c, check by
/// check, with the kernel's log); what the tests hold the fast path to. Profile flag:
/// `btf_tag_kflag`.
pub fn btf_verify_exact(
    data: Box<[u8]>,
    base: Option<BtfRef>,
    opts: &ParseOpts,
) -> Result<(BtfData, VerifierLog), BtfParseError> {
    verify_with(data, base, opts, false)
}

/// The accepting path of `btf_parse` (kernel/bpf/btf.c) alone, for base BTF: `Some`
/// with what [`btf_verify_exact`] would return when it accepts, `None` whenever the
/// exact path must decide (a rejection, split BTF, or a case the fast path leaves to
/// it). What the tests compare. Profile flag: `btf_tag_kflag`.
pub fn btf_verify_fast(data: Box<[u8]>, opts: &ParseOpts) -> Option<BtfData> {
    if data.len() > BTF_MAX_SIZE as usize {
        return None;
    }
    let mut b = BtfData::new(data, None);
    let mut log = VerifierLog::new(0);
    parse_hdr(&mut b, &mut log).ok()?;
    parse_str_sec(&mut b, &mut log).ok()?;
    if b.hdr.type_off & 3 != 0 || b.hdr.type_len == 0 {
        return None;
    }
    let acc = super::fast::verify(&b, opts.resolve, opts.sem)?;
    b.types = acc.types;
    if let Some((rids, rsizes)) = acc.resolved {
        b.resolved_ids = rids;
        b.resolved_sizes = rsizes;
    }
    Some(b)
}

fn verify_with(
    data: Box<[u8]>,
    base: Option<BtfRef>,
    opts: &ParseOpts,
    fast: bool,
) -> Result<(BtfData, VerifierLog), BtfParseError> {
    let mut log = VerifierLog::new(opts.log_level);
    if data.len() > BTF_MAX_SIZE as usize && base.is_none() {
        return Err(BtfParseError {
            errno: Errno::E2BIG,
            reason: "btf_size > BTF_MAX_SIZE",
            log: Vec::new(),
        });
    }
    let mut b = BtfData::new(data, base);
    match run(&mut b, opts, &mut log, fast) {
        Ok(()) => Ok((b, log)),
        Err(f) => Err(BtfParseError {
            errno: f.errno,
            reason: f.reason,
            log: log.into_bytes(),
        }),
    }
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
    }

    #[test]
    fn types_cap_limit() {
        let mut c = TypesCap { size: 0 };
        let mut n = 0u32;
        while c.add(n, 0) {
            n += 1;
            if n > BTF_MAX_TYPE + 10 {
                break;
            }
        }
        assert_eq!(n, BTF_MAX_TYPE);
    }
}
