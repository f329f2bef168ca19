//! Scenario 17, three actors on a preallocated HASH (the run-time behaviour of
//! `tests/tests/htab_updates.rs`, "a reused preallocated element keeps what was
//! stashed after its delete"): a program looks key 0's element up under
//! `rcu_read_lock` and stashes an object into it with `bpf_kptr_xchg`; user space
//! deletes key 0 (`free_htab_elem`: the element's special fields freed, the element
//! back on the free list) and another user-space thread inserts key 1, which takes an
//! element from the free list (`alloc_htab_elem`: the value copied, special fields
//! skipped, so a reused element keeps what the program stashed after the delete). Then
//! the map is closed (`htab_free_prealloced_fields`: every element, linked or free).
//! Invariant (v6.4 and v6.18): the program's object is freed exactly once (by the
//! delete, or by the map's free from whichever element holds it: the reused one, key
//! 1's, or one on the free list), nothing is left, no WARN; key 1's data bytes hold the
//! insert whatever element it got. Some execution reuses the element with the
//! program's object in it.
//! Bound: `LOOM_MAX_PREEMPTIONS`, 3 in CI (finishes; README table); its faults are caught at 2.
//! Catches: an insert that copies the special fields too (`copy_map_value` not
//! skipping them: the stashed object is lost), a delete that does not free the
//! element's fields, a map free that walks only the linked elements.
#![cfg(loom)]

use kernel_core::Semantics;
use kernel_core::map::BPF_MAP_TYPE_HASH;
use kernel_core::obj::bpf_kptr_xchg;
use loom::sync::Arc;
use loom::thread;
use loom_tests::{BPF_NOEXIST, faults, finish_ctx, fixture_map, map_put, prog_run};

/// Executions where key 1 got the deleted element with the program's object in it.
static KEPT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn scenario(sem: Semantics) {
    let f = fixture_map(sem, BPF_MAP_TYPE_HASH, 0, 2);
    let (k0, k1) = (0u32.to_ne_bytes(), 1u32.to_ne_bytes());
    f.map
        .update(&f.rt, &k0, &[0u8; 16], 0)
        .expect("insert key 0");
    let (c, map) = f.split();
    let (cp, mp) = (Arc::clone(&c), Arc::clone(&map));
    let prog = thread::spawn(move || {
        prog_run(&cp.rt, || {
            let e = mp.htab_lookup(&k0)?;
            let n = cp.obj_new(3)?;
            let old = bpf_kptr_xchg(&e.values[0], 8, n).ok()?;
            cp.obj_drop(old);
            Some(())
        });
    });
    let (cd, md) = (Arc::clone(&c), Arc::clone(&map));
    let del = thread::spawn(move || md.delete(&cd.rt, &k0).expect("delete key 0"));
    map.update(&c.rt, &k1, &[9u8; 16], BPF_NOEXIST)
        .expect("insert key 1");
    prog.join().expect("program");
    del.join().expect("deleter");
    let e = map.htab_lookup(&k1).expect("key 1");
    assert_eq!(e.values[0].byte(0), 9, "key 1's data");
    if e.values[0]
        .slot(8)
        .map(|s| s.load(std::sync::atomic::Ordering::SeqCst))
        != Some(0)
    {
        KEPT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
    drop(e);
    map_put(&c.rt, map);
    assert_eq!(faults(&c.rt), vec![]);
    finish_ctx(c);
}

#[test]
fn reuse_vs_holder_v6_18() {
    KEPT.store(0, std::sync::atomic::Ordering::SeqCst);
    loom_tests::model(
        "m17 reuse of a preallocated element vs its holder (v6.18)",
        || scenario(Semantics::V6_18),
    );
    assert!(
        KEPT.load(std::sync::atomic::Ordering::SeqCst) > 0,
        "never reused with the object"
    );
}

#[test]
fn reuse_vs_holder_v6_4() {
    loom_tests::model(
        "m17 reuse of a preallocated element vs its holder (v6.4)",
        || scenario(Semantics::V6_4),
    );
}
