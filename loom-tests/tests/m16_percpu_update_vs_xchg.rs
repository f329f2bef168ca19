//! Scenario 16, three actors on one element of a preallocated PERCPU_HASH map: user
//! space updates the key in place (`__htab_percpu_map_update_elem` ->
//! `pcpu_copy_value`: every CPU's value copied, special fields skipped, then, since
//! "bpf: Free special fields when update [lru_,]percpu_hash maps", each CPU's special
//! fields freed), while the program on CPU 0 stashes a new object into its CPU's value
//! with `bpf_kptr_xchg`, and the program on CPU 1 takes out the object stashed in its
//! CPU's value before. Then the map is closed.
//! Invariant (v6.18, and v6.12 which leaves the fields alone): every object is freed
//! exactly once (by the update, by the program that took it out, or by the map's
//! free), nothing is left, no WARN; each CPU's data bytes hold the update.
//! Bound: `LOOM_MAX_PREEMPTIONS`, 3 in CI (finishes; README table); its faults are caught at 2.
//! Catches: the per-CPU update's field free as a load and a store of the kptr slot
//! (`bpf_obj_free_fields`' exchange), a copy that includes the special fields, and
//! `bpf_kptr_xchg` as a load and a store.
#![cfg(loom)]

use kernel_core::Semantics;
use kernel_core::map::BPF_MAP_TYPE_PERCPU_HASH;
use kernel_core::map::runtime::BPF_EXIST;
use kernel_core::obj::bpf_kptr_xchg;
use loom::sync::Arc;
use loom::thread;
use loom_tests::{faults, finish_ctx, fixture_map, map_put, prog_run};

fn scenario(sem: Semantics) {
    let f = fixture_map(sem, BPF_MAP_TYPE_PERCPU_HASH, 0, 2);
    let key = 0u32.to_ne_bytes();
    // A per-CPU map's value from user space: one 16-byte value per CPU.
    f.map.update(&f.rt, &key, &[0u8; 32], 0).expect("insert");
    let (c, map) = f.split();
    // CPU 1's value already holds an object.
    prog_run(&c.rt, || {
        let e = map.htab_lookup(&key).expect("key");
        let n = c.obj_new(1).expect("node");
        assert_eq!(bpf_kptr_xchg(&e.values[1], 8, n), Ok(0));
    });
    let (c0, m0) = (Arc::clone(&c), Arc::clone(&map));
    let cpu0 = thread::spawn(move || {
        prog_run(&c0.rt, || {
            let e = m0.htab_lookup(&key).expect("key");
            let n = c0.obj_new(2).expect("node");
            let old = bpf_kptr_xchg(&e.values[0], 8, n).expect("xchg");
            c0.obj_drop(old);
        })
    });
    let (c1, m1) = (Arc::clone(&c), Arc::clone(&map));
    let cpu1 = thread::spawn(move || {
        prog_run(&c1.rt, || {
            let e = m1.htab_lookup(&key).expect("key");
            let old = bpf_kptr_xchg(&e.values[1], 8, 0).expect("xchg");
            c1.obj_drop(old);
        })
    });
    map.update(&c.rt, &key, &[0xab; 32], BPF_EXIST)
        .expect("in-place update");
    cpu0.join().expect("cpu 0");
    cpu1.join().expect("cpu 1");
    let e = map.htab_lookup(&key).expect("key");
    for v in &e.values {
        assert_eq!(v.byte(0), 0xab, "the update's data");
    }
    drop(e);
    map_put(&c.rt, map);
    assert_eq!(faults(&c.rt), vec![]);
    finish_ctx(c);
}

#[test]
fn percpu_update_vs_xchg_v6_18() {
    loom_tests::model(
        "m16 per-CPU in-place update vs two CPUs' xchg (v6.18)",
        || scenario(Semantics::V6_18),
    );
}

#[test]
fn percpu_update_vs_xchg_v6_12() {
    loom_tests::model(
        "m16 per-CPU in-place update vs two CPUs' xchg (v6.12)",
        || scenario(Semantics::V6_12),
    );
}
