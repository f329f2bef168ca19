//! `find_and_alloc_map` and `map_check_btf` (kernel/bpf/syscall.c), with the per-type
//! `map_alloc_check` operations the model covers (the `map_check_btf` operations are in
//! `map::check_btf`, the map-in-map ones in `map::map_in_map`). The entry point,
//! `map_create`, is [`crate::syscall::map_create`].

use alloc::boxed::Box;
use alloc::string::String;

use super::bpf_map::{BpfMap, MapAttr};
use super::check_btf::{CheckBtfOp, check_btf_op, is_local_storage, type_check_btf};
use super::map_in_map::bpf_map_meta_alloc;
use super::types::*;
use crate::btf::{BtfRef, KernelBtfs};
use crate::errno::{Errno, KResult};
use crate::profile::Semantics;
use crate::record::{BtfFieldType as F, btf_check_and_fixup_record, btf_parse_fields};
use crate::why::{refuse, within};

fn flags_access_ok(f: u32) -> bool {
    f & (BPF_F_RDONLY_PROG | BPF_F_WRONLY_PROG) != (BPF_F_RDONLY_PROG | BPF_F_WRONLY_PROG)
}

const PCPU_MIN_UNIT_SIZE: u64 = 32 << 10;
const KMALLOC_MAX_SIZE: u64 = 1 << 22;
const HTAB_ELEM_SIZE: u64 = 48;

/// `array_map_alloc_check` (kernel/bpf/arraymap.c).
fn array_alloc_check(a: &MapAttr<'_>) -> KResult<()> {
    let percpu = a.map_type == BPF_MAP_TYPE_PERCPU_ARRAY;
    let mask = BPF_F_NUMA_NODE
        | BPF_F_MMAPABLE
        | BPF_F_ACCESS_MASK
        | BPF_F_PRESERVE_ELEMS
        | BPF_F_INNER_MAP;
    if a.max_entries == 0
        || a.key_size != 4
        || a.value_size == 0
        || a.map_flags & !mask != 0
        || !flags_access_ok(a.map_flags)
        || (percpu && a.map_flags & BPF_F_NUMA_NODE != 0)
    {
        return Err(Errno::EINVAL);
    }
    if a.map_type != BPF_MAP_TYPE_ARRAY && a.map_flags & (BPF_F_MMAPABLE | BPF_F_INNER_MAP) != 0 {
        return Err(Errno::EINVAL);
    }
    if a.map_type != BPF_MAP_TYPE_PERF_EVENT_ARRAY && a.map_flags & BPF_F_PRESERVE_ELEMS != 0 {
        return Err(Errno::EINVAL);
    }
    if a.value_size > i32::MAX as u32 {
        return Err(Errno::E2BIG);
    }
    if percpu && (a.value_size as u64).div_ceil(8) * 8 > PCPU_MIN_UNIT_SIZE {
        return Err(Errno::E2BIG);
    }
    Ok(())
}

/// `htab_map_alloc_check` (kernel/bpf/hashtab.c).
fn htab_alloc_check(a: &MapAttr<'_>) -> KResult<()> {
    let percpu = matches!(
        a.map_type,
        BPF_MAP_TYPE_PERCPU_HASH | BPF_MAP_TYPE_LRU_PERCPU_HASH
    );
    let lru = matches!(
        a.map_type,
        BPF_MAP_TYPE_LRU_HASH | BPF_MAP_TYPE_LRU_PERCPU_HASH
    );
    let prealloc = a.map_flags & BPF_F_NO_PREALLOC == 0;
    let percpu_lru = a.map_flags & BPF_F_NO_COMMON_LRU != 0;
    let mask = BPF_F_NO_PREALLOC
        | BPF_F_NO_COMMON_LRU
        | BPF_F_NUMA_NODE
        | BPF_F_ACCESS_MASK
        | BPF_F_ZERO_SEED;
    if a.map_flags & !mask != 0 || !flags_access_ok(a.map_flags) {
        return Err(Errno::EINVAL);
    }
    if !lru && percpu_lru {
        return Err(Errno::EINVAL);
    }
    if lru && !prealloc {
        return Err(Errno::ENOTSUPP);
    }
    if a.map_flags & BPF_F_NUMA_NODE != 0 && (percpu || percpu_lru) {
        return Err(Errno::EINVAL);
    }
    if a.max_entries == 0 || a.key_size == 0 || a.value_size == 0 {
        return Err(Errno::EINVAL);
    }
    if a.key_size as u64 + a.value_size as u64 >= KMALLOC_MAX_SIZE - HTAB_ELEM_SIZE {
        return Err(Errno::E2BIG);
    }
    if percpu && (a.value_size as u64).div_ceil(8) * 8 > PCPU_MIN_UNIT_SIZE {
        return Err(Errno::E2BIG);
    }
    Ok(())
}

