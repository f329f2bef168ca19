//! Scenario 12: `bpf_obj_free_fields` drops a stashed object while a program on another
//! CPU sits in its own migrate-disabled section.
//! Invariant: the free is checked against the freeing task's own migrate-disable count
//! (`current->migration_disabled`), whatever the other task does meanwhile: a profile
//! that drops without `migrate_disable` WARNs in every execution, one that wraps the
//! drop never does; the object is freed exactly once either way.
//! Bound: `LOOM_MAX_PREEMPTIONS`.
//! Catches: one migrate-disable count shared by all tasks (the other task's section
//! hides the missing `migrate_disable` in the executions where they overlap).
#![cfg(loom)]

use kernel_core::Semantics;
use kernel_core::obj::{bpf_kptr_xchg, bpf_obj_free_fields, bpf_obj_new_impl};
use loom::sync::Arc;
use loom::thread;
use loom_tests::{finish, fixture};

const NO_MIGRATE: &str = "bpf_mem_free without migrate_disable";

fn scenario(sem: Semantics) -> Vec<&'static str> {
    let f = fixture(sem);
    f.rt.migrate_disable();
    let n = bpf_obj_new_impl(&f.rt, &f.btf, f.node_id).expect("node");
    bpf_kptr_xchg(f.map.array_value(0, 0).expect("v"), 0, n).expect("stash");
    f.rt.migrate_enable();
    let f = Arc::new(f);
    let g = Arc::clone(&f);
    // A program on another CPU: a migrate-disabled section around an exchange on
    // another value.
    let prog = thread::spawn(move || {
        g.rt.migrate_disable();
        let v = g.map.array_value(1, 0).expect("v");
        assert_eq!(bpf_kptr_xchg(v, 0, 0).expect("xchg"), 0);
        g.rt.migrate_enable();
    });
    bpf_obj_free_fields(
        &f.rt,
        f.map.record().expect("rec"),
        f.map.array_value(0, 0).expect("v"),
    );
    prog.join().expect("join");
    let f = Arc::try_unwrap(f).ok().expect("joined");
    let warns = f.rt.warnings();
    f.rt.rcu.rcu_barrier();
    assert!(f.rt.mem.faults().is_empty(), "{:?}", f.rt.mem.faults());
    assert!(f.rt.mem.live().is_empty(), "{:?}", f.rt.mem.live());
    finish(f);
    warns
}

#[test]
fn a_drop_without_migrate_disable_warns_in_every_execution() {
    // v6.18: bpf_obj_free_fields leaves migrate_disable to its callers.
    let no_wrap = Semantics::V6_18;
    loom_tests::model(
        "m12 drop without migrate_disable vs a pinned program",
        move || {
            assert_eq!(scenario(no_wrap), vec![NO_MIGRATE]);
        },
    );
}

#[test]
fn a_wrapped_drop_never_warns() {
    // v6.12: bpf_obj_free_fields wraps the drop itself (v6.18 leaves it to its callers,
    // and this caller has not disabled migration: the other model's case).
    loom_tests::model("m12 wrapped drop vs a pinned program (v6.12)", || {
        assert!(scenario(Semantics::V6_12).is_empty());
    });
}
