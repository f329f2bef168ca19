//! Struct metas: the records of program types that objects from `bpf_obj_new` can have
//! (`btf_parse_struct_metas`, `btf_check_ownership_depth`, and the struct-meta part of
//! `btf_parse`, kernel/bpf/btf.c). The table's types are the records' own
//! ([`super::field`]); `BPF_BTF_LOAD` is [`crate::syscall::bpf_btf_load`].

use alloc::vec;
use alloc::vec::Vec;

use super::field::{BtfFieldType as F, BtfStructMetas, KptrBtf, set_struct_meta_tab};
use super::find::{Found, find_by_name_kind, find_kptr};
use super::parse::{btf_check_and_fixup_fields, btf_parse_fields};
use crate::btf::uapi::BtfKind;
use crate::btf::{BtfRef, BtfStage, KernelBtfs};
use crate::errno::{Errno, KResult};
use crate::profile::Semantics;
use crate::sync::Arc;

/// `alloc_obj_fields`: the special structs that make a program struct an allocatable
/// object. Profile flag `refcount` adds `bpf_refcount`.
fn alloc_obj_fields(sem: &Semantics) -> &'static [&'static str] {
    if sem.refcount {
        &[
            "bpf_spin_lock",
            "bpf_list_head",
            "bpf_list_node",
            "bpf_rb_root",
            "bpf_rb_node",
            "bpf_refcount",
        ]
    } else {
        &[
            "bpf_spin_lock",
            "bpf_list_head",
            "bpf_list_node",
            "bpf_rb_root",
            "bpf_rb_node",
        ]
    }
}

/// The mask struct metas parse with. Profile flags `struct_meta_kptrs`, `res_spin_lock`.
pub fn struct_meta_mask(sem: &Semantics) -> F {
    let mut m = F::SPIN_LOCK
        .or(F::LIST_HEAD)
        .or(F::LIST_NODE)
        .or(F::RB_ROOT)
        .or(F::RB_NODE)
        .or(F::REFCOUNT);
    if sem.res_spin_lock {
        m = m.or(F::RES_SPIN_LOCK);
    }
    if sem.struct_meta_kptrs {
        m = m.or(F::KPTR);
    }
    F::known_mask(m, sem)
}

/// `btf_parse_struct_metas`: a record for every STRUCT with a member whose direct type
/// is a special struct (or, with `struct_meta_kptrs`, a kptr-tagged pointer). A
/// failing or empty record fails the whole table (empty: -EFAULT).
pub fn btf_parse_struct_metas(
    btf: &BtfRef,
    kernel: &KernelBtfs,
    sem: &Semantics,
) -> KResult<Option<BtfStructMetas>> {
    let d = btf.data();
    let mut aof: Vec<u32> = Vec::new();
    for name in alloc_obj_fields(sem) {
        if let Ok(id) = find_by_name_kind(d, name.as_bytes(), BtfKind::Struct) {
            aof.push(id);
        }
    }
    let n = d.nr_types();
    if sem.struct_meta_kptrs {
        for i in 1..n {
            let t = d.type_by_id(i).ok_or(Errno::EINVAL)?;
            if let Ok(Found::Found(_)) = find_kptr(d, t, 0, F::KPTR, sem) {
                aof.push(i);
            }
        }
    }
    if aof.is_empty() {
        return Ok(None);
    }
    aof.sort_unstable();
    let mut types = Vec::new();
    let mask = struct_meta_mask(sem);
    for i in 1..n {
        let Some(t) = d.type_by_id(i) else { continue };
        if !t.is_struct_only() || !t.members().any(|m| aof.binary_search(&m.type_id).is_ok()) {
            continue;
        }
        match btf_parse_fields(btf, kernel, i, mask, t.size(), sem)
            .map_err(|e| crate::why::within(e, i, None, None))?
        {
            Some(rec) => types.push((i, rec)),
            None => {
                return Err(crate::why::refuse(
                    Errno::EFAULT,
                    "btf_parse_struct_metas",
                    i,
                    None,
                    || {
                        alloc::string::String::from(
                            "a member of a special type, but no field recorded (a special struct of another kernel's size?)",
                        )
                    },
                ));
            }
        }
    }
    Ok(Some(BtfStructMetas { types }))
}

const BTF_MAX_OWNERSHIP_DEPTH: i32 = 8;

