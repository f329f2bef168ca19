//! Scenario 5: `bpf_refcount_acquire` on an object reached through a non-owning
//! reference (under `rcu_read_lock`) against the last drop of that object.
//! Invariant: the acquire either fails or yields a live object, which is then freed
//! exactly once; nothing is used after free.
//! Bound: `LOOM_MAX_PREEMPTIONS`.
//! The kernel's past bug: v6.4 (`refcount_inc`, memory reused at once by `bpf_mem_free`)
//! lets the acquire touch a freed object; v6.6 fixed it with `refcount_inc_not_zero`
//! and an RCU-deferred free. The model shows the bug under v6.4 and not under v6.18.
//! Catches: `obj_drop_free_rcu` off (immediate free) or `refcount_inc` instead of
//! `refcount_inc_not_zero` in `bpf_refcount_acquire_impl`.
#![cfg(loom)]

use kernel_core::Semantics;
use kernel_core::obj::{
    __bpf_obj_drop_impl, bpf_kptr_xchg, bpf_obj_free_fields, bpf_obj_new_impl,
    bpf_refcount_acquire_impl,
};
use loom::sync::Arc;
use loom::thread;
use loom_tests::{Fault, Outcomes, faults, finish, fixture};

fn scenario(sem: Semantics) -> Vec<Fault> {
    let f = fixture(sem);
    let n = bpf_obj_new_impl(&f.rt, &f.btf, f.node_id).expect("node");
    bpf_kptr_xchg(f.map.array_value(0, 0).expect("v"), 0, n).expect("stash");
    let f = Arc::new(f);
    let g = Arc::clone(&f);
    // A program holding a non-owning reference to the node (as after a list or rbtree
    // insertion) acquires an owning one.
    let t = thread::spawn(move || {
        let _rcu = g.rt.rcu.read_lock();
        g.rt.migrate_disable();
        if let Some(p) = bpf_refcount_acquire_impl(&g.rt, n, g.meta.as_ref().and_then(|m| m.rec()))
        {
            __bpf_obj_drop_impl(&g.rt, p, g.meta.as_ref().and_then(|m| m.rec()), false);
        }
        g.rt.migrate_enable();
    });
    f.rt.migrate_disable();
    bpf_obj_free_fields(
        &f.rt,
        f.map.record().expect("rec"),
        f.map.array_value(0, 0).expect("v"),
    );
    f.rt.migrate_enable();
    t.join().expect("join");
    let f = Arc::try_unwrap(f).ok().expect("joined");
    let got = faults(&f.rt);
    finish(f);
    got
}

#[test]
fn refcount_acquire_vs_drop_v6_18_is_safe() {
    loom_tests::model("m05 refcount_acquire vs last drop (v6.18)", || {
        assert_eq!(scenario(Semantics::V6_18), vec![])
    });
}

/// v6.4: every execution is clean or ends with exactly one of the kernel's symptoms:
/// the acquire touches the freed node; or it finds the count at zero (WARN, saturated)
/// and its drop then underflows (WARN) or, the node freed meanwhile, touches it. Each
/// is seen; any other fault (a double free, a leak) fails the model.
#[test]
fn refcount_acquire_vs_drop_v6_4_uses_freed_memory() {
    let name = "m05 refcount_acquire vs last drop (v6.4, bug)";
    let uaf = Fault::UseAfterFree("node".into());
    let inc0 = Fault::Warn("refcount_t: addition on 0; use-after-free.");
    let under = Fault::Warn("refcount_t: underflow; use-after-free.");
    let allowed = vec![
        vec![],
        vec![uaf.clone()],
        vec![inc0.clone(), under],
        vec![uaf, inc0],
    ];
    let o = Outcomes::new(allowed.clone());
    let o2 = std::sync::Arc::clone(&o);
    loom_tests::model(name, move || o2.record(scenario(Semantics::V6_4)));
    o.report(name, &allowed);
}
