//! libbpf's extern handling at open time (`bpf_object__collect_externs`,
//! tools/lib/bpf/libbpf.c, libbpf 1.5 as in Linux 6.12): every undefined ELF symbol is
//! an extern of `.ksyms` (kfuncs and kernel variables) or `.kconfig`; their BTF is
//! rewritten so that the kernel's `btf_parse` accepts it: `.ksyms` FUNCs become
//! `BTF_FUNC_GLOBAL` and their DATASEC entries point at a `dummy_ksym` VAR, `.ksyms`
//! VARs become 4-byte allocated ints, `.kconfig` VARs get their offsets in the
//! `.kconfig` map.

use kernel_core::Errno;
use kernel_core::btf::uapi::BtfKind;

use super::ElfSym;
use super::raw::{
    BTF_FUNC_EXTERN, BTF_FUNC_GLOBAL, BTF_VAR_GLOBAL_ALLOCATED, BTF_VAR_GLOBAL_EXTERN, RawBtf,
};
use crate::elf::LoadError;

/// `KCONFIG_SEC`.
pub const KCONFIG_SEC: &str = ".kconfig";
/// `KSYMS_SEC`.
pub const KSYMS_SEC: &str = ".ksyms";

/// `enum extern_type`, in libbpf's order (the sort key).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ExternType {
    /// `EXT_KCFG`: a `__kconfig` value.
    Kcfg,
    /// `EXT_KSYM`: a `__ksym` kfunc or kernel variable.
    Ksym,
}

/// `struct extern_desc`, the parts that shape the BTF and the `.kconfig` map.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Extern {
    /// The symbol's name (as BTF spells it).
    pub name: String,
    /// `.kconfig` or `.ksyms`.
    pub ty: ExternType,
    /// A FUNC (kfunc) rather than a VAR.
    pub is_func: bool,
    /// `STB_WEAK`.
    pub is_weak: bool,
    /// Its BTF id.
    pub btf_id: u32,
    /// `.kconfig`: size, alignment and offset in the map.
    pub kcfg: Option<(u32, u32, u32)>,
}

fn err(errno: Errno, reason: String) -> LoadError {
    LoadError { errno, reason }
}

/// `find_extern_btf_id`: the first VAR or FUNC named `name`; it must be extern.
pub fn find_extern_btf_id(btf: &RawBtf, name: &str) -> Result<u32, Errno> {
    for id in 1..btf.type_cnt() {
        let k = btf.kind(id);
        if !matches!(k, Some(BtfKind::Var | BtfKind::Func)) || btf.name(id) != name {
            continue;
        }
        let extern_ok = match k {
            Some(BtfKind::Var) => btf.word(id, 3) == Some(BTF_VAR_GLOBAL_EXTERN),
            _ => btf.vlen(id) == BTF_FUNC_EXTERN,
        };
        return if extern_ok {
            Ok(id)
        } else {
            Err(Errno::EINVAL)
        };
    }
    Err(Errno::ENOENT)
}

/// `find_extern_sec_btf_id`: the first DATASEC with an entry for `ext_id`.
pub fn find_extern_sec_btf_id(btf: &RawBtf, ext_id: u32) -> Result<u32, Errno> {
    (1..btf.type_cnt())
        .find(|&id| {
            btf.kind(id) == Some(BtfKind::Datasec)
                && (0..btf.vlen(id) as usize).any(|j| btf.word(id, 3 + 3 * j) == Some(ext_id))
        })
        .ok_or(Errno::ENOENT)
}

/// `find_kcfg_type`: whether a `.kconfig` extern's type is one libbpf can fill
/// (bool, char, a power-of-two integer, `enum libbpf_tristate`, a char array).
pub fn find_kcfg_type_ok(btf: &RawBtf, id: u32) -> bool {
    kcfg_type(btf, id, 0).is_some()
}

/// `Some(true)` for char, `Some(false)` for the other supported kinds.
fn kcfg_type(btf: &RawBtf, id: u32, depth: usize) -> Option<bool> {
    if depth > 32 {
        return None;
    }
    let t = btf.skip_mods_and_typedefs(id);
    let size = btf.word(t, 2)?;
    match btf.kind(t)? {
        BtfKind::Int => {
            let enc = (btf.word(t, 3)? >> 24) & 0xf;
            if enc & 4 != 0 {
                return (size == 1).then_some(false);
            }
            if size == 1 {
                return Some(true);
            }
            (size.is_power_of_two() && size <= 8).then_some(false)
        }
        BtfKind::Enum => (size == 4 && btf.name(t) == "libbpf_tristate").then_some(false),
        BtfKind::Enum64 => (btf.name(t) == "libbpf_tristate").then_some(false),
        BtfKind::Array => {
            if btf.word(t, 5)? == 0 {
                return None;
            }
            kcfg_type(btf, btf.word(t, 3)?, depth + 1)?.then_some(false)
        }
        _ => None,
    }
}

