//! Building records: `btf_parse_fields`, `btf_parse_kptr`, `btf_parse_graph_root`,
//! `btf_check_and_fixup_fields` (kernel/bpf/btf.c) and `btf_record_dup`,
//! `btf_record_equal` (kernel/bpf/syscall.c).

use alloc::string::String;
use alloc::vec::Vec;

use super::field::{
    BtfField, BtfFieldGraphRoot, BtfFieldKptr, BtfFieldType as F, BtfRecord, BtfStructMetas,
    KptrBtf, KptrDtor, find_meta, struct_meta_tab,
};
use super::find::{FieldInfo, btf_find_field};
use super::free::btf_record_free;
use crate::btf::{BtfRef, KernelBtfs, btf_get};
use crate::errno::{Errno, KResult};
use crate::module::try_module_get;
use crate::profile::Semantics;
use crate::sync::Arc;
use crate::sync::warn::warn;
use crate::why::{refuse, within};

/// The result of `btf_parse_fields`: `Ok(None)` is the kernel's NULL record (no special
/// fields), `Err` its error pointer.
pub type RecordResult = KResult<Option<BtfRecord>>;

/// `btf_parse_kptr`: resolves a kptr's pointee. Looks the pointee's name and kind up in
/// vmlinux and module BTFs (`bpf_find_btf_id`); only -ENOENT means a program-local type.
/// A referenced kernel kptr needs a registered destructor (-ENOENT) and, for a module
/// type, a live module (-ENXIO). Nothing stays held on failure.
///
/// Profile flags: `local_kptr` (v6.3: -ENOENT fails the field), `local_kptr_holds_btf`
/// (c8e18754..v6.11 take a program-BTF reference), `local_kptr_dtor_obj_drop`
/// (c8e18754 stores `__bpf_obj_drop_impl` as destructor).
pub fn btf_parse_kptr(
    btf: &BtfRef,
    kernel: &KernelBtfs,
    info: &FieldInfo,
    sem: &Semantics,
) -> KResult<BtfFieldKptr> {
    let d = btf.data();
    let t = d.type_by_id(info.kptr_type_id).ok_or(Errno::EINVAL)?;
    let name = d.name_by_offset(t.name_off());
    match kernel.bpf_find_btf_id(name, t.kind_raw()) {
        Err(Errno::ENOENT) if sem.local_kptr => {
            if btf.is_kernel() {
                warn("btf_parse_kptr: local kptr in a kernel BTF");
            }
            let kbtf = if sem.local_kptr_holds_btf {
                KptrBtf::Held(btf_get(btf))
            } else {
                KptrBtf::Borrowed(super::field::UnrefBtf::new(btf))
            };
            Ok(BtfFieldKptr {
                btf: kbtf,
                btf_id: info.kptr_type_id,
                pointee: String::from(name),
                local: true,
                dtor: if sem.local_kptr_dtor_obj_drop {
                    KptrDtor::ObjDrop
                } else {
                    KptrDtor::None
                },
                module: None,
                pointee_meta: None,
            })
        }
        Err(e) => Err(refuse(e, "btf_parse_kptr", info.kptr_type_id, None, || {
            if e == Errno::ENOENT {
                alloc::format!(
                    "the kptr's pointee `{name}` is not a kernel type (bpf_find_btf_id: ENOENT), and this profile has no local kptrs (c8e18754)"
                )
            } else {
                alloc::format!("looking the kptr's pointee `{name}` up in the kernel BTFs failed")
            }
        })),
        Ok((id, kbtf)) => {
            let mut dtor = KptrDtor::None;
            let mut module = None;
            if info.ty == F::KPTR_REF {
                // On any error below `kbtf` is dropped: the kernel's btf_put.
                let dtor_id = kernel.btf_find_dtor_kfunc(&kbtf, id).map_err(|e| {
                    refuse(e, "btf_parse_kptr", info.kptr_type_id, None, || {
                        alloc::format!(
                            "a referenced kptr to kernel type `{name}` needs a destructor kfunc registered for it (register_btf_id_dtor_kfuncs), and `{name}` has none: use __kptr_untrusted, or a type with a release kfunc"
                        )
                    })
                })?;
                let f = kbtf.data().type_by_id(dtor_id).ok_or(Errno::ENOENT)?;
                if kbtf.is_module() {
                    module = Some(kernel.btf_try_get_module(&kbtf).ok_or_else(|| {
                        refuse(Errno::ENXIO, "btf_parse_kptr", info.kptr_type_id, None, || {
                            alloc::format!(
                                "the module of kernel type `{name}` ({}) is going away (try_module_get)",
                                kbtf.name()
                            )
                        })
                    })?);
                }
                dtor = KptrDtor::Kfunc {
                    name: String::from(kbtf.data().name_by_offset(f.name_off())),
                    btf_id: dtor_id,
                };
            }
            let pointee = String::from(
                kbtf.data()
                    .name_by_offset(kbtf.data().type_by_id(id).map_or(0, |t| t.name_off())),
            );
            Ok(BtfFieldKptr {
                btf: KptrBtf::Held(kbtf),
                btf_id: id,
                pointee,
                local: false,
                dtor,
                module,
                pointee_meta: None,
            })
        }
    }
}