/// `bpf_local_storage_map_alloc_check` (kernel/bpf/bpf_local_storage.c).
fn local_storage_alloc_check(a: &MapAttr<'_>) -> KResult<()> {
    let mask = BPF_F_NO_PREALLOC | BPF_F_CLONE;
    if a.map_flags & !mask != 0
        || a.map_flags & BPF_F_NO_PREALLOC == 0
        || a.max_entries != 0
        || a.key_size != 4
    {
        return Err(Errno::EINVAL);
    }
    if a.value_size == 0 || a.btf_key_type_id == 0 || a.btf_value_type_id == 0 {
        return Err(Errno::EINVAL);
    }
    if a.value_size > (u16::MAX as u32) - 128 {
        return Err(Errno::E2BIG);
    }
    Ok(())
}

/// `bloom_map_alloc_check` and the argument checks of `bloom_map_alloc`.
fn bloom_alloc_check(a: &MapAttr<'_>) -> KResult<()> {
    if a.value_size as u64 > KMALLOC_MAX_SIZE {
        return Err(Errno::E2BIG);
    }
    let mask = BPF_F_NUMA_NODE | BPF_F_ZERO_SEED | BPF_F_ACCESS_MASK;
    if a.key_size != 0
        || a.value_size == 0
        || a.max_entries == 0
        || a.map_flags & !mask != 0
        || !flags_access_ok(a.map_flags)
    {
        return Err(Errno::EINVAL);
    }
    Ok(())
}

