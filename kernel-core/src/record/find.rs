//! Field discovery: `btf_find_field` and its helpers (kernel/bpf/btf.c):
//! `btf_get_field_type`, `btf_find_struct`, `btf_find_kptr`, `btf_find_graph_root`,
//! `btf_find_field_one`, `btf_find_nested_struct`, `btf_repeat_fields`,
//! `btf_find_struct_field`, `btf_find_datasec_var`.

use alloc::vec::Vec;

use super::field::BtfFieldType as F;
use crate::btf::uapi::{BtfKind, MAX_RESOLVE_DEPTH};
use crate::btf::{BtfData, TypeRef};
use crate::errno::{Errno, KResult};
use crate::profile::Semantics;
use crate::why::{refuse, within};

/// `struct btf_field_info`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldInfo {
    /// Field type.
    pub ty: F,
    /// Byte offset in the value.
    pub off: u32,
    /// Kptr pointee type id (after modifiers).
    pub kptr_type_id: u32,
    /// Graph root: the contained struct's id.
    pub value_btf_id: u32,
    /// Graph root: the node member's name (string offset of the decl tag and the byte
    /// position after `contains:<struct>:`).
    pub node_name: Vec<u8>,
}

impl FieldInfo {
    fn new(ty: F, off: u32) -> Self {
        FieldInfo {
            ty,
            off,
            kptr_type_id: 0,
            value_btf_id: 0,
            node_name: Vec::new(),
        }
    }
}

/// `BTF_FIELD_IGNORE` / `BTF_FIELD_FOUND`.
pub(crate) enum Found {
    Ignore,
    Found(FieldInfo),
}

struct Walk<'a> {
    d: &'a BtfData,
    mask: F,
    sem: Semantics,
    cap: usize,
}

fn name<'a>(d: &'a BtfData, t: &TypeRef<'_>) -> &'a [u8] {
    // `__btf_name_by_offset`: anonymous types are "(anon)".
    if t.name_off() == 0 {
        return b"(anon)";
    }
    d.str_by_offset(t.name_off())
        .unwrap_or(b"(invalid-name-offset)")
}

fn lossy(b: &[u8]) -> alloc::string::String {
    alloc::string::String::from_utf8_lossy(b).into_owned()
}

/// `btf_find_kptr`: classifies a pointer member. Profile flags: `percpu_kptr`,
/// `uptr`, `kptr_untrusted_tag` (the tag names), `kptr_skips_attr_tags` (tags with
/// kind_flag are attributes, and types outside `mask` are ignored, as since v6.13).
pub(crate) fn find_kptr(
    d: &BtfData,
    t: TypeRef<'_>,
    off: u32,
    mask: F,
    sem: &Semantics,
) -> KResult<Found> {
    let mut t = t;
    if t.kind() == BtfKind::Volatile {
        match d.type_by_id(t.type_id()) {
            Some(n) => t = n,
            None => return Ok(Found::Ignore),
        }
    }
    if t.kind() != BtfKind::Ptr {
        return Ok(Found::Ignore);
    }
    let Some(tag) = d.type_by_id(t.type_id()) else {
        return Ok(Found::Ignore);
    };
    if tag.kind() != BtfKind::TypeTag || (sem.kptr_skips_attr_tags && tag.kflag()) {
        return Ok(Found::Ignore);
    }
    if d.type_by_id(tag.type_id())
        .is_some_and(|n| n.kind() == BtfKind::TypeTag)
    {
        return Err(refuse(
            Errno::EINVAL,
            "btf_find_kptr",
            tag.id(),
            None,
            || {
                alloc::format!(
                    "two type tags on one pointer (`{}` and another): a kptr takes exactly one",
                    lossy(name(d, &tag))
                )
            },
        ));
    }
    let ty = match name(d, &tag) {
        b"kptr_untrusted" if sem.kptr_untrusted_tag => F::KPTR_UNREF,
        b"kptr" if sem.kptr_untrusted_tag => F::KPTR_REF,
        b"kptr" => F::KPTR_UNREF,
        b"kptr_ref" if !sem.kptr_untrusted_tag => F::KPTR_REF,
        b"percpu_kptr" if sem.percpu_kptr => F::KPTR_PERCPU,
        b"uptr" if sem.uptr => F::UPTR,
        other => {
            return Err(refuse(
                Errno::EINVAL,
                "btf_find_kptr",
                tag.id(),
                None,
                || {
                    alloc::format!(
                        "type tag `{}` on a pointer is not a kptr tag of this profile ({})",
                        lossy(other),
                        known_kptr_tags(sem)
                    )
                },
            ));
        }
    };
    if sem.kptr_skips_attr_tags && !ty.intersects(mask) {
        return Ok(Found::Ignore);
    }
    let (base, res_id) = d.skip_modifiers(tag.type_id());
    if !base.is_some_and(|b| b.is_struct_only()) {
        return Err(refuse(
            Errno::EINVAL,
            "btf_find_kptr",
            res_id,
            None,
            || match base {
                None => alloc::string::String::from(
                    "the kptr points to void: its pointee must be a struct",
                ),
                Some(b) if b.kind() == BtfKind::Fwd => alloc::format!(
                    "the kptr's pointee `{}` is only a forward declaration (BTF_KIND_FWD) in the object's BTF: its pointee must be a struct (define it, e.g. include vmlinux.h)",
                    lossy(name(d, &b))
                ),
                Some(b) => alloc::format!(
                    "the kptr's pointee `{}` is a {}: its pointee must be a struct",
                    lossy(name(d, &b)),
                    b.kind().as_str()
                ),
            },
        ));
    }
    let mut info = FieldInfo::new(ty, off);
    info.kptr_type_id = res_id;
    Ok(Found::Found(info))
}

