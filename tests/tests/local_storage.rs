//! Local storage at run time (kernel/bpf/bpf_local_storage.c with
//! kernel/bpf/bpf_task_storage.c, kernel/bpf/bpf_cgrp_storage.c and
//! net/core/bpf_sk_storage.c): when an unlinked element's special fields are freed
//! (`bpf_selem_free`, per profile and storage), what becomes of an object a program
//! stashes into an element it has just deleted, `BPF_F_LOCK` updates in place, the
//! map's free and the owner's end. The scenarios in tests/scenarios/ show what the
//! running kernel can (`*_storage_*.scn`); these pin what it cannot (frees) to the
//! cited source.

use kernel_core::Semantics;
use kernel_core::btf::KernelBtfs;
use kernel_core::map::local_storage::{
    BPF_LOCAL_STORAGE_GET_F_CREATE, BpfLocalStorageElem, OwnerKind, StorageOwner,
    bpf_local_storage_delete, bpf_local_storage_get, bpf_local_storage_owner_free,
    bpf_local_storage_update, rcu_barrier_tasks_trace_and_rcu,
};
use kernel_core::map::runtime::MapRt;
use kernel_core::map::{
    BPF_F_NO_PREALLOC, BPF_MAP_TYPE_CGRP_STORAGE, BPF_MAP_TYPE_SK_STORAGE,
    BPF_MAP_TYPE_TASK_STORAGE, MapAttr,
};
use kernel_core::obj::*;
use kernel_core::sync::Arc;
use kernel_core::syscall::map_create;
use kernel_core::{Errno, sync::Ordering};

/// `BPF_NOEXIST`, `BPF_EXIST`, `BPF_F_LOCK` (include/uapi/linux/bpf.h).
const BPF_NOEXIST: u64 = 1;
const BPF_EXIST: u64 = 2;
const BPF_F_LOCK: u64 = 4;

/// The storages and their owners.
const KINDS: [(u32, OwnerKind); 3] = [
    (BPF_MAP_TYPE_TASK_STORAGE, OwnerKind::Task),
    (BPF_MAP_TYPE_CGRP_STORAGE, OwnerKind::Cgroup),
    (BPF_MAP_TYPE_SK_STORAGE, OwnerKind::Sock),
];

/// The profiles whose storage values may hold a kptr (`kptr_more_maps`).
const PROFILES: [Semantics; 4] = [
    Semantics::C8E18754,
    Semantics::V6_4,
    Semantics::V6_12,
    Semantics::V6_18,
];

use kptr_tests::{RtProg as Prog, runtime};

fn storage_map(k: &KernelBtfs, p: &Prog, map_type: u32, value: u32, sem: &Semantics) -> Arc<MapRt> {
    let attr = MapAttr {
        inner_map: None,
        map_type,
        key_size: 4,
        value_size: 16,
        max_entries: 0,
        map_flags: BPF_F_NO_PREALLOC,
        btf: Some(&p.btf),
        btf_key_type_id: 1,
        btf_value_type_id: value,
        name: "vals",
    };
    let m = map_create(k, &attr, sem).expect("map");
    assert!(
        m.record.is_some(),
        "{}: the value's kptr is recorded",
        sem.name
    );
    MapRt::new(m, sem).expect("a run-time model of local storage")
}

/// A program's `bpf_*_storage_get`.
fn get(
    rt: &Arc<BpfRuntime>,
    m: &MapRt,
    owner: &Arc<StorageOwner>,
    create: bool,
) -> Option<Arc<BpfLocalStorageElem>> {
    let flags = if create {
        BPF_LOCAL_STORAGE_GET_F_CREATE
    } else {
        0
    };
    rt.migrate_disable();
    let e = bpf_local_storage_get(
        rt,
        m.local_storage().expect("storage"),
        Some(owner),
        None,
        flags,
        true,
    );
    rt.migrate_enable();
    e
}

/// A program: `bpf_obj_new` a node and `bpf_kptr_xchg` it into the value's slot at 8;
/// the object it displaces, if any, dropped.
fn stash(rt: &BpfRuntime, p: &Prog, v: &Words) -> u64 {
    rt.migrate_disable();
    let n = bpf_obj_new_impl(rt, &p.btf, p.node).expect("node");
    let old = bpf_kptr_xchg(v, 8, n).expect("xchg");
    if old != 0 {
        bpf_obj_drop_impl(rt, &p.btf, p.node, old);
    }
    rt.migrate_enable();
    n
}