/// The other map types' `map_alloc_check` and the argument checks of their
/// `map_alloc` (kernel/bpf/*.c, net/core/sock_map.c), in the kernel's order (the
/// map-in-map types' inner map is checked after, by `bpf_map_meta_alloc`). `None` for
/// the types whose checks depend on the kernel's configuration.
fn other_alloc_check(a: &MapAttr<'_>) -> Option<KResult<()>> {
    let (ks, vs, me, f) = (a.key_size, a.value_size, a.max_entries, a.map_flags);
    let numa_rw = BPF_F_NUMA_NODE | BPF_F_RDONLY | BPF_F_WRONLY;
    let einval = |c: bool| if c { Err(Errno::EINVAL) } else { Ok(()) };
    Some(match a.map_type {
        // fd_array_map_alloc_check, then array_map_alloc_check.
        BPF_MAP_TYPE_PROG_ARRAY
        | BPF_MAP_TYPE_PERF_EVENT_ARRAY
        | BPF_MAP_TYPE_CGROUP_ARRAY
        | BPF_MAP_TYPE_ARRAY_OF_MAPS => {
            if vs != 4 || f & (BPF_F_RDONLY_PROG | BPF_F_WRONLY_PROG) != 0 {
                Err(Errno::EINVAL)
            } else {
                array_alloc_check(a)
            }
        }
        // fd_htab_map_alloc_check, then htab_map_alloc_check.
        BPF_MAP_TYPE_HASH_OF_MAPS => {
            if vs != 4 {
                Err(Errno::EINVAL)
            } else {
                htab_alloc_check(a)
            }
        }
        BPF_MAP_TYPE_REUSEPORT_SOCKARRAY => {
            if vs != 4 && vs != 8 {
                Err(Errno::EINVAL)
            } else {
                array_alloc_check(a)
            }
        }
        // cgroup_storage_map_alloc.
        BPF_MAP_TYPE_CGROUP_STORAGE | BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE => {
            let max = if a.map_type == BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE {
                32768
            } else {
                65407
            };
            if ks != 16 && ks != 8 || vs == 0 {
                Err(Errno::EINVAL)
            } else if vs > max {
                Err(Errno::E2BIG)
            } else {
                einval(
                    f & !(BPF_F_NUMA_NODE | BPF_F_ACCESS_MASK) != 0
                        || !flags_access_ok(f)
                        || me != 0,
                )
            }
        }
        // queue_stack_map_alloc_check.
        BPF_MAP_TYPE_QUEUE | BPF_MAP_TYPE_STACK => {
            if me == 0
                || ks != 0
                || vs == 0
                || f & !(BPF_F_NUMA_NODE | BPF_F_ACCESS_MASK) != 0
                || !flags_access_ok(f)
            {
                Err(Errno::EINVAL)
            } else if vs as u64 > KMALLOC_MAX_SIZE {
                // 6.12 also refused `max_entries >= U32_MAX / value_size` (-E2BIG); the
                // running 6.18 does not (it allocates), nor does 7.2.
                Err(Errno::E2BIG)
            } else {
                Ok(())
            }
        }
        // ringbuf_map_alloc.
        BPF_MAP_TYPE_RINGBUF | BPF_MAP_TYPE_USER_RINGBUF => einval(
            f & !BPF_F_NUMA_NODE != 0
                || ks != 0
                || vs != 0
                || !me.is_power_of_two()
                || me % 4096 != 0,
        ),
        // stack_map_alloc.
        BPF_MAP_TYPE_STACK_TRACE => {
            let build_id = f & BPF_F_STACK_BUILD_ID != 0;
            // perf_event_max_stack is 127 by default.
            let too_deep = if build_id {
                !vs.is_multiple_of(32) || vs / 32 > 127
            } else {
                vs / 8 > 127
            };
            if f & !(numa_rw | BPF_F_STACK_BUILD_ID) != 0
                || me == 0
                || ks != 4
                || vs < 8
                || !vs.is_multiple_of(8)
                || too_deep
            {
                Err(Errno::EINVAL)
            } else if me > 1 << 31 {
                Err(Errno::E2BIG)
            } else {
                Ok(())
            }
        }
        // trie_alloc (value limit of 6.18 and 7.2; 6.12 had 4,194,008).
        BPF_MAP_TYPE_LPM_TRIE => einval(
            me == 0
                || f & BPF_F_NO_PREALLOC == 0
                || f & !(BPF_F_NO_PREALLOC | BPF_F_NUMA_NODE | BPF_F_ACCESS_MASK) != 0
                || !flags_access_ok(f)
                || !(5..=260).contains(&ks)
                || !(1..=4_194_024).contains(&vs),
        ),
        // dev_map_alloc_check.
        BPF_MAP_TYPE_DEVMAP | BPF_MAP_TYPE_DEVMAP_HASH => {
            if me == 0 || ks != 4 || vs != 4 && vs != 8 || f & !numa_rw != 0 {
                Err(Errno::EINVAL)
            } else {
                einval(a.map_type == BPF_MAP_TYPE_DEVMAP_HASH && me > 1 << 31)
            }
        }
        // cpu_map_alloc (the NR_CPUS bound is the kernel's configuration).
        BPF_MAP_TYPE_CPUMAP => {
            einval(me == 0 || ks != 4 || vs != 4 && vs != 8 || f & !BPF_F_NUMA_NODE != 0)
        }
        BPF_MAP_TYPE_XSKMAP => einval(me == 0 || ks != 4 || vs != 4 || f & !numa_rw != 0),
        // sock_map_alloc, sock_hash_alloc.
        BPF_MAP_TYPE_SOCKMAP => einval(
            me == 0 || me > i32::MAX as u32 || ks != 4 || vs != 4 && vs != 8 || f & !numa_rw != 0,
        ),
        BPF_MAP_TYPE_SOCKHASH => {
            if me == 0 || ks == 0 || vs != 4 && vs != 8 || f & !numa_rw != 0 {
                Err(Errno::EINVAL)
            } else if ks > 512 {
                Err(Errno::E2BIG)
            } else {
                einval(me > 1 << 27)
            }
        }
        // arena_map_alloc.
        BPF_MAP_TYPE_ARENA => {
            let ok = BPF_F_SEGV_ON_FAULT | BPF_F_MMAPABLE | BPF_F_NO_USER_CONV;
            if ks != 0 || vs != 0 || me == 0 || f & BPF_F_MMAPABLE == 0 || f & !ok != 0 {
                Err(Errno::EINVAL)
            } else if me > 1 << 20 {
                Err(Errno::E2BIG)
            } else {
                Ok(())
            }
        }
        // bpf_struct_ops_map_alloc_check: needs a vmlinux value type id, never given here.
        BPF_MAP_TYPE_STRUCT_OPS => Err(Errno::EINVAL),
        _ => return None,
    })
}

