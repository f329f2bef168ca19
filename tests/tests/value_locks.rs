//! Which map commands from user space take a value's `bpf_spin_lock`: an update or a
//! lookup with `BPF_F_LOCK` copies under it (`copy_map_value_locked`), one without
//! never touches it (`copy_map_value`), in an ARRAY (`array_map_update_elem`,
//! kernel/bpf/arraymap.c), a HASH (`htab_map_update_elem`, kernel/bpf/hashtab.c) and a
//! task, cgroup or socket storage (`bpf_local_storage_update`,
//! kernel/bpf/bpf_local_storage.c); lookups through `bpf_map_copy_value`
//! (kernel/bpf/syscall.c) for all three. The test holds the lock as a program would
//! and runs the command on another thread: a command that takes the lock must still
//! be waiting after 100 ms and see what the holder wrote; one that does not must
//! finish while the lock is held (within 10 s). A command that takes the lock can pass
//! the first check spuriously only if its thread has not run for 100 ms; correct code
//! never fails either check.

use std::sync::mpsc;
use std::time::Duration;

use kernel_core::Semantics;
use kernel_core::btf::KernelBtfs;
use kernel_core::map::local_storage::{
    OwnerKind, StorageOwner, bpf_local_storage_get, rcu_barrier_tasks_trace_and_rcu,
};
use kernel_core::map::runtime::MapRt;
use kernel_core::map::value::BPF_F_LOCK;
use kernel_core::map::{
    BPF_F_NO_PREALLOC, BPF_MAP_TYPE_ARRAY, BPF_MAP_TYPE_CGRP_STORAGE, BPF_MAP_TYPE_HASH,
    BPF_MAP_TYPE_SK_STORAGE, BPF_MAP_TYPE_TASK_STORAGE, MapAttr,
};
use kernel_core::obj::*;
use kernel_core::sync::Arc;
use kernel_core::syscall::map_create;

use kptr_tests::{RtProg as Prog, runtime};

/// How long a command that takes the lock must keep waiting while it is held.
const HELD: Duration = Duration::from_millis(100);
/// How long a command that does not take the lock may take while it is held.
const LIVENESS: Duration = Duration::from_secs(10);

fn map(k: &KernelBtfs, p: &Prog, map_type: u32, flags: u32, sem: &Semantics) -> Arc<MapRt> {
    let attr = MapAttr {
        inner_map: None,
        map_type,
        key_size: 4,
        value_size: 16,
        max_entries: if map_type == BPF_MAP_TYPE_ARRAY || map_type == BPF_MAP_TYPE_HASH {
            4
        } else {
            0
        },
        map_flags: flags,
        btf: Some(&p.btf),
        btf_key_type_id: 1,
        btf_value_type_id: p.locked,
        name: "locked",
    };
    let m = map_create(k, &attr, sem).expect("map");
    assert!(m.record.is_some(), "record: {:?}", m.record_error);
    MapRt::new(m, sem).expect("map rt")
}

/// Runs `op` on another thread while this one holds `v`'s lock (at 0, `struct locked`)
/// for up to `wait`, then writes `during`, if any, into the value's `data` byte (4) and
/// unlocks;
/// whether `op` had finished while the lock was held, and what it returned.
fn while_locked<R: Send>(
    v: &Words,
    wait: Duration,
    during: Option<u8>,
    op: impl FnOnce() -> R + Send,
) -> (bool, R) {
    bpf_spin_lock(v, 0);
    std::thread::scope(|s| {
        let (tx, rx) = mpsc::channel();
        let h = s.spawn(move || {
            let r = op();
            let _ = tx.send(());
            r
        });
        let done = rx.recv_timeout(wait).is_ok();
        if let Some(d) = during {
            v.set_byte(4, d);
        }
        bpf_spin_unlock(v, 0);
        (done, h.join().expect("the command's thread"))
    })
}

/// `op` takes `v`'s lock: it waits while the lock is held and then sees the holder's
/// write (`during`).
fn assert_waits<R: Send>(what: &str, v: &Words, during: u8, op: impl FnOnce() -> R + Send) -> R {
    let (finished_while_held, r) = while_locked(v, HELD, Some(during), op);
    assert!(!finished_while_held, "{what}: did not wait for the lock");
    r
}

/// `op` does not take `v`'s lock: it finishes while the lock is held.
fn assert_lock_free<R: Send>(what: &str, v: &Words, op: impl FnOnce() -> R + Send) -> R {
    let (done, r) = while_locked(v, LIVENESS, None, op);
    assert!(done, "{what}: waited for a lock it must not take");
    r
}

/// A user-space lookup with `flags`, and an update of `value` with `flags`.
type Lookup<'a> = &'a (dyn Fn(u64) -> Result<Vec<u8>, kernel_core::Errno> + Sync);
type Update<'a> = &'a (dyn Fn(&[u8], u64) -> Result<(), kernel_core::Errno> + Sync);