/// The kptr tags `btf_find_kptr` knows under `sem`.
fn known_kptr_tags(sem: &Semantics) -> &'static str {
    match (sem.kptr_untrusted_tag, sem.percpu_kptr, sem.uptr) {
        (false, _, _) => "kptr, kptr_ref",
        (true, false, _) => "kptr, kptr_untrusted",
        (true, true, false) => "kptr, kptr_untrusted, percpu_kptr",
        (true, true, true) => "kptr, kptr_untrusted, percpu_kptr, uptr",
    }
}

/// `btf_find_decl_tag_value(btf, pt, comp_idx, "contains:")`: the text after the key
/// of the one matching decl tag; -ENOENT if none, -EEXIST if two.
fn find_decl_tag_value<'a>(
    d: &'a BtfData,
    pt_id: u32,
    comp_idx: i32,
    key: &[u8],
) -> KResult<&'a [u8]> {
    let n = d.nr_types();
    let mut found: Option<&[u8]> = None;
    for i in 1..n {
        let Some(t) = d.type_by_id(i) else { continue };
        if t.kind() != BtfKind::DeclTag
            || t.type_id() != pt_id
            || t.decl_tag_component_idx() != comp_idx
        {
            continue;
        }
        let v = name(d, &t);
        if !v.starts_with(key) {
            continue;
        }
        if found.is_some() {
            return Err(Errno::EEXIST);
        }
        found = Some(&v[key.len()..]);
    }
    found.ok_or(Errno::ENOENT)
}

/// `btf_find_by_name_kind` on a program BTF (the kernel's linear scan).
pub(crate) fn find_by_name_kind(d: &BtfData, name: &[u8], kind: BtfKind) -> KResult<u32> {
    (1..d.nr_types())
        .find(|&i| {
            d.type_by_id(i)
                .is_some_and(|t| t.kind() == kind && d.type_name(&t) == name)
        })
        .ok_or(Errno::ENOENT)
}