/// The map types whose own checks the model implements: all but INODE_STORAGE (the
/// BPF LSM's presence). The map-in-map types are modelled given their inner map
/// ([`MapAttr::inner_map`]); without one the model answers -EBADF, the kernel's answer
/// for an `inner_map_fd` with nothing open behind it.
pub fn map_type_modelled(t: u32) -> bool {
    t != BPF_MAP_TYPE_INODE_STORAGE && t != BPF_MAP_TYPE_UNSPEC && t <= BPF_MAP_TYPE_ARENA
}

/// `bpf_map_flags_retain_permanent` (kernel/bpf/syscall.c): `BPF_F_RDONLY` and
/// `BPF_F_WRONLY` describe the fd, not the map, and are not kept in `map->map_flags`.
fn bpf_map_flags_retain_permanent(flags: u32) -> u32 {
    flags & !(BPF_F_RDONLY | BPF_F_WRONLY)
}

/// `bpf_obj_name_cpy`: the kernel's (Latin-1) `isalnum`, `_` and `.` only, at most 15
/// bytes (-EINVAL otherwise).
pub(crate) fn bpf_obj_name_cpy_ok(name: &str) -> bool {
    name.len() < 16 && name.bytes().all(crate::btf::verifier::name_char_rest_ok)
}

/// The map types a special field may live in (`map_check_btf`'s matrix). Profile flag:
/// `kptr_more_maps`.
fn field_allowed(ty: F, map_type: u32, sem: &Semantics) -> bool {
    use BPF_MAP_TYPE_ARRAY as A;
    match ty {
        F::SPIN_LOCK | F::RES_SPIN_LOCK => {
            matches!(
                map_type,
                BPF_MAP_TYPE_HASH | A | BPF_MAP_TYPE_CGROUP_STORAGE
            ) || is_local_storage(map_type)
        }
        F::TIMER | F::WORKQUEUE | F::TASK_WORK => {
            matches!(map_type, BPF_MAP_TYPE_HASH | BPF_MAP_TYPE_LRU_HASH | A)
        }
        F::KPTR_UNREF | F::KPTR_REF if !sem.kptr_more_maps => matches!(
            map_type,
            BPF_MAP_TYPE_HASH | BPF_MAP_TYPE_LRU_HASH | A | BPF_MAP_TYPE_PERCPU_ARRAY
        ),
        F::KPTR_UNREF | F::KPTR_REF | F::KPTR_PERCPU | F::REFCOUNT => {
            matches!(
                map_type,
                BPF_MAP_TYPE_HASH
                    | BPF_MAP_TYPE_PERCPU_HASH
                    | BPF_MAP_TYPE_LRU_HASH
                    | BPF_MAP_TYPE_LRU_PERCPU_HASH
                    | A
                    | BPF_MAP_TYPE_PERCPU_ARRAY
            ) || is_local_storage(map_type)
        }
        F::UPTR => map_type == BPF_MAP_TYPE_TASK_STORAGE,
        F::LIST_HEAD | F::RB_ROOT => {
            matches!(map_type, BPF_MAP_TYPE_HASH | BPF_MAP_TYPE_LRU_HASH | A)
        }
        _ => false,
    }
}

