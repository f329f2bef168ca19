//! Scenario 2: a program's `bpf_kptr_xchg` (stashing a new object, dropping the old)
//! against `bpf_obj_free_fields` of the same value (an array update, a hash delete or
//! the map's free running on another CPU), then the final teardown.
//! Invariant: every object freed exactly once, nothing left allocated.
//! Bound: `LOOM_MAX_PREEMPTIONS`.
//! Catches: `bpf_obj_free_fields` reading the kptr slot and clearing it with a separate
//! store instead of one exchange.
#![cfg(loom)]

use kernel_core::Semantics;
use kernel_core::obj::{__bpf_obj_drop_impl, bpf_kptr_xchg, bpf_obj_free_fields, bpf_obj_new_impl};
use loom::sync::Arc;
use loom::thread;
use loom_tests::{check_clean, fixture};

#[test]
fn xchg_vs_free_fields() {
    loom_tests::model("m02 xchg vs bpf_obj_free_fields", || {
        let f = fixture(Semantics::V6_18);
        let first = bpf_obj_new_impl(&f.rt, &f.btf, f.node_id).expect("first");
        let second = bpf_obj_new_impl(&f.rt, &f.btf, f.node_id).expect("second");
        bpf_kptr_xchg(f.map.array_value(0, 0).expect("v"), 0, first).expect("stash");
        let f = Arc::new(f);
        let g = Arc::clone(&f);
        let prog = thread::spawn(move || {
            g.rt.migrate_disable();
            let v = g.map.array_value(0, 0).expect("v");
            let old = bpf_kptr_xchg(v, 0, second).expect("xchg");
            if old != 0 {
                __bpf_obj_drop_impl(&g.rt, old, g.meta.as_ref().and_then(|m| m.rec()), false);
            }
            g.rt.migrate_enable();
        });
        let v = f.map.array_value(0, 0).expect("v");
        // The callers of bpf_obj_free_fields run with migration disabled (v6.18).
        f.rt.migrate_disable();
        bpf_obj_free_fields(&f.rt, f.map.record().expect("rec"), v);
        prog.join().expect("join");
        bpf_obj_free_fields(&f.rt, f.map.record().expect("rec"), v);
        f.rt.migrate_enable();
        check_clean(Arc::try_unwrap(f).ok().expect("joined"));
    });
}