/// The four commands against a program holding `v`, the value `lookup` and `update`
/// reach (its `data` byte 1): a `BPF_F_LOCK` lookup waits and reads the holder's 7, a
/// plain one does not wait, a `BPF_F_LOCK` update waits and writes 9 in place after
/// the holder's 8, a plain one does not wait and its 3 is what a lookup sees next.
fn lock_protocol(what: &str, v: &Words, lookup: Lookup<'_>, update: Update<'_>) {
    let got = assert_waits(&format!("{what}: BPF_F_LOCK lookup"), v, 7, || {
        lookup(BPF_F_LOCK)
    });
    assert_eq!(
        got.map(|b| data(&b)),
        Ok(7),
        "{what}: read after the holder"
    );
    let got = assert_lock_free(&format!("{what}: lookup"), v, || lookup(0));
    assert_eq!(got.map(|b| data(&b)), Ok(7), "{what}");
    let r = assert_waits(&format!("{what}: BPF_F_LOCK update"), v, 8, || {
        update(&value(9), BPF_F_LOCK)
    });
    assert_eq!(r, Ok(()), "{what}");
    assert_eq!(v.byte(4), 9, "{what}: in place, after the holder's write");
    let r = assert_lock_free(&format!("{what}: update"), v, || update(&value(3), 0));
    assert_eq!(r, Ok(()), "{what}");
    assert_eq!(lookup(0).map(|b| data(&b)), Ok(3), "{what}");
}

/// The `data` byte of a value as user space receives it.
fn data(bytes: &[u8]) -> u8 {
    bytes.get(4).copied().unwrap_or(0xff)
}

fn value(d: u8) -> [u8; 16] {
    let mut v = [0u8; 16];
    v[4] = d;
    v
}

/// ARRAY and HASH (preallocated or not): updates and lookups take the lock with
/// `BPF_F_LOCK` only.
#[test]
fn array_and_hash_commands_take_the_lock_with_bpf_f_lock_only() {
    let sem = Semantics::V6_18;
    for (ty, flags) in [
        (BPF_MAP_TYPE_ARRAY, 0),
        (BPF_MAP_TYPE_HASH, 0),
        (BPF_MAP_TYPE_HASH, BPF_F_NO_PREALLOC),
    ] {
        let what = format!("type {ty} flags {flags}");
        let (k, rt, p) = runtime(sem);
        let m = map(&k, &p, ty, flags, &sem);
        let key = 0u32.to_ne_bytes();
        m.update(&rt, &key, &value(1), 0).expect("insert");
        // The value a program holds: the array's slot, or the hash element linked now.
        let elem = m.htab_lookup(&key);
        let v: &Words = match (&elem, m.array_value(0, 0)) {
            (Some(e), _) => &e.values[0],
            (None, Some(v)) => v,
            (None, None) => panic!("{what}: no value"),
        };
        lock_protocol(&what, v, &|f| m.bpf_map_copy_value(&key, f), &|val, f| {
            m.update(&rt, &key, val, f)
        });
        drop(elem);
        if let Some(f) = MapRt::bpf_map_put(m) {
            f.run(&rt);
        }
        rt.rcu.rcu_barrier();
        assert!(rt.mem.live().is_empty(), "{what}: {:?}", rt.mem.live());
        assert!(rt.warnings().is_empty(), "{what}: {:?}", rt.warnings());
    }
}

/// Task, cgroup and socket storage: `map_update_elem` and `map_lookup_elem` on an
/// owner's element take its lock with `BPF_F_LOCK` only.
#[test]
fn local_storage_commands_take_the_lock_with_bpf_f_lock_only() {
    let sem = Semantics::V6_18;
    for (ty, kind) in [
        (BPF_MAP_TYPE_TASK_STORAGE, OwnerKind::Task),
        (BPF_MAP_TYPE_CGRP_STORAGE, OwnerKind::Cgroup),
        (BPF_MAP_TYPE_SK_STORAGE, OwnerKind::Sock),
    ] {
        let what = format!("{kind:?} storage");
        let (k, rt, p) = runtime(sem);
        let m = map(&k, &p, ty, BPF_F_NO_PREALLOC, &sem);
        let owner = StorageOwner::new(kind);
        m.update_owner(&rt, &owner, &value(1), 0).expect("created");
        rt.migrate_disable();
        let e = bpf_local_storage_get(
            &rt,
            m.local_storage().expect("storage"),
            Some(&owner),
            None,
            0,
            true,
        )
        .expect("the owner's element");
        rt.migrate_enable();
        lock_protocol(
            &what,
            e.data(),
            &|f| m.lookup_owner(&rt, &owner, f),
            &|val, f| m.update_owner(&rt, &owner, val, f),
        );
        drop(e);
        if let Some(f) = MapRt::bpf_map_put_with_uref(m, &rt) {
            f.schedule(&rt);
        }
        drop(owner);
        rcu_barrier_tasks_trace_and_rcu(&rt);
        assert!(rt.mem.live().is_empty(), "{what}: {:?}", rt.mem.live());
        assert!(rt.warnings().is_empty(), "{what}: {:?}", rt.warnings());
    }
}