fn slot(v: &Words) -> u64 {
    v.slot(8).map_or(0, |s| s.load(Ordering::SeqCst))
}

/// User space closes the map (its last reference, no program holds it): the free as
/// the kernel schedules it, then every grace period.
fn close(rt: &Arc<BpfRuntime>, m: Arc<MapRt>) {
    if let Some(f) = MapRt::bpf_map_put_with_uref(m, rt) {
        f.schedule(rt);
    }
    rcu_barrier_tasks_trace_and_rcu(rt);
}

fn assert_clean(rt: &BpfRuntime, what: &str) {
    assert!(rt.mem.live().is_empty(), "{what}: left {:?}", rt.mem.live());
    assert!(rt.mem.faults().is_empty(), "{what}: {:?}", rt.mem.faults());
    assert!(rt.warnings().is_empty(), "{what}: {:?}", rt.warnings());
}

/// Whether `bpf_selem_free` frees an element's fields at the unlink (else in an RCU
/// callback) for a storage of `kind` unlinked without `reuse_now`
/// (kernel/bpf/bpf_local_storage.c): c8e18754 frees them in
/// `bpf_selem_free_fields_trace_rcu`; v6.4 to v6.12 in `bpf_selem_free` at once;
/// v6.18 at once for socket storage (`!smap->bpf_ma`) and in `bpf_selem_free_rcu`
/// for task and cgroup storage ("bpf: Postpone bpf_obj_free_fields to the rcu
/// callback", v6.13).
fn freed_at_unlink(sem: &Semantics, kind: OwnerKind) -> bool {
    let bpf_ma = sem.local_storage_bpf_ma && kind != OwnerKind::Sock;
    !(sem.selem_free_fields_rcu || bpf_ma && sem.selem_free_fields_postponed)
}

/// A delete from user space (`bpf_pid_task_storage_delete_elem`,
/// `bpf_cgrp_storage_delete_elem`, `bpf_fd_sk_storage_delete_elem` ->
/// `bpf_selem_unlink(selem, false)`), a program's delete helper, and an update that
/// replaces the element (`bpf_local_storage_update` -> `bpf_selem_unlink_storage_nolock`
/// then `bpf_selem_free_list(.., false)`) all free the old element without
/// `reuse_now`: a program still holding its value sees the stashed object until the
/// fields are freed, at the unlink or after the grace periods, per profile and
/// storage (checked in both directions for every profile and storage).
#[test]
fn an_unlinked_elements_fields_are_freed_at_the_profiles_time() {
    for sem in PROFILES {
        for (ty, kind) in KINDS {
            for how in ["user delete", "program delete", "update"] {
                let what = format!("{} {kind:?} {how}", sem.name);
                let (k, rt, p) = runtime(sem);
                let m = storage_map(&k, &p, ty, p.locked, &sem);
                let owner = StorageOwner::new(kind);
                let e = get(&rt, &m, &owner, true).expect("created");
                let n = stash(&rt, &p, e.data());
                match how {
                    "user delete" => m.delete_owner(&rt, &owner).expect("delete"),
                    "program delete" => {
                        rt.migrate_disable();
                        bpf_local_storage_delete(
                            &rt,
                            m.local_storage().expect("storage"),
                            Some(&owner),
                        )
                        .expect("delete");
                        rt.migrate_enable();
                    }
                    _ => m
                        .update_owner(&rt, &owner, &[0u8; 16], BPF_EXIST)
                        .expect("update"),
                }
                assert!(!e.linked(), "{what}: unlinked");
                let at_once = freed_at_unlink(&sem, kind);
                assert_eq!(
                    slot(e.data()) == 0,
                    at_once,
                    "{what}: fields freed at the unlink"
                );
                rcu_barrier_tasks_trace_and_rcu(&rt);
                assert_eq!(slot(e.data()), 0, "{what}: freed after the grace periods");
                assert!(!rt.mem.is_live(n), "{what}: the object released");
                drop(e);
                close(&rt, m);
                drop(owner);
                assert_clean(&rt, &what);
            }
        }
    }
}