/// `btf_owned_type_idx`: the struct-meta index a field owns, if any.
fn owned_idx(
    btf: &BtfRef,
    tab: &BtfStructMetas,
    f: &super::field::BtfField,
) -> KResult<Option<usize>> {
    let id = if let Some(g) = &f.graph_root {
        g.value_btf_id
    } else if f.ty == F::KPTR_REF || f.ty == F::KPTR_PERCPU {
        match &f.kptr {
            Some(k) if !matches!(&k.btf, KptrBtf::Held(b) if b.is_kernel()) => {
                let _ = btf;
                k.btf_id
            }
            _ => return Ok(None),
        }
    } else {
        return Ok(None);
    };
    match tab.types.binary_search_by_key(&id, |(i, _)| *i) {
        Ok(i) => Ok(Some(i)),
        Err(_) if f.graph_root.is_some() => Err(Errno::EFAULT),
        Err(_) => Ok(None),
    }
}

fn ownership_depth(
    btf: &BtfRef,
    tab: &BtfStructMetas,
    depth: &mut [u8],
    idx: usize,
    left: i32,
) -> KResult<i32> {
    if left == 0 {
        return Err(crate::why::refuse(
            Errno::ELOOP,
            "btf_check_ownership_depth",
            tab.types[idx].0,
            None,
            || {
                alloc::string::String::from(
                    "owned types form a cycle or a chain deeper than BTF_MAX_OWNERSHIP_DEPTH (8)",
                )
            },
        ));
    }
    if depth[idx] == 0 {
        let mut max = 0;
        for f in &tab.types[idx].1.fields {
            if let Some(o) = owned_idx(btf, tab, f)? {
                max = max.max(ownership_depth(btf, tab, depth, o, left - 1)?);
            }
        }
        depth[idx] = (max + 1) as u8;
    }
    if depth[idx] as i32 > left {
        Err(Errno::ELOOP)
    } else {
        Ok(depth[idx] as i32)
    }
}

/// `btf_check_ownership_depth`: no chain of owned types (graph roots and local
/// referenced kptrs) deeper than `BTF_MAX_OWNERSHIP_DEPTH`, no cycle (-ELOOP).
pub fn btf_check_ownership_depth(btf: &BtfRef, tab: &BtfStructMetas) -> KResult<()> {
    let mut depth = vec![0u8; tab.types.len()];
    for i in 0..tab.types.len() {
        ownership_depth(btf, tab, &mut depth, i, BTF_MAX_OWNERSHIP_DEPTH)?;
    }
    Ok(())
}

/// The struct-meta part of `btf_parse` (kernel/bpf/btf.c), after the verifier:
/// `btf_parse_struct_metas`, `btf_check_and_fixup_fields` on each record, then (profile
/// flag `ownership_depth`) `btf_check_ownership_depth`; the table is attached to the
/// BTF (`btf->struct_meta_tab`). A failure names its stage; as in the kernel it logs no
/// line of its own. Profile flags: those of `btf_parse_fields`.
pub fn btf_parse_struct_meta_tab(
    btf: &BtfRef,
    kernel: &KernelBtfs,
    sem: &Semantics,
) -> Result<(), (Errno, BtfStage)> {
    let tab =
        btf_parse_struct_metas(btf, kernel, sem).map_err(|e| (e, BtfStage::ParseStructMetas))?;
    let Some(mut tab) = tab else { return Ok(()) };
    // The fix-ups read other entries (does the contained type have a meta, does it own
    // anything): take that summary first, then fix each record up.
    let summary: Vec<(u32, bool)> = tab
        .types
        .iter()
        .map(|(id, r)| (*id, r.has_field(F::GRAPH_ROOT)))
        .collect();
    let lookup = |id: u32| {
        summary
            .binary_search_by_key(&id, |(i, _)| *i)
            .ok()
            .map(|i| summary[i].1)
    };
    for (id, r) in tab.types.iter_mut() {
        btf_check_and_fixup_fields(btf, &lookup, r, sem)
            .map_err(|e| crate::why::within(e, *id, None, None))
            .map_err(|e| (e, BtfStage::CheckAndFixupFields))?;
    }
    if sem.ownership_depth {
        btf_check_ownership_depth(btf, &tab).map_err(|e| (e, BtfStage::CheckOwnershipDepth))?;
    }
    set_struct_meta_tab(btf, Arc::new(tab));
    Ok(())
}