/// `find_int_btf_id`: the first INT of 32 bits (0 if none).
pub fn find_int_btf_id(btf: &RawBtf) -> u32 {
    (1..btf.type_cnt())
        .find(|&id| {
            btf.kind(id) == Some(BtfKind::Int) && btf.word(id, 3).map(|d| d & 0xff) == Some(32)
        })
        .unwrap_or(0)
}

/// `add_dummy_ksym_var`: a `dummy_ksym` VAR when `.ksyms` holds a FUNC; its id.
pub fn add_dummy_ksym_var(btf: &mut RawBtf) -> u32 {
    let Some(sec) = btf.find_by_name(KSYMS_SEC, Some(BtfKind::Datasec)) else {
        return 0;
    };
    let has_func = (0..btf.vlen(sec) as usize).any(|i| {
        btf.word(sec, 3 + 3 * i)
            .is_some_and(|t| btf.kind(t) == Some(BtfKind::Func))
    });
    if !has_func {
        return 0;
    }
    let int_id = find_int_btf_id(btf);
    btf.add_var("dummy_ksym", BTF_VAR_GLOBAL_ALLOCATED, int_id)
}

/// `sym_is_extern`: undefined, global or weak, `STT_NOTYPE`.
pub fn sym_is_extern(s: &ElfSym) -> bool {
    s.undefined
        && (s.bind == object::elf::STB_GLOBAL || s.bind == object::elf::STB_WEAK)
        && s.st_type == object::elf::STT_NOTYPE
}

