//! Maps of maps (kernel/bpf/map_in_map.c): the inner map template an ARRAY_OF_MAPS or
//! HASH_OF_MAPS keeps (`bpf_map_meta_alloc`, `bpf_map_meta_free`) and the check a map
//! passes when it is stored into one (`bpf_map_fd_get_ptr` with the template's
//! `map_meta_equal`: `bpf_map_meta_equal`, `array_map_meta_equal` of
//! kernel/bpf/arraymap.c, `xsk_map_meta_equal` of net/xdp/xskmap.c).
//!
//! Every profile here (v6.3 and later) has the v6.2 shape: the template duplicates the
//! inner map's `btf_record` and holds its BTF, and templates compare with
//! `btf_record_equal`. Older kernels (v6.1) refused an inner map with a `bpf_spin_lock`
//! (-ENOTSUPP, lifted by "bpf: Allow locking bpf_spin_lock in inner map values", v6.2)
//! and compared `timer_off` and the kptr table instead of the record.
//! Profile flag: `inner_percpu_array_max_entries`.

use alloc::string::String;

use super::bpf_map::BpfMap;
use super::types::*;
use crate::btf::{btf_get, btf_put};
use crate::errno::{Errno, KResult};
use crate::profile::Semantics;
use crate::record::{btf_record_dup, btf_record_equal, btf_record_free};

/// A map type's `ops->map_meta_equal`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum MetaEqualOp {
    /// `bpf_map_meta_equal`.
    Generic,
    /// `array_map_meta_equal`.
    Array,
    /// `percpu_array_map_ops`: `array_map_meta_equal` or `bpf_map_meta_equal` by profile.
    PercpuArray,
    /// `xsk_map_meta_equal`.
    Xsk,
}

/// `ops->map_meta_equal` of map type `t` (kernel/bpf/*.c, net/core/sock_map.c,
/// net/xdp/xskmap.c); `None` for the ops without one: PROG_ARRAY, the map-in-map
/// types, CGROUP_STORAGE and PERCPU_CGROUP_STORAGE, STRUCT_OPS.
fn meta_equal_op(t: u32) -> Option<MetaEqualOp> {
    Some(match t {
        BPF_MAP_TYPE_ARRAY => MetaEqualOp::Array,
        BPF_MAP_TYPE_PERCPU_ARRAY => MetaEqualOp::PercpuArray,
        BPF_MAP_TYPE_XSKMAP => MetaEqualOp::Xsk,
        BPF_MAP_TYPE_UNSPEC
        | BPF_MAP_TYPE_PROG_ARRAY
        | BPF_MAP_TYPE_ARRAY_OF_MAPS
        | BPF_MAP_TYPE_HASH_OF_MAPS
        | BPF_MAP_TYPE_CGROUP_STORAGE
        | BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE
        | BPF_MAP_TYPE_STRUCT_OPS => return None,
        t if t <= BPF_MAP_TYPE_ARENA => MetaEqualOp::Generic,
        _ => return None,
    })
}

/// `bpf_map_meta_alloc` (kernel/bpf/map_in_map.c): the template of a map-in-map's
/// inner maps, made from the map behind `inner_map_fd`. -EBADF without one
/// (`__bpf_map_get`); -EINVAL when it is itself a map of maps (one level only);
/// -ENOTSUPP when its type has no `map_meta_equal`. The template copies the type,
/// sizes, flags and `max_entries`, duplicates the record (`btf_record_dup`: new
/// references on kernel BTFs and modules, -ENXIO when a module is going, with that
/// field's BTF reference leaked as in the kernel) and then takes a reference on the
/// inner map's BTF. On failure nothing else stays held. No profile flag changes it.
pub fn bpf_map_meta_alloc(inner_map: Option<&BpfMap>) -> KResult<BpfMap> {
    let inner = inner_map.ok_or(Errno::EBADF)?;
    if inner.inner_map_meta.is_some() {
        return Err(Errno::EINVAL);
    }
    if meta_equal_op(inner.map_type).is_none() {
        return Err(Errno::ENOTSUPP);
    }
    // btf_record_dup: NULL for a NULL or error record.
    let record = match inner.record.as_ref() {
        Some(r) => Some(btf_record_dup(r)?),
        None => None,
    };
    // Same BTF as the inner map: graph roots in the record point into it.
    let btf = inner.btf.as_ref().map(btf_get);
    Ok(BpfMap {
        map_type: inner.map_type,
        key_size: inner.key_size,
        value_size: inner.value_size,
        max_entries: inner.max_entries,
        map_flags: inner.map_flags,
        name: String::new(),
        inner_map_meta: None,
        record,
        record_error: None,
        btf,
        modelled: inner.modelled,
    })
}

