//! Hash map updates as the kernel makes them (kernel/bpf/hashtab.c, bpf_lru_list.c):
//! a full preallocated HASH replaces an existing key through its per-CPU extra
//! element, a full LRU map evicts (also when the key exists), per-CPU hashes and
//! `BPF_F_LOCK` updates of a HASH change the value in place, and a preallocated
//! element is reused without its special fields being cleared. Where the running
//! kernel can be asked, the LRU's answers and the update flags' are the kernel's own.

use kernel_core::Semantics;
use kernel_core::btf::KernelBtfs;
use kernel_core::map::runtime::MapRt;
use kernel_core::map::{
    BPF_F_NO_COMMON_LRU, BPF_F_NO_PREALLOC, BPF_MAP_TYPE_HASH, BPF_MAP_TYPE_LRU_HASH,
    BPF_MAP_TYPE_LRU_PERCPU_HASH, BPF_MAP_TYPE_PERCPU_HASH, MapAttr,
};
use kernel_core::obj::*;
use kernel_core::sync::Arc;
use kernel_core::syscall::map_create;
use kernel_core::{Errno, sync::Ordering};

use kernel_core::map::value::BPF_F_LOCK;

use kptr_tests::{RtProg as Prog, runtime};

fn map(
    k: &KernelBtfs,
    p: &Prog,
    map_type: u32,
    flags: u32,
    value: u32,
    sem: &Semantics,
) -> Arc<MapRt> {
    let attr = MapAttr {
        inner_map: None,
        map_type,
        key_size: 4,
        value_size: 16,
        max_entries: 4,
        map_flags: flags,
        btf: Some(&p.btf),
        btf_key_type_id: 1,
        btf_value_type_id: value,
        name: "h",
    };
    let m = map_create(k, &attr, sem).expect("map");
    assert!(m.record.is_some(), "record: {:?}", m.record_error);
    MapRt::new(m, sem).expect("map rt")
}

fn key(k: u32) -> [u8; 4] {
    k.to_ne_bytes()
}

/// A program: `bpf_obj_new` a node and `bpf_kptr_xchg` it into the value's slot at 8.
fn stash(rt: &BpfRuntime, p: &Prog, v: &Words) -> u64 {
    rt.migrate_disable();
    let n = bpf_obj_new_impl(rt, &p.btf, p.node).expect("node");
    assert_eq!(
        bpf_kptr_xchg(v, 8, n).expect("xchg"),
        0,
        "the slot was empty"
    );
    rt.migrate_enable();
    n
}

fn slot(v: &Words) -> u64 {
    v.slot(8).map_or(0, |s| s.load(Ordering::SeqCst))
}

/// The map's last reference goes; its deferred free runs; a grace period passes.
fn close(rt: &BpfRuntime, m: Arc<MapRt>) {
    if let Some(f) = MapRt::bpf_map_put(m) {
        f.run(rt);
    }
    rt.rcu.rcu_barrier();
}

fn assert_clean(rt: &BpfRuntime, what: &str) {
    assert!(rt.mem.live().is_empty(), "{what}: left {:?}", rt.mem.live());
    assert!(rt.mem.faults().is_empty(), "{what}: {:?}", rt.mem.faults());
    assert!(rt.warnings().is_empty(), "{what}: {:?}", rt.warnings());
}

/// htab_map_update_elem -> alloc_htab_elem(.., l_old): a preallocated HASH that is full
/// still replaces an existing key, with the CPU's extra element (l_old becomes the
/// extra one, its special fields freed); a new key is -E2BIG.
#[test]
fn a_full_preallocated_hash_replaces_an_existing_key() {
    for sem in [Semantics::V6_4, Semantics::V6_18] {
        let (k, rt, p) = runtime(sem);
        let m = map(&k, &p, BPF_MAP_TYPE_HASH, 0, p.plain, &sem);
        for i in 0..4 {
            m.update(&rt, &key(i), &[0u8; 16], 0).expect("insert");
        }
        let old = m.htab_lookup(&key(1)).expect("key 1");
        let n = stash(&rt, &p, &old.values[0]);
        assert_eq!(
            m.update(&rt, &key(1), &[0x11u8; 16], 0),
            Ok(()),
            "{}: an existing key of a full map",
            sem.name
        );
        rt.rcu.rcu_barrier();
        assert!(
            !rt.mem.is_live(n),
            "{}: the replaced value's node",
            sem.name
        );
        assert_eq!(slot(&old.values[0]), 0);
        drop(old);
        let new = m.htab_lookup(&key(1)).expect("key 1");
        assert_eq!(new.values[0].byte(0), 0x11);
        drop(new);
        assert_eq!(
            m.update(&rt, &key(9), &[0u8; 16], 0),
            Err(Errno::E2BIG),
            "{}: a new key",
            sem.name
        );
        close(&rt, m);
        assert_clean(&rt, sem.name);
    }
}