/// A program looks its element up, deletes it while holding the value, then stashes a
/// new object into it (`stash_deleted` of the scenarios). Where the fields were freed
/// at the unlink, nothing frees them again: the element's memory goes
/// (`__bpf_selem_free` / `bpf_selem_free_trace_rcu` -> `bpf_mem_cache_raw_free`)
/// with the object still in it, a leak (v6.4 to v6.12 for every storage, v6.18 for
/// socket storage); where they are freed in the RCU callback (c8e18754, v6.18 task and
/// cgroup storage) the late object is released with them. The kernel shows the
/// difference: the stash reports the object still in the slot (or not) - see
/// tests/scenarios/*_storage_stash_into_deleted.scn.
#[test]
fn an_object_stashed_into_a_deleted_element_leaks_where_the_fields_went_at_the_unlink() {
    for sem in PROFILES {
        for (ty, kind) in KINDS {
            let what = format!("{} {kind:?}", sem.name);
            let (k, rt, p) = runtime(sem);
            let m = storage_map(&k, &p, ty, p.locked, &sem);
            let owner = StorageOwner::new(kind);
            let e = get(&rt, &m, &owner, true).expect("created");
            let first = stash(&rt, &p, e.data());
            rt.migrate_disable();
            bpf_local_storage_delete(&rt, m.local_storage().expect("storage"), Some(&owner))
                .expect("delete");
            rt.migrate_enable();
            let at_once = freed_at_unlink(&sem, kind);
            // The stash sees the first object still there unless the fields went.
            assert_eq!(slot(e.data()) == first, !at_once, "{what}");
            let late = stash(&rt, &p, e.data());
            assert!(get(&rt, &m, &owner, false).is_none(), "{what}: deleted");
            drop(e);
            close(&rt, m);
            assert!(!rt.mem.is_live(first), "{what}: the first object released");
            assert_eq!(rt.mem.is_live(late), at_once, "{what}: the late object");
            let live = rt.mem.live();
            if at_once {
                assert_eq!(live.len(), 1, "{what}: the kernel's leak, {live:?}");
                assert!(rt.mem.faults().is_empty(), "{what}");
                rt.mem
                    .acknowledge(&["hnode"], &[])
                    .expect("the late object");
            } else {
                assert_clean(&rt, &what);
            }
        }
    }
}