impl Walk<'_> {
    /// `btf_get_field_type`.
    fn get_field_type(&self, t: &TypeRef<'_>, seen: &mut u32) -> KResult<F> {
        // Every special struct's name starts with `bpf_`: no other name is read whole
        // (`(anon)` and `(invalid-name-offset)` do not start with it either).
        let special = self.d.str_starts_with(t.name_off(), b"bpf_");
        let n: &[u8] = if special { name(self.d, t) } else { b"" };
        let candidates = if special { 10 } else { 0 };
        const TABLE: [(F, bool); 10] = [
            (F::SPIN_LOCK, true),
            (F::RES_SPIN_LOCK, true),
            (F::TIMER, true),
            (F::WORKQUEUE, true),
            (F::TASK_WORK, true),
            (F::LIST_HEAD, false),
            (F::LIST_NODE, false),
            (F::RB_ROOT, false),
            (F::RB_NODE, false),
            (F::REFCOUNT, false),
        ];
        for &(ty, unique) in TABLE.iter().take(candidates) {
            if !self.mask.intersects(ty) || ty.struct_name().map(str::as_bytes) != Some(n) {
                continue;
            }
            if unique {
                if *seen & ty.0 != 0 {
                    return Err(refuse(
                        Errno::E2BIG,
                        "btf_get_field_type",
                        t.id(),
                        None,
                        || {
                            alloc::format!(
                                "a second `{}` in one struct: at most one per struct",
                                lossy(n)
                            )
                        },
                    ));
                }
                *seen |= ty.0;
            }
            return Ok(ty);
        }
        let ptr_mask = F::KPTR.or(F::UPTR);
        if self.mask.intersects(ptr_mask) && (!self.sem.nested_fields || !t.is_struct_only()) {
            return Ok(F::KPTR_REF);
        }
        Ok(F(0))
    }

    /// `btf_repeat_fields`: replicates `infos[base..base + cnt]` `repeat` times with
    /// stride `elem_size`.
    fn repeat_fields(
        &self,
        infos: &mut Vec<FieldInfo>,
        base: usize,
        cnt: usize,
        repeat: u32,
        elem_size: u32,
    ) -> KResult<()> {
        let ok = F::KPTR.or(F::UPTR).or(F::GRAPH_ROOT);
        if let Some(i) = infos[base..base + cnt]
            .iter()
            .find(|i| !i.ty.intersects(ok))
        {
            let ty = i.ty;
            return Err(refuse(Errno::EINVAL, "btf_repeat_fields", 0, None, || {
                alloc::format!(
                    "an array of {}: only kptrs, uptrs and graph roots may repeat",
                    ty.name()
                )
            }));
        }
        let total = (cnt as u64) * (repeat as u64 + 1);
        if total > (self.cap - base) as u64 {
            let cap = self.cap;
            return Err(refuse(Errno::E2BIG, "btf_repeat_fields", 0, None, || {
                alloc::format!(
                    "{total} special fields from an array: more than BTF_FIELDS_MAX ({cap})"
                )
            }));
        }
        for r in 0..repeat {
            for j in 0..cnt {
                let mut i = infos[base + j].clone();
                i.off = i.off.wrapping_add((r + 1).wrapping_mul(elem_size));
                infos.push(i);
            }
        }
        Ok(())
    }

    /// `btf_find_field_one`: one member (`container` = the struct, `idx` its index) or
    /// one VAR (`container` = the VAR, `idx` -1, `expected` = its secinfo size).
    #[allow(clippy::too_many_arguments)]
    fn field_one(
        &self,
        container: &TypeRef<'_>,
        var_type: Option<TypeRef<'_>>,
        idx: i32,
        off: u32,
        expected: u32,
        seen: &mut u32,
        infos: &mut Vec<FieldInfo>,
        level: u32,
    ) -> KResult<usize> {
        let Some(mut vt) = var_type else {
            return Ok(0);
        };
        let mut nelems: u32 = 1;
        if self.sem.nested_fields {
            let mut i = 0;
            while i < MAX_RESOLVE_DEPTH && vt.kind() == BtfKind::Array {
                let (elem, _, n) = vt.array();
                nelems = nelems.wrapping_mul(n);
                match self.d.type_by_id(elem) {
                    Some(e) => vt = e,
                    None => return Ok(0),
                }
                i += 1;
            }
            if i == MAX_RESOLVE_DEPTH {
                return Err(refuse(Errno::E2BIG, "btf_find_field_one", 0, None, || {
                    alloc::format!("arrays nested {MAX_RESOLVE_DEPTH} deep (MAX_RESOLVE_DEPTH)")
                }));
            }
            if nelems == 0 {
                return Ok(0);
            }
        }
        let ty = self.get_field_type(&vt, seen)?;
        if ty.0 == 0 && self.sem.nested_fields && vt.is_struct_only() {
            let sz = vt.size();
            if expected != 0 && expected != sz.wrapping_mul(nelems) {
                return Ok(0);
            }
            return self.nested_struct(&vt, off, nelems, infos, level);
        }
        if ty.0 == 0 {
            return Ok(0);
        }
        if !self.sem.nested_fields && !off.is_multiple_of(8) {
            // v6.4: the bit offset is checked after classification.
            return Err(refuse(
                Errno::EINVAL,
                "btf_find_struct_field",
                0,
                None,
                || {
                    alloc::format!(
                        "a {} at bit offset {off}: not on a byte boundary",
                        ty.name()
                    )
                },
            ));
        }
        if ty == F::KPTR_REF && !matches!(vt.kind(), BtfKind::Ptr | BtfKind::Volatile) {
            // What every step below gives a type that `btf_find_kptr` ignores: none of
            // them refuses, so none is taken.
            return Ok(0);
        }
        let off = if self.sem.nested_fields { off } else { off / 8 };
        let sz = ty.size(&self.sem);
        if expected != 0 && expected != sz.wrapping_mul(nelems) {
            return Ok(0);
        }
        if off % ty.align() != 0 {
            return Ok(0);
        }
        let found = if ty == F::KPTR_REF {
            find_kptr(self.d, vt, off, self.mask, &self.sem)?
        } else if ty.intersects(F::GRAPH_ROOT) {
            self.find_graph_root(container, &vt, idx, off, sz, ty)?
        } else if vt.is_struct_only() && vt.size() == sz {
            Found::Found(FieldInfo::new(ty, off))
        } else {
            Found::Ignore
        };
        let Found::Found(info) = found else {
            return Ok(0);
        };
        if infos.len() >= self.cap {
            let cap = self.cap;
            return Err(refuse(Errno::E2BIG, "btf_find_field_one", 0, None, || {
                alloc::format!("more than BTF_FIELDS_MAX ({cap}) special fields")
            }));
        }
        let base = infos.len();
        infos.push(info);
        if nelems > 1 {
            self.repeat_fields(infos, base, 1, nelems - 1, sz)?;
        }
        Ok(nelems as usize)
    }

    /// `btf_find_graph_root`.
    fn find_graph_root(
        &self,
        pt: &TypeRef<'_>,
        t: &TypeRef<'_>,
        idx: i32,
        off: u32,
        sz: u32,
        ty: F,
    ) -> KResult<Found> {
        if !t.is_struct_only() || t.size() != sz {
            return Ok(Found::Ignore);
        }
        let what = ty.name();
        let value = find_decl_tag_value(self.d, pt.id(), idx, b"contains:").map_err(|e| {
            refuse(Errno::EINVAL, "btf_find_graph_root", 0, None, || {
                if e == Errno::EEXIST {
                    alloc::format!("a {what} with two `contains:` decl tags")
                } else {
                    alloc::format!("a {what} without a `__contains(struct, node)` decl tag")
                }
            })
        })?;
        let Some(colon) = value.iter().position(|&c| c == b':') else {
            return Err(refuse(
                Errno::EINVAL,
                "btf_find_graph_root",
                0,
                None,
                || {
                    alloc::format!(
                        "the {what}'s tag `contains:{}` names no node member (`struct:node`)",
                        lossy(value)
                    )
                },
            ));
        };
        let id = find_by_name_kind(self.d, &value[..colon], BtfKind::Struct).map_err(|e| {
            refuse(e, "btf_find_graph_root", 0, None, || {
                alloc::format!(
                    "the {what} contains struct `{}`, which the object's BTF does not define",
                    lossy(&value[..colon])
                )
            })
        })?;
        let node = &value[colon + 1..];
        if node.is_empty() {
            return Err(refuse(
                Errno::EINVAL,
                "btf_find_graph_root",
                0,
                None,
                || alloc::format!("the {what}'s `contains:` tag has an empty node name"),
            ));
        }
        let mut info = FieldInfo::new(ty, off);
        info.value_btf_id = id;
        info.node_name = node.to_vec();
        Ok(Found::Found(info))
    }

    /// `btf_find_nested_struct`.
    fn nested_struct(
        &self,
        t: &TypeRef<'_>,
        off: u32,
        nelems: u32,
        infos: &mut Vec<FieldInfo>,
        level: u32,
    ) -> KResult<usize> {
        let level = level + 1;
        if level as usize >= MAX_RESOLVE_DEPTH {
            return Err(refuse(
                Errno::E2BIG,
                "btf_find_nested_struct",
                t.id(),
                None,
                || alloc::format!("structs nested {MAX_RESOLVE_DEPTH} deep (MAX_RESOLVE_DEPTH)"),
            ));
        }
        let base = infos.len();
        let ret = self.struct_field(t, infos, level)?;
        if ret == 0 {
            return Ok(0);
        }
        for i in &mut infos[base..] {
            i.off = i.off.wrapping_add(off);
        }
        if nelems > 1 {
            self.repeat_fields(infos, base, ret, nelems - 1, t.size())?;
            return Ok(ret * nelems as usize);
        }
        Ok(ret)
    }

    /// `btf_find_struct_field`: unique field types are unique per struct (its own
    /// `seen_mask`; a nested struct starts afresh).
    fn struct_field(
        &self,
        t: &TypeRef<'_>,
        infos: &mut Vec<FieldInfo>,
        level: u32,
    ) -> KResult<usize> {
        let mut seen = 0u32;
        let mut n = 0;
        for (i, m) in t.members().enumerate() {
            let mt = self.d.type_by_id(m.type_id);
            let bits = t.member_bit_offset(&m);
            let off = if self.sem.nested_fields {
                if !bits.is_multiple_of(8) {
                    return Err(refuse(
                        Errno::EINVAL,
                        "btf_find_struct_field",
                        t.id(),
                        None,
                        || {
                            alloc::format!(
                                "member {i} at bit offset {bits}: not on a byte boundary"
                            )
                        },
                    ));
                }
                bits / 8
            } else {
                bits
            };
            n += self
                .field_one(t, mt, i as i32, off, 0, &mut seen, infos, level)
                .map_err(|e| within(e, t.id(), Some(i as u32), Some(bits / 8)))?;
        }
        Ok(n)
    }

    /// `btf_find_datasec_var` (its own `seen_mask`).
    fn datasec_var(&self, t: &TypeRef<'_>, infos: &mut Vec<FieldInfo>) -> KResult<usize> {
        let mut seen = 0u32;
        let mut n = 0;
        for i in 0..t.vlen() {
            let vsi = t.var_secinfo(i);
            let Some(var) = self.d.type_by_id(vsi.type_id) else {
                continue;
            };
            let vt = self.d.type_by_id(var.type_id());
            let off = if self.sem.nested_fields {
                vsi.offset
            } else {
                vsi.offset * 8
            };
            n += self
                .field_one(&var, vt, -1, off, vsi.size, &mut seen, infos, 0)
                .map_err(|e| within(e, t.id(), Some(u32::from(i)), Some(vsi.offset)))?;
        }
        Ok(n)
    }
}

