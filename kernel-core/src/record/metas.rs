//! Struct metas: the records of program types that objects from `bpf_obj_new` can have
//! (`btf_parse_struct_metas`, `btf_find_struct_meta`, `btf_check_ownership_depth`),
//! and `BPF_BTF_LOAD` as a whole (`btf_parse`, kernel/bpf/btf.c).

use alloc::vec;
use alloc::vec::Vec;

use super::field::{BtfFieldType as F, BtfRecord, KptrBtf};
use super::find::{Found, find_by_name_kind, find_kptr};
use super::parse::{btf_check_and_fixup_fields, btf_parse_fields};
use crate::btf::uapi::BtfKind;
use crate::btf::{
    Btf, BtfOrigin, BtfParseError, BtfRef, BtfStage, KernelBtfs, ParseOpts, btf_verify,
};
use crate::errno::{Errno, KResult};
use crate::profile::Semantics;
use crate::sync::Arc;

/// `struct btf_struct_metas`: (type id, record), sorted by type id.
pub struct BtfStructMetas {
    types: Vec<(u32, BtfRecord)>,
}

impl BtfStructMetas {
    /// `btf_find_struct_meta`.
    pub fn find(&self, btf_id: u32) -> Option<&BtfRecord> {
        self.get(self.position(btf_id)?)
    }

    /// Where `btf_id`'s record is in the table.
    pub fn position(&self, btf_id: u32) -> Option<usize> {
        self.types.binary_search_by_key(&btf_id, |(id, _)| *id).ok()
    }

    /// The record at a position from [`Self::position`].
    pub fn get(&self, at: usize) -> Option<&BtfRecord> {
        self.types.get(at).map(|(_, r)| r)
    }

    /// The entries.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &BtfRecord)> {
        self.types.iter().map(|(i, r)| (*i, r))
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.types.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.types.is_empty()
    }
}

/// A local type's record: the struct-meta table it lives in and its position there.
#[derive(Clone)]
pub struct MetaRec {
    tab: Arc<BtfStructMetas>,
    at: usize,
}

impl MetaRec {
    /// The record (`btf_find_struct_meta(btf, id)->record`).
    pub fn rec(&self) -> Option<&BtfRecord> {
        self.tab.get(self.at)
    }
}

impl core::fmt::Debug for MetaRec {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("MetaRec").field("at", &self.at).finish()
    }
}

/// `btf_find_struct_meta` (kernel/bpf/btf.c) as a handle that keeps the table alive.
pub fn find_meta(btf: &Btf, id: u32) -> Option<MetaRec> {
    let tab = btf.struct_metas()?;
    let at = tab.position(id)?;
    Some(MetaRec { tab, at })
}

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

/// `BPF_BTF_LOAD` (`btf_parse`, then `btf_new_fd`'s id in the kernel's IDR): the
/// verifier, then struct metas, their fix-ups and (flag `ownership_depth`) the
/// ownership-depth check. Struct-meta failures carry no
/// log line of their own, as in the kernel: the log is the type dump. Profile flags:
/// those of the verifier and of `btf_parse_fields`.
pub fn bpf_btf_load(
    kernel: &KernelBtfs,
    data: &[u8],
    log_level: u32,
    sem: &Semantics,
) -> Result<(BtfRef, Vec<u8>), BtfParseError> {
    let opts = ParseOpts {
        log_level,
        resolve: true,
        sem: *sem,
    };
    let (d, log) = btf_verify(data.into(), None, &opts)?;
    let log = log.into_bytes();
    let mut btf = Btf::new(d, "", BtfOrigin::User);
    let fail = |errno: Errno, stage: BtfStage, log: &Vec<u8>| {
        BtfParseError::after_verifier(errno, stage, log.clone())
    };
    let tab = btf_parse_struct_metas(&btf, kernel, sem)
        .map_err(|e| fail(e, BtfStage::ParseStructMetas, &log))?;
    if let Some(mut tab) = tab {
        // The fix-ups read other entries (does the contained type have a meta, does
        // it own anything): take that summary first, then fix each record up.
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
            btf_check_and_fixup_fields(&btf, &lookup, r, sem)
                .map_err(|e| crate::why::within(e, *id, None, None))
                .map_err(|e| fail(e, BtfStage::CheckAndFixupFields, &log))?;
        }
        if sem.ownership_depth {
            btf_check_ownership_depth(&btf, &tab)
                .map_err(|e| fail(e, BtfStage::CheckOwnershipDepth, &log))?;
        }
        btf.set_struct_metas(Arc::new(tab));
    }
    // btf_new_fd: the id is allocated only once btf_parse (struct metas and their
    // fix-ups included) has succeeded (btf_alloc_id).
    crate::btf::BtfIdr::publish(kernel.idr(), &mut btf)
        .map_err(|e| fail(e, BtfStage::AllocId, &log))?;
    Ok((btf, log))
}