/// The mask `map_check_btf` parses values with. Profile flags: every field type's.
pub fn map_value_mask(sem: &Semantics) -> F {
    F::known_mask(
        F::SPIN_LOCK
            .or(F::RES_SPIN_LOCK)
            .or(F::TIMER)
            .or(F::KPTR)
            .or(F::LIST_HEAD)
            .or(F::RB_ROOT)
            .or(F::REFCOUNT)
            .or(F::WORKQUEUE)
            .or(F::UPTR)
            .or(F::TASK_WORK),
        sem,
    )
}

/// `map_check_btf`: key and value sizes against the BTF, the record
/// (`btf_parse_fields` errors are kept, not returned), the field x map-type and flag
/// rules (-EOPNOTSUPP, -EACCES), `btf_check_and_fixup_fields`, then the map type's own
/// check. Profile flags: those of `btf_parse_fields`, and `kptr_more_maps` (the map
/// types a kptr may live in).
pub fn map_check_btf(
    kernel: &KernelBtfs,
    map: &mut BpfMap,
    btf: &BtfRef,
    key_id: u32,
    value_id: u32,
    sem: &Semantics,
) -> KResult<()> {
    let d = btf.data();
    // btf_type_id_size resolves typedefs and modifiers in place: the map type's own
    // check sees the resolved key and value types.
    let size_rule = |what: &'static str, id: u32, want: u32| {
        move || match d.type_id_size(id) {
            Some((_, _, size)) => {
                alloc::format!("the {what} type is {size} bytes, the map's {what}_size {want}")
            }
            None => alloc::format!("the {what} type (id {id}) has no size"),
        }
    };
    let key_id = if key_id != 0 {
        match d.type_id_size(key_id) {
            Some((_, id, size)) if size == map.key_size => id,
            _ => {
                let rule = size_rule("key", key_id, map.key_size);
                return Err(refuse(Errno::EINVAL, "map_check_btf", key_id, None, rule));
            }
        }
    } else if matches!(
        check_btf_op(map.map_type),
        CheckBtfOp::None | CheckBtfOp::Hash
    ) {
        return Err(refuse(Errno::EINVAL, "map_check_btf", 0, None, || {
            alloc::format!(
                "a {} map with BTF needs a key type",
                map_type_name(map.map_type)
            )
        }));
    } else {
        0
    };
    let value_id = match d.type_id_size(value_id) {
        Some((_, id, size)) if size == map.value_size => id,
        _ => {
            let rule = size_rule("value", value_id, map.value_size);
            return Err(refuse(Errno::EINVAL, "map_check_btf", value_id, None, rule));
        }
    };
    match btf_parse_fields(
        btf,
        kernel,
        value_id,
        map_value_mask(sem),
        map.value_size,
        sem,
    ) {
        Ok(rec) => map.record = rec,
        Err(e) => {
            map.record = None;
            map.record_error = Some(e);
            crate::why::record_kept();
        }
    }
    let res = check_record(map, btf, sem)
        .map_err(|e| within(e, value_id, None, None))
        .and_then(|()| type_check_btf(map, btf.data(), key_id, value_id));
    if res.is_err() {
        // bpf_map_free_record.
        map.record = None;
    }
    res
}

fn check_record(map: &mut BpfMap, btf: &BtfRef, sem: &Semantics) -> KResult<()> {
    let Some(rec) = map.record.as_mut() else {
        return Ok(());
    };
    if map.map_flags & (BPF_F_RDONLY_PROG | BPF_F_WRONLY_PROG) != 0 {
        return Err(refuse(Errno::EACCES, "map_check_btf", 0, None, || {
            alloc::string::String::from(
                "a value with special fields in a map with BPF_F_RDONLY_PROG or BPF_F_WRONLY_PROG (programs must write it)",
            )
        }));
    }
    for ty in F::ALL {
        if rec.field_mask.intersects(ty) && !field_allowed(ty, map.map_type, sem) {
            let off = rec.fields.iter().find(|f| f.ty == ty).map(|f| f.offset);
            let mt = map.map_type;
            return Err(refuse(Errno::EOPNOTSUPP, "map_check_btf", 0, off, || {
                let allowed: alloc::vec::Vec<&str> = (1..=BPF_MAP_TYPE_ARENA)
                    .filter(|&t| field_allowed(ty, t, sem))
                    .map(map_type_name)
                    .collect();
                alloc::format!(
                    "a {} field{} is not allowed in map type {}; map_check_btf allows it in {}",
                    ty.name(),
                    off.map_or(alloc::string::String::new(), |o| alloc::format!(" (+{o})")),
                    map_type_name(mt),
                    allowed.join(", ")
                )
            }));
        }
    }
    btf_check_and_fixup_record(btf, rec, sem)
}