/// `bpf_object__collect_externs`: finds the externs among `syms` (symbol-table order)
/// and rewrites `btf` as libbpf does. Returns the externs, sorted as libbpf sorts them
/// (`cmp_externs`), and the `.kconfig` map's size when there are kconfig externs.
#[allow(non_snake_case)]
pub fn bpf_object__collect_externs(
    btf: &mut RawBtf,
    syms: &[ElfSym],
) -> Result<(Vec<Extern>, Option<u32>), LoadError> {
    let dummy = add_dummy_ksym_var(btf);
    let mut exts: Vec<Extern> = Vec::new();
    let mut kcfg_sec = None;
    let mut ksym_sec = None;
    for s in syms
        .iter()
        .filter(|s| sym_is_extern(s) && !s.name.is_empty())
    {
        let name = &s.name;
        let id = find_extern_btf_id(btf, name).map_err(|e| {
            err(e, format!("extern '{name}': no extern BTF VAR or FUNC of that name (libbpf: failed to find BTF for extern)"))
        })?;
        let sec = find_extern_sec_btf_id(btf, id).map_err(|e| {
            err(e, format!("extern '{name}' [{id}]: no DATASEC holds it (libbpf: failed to find BTF for extern section)"))
        })?;
        let sec_name = btf.name(sec);
        let is_func = btf.kind(id) == Some(BtfKind::Func);
        let mut ext = Extern {
            name: btf.name(id),
            ty: ExternType::Ksym,
            is_func,
            is_weak: s.bind == object::elf::STB_WEAK,
            btf_id: id,
            kcfg: None,
        };
        if sec_name == KCONFIG_SEC {
            if is_func {
                return Err(err(
                    Errno::EOPNOTSUPP,
                    format!("extern function '{name}' is unsupported under {KCONFIG_SEC}"),
                ));
            }
            kcfg_sec = Some(sec);
            ext.ty = ExternType::Kcfg;
            let tid = btf.word(id, 2).unwrap_or(0);
            let sz = btf.resolve_size(tid).map_err(|e| {
                err(
                    e,
                    format!("kconfig extern '{name}': cannot resolve its size"),
                )
            })?;
            if sz == 0 {
                // libbpf returns the size (0, success) from here: the externs seen
                // so far stay as they are and no BTF is rewritten.
                ext.ty = ExternType::Kcfg;
                ext.kcfg = Some((0, 0, 0));
                exts.push(ext);
                let last = exts.iter().rev().find_map(|e| e.kcfg).map(|k| k.0);
                return Ok((exts, last));
            }
            let align = btf.align_of(tid);
            if align == 0 {
                return Err(err(
                    Errno::EINVAL,
                    format!("kconfig extern '{name}': cannot determine its alignment"),
                ));
            }
            if !find_kcfg_type_ok(btf, tid) {
                return Err(err(
                    Errno::EOPNOTSUPP,
                    format!(
                        "kconfig extern '{name}': type is unsupported (libbpf fills bool, char, integers of 1/2/4/8 bytes, enum libbpf_tristate, char arrays)"
                    ),
                ));
            }
            ext.kcfg = Some((sz, align, 0));
        } else if sec_name == KSYMS_SEC {
            ksym_sec = Some(sec);
        } else {
            return Err(err(
                Errno::EOPNOTSUPP,
                format!(
                    "extern '{name}': unrecognized extern section '{sec_name}' (libbpf knows .kconfig and .ksyms)"
                ),
            ));
        }
        exts.push(ext);
    }
    if exts.is_empty() {
        return Ok((exts, None));
    }
    exts.sort_by(|a, b| {
        a.ty.cmp(&b.ty)
            .then_with(|| match (a.kcfg, b.kcfg) {
                (Some((sa, aa, _)), Some((sb, ab, _))) => ab.cmp(&aa).then(sa.cmp(&sb)),
                _ => core::cmp::Ordering::Equal,
            })
            .then_with(|| a.name.as_bytes().cmp(b.name.as_bytes()))
    });
    if let Some(sec) = ksym_sec {
        let int_id = find_int_btf_id(btf);
        let dummy_name = btf.word(dummy, 0).unwrap_or(0);
        let mut off = 0u32;
        for i in 0..btf.vlen(sec) as usize {
            let vt = btf.word(sec, 3 + 3 * i).unwrap_or(0);
            let vname = btf.name(vt);
            if !exts.iter().any(|e| e.name == vname) {
                return Err(err(
                    Errno::ESRCH,
                    format!(
                        "{KSYMS_SEC}: no extern symbol for BTF '{vname}' (libbpf: failed to find extern definition)"
                    ),
                ));
            }
            if btf.kind(vt) == Some(BtfKind::Func) {
                let proto = btf.word(vt, 2).unwrap_or(0);
                for j in 0..btf.vlen(proto) as usize {
                    let (n, t) = (btf.word(proto, 3 + 2 * j), btf.word(proto, 4 + 2 * j));
                    if t.is_some_and(|t| t != 0) && n == Some(0) {
                        btf.set_word(proto, 3 + 2 * j, dummy_name);
                    }
                }
                btf.set_word(sec, 3 + 3 * i, dummy);
                let info = btf.word(vt, 1).unwrap_or(0);
                btf.set_word(vt, 1, (info & !0xffff) | BTF_FUNC_GLOBAL);
            } else {
                btf.set_word(vt, 3, BTF_VAR_GLOBAL_ALLOCATED);
                btf.set_word(vt, 2, int_id);
            }
            btf.set_word(sec, 4 + 3 * i, off);
            btf.set_word(sec, 5 + 3 * i, 4);
            off += 4;
        }
        btf.set_word(sec, 2, off);
    }
    let mut kcfg_size = None;
    if let Some(sec) = kcfg_sec {
        let mut off = 0u32;
        for e in exts.iter_mut() {
            if let Some((sz, align, _)) = e.kcfg {
                let data_off = off.div_ceil(align) * align;
                e.kcfg = Some((sz, align, data_off));
                off = data_off + sz;
            }
        }
        btf.set_word(sec, 2, off);
        kcfg_size = Some(off);
        for i in 0..btf.vlen(sec) as usize {
            let vt = btf.word(sec, 3 + 3 * i).unwrap_or(0);
            let vname = btf.name(vt);
            let Some(e) = exts.iter().find(|e| e.name == vname) else {
                return Err(err(
                    Errno::ESRCH,
                    format!(
                        "{KCONFIG_SEC}: no extern symbol for BTF var '{vname}' (libbpf: failed to find extern definition)"
                    ),
                ));
            };
            btf.set_word(vt, 3, BTF_VAR_GLOBAL_ALLOCATED);
            btf.set_word(sec, 4 + 3 * i, e.kcfg.map_or(0, |k| k.2));
        }
    }
    Ok((exts, kcfg_size))
}