/// htab_lru_map_update_elem pops a free node before it looks the key up
/// (prealloc_lru_pop -> bpf_lru_pop_free): a full LRU map evicts even to update a key
/// it has. The running kernel (6.18.44) does the same: see
/// `lru_eviction_order_is_the_kernels`.
#[test]
fn a_full_lru_hash_evicts_to_update_an_existing_key() {
    let sem = Semantics::V6_18;
    let (k, rt, p) = runtime(sem);
    let m = map(&k, &p, BPF_MAP_TYPE_LRU_HASH, 0, p.plain, &sem);
    for i in 0..4 {
        m.update(&rt, &key(i), &[0u8; 16], 0).expect("insert");
    }
    assert_eq!(m.update(&rt, &key(2), &[0x22u8; 16], 0), Ok(()));
    assert!(m.htab_lookup(&key(2)).is_some());
    close(&rt, m);
    assert_clean(&rt, "lru");
}

/// The keys of `m` among 0..16, looked up as user space does (no reference bit set).
fn keys(m: &MapRt) -> Vec<u32> {
    (0..16)
        .filter(|&i| m.htab_lookup_sys(&key(i)).is_some())
        .collect()
}

/// The steps of the LRU scenario: fill keys 0..3 of a 4-entry map, update key 2, then
/// insert 4, 5 and 6; all from user space on CPU 0.
const LRU_STEPS: [(u32, &str); 8] = [
    (0, "insert 0"),
    (1, "insert 1"),
    (2, "insert 2"),
    (3, "insert 3"),
    (2, "update 2"),
    (4, "insert 4"),
    (5, "insert 5"),
    (6, "insert 6"),
];

/// The running kernel's keys after each step (6.18.44, 2 possible CPUs, run on CPU 0;
/// `ask_kernel_lru` repeats the question when the kernel can be asked).
const KERNEL_COMMON: [&[u32]; 8] = [
    &[0],
    &[0, 1],
    &[0, 1, 2],
    &[0, 1, 2, 3],
    &[1, 2, 3],
    &[1, 2, 3, 4],
    &[2, 3, 4, 5],
    &[2, 4, 5, 6],
];
/// The same with `BPF_F_NO_COMMON_LRU`: CPU 0's own list holds 2 of the 4 elements.
const KERNEL_PERCPU_LRU: [&[u32]; 8] = [&[0], &[0, 1], &[2], &[2, 3], &[2], &[2, 4], &[5], &[5, 6]];

/// The model: the keys after each of [`LRU_STEPS`].
fn model_lru(sem: Semantics, flags: u32) -> Vec<Vec<u32>> {
    let (k, rt, p) = runtime(sem);
    let m = map(&k, &p, BPF_MAP_TYPE_LRU_HASH, flags, p.plain, &sem);
    let mut out = Vec::new();
    for (k, _) in LRU_STEPS {
        m.update(&rt, &key(k), &[0u8; 16], 0).expect("update");
        out.push(keys(&m));
    }
    close(&rt, m);
    assert_clean(&rt, "lru model");
    out
}

/// The running kernel's answer to [`LRU_STEPS`], on CPU 0: `bpf(2)` on an LRU_HASH of
/// 4 int keys and 8-byte values. `None` when the kernel cannot be asked.
fn ask_kernel_lru(flags: u32) -> Option<Vec<Vec<u32>>> {
    if kptr_tests::kernel_skip("LRU eviction order") {
        return None;
    }
    let possible = std::fs::read_to_string("/sys/devices/system/cpu/possible").ok()?;
    if possible.trim() != "0-1" {
        eprintln!(
            "KERNEL ORACLE NOT RUN (LRU eviction order): {} possible CPUs, the model has 2",
            possible.trim()
        );
        return None;
    }
    Some(sys::lru_steps(flags, &LRU_STEPS.map(|(k, _)| k)))
}