/// `find_and_alloc_map` (kernel/bpf/syscall.c) as far as the model goes: the map
/// type's `map_alloc_check` (-EINVAL for an unknown type), a map-in-map's inner map
/// template (`bpf_map_meta_alloc`: -EBADF without an inner map, -EINVAL for a map-in-map,
/// -ENOTSUPP for a type without `map_meta_equal`), then the map with its attributes
/// (`bpf_map_init_from_attr`; `dev_map_alloc` marks a DEVMAP read-only for programs),
/// unnamed, without BTF or record. No profile flag changes it.
pub fn find_and_alloc_map(a: &MapAttr<'_>) -> KResult<BpfMap> {
    if a.map_type == BPF_MAP_TYPE_UNSPEC || a.map_type > BPF_MAP_TYPE_ARENA {
        return Err(Errno::EINVAL);
    }
    let (alloc_check, func) = match a.map_type {
        BPF_MAP_TYPE_ARRAY | BPF_MAP_TYPE_PERCPU_ARRAY => {
            (array_alloc_check(a), "array_map_alloc_check")
        }
        BPF_MAP_TYPE_HASH
        | BPF_MAP_TYPE_PERCPU_HASH
        | BPF_MAP_TYPE_LRU_HASH
        | BPF_MAP_TYPE_LRU_PERCPU_HASH => (htab_alloc_check(a), "htab_map_alloc_check"),
        t if is_local_storage(t) => (
            local_storage_alloc_check(a),
            "bpf_local_storage_map_alloc_check",
        ),
        BPF_MAP_TYPE_BLOOM_FILTER => (bloom_alloc_check(a), "bloom_map_alloc_check"),
        _ => (
            other_alloc_check(a).unwrap_or(Ok(())),
            "the map type's map_alloc",
        ),
    };
    alloc_check.map_err(|e| {
        refuse(e, func, 0, None, || {
            alloc::format!(
                "a {} map with key_size {}, value_size {}, max_entries {}, map_flags {:#x}: outside the type's limits",
                map_type_name(a.map_type),
                a.key_size,
                a.value_size,
                a.max_entries,
                a.map_flags
            )
        })
    })?;
    // array_of_map_alloc, htab_of_map_alloc: the inner map's template first. On any
    // later error it is freed with the map (bpf_map_meta_free).
    let inner_map_meta = match a.map_type {
        BPF_MAP_TYPE_ARRAY_OF_MAPS | BPF_MAP_TYPE_HASH_OF_MAPS => {
            Some(Box::new(bpf_map_meta_alloc(a.inner_map).map_err(|e| {
                refuse(e, "bpf_map_meta_alloc", 0, None, || {
                    alloc::string::String::from(match (a.inner_map, e) {
                        (None, _) => "no inner map behind inner_map_fd",
                        (Some(_), Errno::EINVAL) => "the inner map is itself a map of maps, or has a special field its template cannot carry",
                        (Some(_), _) => "the inner map's type cannot be an inner map (no map_meta_equal)",
                    })
                })
            })?))
        }
        _ => None,
    };
    let mut map = BpfMap {
        map_type: a.map_type,
        key_size: a.key_size,
        value_size: a.value_size,
        max_entries: a.max_entries,
        map_flags: bpf_map_flags_retain_permanent(a.map_flags),
        name: String::new(),
        inner_map_meta,
        record: None,
        record_error: None,
        btf: None,
        modelled: map_type_modelled(a.map_type),
    };
    // dev_map_alloc marks the map read-only for programs.
    if matches!(a.map_type, BPF_MAP_TYPE_DEVMAP | BPF_MAP_TYPE_DEVMAP_HASH) {
        map.map_flags |= BPF_F_RDONLY_PROG;
    }
    Ok(map)
}
