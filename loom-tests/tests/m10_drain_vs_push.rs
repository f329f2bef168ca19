//! Scenario 10: a list drain (`bpf_list_head_free` from `bpf_obj_free_fields`) against a
//! program pushing a node onto the same list under the value's `bpf_spin_lock`.
//! Invariant: the node ends either drained (dropped once by the drain) or in the list
//! for the final teardown; it is never lost nor dropped twice.
//! Bound: `LOOM_MAX_PREEMPTIONS`.
//! Catches: detaching the list without taking the value's lock in the drain (the push
//! lands in a list already detached, and the node leaks).
#![cfg(loom)]

use kernel_core::Semantics;
use kernel_core::obj::{
    bpf_graph_push, bpf_obj_free_fields, bpf_obj_new_impl, bpf_spin_lock, bpf_spin_unlock,
};
use kernel_core::record::BtfFieldType;
use loom::sync::Arc;
use loom::thread;
use loom_tests::{check_clean, fixture_graph};

#[test]
fn drain_vs_push() {
    loom_tests::model("m10 list drain vs push under the lock", || {
        let f = fixture_graph(Semantics::V6_18);
        let n = bpf_obj_new_impl(&f.rt, &f.btf, f.node_id).expect("node");
        let f = Arc::new(f);
        let g = Arc::clone(&f);
        let prog = thread::spawn(move || {
            let v = g.map.array_value(0, 0).expect("v");
            g.rt.migrate_disable();
            bpf_spin_lock(v, 0);
            let rec = g.meta.as_ref().and_then(|m| m.rec());
            bpf_graph_push(&g.rt, v, 8, n, 8, BtfFieldType::LIST_NODE, rec).expect("push");
            bpf_spin_unlock(v, 0);
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