/// `bpf_local_storage_update` with `BPF_F_LOCK` on an existing element copies in place
/// under the value's lock (`copy_map_value_locked`), its special fields kept; without
/// it a new element replaces the old. Its checks: unknown flags, `BPF_F_LOCK` without a
/// `bpf_spin_lock` (-EINVAL), `BPF_NOEXIST`/`BPF_EXIST` (-EEXIST/-ENOENT), and from a
/// sleepable program (`GFP_KERNEL`) anything but `BPF_NOEXIST` (-EINVAL). No profile
/// flag changes them.
#[test]
fn local_storage_updates_as_bpf_local_storage_update_makes_them() {
    for sem in [Semantics::V6_12, Semantics::V6_18] {
        for (ty, kind) in KINDS {
            let what = format!("{} {kind:?}", sem.name);
            let (k, rt, p) = runtime(sem);
            let m = storage_map(&k, &p, ty, p.locked, &sem);
            let owner = StorageOwner::new(kind);
            assert_eq!(
                m.update_owner(&rt, &owner, &[0u8; 16], BPF_EXIST),
                Err(Errno::ENOENT),
                "{what}"
            );
            assert_eq!(
                m.update_owner(&rt, &owner, &[0u8; 16], 8),
                Err(Errno::EINVAL),
                "{what}"
            );
            m.update_owner(&rt, &owner, &[0u8; 16], BPF_F_LOCK)
                .expect("created");
            let e = get(&rt, &m, &owner, false).expect("there");
            let n = stash(&rt, &p, e.data());
            let mut v = [0u8; 16];
            v[4] = 9;
            m.update_owner(&rt, &owner, &v, BPF_EXIST | BPF_F_LOCK)
                .expect("in place");
            let now = get(&rt, &m, &owner, false).expect("there");
            assert!(Arc::ptr_eq(&e, &now), "{what}: the same element");
            assert_eq!((slot(now.data()), now.data().byte(4)), (n, 9), "{what}");
            assert_eq!(
                m.lookup_owner(&rt, &owner, BPF_F_LOCK).expect("lookup")[4..],
                [9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                "{what}: no kernel pointer to user space"
            );
            assert_eq!(
                m.update_owner(&rt, &owner, &[0u8; 16], BPF_NOEXIST | BPF_F_LOCK),
                Err(Errno::EEXIST),
                "{what}"
            );
            let res = bpf_local_storage_update(
                &rt,
                &owner,
                m.local_storage().expect("storage"),
                None,
                0,
                true,
            );
            assert_eq!(
                res.err(),
                Some(Errno::EINVAL),
                "{what}: GFP_KERNEL needs NOEXIST"
            );
            m.update_owner(&rt, &owner, &[0u8; 16], 0)
                .expect("replaced");
            let new = get(&rt, &m, &owner, false).expect("there");
            assert!(!Arc::ptr_eq(&e, &new), "{what}: a new element");
            assert_eq!(slot(new.data()), 0, "{what}: copy_map_value skips the kptr");
            drop((e, now, new));
            close(&rt, m);
            assert_clean(&rt, &what);
            // Without a bpf_spin_lock: map_update_elem refuses BPF_F_LOCK
            // (kernel/bpf/syscall.c), as bpf_local_storage_update does.
            let m = storage_map(&k, &p, ty, p.plain, &sem);
            assert_eq!(
                m.update_owner(&rt, &owner, &[0u8; 16], BPF_F_LOCK),
                Err(Errno::EINVAL),
                "{what}"
            );
            close(&rt, m);
            assert_clean(&rt, &what);
        }
    }
}

/// The map's free (`bpf_local_storage_map_free`) unlinks its elements from every
/// owner with `reuse_now` and frees them, waiting (c8e18754: `rcu_barrier` for
/// `bpf_selem_free_fields_rcu`; `bpf_ma`: `rcu_barrier_tasks_trace`) before the record
/// goes; an owner's other maps keep their elements. The owner's end
/// (`bpf_task_storage_free`, `bpf_cgrp_storage_free`, `bpf_sk_storage_free` ->
/// `bpf_local_storage_destroy`) frees every element it still has, of every map.
#[test]
fn the_maps_free_and_the_owners_end_release_every_element() {
    for sem in PROFILES {
        for (ty, kind) in KINDS {
            let what = format!("{} {kind:?}", sem.name);
            let (k, rt, p) = runtime(sem);
            let a = storage_map(&k, &p, ty, p.locked, &sem);
            let b = storage_map(&k, &p, ty, p.locked, &sem);
            let owner = StorageOwner::new(kind);
            let other = StorageOwner::new(kind);
            let na = stash(&rt, &p, get(&rt, &a, &owner, true).expect("a").data());
            let nb = stash(&rt, &p, get(&rt, &b, &owner, true).expect("b").data());
            let no = stash(&rt, &p, get(&rt, &a, &other, true).expect("a other").data());
            assert_eq!(owner.storage().map(|s| s.len()), Some(2), "{what}");
            close(&rt, a);
            assert!(
                !rt.mem.is_live(na) && !rt.mem.is_live(no),
                "{what}: map a's"
            );
            assert!(rt.mem.is_live(nb), "{what}: map b's stays");
            assert_eq!(owner.storage().map(|s| s.len()), Some(1), "{what}");
            assert!(other.storage().is_none(), "{what}: its last element went");
            bpf_local_storage_owner_free(&rt, &owner);
            assert!(owner.storage().is_none(), "{what}");
            assert!(
                get(&rt, &b, &owner, true).is_none(),
                "{what}: no create on a dead owner"
            );
            rcu_barrier_tasks_trace_and_rcu(&rt);
            assert!(!rt.mem.is_live(nb), "{what}: the owner's end released it");
            assert_eq!(b.local_storage().expect("b").len(), 0, "{what}");
            close(&rt, b);
            assert_clean(&rt, &what);
        }
    }
}
