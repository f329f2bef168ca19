//! Scenario 13, three actors: a program stashing an object into a hash element with
//! `bpf_kptr_xchg` (it looked the element up under `rcu_read_lock`), a user-space
//! delete of that element (`htab_map_delete_elem` -> `free_htab_elem`: the element's
//! special fields freed, a preallocated element back on the free list, another to the
//! element allocator), and the map's final put by whichever of the three holders
//! (the program's `used_maps` reference, the deleter's fd, another fd closed
//! meanwhile) puts its reference last (`bpf_map_put` -> `bpf_map_free_deferred`:
//! `map_free`, then the record, then the BTF).
//! Invariant (preallocated HASH, v6.4 and v6.18): every object freed exactly once,
//! nothing left allocated, no WARN: a stash that lands after the delete freed the
//! element's fields sits in a free element, which `htab_free_prealloced_fields` walks.
//! Invariant (HASH with `BPF_F_NO_PREALLOC`, v6.18): the same, except that a stash that
//! lands after the delete is the kernel's leak (the element sits on the allocator's
//! free list, which map free returns without freeing its fields: flag
//! `htab_elem_dtor` off), exactly that object and in exactly those executions; both
//! outcomes are seen.
//! Bound: `LOOM_MAX_PREEMPTIONS`, 3 in CI (finishes; README table); its faults are caught at 2.
//! Catches: the delete not freeing the element's fields, `htab_free_prealloced_fields`
//! walking only the linked elements, a non-atomic clear of the kptr slot in
//! `bpf_obj_free_fields`, and the stash's `bpf_kptr_xchg` as a load and a store.
#![cfg(loom)]

use kernel_core::Semantics;
use kernel_core::map::{BPF_F_NO_PREALLOC, BPF_MAP_TYPE_HASH};
use kernel_core::obj::bpf_kptr_xchg;
use loom::sync::Arc;
use loom::thread;
use loom_tests::{Fault, Outcomes, faults, finish_ctx, fixture_map, map_put, prog_run};

fn scenario(sem: Semantics, flags: u32) -> Vec<Fault> {
    let f = fixture_map(sem, BPF_MAP_TYPE_HASH, flags, 2);
    let key = 0u32.to_ne_bytes();
    f.map.update(&f.rt, &key, &[0u8; 16], 0).expect("insert");
    let (c, map) = f.split();
    // Three holders: the program, the deleter's fd, the fd closed meanwhile.
    map.bpf_map_inc();
    map.bpf_map_inc();
    let (c1, m1) = (Arc::clone(&c), Arc::clone(&map));
    let prog = thread::spawn(move || {
        prog_run(&c1.rt, || {
            let e = m1.htab_lookup(&key)?;
            let n = c1.obj_new(7)?;
            let old = bpf_kptr_xchg(&e.values[0], 8, n).ok()?;
            c1.obj_drop(old);
            Some(())
        });
        map_put(&c1.rt, m1);
    });
    let (c2, m2) = (Arc::clone(&c), Arc::clone(&map));
    let user = thread::spawn(move || {
        m2.delete(&c2.rt, &key).expect("the one delete");
        map_put(&c2.rt, m2);
    });
    map_put(&c.rt, map);
    prog.join().expect("program");
    user.join().expect("deleter");
    let got = faults(&c.rt);
    finish_ctx(c);
    got
}

#[test]
fn stash_vs_delete_vs_final_put_preallocated() {
    for sem in [Semantics::V6_4, Semantics::V6_18] {
        loom_tests::model(
            &format!(
                "m13 stash vs delete vs final put, preallocated ({})",
                sem.name
            ),
            move || assert_eq!(scenario(sem, 0), vec![]),
        );
    }
}

#[test]
fn stash_vs_delete_vs_final_put_not_preallocated_leaks_exactly_the_late_stash() {
    let leak = vec![Fault::Leak("node".into())];
    let o = Outcomes::new(vec![vec![], leak.clone()]);
    let o2 = std::sync::Arc::clone(&o);
    let name = "m13 stash vs delete vs final put, BPF_F_NO_PREALLOC (v6.18)";
    loom_tests::model(name, move || {
        let got = scenario(Semantics::V6_18, BPF_F_NO_PREALLOC);
        o2.record(got);
    });
    o.report(name, &[vec![], leak]);
}