/// The LRU's eviction follows bpf_lru_list.c: the model's answers are the kernel's, with
/// the common LRU and with per-CPU lists.
#[test]
fn lru_eviction_order_is_the_kernels() {
    for (flags, want) in [(0, KERNEL_COMMON), (BPF_F_NO_COMMON_LRU, KERNEL_PERCPU_LRU)] {
        let got = model_lru(Semantics::V6_18, flags);
        for (i, (step, w)) in LRU_STEPS.iter().zip(want).enumerate() {
            assert_eq!(got[i], w, "flags {flags}: after {}", step.1);
        }
        if let Some(kernel) = ask_kernel_lru(flags) {
            let want: Vec<Vec<u32>> = want.iter().map(|w| w.to_vec()).collect();
            assert_eq!(kernel, want, "flags {flags}: the running kernel");
        }
    }
}

/// Before d4adf1c9ee77 (v6.16) a CPU takes LOCAL_FREE_TARGET (128) free nodes at once
/// and a shrink frees up to as many: the first insert takes all 4 free nodes, and the
/// update of key 2 of the full map evicts every key (none is referenced), then inserts
/// key 2 anew.
#[test]
fn before_the_free_target_fix_an_lru_eviction_takes_every_inactive_key() {
    let got = model_lru(Semantics::V6_12, 0);
    assert_eq!(got[3], [0, 1, 2, 3]);
    assert_eq!(got[4], [2], "update 2: every key evicted together");
    assert_eq!(got[5], [2, 4]);
}

/// A program's lookup sets the reference bit: the referenced key gets a second chance
/// and the next unreferenced one is evicted.
#[test]
fn a_referenced_lru_key_survives_the_next_eviction() {
    let sem = Semantics::V6_18;
    let (k, rt, p) = runtime(sem);
    let m = map(&k, &p, BPF_MAP_TYPE_LRU_HASH, 0, p.plain, &sem);
    for i in 0..4 {
        m.update(&rt, &key(i), &[0u8; 16], 0).expect("insert");
    }
    let e = m
        .htab_lookup(&key(0))
        .expect("key 0, as a program looks it up");
    let n = stash(&rt, &p, &e.values[0]);
    drop(e);
    m.update(&rt, &key(9), &[0u8; 16], 0).expect("a fifth key");
    assert_eq!(
        keys(&m),
        [0, 2, 3, 9],
        "key 1 evicted, key 0 had its second chance"
    );
    // Key 0 now sits on the active list, which is rotated only when the inactive list
    // runs low; each insert refills the inactive list, so the inactive keys go first.
    m.update(&rt, &key(10), &[0u8; 16], 0).expect("a sixth key");
    assert_eq!(keys(&m), [0, 3, 9, 10]);
    m.update(&rt, &key(11), &[0u8; 16], 0)
        .expect("a seventh key");
    assert_eq!(keys(&m), [0, 9, 10, 11]);
    assert!(rt.mem.is_live(n));
    close(&rt, m);
    assert!(!rt.mem.is_live(n), "map free released key 0's node");
    assert_clean(&rt, "lru ref");
}

