//! Scenario 14, three actors on one refcounted object that is on a list and owned
//! twice (the list's reference and a program's): the program's `bpf_obj_drop` of its
//! reference, another program's `bpf_refcount_acquire` through a non-owning reference
//! (under `rcu_read_lock`, as after a list insertion), and the list's drain
//! (`bpf_list_head_free` from `bpf_obj_free_fields`: the map's free or an update).
//! Invariant (v6.18): the object is freed exactly once, by whichever reference goes
//! last (the acquire's own included); the acquire fails only once the count reached
//! zero; nothing is used after free and nothing is left; no WARN.
//! Invariant (v6.4, the kernel's bug fixed in v6.6 by `refcount_inc_not_zero` and an
//! RCU-deferred free): every execution is clean except those where the acquire comes
//! after the last decrement: after the free it ends with exactly the use after free of
//! the freed object (`refcount_inc` on freed memory); before it, with exactly the
//! WARN of an increment from zero and then either its own drop's underflow WARN or,
//! the free having come meanwhile, that drop's use after free. Each of the four
//! outcomes is seen; any other fault fails.
//! Bound: `LOOM_MAX_PREEMPTIONS`, 3 in CI (finishes; README table); its faults are caught at 2.
//! Catches: the refcount gate of `__bpf_obj_drop_impl` as a read then a write,
//! `refcount_inc` instead of `refcount_inc_not_zero` in `bpf_refcount_acquire_impl`
//! (v6.18), an immediate free instead of `bpf_mem_free_rcu`, the drain detaching the
//! list without the value's lock.
#![cfg(loom)]

use kernel_core::Semantics;
use kernel_core::obj::{
    bpf_graph_push, bpf_obj_free_fields, bpf_refcount_acquire_impl, bpf_spin_lock, bpf_spin_unlock,
};
use kernel_core::record::BtfFieldType;
use loom::sync::Arc;
use loom::thread;
use loom_tests::{Fault, Outcomes, faults, finish_ctx, fixture_refcounted_list, prog_run};

fn scenario(sem: Semantics) -> Vec<Fault> {
    let (c, map) = fixture_refcounted_list(sem).split();
    let v = map.array_value(0, 0).expect("value");
    let (n, mine) = prog_run(&c.rt, || {
        let n = c.obj_new(1).expect("node");
        let mine = bpf_refcount_acquire_impl(&c.rt, n, c.rec()).expect("second owner");
        bpf_spin_lock(v, 0);
        bpf_graph_push(&c.rt, v, 8, n, 8, BtfFieldType::LIST_NODE, c.rec()).expect("push");
        bpf_spin_unlock(v, 0);
        (n, mine)
    });
    let c1 = Arc::clone(&c);
    let owner = thread::spawn(move || prog_run(&c1.rt, || c1.obj_drop(mine)));
    let c2 = Arc::clone(&c);
    let acquirer = thread::spawn(move || {
        prog_run(&c2.rt, || {
            if let Some(p) = bpf_refcount_acquire_impl(&c2.rt, n, c2.rec()) {
                c2.obj_drop(p);
            }
        })
    });
    // The drain, with migration disabled as its callers have it (v6.18).
    c.rt.migrate_disable();
    bpf_obj_free_fields(&c.rt, map.record().expect("record"), v);
    c.rt.migrate_enable();
    owner.join().expect("owner");
    acquirer.join().expect("acquirer");
    let got = faults(&c.rt);
    drop(map);
    finish_ctx(c);
    got
}

#[test]
fn acquire_vs_drop_vs_drain_v6_18() {
    loom_tests::model("m14 refcount_acquire vs obj_drop vs drain (v6.18)", || {
        assert_eq!(scenario(Semantics::V6_18), vec![])
    });
}

#[test]
fn acquire_vs_drop_vs_drain_v6_4_uses_the_freed_object() {
    let name = "m14 refcount_acquire vs obj_drop vs drain (v6.4, bug)";
    // The acquire after the free touches freed memory. Between the last decrement and
    // the free it finds the count at zero (refcount_inc: WARN, saturated) and its own
    // drop then underflows (WARN, frees nothing), or, the free having come meanwhile,
    // touches the freed object.
    let uaf = Fault::UseAfterFree("rnode".into());
    let inc0 = Fault::Warn("refcount_t: addition on 0; use-after-free.");
    let under = Fault::Warn("refcount_t: underflow; use-after-free.");
    let bugs = vec![
        vec![uaf.clone()],
        vec![inc0.clone(), under],
        vec![uaf, inc0],
    ];
    let mut allowed = bugs.clone();
    allowed.push(vec![]);
    let o = Outcomes::new(allowed.clone());
    let o2 = std::sync::Arc::clone(&o);
    loom_tests::model(name, move || o2.record(scenario(Semantics::V6_4)));
    o.report(name, &allowed);
}