/// `btf_parse_graph_root`: finds the node member named in the "contains:" tag.
fn btf_parse_graph_root(
    btf: &BtfRef,
    info: &FieldInfo,
    node_type: &str,
    align: u32,
) -> KResult<BtfFieldGraphRoot> {
    let d = btf.data();
    let t = d.type_by_id(info.value_btf_id).ok_or(Errno::EINVAL)?;
    let node = alloc::string::String::from_utf8_lossy(&info.node_name);
    let sname = alloc::string::String::from_utf8_lossy(d.type_name(&t));
    let mut found: Option<BtfFieldGraphRoot> = None;
    for m in t.members() {
        if d.str_by_offset(m.name_off).unwrap_or(b"(anon)") != info.node_name.as_slice() {
            continue;
        }
        let fail = |rule: &dyn Fn() -> alloc::string::String| {
            refuse(
                Errno::EINVAL,
                "btf_parse_graph_root",
                info.value_btf_id,
                None,
                rule,
            )
        };
        if found.is_some() {
            return Err(fail(&|| {
                alloc::format!("the contained struct `{sname}` has two members named `{node}`")
            }));
        }
        let n = d.type_by_id(m.type_id).ok_or(Errno::EINVAL)?;
        if !n.is_struct_only() || d.type_name(&n) != node_type.as_bytes() {
            return Err(fail(&|| {
                alloc::format!(
                    "member `{node}` of the contained struct `{sname}` is not a `struct {node_type}`"
                )
            }));
        }
        // Decoded with the node type's kind_flag, as the kernel does.
        let bits = n.member_bit_offset(&m);
        if bits % 8 != 0 || (bits / 8) % align != 0 {
            return Err(fail(&|| {
                alloc::format!(
                    "member `{node}` of the contained struct `{sname}` at bit {bits}: not {align}-byte aligned"
                )
            }));
        }
        found = Some(BtfFieldGraphRoot {
            btf_ptr: btf.raw(),
            value_btf_id: info.value_btf_id,
            node_offset: bits / 8,
            value_rec: None,
        });
    }
    found.ok_or_else(|| {
        refuse(
            Errno::ENOENT,
            "btf_parse_graph_root",
            info.value_btf_id,
            None,
            || {
                alloc::format!(
                    "the contained struct `{sname}` has no member `{node}` (named by `__contains`)"
                )
            },
        )
    })
}