/// htab_map_update_elem with BPF_F_LOCK on an existing key: copy_map_value_locked into
/// the element in place; the element's special fields are not freed, so a stashed
/// object stays until the element goes.
#[test]
fn a_locked_hash_update_is_in_place_and_keeps_the_stashed_object() {
    for sem in [Semantics::V6_4, Semantics::V6_18] {
        let (k, rt, p) = runtime(sem);
        let m = map(&k, &p, BPF_MAP_TYPE_HASH, 0, p.locked, &sem);
        m.update(&rt, &key(0), &[0u8; 16], 0).expect("insert");
        let e = m.htab_lookup(&key(0)).expect("key 0");
        let n = stash(&rt, &p, &e.values[0]);
        m.update(&rt, &key(0), &[0xffu8; 16], BPF_F_LOCK)
            .expect("locked update");
        rt.rcu.rcu_barrier();
        let now = m.htab_lookup(&key(0)).expect("key 0");
        assert!(Arc::ptr_eq(&e, &now), "{}: the same element", sem.name);
        assert_eq!(e.values[0].byte(4), 0xff, "copied past the lock");
        assert_eq!(e.values[0].load_u32(0), 0, "the lock word is not copied");
        assert_eq!(slot(&e.values[0]), n, "{}: the object stays", sem.name);
        assert!(rt.mem.is_live(n));
        drop((e, now));
        // A locked update of a key the map lacks inserts it.
        m.update(&rt, &key(1), &[1u8; 16], BPF_F_LOCK)
            .expect("locked insert");
        assert!(m.htab_lookup(&key(1)).is_some());
        // A record without a spin lock refuses the flag.
        let plain = map(&k, &p, BPF_MAP_TYPE_HASH, 0, p.plain, &sem);
        assert_eq!(
            plain.update(&rt, &key(0), &[0u8; 16], BPF_F_LOCK),
            Err(Errno::EINVAL)
        );
        close(&rt, plain);
        close(&rt, m);
        assert_clean(&rt, sem.name);
    }
}

/// __htab_percpu_map_update_elem and __htab_lru_percpu_map_update_elem update an
/// existing key in place (pcpu_copy_value). Up to v6.12 the copy leaves the special
/// fields alone: stashed objects stay until the element goes. Since "bpf: Free special
/// fields when update [lru_,]percpu_hash maps" (in Debian's 6.12.118 and the v6.18
/// profile) the copy frees them on every CPU.
#[test]
fn per_cpu_hash_updates_are_in_place() {
    for sem in [Semantics::V6_12, Semantics::V6_18] {
        for (ty, flags) in [
            (BPF_MAP_TYPE_PERCPU_HASH, 0),
            (BPF_MAP_TYPE_PERCPU_HASH, BPF_F_NO_PREALLOC),
            (BPF_MAP_TYPE_LRU_PERCPU_HASH, 0),
        ] {
            let what = format!("{} type {ty} flags {flags}", sem.name);
            let (k, rt, p) = runtime(sem);
            let m = map(&k, &p, ty, flags, p.plain, &sem);
            // User space's value: one 16-byte slice per CPU (bpf_map_value_size).
            m.update(&rt, &key(0), &[0u8; 32], 0).expect("insert");
            let e = m.htab_lookup(&key(0)).expect("key 0");
            let ns: Vec<u64> = e.values.iter().map(|v| stash(&rt, &p, v)).collect();
            m.update(&rt, &key(0), &[0xabu8; 32], 0).expect("update");
            rt.rcu.rcu_barrier();
            let now = m.htab_lookup(&key(0)).expect("key 0");
            assert!(Arc::ptr_eq(&e, &now), "{what}: the same element");
            drop(now);
            let freed = sem.htab_percpu_update_frees_fields;
            for (v, n) in e.values.iter().zip(&ns) {
                assert_eq!(v.byte(0), 0xab, "{what}");
                assert_eq!(slot(v), if freed { 0 } else { *n }, "{what}");
                assert_eq!(rt.mem.is_live(*n), !freed, "{what}");
            }
            drop(e);
            close(&rt, m);
            assert_clean(&rt, &what);
        }
    }
}

/// A program still holds a preallocated element that user space deletes: the delete
/// freed its special fields (free_htab_elem -> check_and_free_fields) and put it on
/// the free list. The program then stashes an object into it. The next insert reuses
/// the element, and alloc_htab_elem copies the value only (copy_map_value skips the
/// special fields): the object is in the new key's value, and the map's free releases
/// it. Nothing leaks.
#[test]
fn a_reused_preallocated_element_keeps_what_was_stashed_after_its_delete() {
    for sem in [Semantics::V6_4, Semantics::V6_18] {
        for ty in [BPF_MAP_TYPE_HASH, BPF_MAP_TYPE_LRU_HASH] {
            let what = format!("{} type {ty}", sem.name);
            let (k, rt, p) = runtime(sem);
            let m = map(&k, &p, ty, 0, p.plain, &sem);
            m.update(&rt, &key(0), &[0u8; 16], 0).expect("insert");
            let held = m.htab_lookup(&key(0)).expect("the program's lookup");
            m.delete(&rt, &key(0)).expect("delete from user space");
            let n = stash(&rt, &p, &held.values[0]);
            m.update(&rt, &key(1), &[7u8; 16], 0).expect("a new key");
            let e = m.htab_lookup(&key(1)).expect("key 1");
            assert!(Arc::ptr_eq(&held, &e), "{what}: the element was reused");
            assert_eq!(slot(&e.values[0]), n, "{what}: the object is still there");
            assert_eq!(e.values[0].byte(0), 7);
            drop((held, e));
            rt.rcu.rcu_barrier();
            assert!(rt.mem.is_live(n), "{what}");
            close(&rt, m);
            assert!(!rt.mem.is_live(n), "{what}: map free released it");
            assert_clean(&rt, &what);
        }
    }
}

