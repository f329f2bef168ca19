//! The map types' own `map_check_btf` operations (`ops->map_check_btf`), as
//! `map_check_btf` (kernel/bpf/syscall.c) calls them: `array_map_check_btf`
//! (kernel/bpf/arraymap.c), `bpf_local_storage_map_check_btf`
//! (kernel/bpf/bpf_local_storage.c), `cgroup_storage_check_btf`
//! (kernel/bpf/local_storage.c), `trie_check_btf` (kernel/bpf/lpm_trie.c),
//! `bloom_map_check_btf` (kernel/bpf/bloom_filter.c), `arena_map_check_btf`
//! (kernel/bpf/arena.c) and `map_check_no_btf` (kernel/bpf/syscall.c).
//!
//! Each sees the key and value types `map_check_btf` resolved with `btf_type_id_size`
//! (typedefs and modifiers followed); the key is the kernel's `btf_void` when no key
//! type id was given.

use super::bpf_map::BpfMap;
use super::types::*;
use crate::btf::uapi::{BtfKind, btf_int_bits, btf_int_offset};
use crate::btf::{BtfData, TypeRef};
use crate::errno::{Errno, KResult};

/// The map type's own `map_check_btf` operation.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum CheckBtfOp {
    /// No operation: a keyless BTF is -EINVAL.
    None,
    /// `map_check_no_btf`: -ENOTSUPP.
    NoBtf,
    /// `array_map_check_btf`.
    Array,
    /// `bpf_local_storage_map_check_btf`.
    LocalStorage,
    /// `cgroup_storage_check_btf`.
    CgroupStorage,
    /// `trie_check_btf`.
    Trie,
    /// `bloom_map_check_btf`.
    Bloom,
    /// `arena_map_check_btf`.
    Arena,
    /// `htab_map_check_btf`-less hash maps of these releases: no op.
    Hash,
}

/// The local storages (`bpf_local_storage_map_check_btf`).
pub(crate) fn is_local_storage(t: u32) -> bool {
    matches!(
        t,
        BPF_MAP_TYPE_SK_STORAGE
            | BPF_MAP_TYPE_INODE_STORAGE
            | BPF_MAP_TYPE_TASK_STORAGE
            | BPF_MAP_TYPE_CGRP_STORAGE
    )
}

/// `ops->map_check_btf` of map type `t`.
pub(crate) fn check_btf_op(t: u32) -> CheckBtfOp {
    use CheckBtfOp::*;
    match t {
        BPF_MAP_TYPE_ARRAY | BPF_MAP_TYPE_PERCPU_ARRAY => Array,
        BPF_MAP_TYPE_HASH
        | BPF_MAP_TYPE_PERCPU_HASH
        | BPF_MAP_TYPE_LRU_HASH
        | BPF_MAP_TYPE_LRU_PERCPU_HASH => Hash,
        t if is_local_storage(t) => LocalStorage,
        BPF_MAP_TYPE_CGROUP_STORAGE | BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE => CgroupStorage,
        BPF_MAP_TYPE_LPM_TRIE => Trie,
        BPF_MAP_TYPE_BLOOM_FILTER => Bloom,
        BPF_MAP_TYPE_ARENA => Arena,
        BPF_MAP_TYPE_PERF_EVENT_ARRAY
        | BPF_MAP_TYPE_CGROUP_ARRAY
        | BPF_MAP_TYPE_ARRAY_OF_MAPS
        | BPF_MAP_TYPE_HASH_OF_MAPS
        | BPF_MAP_TYPE_STACK_TRACE
        | BPF_MAP_TYPE_DEVMAP
        | BPF_MAP_TYPE_DEVMAP_HASH
        | BPF_MAP_TYPE_CPUMAP
        | BPF_MAP_TYPE_XSKMAP
        | BPF_MAP_TYPE_SOCKMAP
        | BPF_MAP_TYPE_SOCKHASH => NoBtf,
        _ => None,
    }
}

/// `BTF_INFO_KIND(t->info) == BTF_KIND_INT` with `BTF_INT_BITS == bits` and no
/// `BTF_INT_OFFSET`, on the already resolved key (`None` is `btf_void`).
fn key_is_int(key: Option<&TypeRef<'_>>, bits: u32) -> bool {
    key.is_some_and(|k| {
        k.kind() == BtfKind::Int
            && btf_int_bits(k.int_data()) == bits
            && btf_int_offset(k.int_data()) == 0
    })
}