/// `btf_parse_fields`: the record of `type_id` (a STRUCT or DATASEC of `btf`) for the
/// field types in `mask`. Fields are counted only once fully parsed, so the error path
/// releases exactly what was taken. Profile flags: those of `btf_find_field` and
/// `btf_parse_kptr`, `res_spin_lock` (spin lock and resilient lock together are
/// -EINVAL; either satisfies a graph root), `refcount` (node sizes).
pub fn btf_parse_fields(
    btf: &BtfRef,
    kernel: &KernelBtfs,
    type_id: u32,
    mask: F,
    value_size: u32,
    sem: &Semantics,
) -> RecordResult {
    let d = btf.data();
    let t = d.type_by_id(type_id).ok_or(Errno::EINVAL)?;
    let infos = btf_find_field(d, &t, mask, sem)?;
    if infos.is_empty() {
        return Ok(None);
    }
    let mut rec = BtfRecord {
        field_mask: F(0),
        spin_lock_off: -22,
        res_spin_lock_off: -22,
        timer_off: -22,
        wq_off: -22,
        refcount_off: -22,
        task_work_off: -22,
        fields: Vec::with_capacity(infos.len()),
    };
    let mut next_off: u64 = 0;
    for info in &infos {
        let size = info.ty.size(sem);
        if info.off as u64 + size as u64 > value_size as u64 {
            warn("verifier bug: field beyond the value");
            return Err(refuse(
                Errno::EFAULT,
                "btf_parse_fields",
                type_id,
                Some(info.off),
                || {
                    alloc::format!(
                        "the {} at +{} ({size} bytes) runs past the value's end ({value_size} bytes); the kernel WARNs (\"verifier bug\")",
                        info.ty.name(),
                        info.off
                    )
                },
            ));
        }
        if (info.off as u64) < next_off {
            return Err(refuse(
                Errno::EEXIST,
                "btf_parse_fields",
                type_id,
                Some(info.off),
                || {
                    alloc::format!(
                        "the {} at +{} overlaps the field before it (a union?)",
                        info.ty.name(),
                        info.off
                    )
                },
            ));
        }
        next_off = info.off as u64 + size as u64;
        rec.field_mask = rec.field_mask.or(info.ty);
        let mut field = BtfField {
            offset: info.off,
            size,
            ty: info.ty,
            kptr: None,
            graph_root: None,
        };
        let off = info.off as i32;
        let cache = |slot: &mut i32| {
            if *slot >= 0 {
                warn("btf_parse_fields: offset already cached");
            }
            *slot = off;
        };
        match info.ty {
            F::SPIN_LOCK => cache(&mut rec.spin_lock_off),
            F::RES_SPIN_LOCK => {
                if rec.spin_lock_off >= 0 {
                    // What 6.18 does when a spin lock came first (kernel WARN).
                    warn("btf_parse_fields: spin lock and res spin lock");
                }
                cache(&mut rec.res_spin_lock_off)
            }
            F::TIMER => cache(&mut rec.timer_off),
            F::WORKQUEUE => cache(&mut rec.wq_off),
            F::REFCOUNT => cache(&mut rec.refcount_off),
            F::TASK_WORK => cache(&mut rec.task_work_off),
            F::KPTR_UNREF | F::KPTR_REF | F::KPTR_PERCPU | F::UPTR => {
                field.kptr = Some(
                    btf_parse_kptr(btf, kernel, info, sem)
                        .map_err(|e| within(e, type_id, None, Some(info.off)))?,
                );
            }
            F::LIST_HEAD => {
                field.graph_root = Some(
                    btf_parse_graph_root(btf, info, "bpf_list_node", 8)
                        .map_err(|e| within(e, type_id, None, Some(info.off)))?,
                );
            }
            F::RB_ROOT => {
                field.graph_root = Some(
                    btf_parse_graph_root(btf, info, "bpf_rb_node", 8)
                        .map_err(|e| within(e, type_id, None, Some(info.off)))?,
                );
            }
            F::LIST_NODE | F::RB_NODE => {}
            _ => return Err(Errno::EFAULT),
        }
        rec.fields.push(field);
    }
    if rec.spin_lock_off >= 0 && rec.res_spin_lock_off >= 0 {
        let (a, b) = (rec.spin_lock_off, rec.res_spin_lock_off);
        return Err(refuse(
            Errno::EINVAL,
            "btf_parse_fields",
            type_id,
            None,
            || {
                alloc::format!(
                    "a bpf_spin_lock (+{a}) and a bpf_res_spin_lock (+{b}) in one value: at most one lock"
                )
            },
        ));
    }
    if rec.has_field(F::GRAPH_ROOT) && rec.spin_lock_off < 0 && rec.res_spin_lock_off < 0 {
        let root = rec.fields.iter().find(|f| f.ty.intersects(F::GRAPH_ROOT));
        let (what, off) = root.map_or(("graph root", 0), |f| (f.ty.name(), f.offset));
        return Err(refuse(
            Errno::EINVAL,
            "btf_parse_fields",
            type_id,
            Some(off),
            || {
                alloc::format!(
                    "a {what} at +{off} needs a bpf_spin_lock (or bpf_res_spin_lock) in the same value, and there is none"
                )
            },
        ));
    }
    if rec.refcount_off < 0 && rec.has_field(F::LIST_NODE) && rec.has_field(F::RB_NODE) {
        return Err(refuse(
            Errno::EINVAL,
            "btf_parse_fields",
            type_id,
            None,
            || {
                String::from(
                    "a bpf_list_node and a bpf_rb_node in one struct need a bpf_refcount, and there is none",
                )
            },
        ));
    }
    rec.fields.sort_by_key(|f| f.offset);
    Ok(Some(rec))
}