/// `bpf(2)` map commands for the LRU oracle.
mod sys {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

    #[repr(C)]
    #[derive(Default)]
    struct MapCreate {
        map_type: u32,
        key_size: u32,
        value_size: u32,
        max_entries: u32,
        map_flags: u32,
    }

    #[repr(C)]
    #[derive(Default)]
    struct MapElem {
        map_fd: u32,
        _pad: u32,
        key: u64,
        value: u64,
        flags: u64,
    }

    fn bpf<T>(cmd: i64, attr: &mut T) -> i64 {
        // SAFETY: `attr` is a live `#[repr(C)]` prefix of `union bpf_attr` without
        // padding; its pointers (to stack keys and values of the map's sizes) are valid
        // for the call.
        unsafe {
            libc::syscall(
                libc::SYS_bpf,
                cmd,
                attr as *mut T as *mut libc::c_void,
                std::mem::size_of::<T>(),
            )
        }
    }

    fn elem(fd: &OwnedFd, cmd: i64, k: u32) -> bool {
        let mut v = [0u8; 8];
        let mut a = MapElem {
            map_fd: fd.as_raw_fd() as u32,
            key: &k as *const u32 as u64,
            value: v.as_mut_ptr() as u64,
            ..Default::default()
        };
        bpf(cmd, &mut a) == 0
    }

    /// Runs `steps` (an update of each key) on a new LRU_HASH of 4 entries, pinned to
    /// CPU 0, and returns the keys among 0..16 after each step.
    pub fn lru_steps(flags: u32, steps: &[u32]) -> Vec<Vec<u32>> {
        let res = std::thread::scope(|s| {
            s.spawn(|| {
                // SAFETY: a zeroed cpu_set_t is valid; CPU_SET writes inside it.
                let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
                // SAFETY: CPU 0 is within the set's bounds.
                unsafe { libc::CPU_SET(0, &mut set) };
                // SAFETY: `set` is a valid cpu_set_t of the size given.
                let r = unsafe {
                    libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
                };
                assert_eq!(r, 0, "pin to CPU 0");
                let mut a = MapCreate {
                    map_type: 9,
                    key_size: 4,
                    value_size: 8,
                    max_entries: 4,
                    map_flags: flags,
                };
                let fd = bpf(0, &mut a);
                assert!(fd >= 0, "BPF_MAP_CREATE");
                // SAFETY: the kernel just returned this new fd.
                let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
                steps
                    .iter()
                    .map(|&k| {
                        assert!(elem(&fd, 2, k), "BPF_MAP_UPDATE_ELEM {k}");
                        (0..16).filter(|&i| elem(&fd, 1, i)).collect()
                    })
                    .collect::<Vec<Vec<u32>>>()
            })
            .join()
        });
        res.unwrap_or_default()
    }
}