/// `array_map_check_btf` (kernel/bpf/arraymap.c): a keyless BTF only for the
/// global-data array (ARRAY, one entry, a DATASEC value); otherwise a 32-bit INT key.
fn array_map_check_btf(map: &BpfMap, key: Option<&TypeRef<'_>>, value: &TypeRef<'_>) -> bool {
    match key {
        None => {
            map.map_type == BPF_MAP_TYPE_ARRAY
                && map.max_entries == 1
                && value.kind() == BtfKind::Datasec
        }
        k => key_is_int(k, 32),
    }
}

/// `cgroup_storage_check_btf` (kernel/bpf/local_storage.c). With a 16-byte key
/// (`attach_type_isolated`) the key is `struct bpf_cgroup_storage_key`: a STRUCT of
/// exactly two members, a 64-bit regular int at byte 0 and a 32-bit one at byte 8, each
/// checked by `btf_member_is_reg_int` (which resolves the member's typedefs and
/// modifiers, as vmlinux.h's `__u64`/`__u32`). Otherwise the key is a 64-bit INT.
fn cgroup_storage_check_btf(d: &BtfData, map: &BpfMap, key: Option<&TypeRef<'_>>) -> bool {
    if map.key_size != 16 {
        return key_is_int(key, 64);
    }
    let Some(k) = key else { return false };
    if k.kind() != BtfKind::Struct || k.vlen() != 2 {
        return false;
    }
    d.btf_member_is_reg_int(k, &k.member(0), 0, 8) && d.btf_member_is_reg_int(k, &k.member(1), 8, 4)
}

/// Runs the map type's own `map_check_btf` on the resolved key (`key_id` 0: none)
/// and value types: -ENOTSUPP for `map_check_no_btf`, -EINVAL when the check fails.
/// No profile flag changes these checks.
pub(crate) fn type_check_btf(map: &BpfMap, d: &BtfData, key_id: u32, value_id: u32) -> KResult<()> {
    let key = if key_id == 0 {
        None
    } else {
        d.type_by_id(key_id)
    };
    let key = key.as_ref();
    let Some(value) = d.type_by_id(value_id) else {
        return Err(Errno::EINVAL);
    };
    let op = check_btf_op(map.map_type);
    let ok = match op {
        // arena_map_check_btf returns 0.
        CheckBtfOp::None | CheckBtfOp::Hash | CheckBtfOp::Arena => true,
        CheckBtfOp::NoBtf => {
            return Err(crate::why::refuse(
                Errno::ENOTSUPP,
                "map_check_no_btf",
                0,
                None,
                || alloc::format!("a {} map takes no BTF", map_type_name(map.map_type)),
            ));
        }
        CheckBtfOp::Array => array_map_check_btf(map, key, &value),
        // bpf_local_storage_map_check_btf: a 32-bit INT key.
        CheckBtfOp::LocalStorage => key_is_int(key, 32),
        CheckBtfOp::CgroupStorage => cgroup_storage_check_btf(d, map, key),
        // trie_check_btf: the key is a STRUCT.
        CheckBtfOp::Trie => key.is_some_and(|k| k.kind() == BtfKind::Struct),
        // bloom_map_check_btf: keyless only.
        CheckBtfOp::Bloom => key.is_none(),
    };
    if ok {
        return Ok(());
    }
    let (func, rule) = match op {
        CheckBtfOp::Array => (
            "array_map_check_btf",
            "the key must be a 32-bit int (or absent for a one-entry ARRAY of a DATASEC)",
        ),
        CheckBtfOp::LocalStorage => (
            "bpf_local_storage_map_check_btf",
            "the key must be a 32-bit int",
        ),
        CheckBtfOp::CgroupStorage => (
            "cgroup_storage_check_btf",
            "the key must be a 64-bit int, or struct bpf_cgroup_storage_key for a 16-byte key",
        ),
        CheckBtfOp::Trie => ("trie_check_btf", "the key must be a struct"),
        _ => ("bloom_map_check_btf", "a bloom filter takes no key type"),
    };
    Err(crate::why::refuse(Errno::EINVAL, func, 0, None, || {
        alloc::string::String::from(rule)
    }))
}