/// `btf_check_and_fixup_fields`: checks what needs the whole BTF (uptr pointees:
/// not kernel types (-EINVAL), not empty (-EINVAL), at most a page (-E2BIG); graph
/// roots' contained types must have a struct meta in `btf`, -EFAULT) and sets each
/// graph root's `value_rec`. Profile flag `ownership_depth`: without it (the older
/// rule), a record that is both owner and owned may only own types without graph roots
/// (-ELOOP).
///
/// `metas(id)` tells whether `btf` has a struct meta for `id` and whether that record
/// has graph roots.
pub fn btf_check_and_fixup_fields(
    btf: &BtfRef,
    metas: &dyn Fn(u32) -> Option<bool>,
    rec: &mut BtfRecord,
    sem: &Semantics,
) -> KResult<()> {
    if !rec.has_field(F::GRAPH_ROOT.or(F::UPTR)) {
        return Ok(());
    }
    let has_nodes = rec.has_field(F::GRAPH_NODE);
    for f in rec.fields.iter_mut() {
        if f.ty == F::UPTR {
            let Some(k) = &f.kptr else { continue };
            let (off, pointee) = (f.offset, &k.pointee);
            let data = match &k.btf {
                KptrBtf::Held(b) if b.is_kernel() => {
                    return Err(refuse(
                        Errno::EINVAL,
                        "btf_check_and_fixup_fields",
                        0,
                        Some(off),
                        || {
                            alloc::format!(
                                "the uptr at +{off} points to kernel type `{pointee}`: a uptr's pointee must be a program type"
                            )
                        },
                    ));
                }
                KptrBtf::Held(b) => b.data(),
                KptrBtf::Borrowed(_) => btf.data(),
            };
            let size = data.type_by_id(k.btf_id).map_or(0, |t| t.size());
            if size == 0 {
                return Err(refuse(
                    Errno::EINVAL,
                    "btf_check_and_fixup_fields",
                    0,
                    Some(off),
                    || alloc::format!("the uptr at +{off} points to `{pointee}` of size 0"),
                ));
            }
            if size > 4096 {
                return Err(refuse(
                    Errno::E2BIG,
                    "btf_check_and_fixup_fields",
                    0,
                    Some(off),
                    || {
                        alloc::format!(
                            "the uptr at +{off} points to `{pointee}` of {size} bytes: more than a page"
                        )
                    },
                ));
            }
            continue;
        }
        let Some(g) = f.graph_root.as_mut() else {
            continue;
        };
        let (off, vid) = (f.offset, g.value_btf_id);
        let owns_roots = metas(vid).ok_or_else(|| {
            refuse(Errno::EFAULT, "btf_check_and_fixup_fields", vid, Some(off), || {
                alloc::format!(
                    "the graph root at +{off} contains a struct with no struct meta (it has no bpf_list_node, bpf_rb_node or other special field)"
                )
            })
        })?;
        g.value_rec = Some(vid);
        if !sem.ownership_depth && has_nodes && owns_roots {
            return Err(refuse(
                Errno::ELOOP,
                "btf_check_and_fixup_fields",
                vid,
                Some(off),
                || {
                    String::from(
                        "a struct that is both owned (it has a node) and an owner may own only types without graph roots: the graph root here contains one that has its own",
                    )
                },
            ));
        }
    }
    Ok(())
}