/// A per-CPU map's value from user space is one `round_up(value_size, 8)` slice per
/// possible CPU (`bpf_map_value_size`, kernel/bpf/syscall.c): `bpf_percpu_array_update`
/// (kernel/bpf/arraymap.c) and `pcpu_copy_value` with `onallcpus`
/// (kernel/bpf/hashtab.c, for a new element through `pcpu_init_value`) copy slice `c`
/// into CPU `c`'s value; `bpf_percpu_array_copy` and `bpf_percpu_hash_copy` hand each
/// CPU's value back in its slice, special fields zeroed (`check_and_init_map_value`).
/// A shorter buffer cannot be copied in (`kvmemdup_bpfptr`: -EFAULT). The old model
/// took one value for every CPU.
#[test]
fn per_cpu_updates_copy_one_slice_per_cpu() {
    use kernel_core::map::BPF_MAP_TYPE_PERCPU_ARRAY;
    use kernel_core::map::runtime::NR_CPUS;
    for sem in [Semantics::V6_12, Semantics::V6_18] {
        for (ty, flags) in [
            (BPF_MAP_TYPE_PERCPU_ARRAY, 0),
            (BPF_MAP_TYPE_PERCPU_HASH, 0),
            (BPF_MAP_TYPE_PERCPU_HASH, BPF_F_NO_PREALLOC),
            (BPF_MAP_TYPE_LRU_PERCPU_HASH, 0),
        ] {
            let what = format!("{} type {ty} flags {flags}", sem.name);
            let (k, rt, p) = runtime(sem);
            let m = map(&k, &p, ty, flags, p.plain, &sem);
            assert_eq!(m.bpf_map_value_size(), 16 * NR_CPUS, "{what}");
            assert_eq!(
                m.update(&rt, &key(0), &[1u8; 16], 0),
                Err(Errno::EFAULT),
                "{what}: one slice is not a per-CPU value"
            );
            let mut v = [0u8; 32];
            v[..8].copy_from_slice(&5u64.to_ne_bytes());
            v[16..24].copy_from_slice(&6u64.to_ne_bytes());
            m.update(&rt, &key(0), &v, 0).expect("insert");
            let back = m.bpf_map_copy_value(&key(0), 0).expect("lookup");
            assert_eq!(back.len(), 32, "{what}");
            assert_eq!(back[0], 5, "{what}: CPU 0's slice");
            assert_eq!(back[16], 6, "{what}: CPU 1's slice");
            // A program on CPU 1 stashes into its value; user space's copy zeroes the
            // slot (check_and_init_map_value), the value keeps it.
            let n = if ty == BPF_MAP_TYPE_PERCPU_ARRAY {
                stash(&rt, &p, m.array_value(0, 1).expect("CPU 1's value"))
            } else {
                stash(&rt, &p, &m.htab_lookup(&key(0)).expect("key 0").values[1])
            };
            let back = m.bpf_map_copy_value(&key(0), 0).expect("lookup");
            assert_eq!(
                &back[24..32],
                &[0u8; 8],
                "{what}: no kernel pointer to user space"
            );
            v[16..24].copy_from_slice(&7u64.to_ne_bytes());
            m.update(&rt, &key(0), &v, 2).expect("update");
            let back = m.bpf_map_copy_value(&key(0), 0).expect("lookup");
            assert_eq!((back[0], back[16]), (5, 7), "{what}");
            // The array frees every CPU's fields on update; the hashes per profile.
            let freed = ty == BPF_MAP_TYPE_PERCPU_ARRAY || sem.htab_percpu_update_frees_fields;
            rt.rcu.rcu_barrier();
            assert_eq!(rt.mem.is_live(n), !freed, "{what}");
            close(&rt, m);
            assert_clean(&rt, &what);
        }
    }
}

/// The model's answers (0 or the errno) to `steps`: (`"update"` or `"delete"`, key,
/// flags), each with a 16-byte value of zeroes.
fn model_steps(rt: &BpfRuntime, m: &MapRt, steps: &[(&str, u32, u64)]) -> Vec<i32> {
    steps
        .iter()
        .map(|&(op, kk, f)| {
            let r = if op == "update" {
                m.update(rt, &key(kk), &[0u8; 16], f)
            } else {
                m.delete(rt, &key(kk))
            };
            r.err().map_or(0, |e| e.raw())
        })
        .collect()
}

/// The running kernel's answers to `steps` on a new map of `map_type` (4 int keys,
/// 16-byte values, no BTF).
fn kernel_steps(map_type: u32, map_flags: u32, steps: &[(&str, u32, u64)]) -> Vec<i32> {
    use std::os::fd::AsFd;
    let fd = shim_std::oracle::map_create(&shim_std::oracle::MapCreate {
        map_type,
        key_size: 4,
        value_size: 16,
        max_entries: 4,
        map_flags,
        btf_fd: None,
        btf_key_type_id: 0,
        btf_value_type_id: 0,
        name: "flags",
    })
    .expect("the kernel creates the map");
    steps
        .iter()
        .map(|&(op, kk, f)| {
            let r = if op == "update" {
                shim_std::oracle::map_update_elem(fd.as_fd(), &key(kk), &[0u8; 16], f)
            } else {
                shim_std::oracle::map_delete_elem(fd.as_fd(), &key(kk))
            };
            r.err().unwrap_or(0)
        })
        .collect()
}