/// `btf_find_field`: the special fields of a STRUCT or DATASEC, in discovery order, at
/// most `BTF_FIELDS_MAX` (-E2BIG beyond). Other kinds are -EINVAL. Profile flags:
/// `nested_fields` (arrays, nested structs, per-level checks), `wq`, and those of
/// `find_kptr`; `mask` is cut to the field types the profile knows.
pub fn btf_find_field(
    d: &BtfData,
    t: &TypeRef<'_>,
    mask: F,
    sem: &Semantics,
) -> KResult<Vec<FieldInfo>> {
    let w = Walk {
        d,
        mask: F::known_mask(mask, sem),
        sem: *sem,
        cap: sem.btf_fields_max(),
    };
    // Most structs have no special field: nothing is allocated for them.
    let mut infos = Vec::new();
    if t.is_struct_only() {
        w.struct_field(t, &mut infos, 0)?;
    } else if t.kind() == BtfKind::Datasec {
        w.datasec_var(t, &mut infos)?;
    } else {
        return Err(refuse(
            Errno::EINVAL,
            "btf_find_field",
            t.id(),
            None,
            || {
                alloc::format!(
                    "the value is a {}, not a struct or DATASEC",
                    t.kind().as_str()
                )
            },
        ));
    }
    Ok(infos)
}