/// `bpf_map_meta_free` (kernel/bpf/map_in_map.c): frees the template's record
/// (`bpf_map_free_record`, which puts the references `btf_record_dup` took), then puts
/// its BTF. No profile flag changes it.
pub fn bpf_map_meta_free(mut meta: BpfMap) {
    btf_record_free(meta.record.take());
    if let Some(b) = meta.btf.take() {
        btf_put(b);
    }
}

/// `bpf_map_meta_equal` (kernel/bpf/map_in_map.c): same type, key and value sizes,
/// `map_flags` and record (`btf_record_equal`: field by field, BTF and module pointers
/// included; a record that failed to parse equals none). `max_entries` is not
/// compared. No profile flag changes it.
pub fn bpf_map_meta_equal(meta0: &BpfMap, meta1: &BpfMap) -> bool {
    meta0.map_type == meta1.map_type
        && meta0.key_size == meta1.key_size
        && meta0.value_size == meta1.value_size
        && meta0.map_flags == meta1.map_flags
        && btf_record_equal(meta0.record.as_ref(), meta1.record.as_ref())
}

/// `array_map_meta_equal` (kernel/bpf/arraymap.c): [`bpf_map_meta_equal`], and the
/// same `max_entries` unless the template has `BPF_F_INNER_MAP`.
fn array_map_meta_equal(meta0: &BpfMap, meta1: &BpfMap) -> bool {
    bpf_map_meta_equal(meta0, meta1)
        && (meta0.map_flags & BPF_F_INNER_MAP != 0 || meta0.max_entries == meta1.max_entries)
}

/// `xsk_map_meta_equal` (net/xdp/xskmap.c): the same `max_entries`, then
/// [`bpf_map_meta_equal`].
fn xsk_map_meta_equal(meta0: &BpfMap, meta1: &BpfMap) -> bool {
    meta0.max_entries == meta1.max_entries && bpf_map_meta_equal(meta0, meta1)
}

/// `bpf_map_fd_get_ptr` (kernel/bpf/map_in_map.c): may the map behind `ufd`
/// (`inner_map`) be stored into the map of maps `map`? -EBADF without a map; -EINVAL
/// unless the template's `map_meta_equal` accepts it ([`bpf_map_meta_equal`]; arrays
/// also compare `max_entries` unless the template has `BPF_F_INNER_MAP`, XSKMAPs
/// always, per-CPU arrays with profile flag `inner_percpu_array_max_entries`). The
/// kernel reaches it only for the map-in-map types: for any other `map` the model
/// answers -EINVAL. The reference the kernel then takes (`bpf_map_inc`) is not
/// modelled.
pub fn bpf_map_fd_get_ptr(
    map: &BpfMap,
    inner_map: Option<&BpfMap>,
    sem: &Semantics,
) -> KResult<()> {
    let inner = inner_map.ok_or(Errno::EBADF)?;
    let Some(meta) = map.inner_map_meta.as_deref() else {
        return Err(Errno::EINVAL);
    };
    let equal = match meta_equal_op(meta.map_type) {
        Some(MetaEqualOp::Generic) => bpf_map_meta_equal(meta, inner),
        Some(MetaEqualOp::Array) => array_map_meta_equal(meta, inner),
        Some(MetaEqualOp::PercpuArray) if sem.inner_percpu_array_max_entries => {
            array_map_meta_equal(meta, inner)
        }
        Some(MetaEqualOp::PercpuArray) => bpf_map_meta_equal(meta, inner),
        Some(MetaEqualOp::Xsk) => xsk_map_meta_equal(meta, inner),
        // bpf_map_meta_alloc refused such a template.
        None => false,
    };
    if equal { Ok(()) } else { Err(Errno::EINVAL) }
}