/// `BPF_ANY`, `BPF_NOEXIST`, `BPF_EXIST` (include/uapi/linux/bpf.h).
const FLAG_STEPS: [(&str, u32, u64); 9] = [
    ("update", 1, 2),
    ("update", 1, 1),
    ("update", 1, 1),
    ("update", 1, 2),
    ("update", 1, 0),
    ("update", 1, 3),
    ("delete", 1, 0),
    ("delete", 1, 0),
    ("update", 1, 0),
];

/// What `check_flags` (kernel/bpf/hashtab.c) and the syscall's flag test answer to
/// [`FLAG_STEPS`]: EXIST on a missing key is -ENOENT, NOEXIST on a present one
/// -EEXIST, a flag value past `BPF_EXIST` -EINVAL, the second delete -ENOENT.
const FLAG_ANSWERS: [i32; 9] = [
    libc::ENOENT,
    0,
    libc::EEXIST,
    0,
    0,
    libc::EINVAL,
    0,
    libc::ENOENT,
    0,
];

/// Update flags answer as the kernel's `check_flags` in every hash map kind the model
/// runs (preallocated, not, LRU), and the running kernel gives the same answers.
#[test]
fn update_flags_answer_as_the_kernels_check_flags() {
    let sem = Semantics::V6_18;
    for (map_type, flags) in [
        (BPF_MAP_TYPE_HASH, 0),
        (BPF_MAP_TYPE_HASH, BPF_F_NO_PREALLOC),
        (BPF_MAP_TYPE_LRU_HASH, 0),
    ] {
        let (k, rt, p) = runtime(sem);
        let m = map(&k, &p, map_type, flags, p.plain, &sem);
        let got = model_steps(&rt, &m, &FLAG_STEPS);
        assert_eq!(got, FLAG_ANSWERS, "model: type {map_type}, flags {flags}");
        close(&rt, m);
        assert_clean(&rt, "flags");
        if kptr_tests::kernel_skip("hash map update flags") {
            continue;
        }
        let kernel = kernel_steps(map_type, flags, &FLAG_STEPS);
        assert_eq!(
            kernel, FLAG_ANSWERS,
            "kernel: type {map_type}, flags {flags}"
        );
    }
}

/// An ARRAY's answers to update flags, an index past the end and a delete
/// (`array_map_update_elem`, `array_map_delete_elem`, and the syscall's `BPF_F_LOCK`
/// test on a value without a lock): every element exists, so `BPF_NOEXIST` is -EEXIST.
const ARRAY_STEPS: [(&str, u32, u64); 8] = [
    ("update", 1, 2),
    ("update", 1, 1),
    ("update", 1, 0),
    ("update", 1, 3),
    ("update", 9, 0),
    ("update", 1, BPF_F_LOCK),
    ("delete", 1, 0),
    ("update", 3, 2),
];

const ARRAY_ANSWERS: [i32; 8] = [
    0,
    libc::EEXIST,
    0,
    libc::EINVAL,
    libc::E2BIG,
    libc::EINVAL,
    libc::EINVAL,
    0,
];

/// An ARRAY answers update flags as the kernel does, and the running kernel agrees.
#[test]
fn array_update_flags_answer_as_the_kernels() {
    let sem = Semantics::V6_18;
    let (k, rt, p) = runtime(sem);
    let m = map(&k, &p, 2, 0, p.plain, &sem);
    let got = model_steps(&rt, &m, &ARRAY_STEPS);
    assert_eq!(got, ARRAY_ANSWERS, "model");
    close(&rt, m);
    assert_clean(&rt, "array flags");
    if kptr_tests::kernel_skip("array update flags") {
        return;
    }
    let kernel = kernel_steps(2, 0, &ARRAY_STEPS);
    assert_eq!(kernel, ARRAY_ANSWERS, "the running kernel");
}