/// [`btf_check_and_fixup_fields`] against `btf`'s struct-meta table (map creation).
pub fn btf_check_and_fixup_record(
    btf: &BtfRef,
    rec: &mut BtfRecord,
    sem: &Semantics,
) -> KResult<()> {
    let tab: Option<Arc<BtfStructMetas>> = struct_meta_tab(btf);
    let lookup = |id: u32| {
        tab.as_ref()
            .and_then(|t| t.find(id))
            .map(|r| r.has_field(F::GRAPH_ROOT))
    };
    btf_check_and_fixup_fields(btf, &lookup, rec, sem)?;
    // The struct meta a release of a local kptr looks up is fixed from BTF load until
    // the BTF is freed. Keep it in the field when the BTF outlives the record (the
    // field holds the BTF, or the map puts its BTF after freeing its record), so
    // holding the table here never delays the references it releases at btf_free.
    for f in &mut rec.fields {
        if let Some(k) = f.kptr.as_mut()
            && k.local
            && k.btf.addr() == btf.addr()
            && (k.btf.is_held() || sem.map_btf_put_after_free)
        {
            k.pointee_meta = find_meta(btf, k.btf_id);
        }
    }
    Ok(())
}

/// `btf_record_dup`: a deep copy taking new references (`btf_get` on held BTFs,
/// `try_module_get` on modules). -ENXIO if a module is going: the fields copied so far
/// are released by `btf_record_free`; as in the kernel, the BTF reference already
/// taken for the failing field is leaked (the field was not yet counted).
pub fn btf_record_dup(rec: &BtfRecord) -> KResult<BtfRecord> {
    // new_rec->cnt = 0: fields are counted (pushed) once their references are taken.
    let mut new_rec = BtfRecord {
        fields: Vec::with_capacity(rec.fields.len()),
        ..*rec
    };
    for f in &rec.fields {
        let kptr = match &f.kptr {
            None => None,
            Some(k) => {
                let btf = match &k.btf {
                    KptrBtf::Held(b) => KptrBtf::Held(btf_get(b)),
                    KptrBtf::Borrowed(p) => {
                        // if (btf_is_kernel(fields[i].kptr.btf)) btf_get(..): read, no get.
                        let _ = p.btf_is_kernel("use after free: btf_record_dup read a freed BTF (btf_is_kernel(kptr.btf))");
                        KptrBtf::Borrowed(p.clone())
                    }
                };
                if let Some(m) = &k.module
                    && !try_module_get(m)
                {
                    // Kernel behaviour: the btf_get above is never put.
                    core::mem::forget(btf);
                    btf_record_free(Some(new_rec));
                    return Err(Errno::ENXIO);
                }
                Some(BtfFieldKptr {
                    btf,
                    btf_id: k.btf_id,
                    pointee: k.pointee.clone(),
                    local: k.local,
                    dtor: k.dtor.clone(),
                    module: k.module.clone(),
                    // A copy may outlive the BTF reference that made the original's
                    // cache safe to keep: it looks the struct meta up at each release.
                    pointee_meta: None,
                })
            }
        };
        new_rec.fields.push(BtfField {
            offset: f.offset,
            size: f.size,
            ty: f.ty,
            kptr,
            graph_root: f.graph_root.clone(),
        });
    }
    Ok(new_rec)
}

/// `btf_record_equal`: the kernel compares the records byte for byte, so pointer
/// identities (BTFs, modules, destructors, value records) count.
pub fn btf_record_equal(a: Option<&BtfRecord>, b: Option<&BtfRecord>) -> bool {
    let (a, b) = match (a, b) {
        (None, None) => return true,
        (Some(a), Some(b)) => (a, b),
        _ => return false,
    };
    if a.fields.len() != b.fields.len()
        || a.field_mask != b.field_mask
        || (
            a.spin_lock_off,
            a.res_spin_lock_off,
            a.timer_off,
            a.wq_off,
            a.refcount_off,
            a.task_work_off,
        ) != (
            b.spin_lock_off,
            b.res_spin_lock_off,
            b.timer_off,
            b.wq_off,
            b.refcount_off,
            b.task_work_off,
        )
    {
        return false;
    }
    a.fields.iter().zip(&b.fields).all(|(x, y)| {
        x.offset == y.offset
            && x.size == y.size
            && x.ty == y.ty
            && x.graph_root == y.graph_root
            && match (&x.kptr, &y.kptr) {
                (None, None) => true,
                (Some(p), Some(q)) => {
                    p.btf.addr() == q.btf.addr()
                        && p.btf_id == q.btf_id
                        && p.dtor == q.dtor
                        && p.module.as_ref().map(|m| m.name().as_ptr())
                            == q.module.as_ref().map(|m| m.name().as_ptr())
                }
                _ => false,
            }
    })
}
