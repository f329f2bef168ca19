//! Scenario 3: the same value torn down twice at once (a preallocated hash delete frees
//! the element's fields while the map's free walks every preallocated element).
//! Invariant: the stashed object is freed exactly once; the second teardown finds the
//! slot empty.
//! Bound: `LOOM_MAX_PREEMPTIONS`.
//! Catches: a non-atomic clear of the kptr slot in `bpf_obj_free_fields` (double free).
#![cfg(loom)]

use kernel_core::Semantics;
use kernel_core::obj::{bpf_kptr_xchg, bpf_obj_free_fields, bpf_obj_new_impl};
use loom::sync::Arc;
use loom::thread;
use loom_tests::{check_clean, fixture};

#[test]
fn value_freed_twice() {
    loom_tests::model("m03 value freed twice", || {
        let f = fixture(Semantics::V6_18);
        let n = bpf_obj_new_impl(&f.rt, &f.btf, f.node_id).expect("node");
        bpf_kptr_xchg(f.map.array_value(0, 0).expect("v"), 0, n).expect("stash");
        let f = Arc::new(f);
        let g = Arc::clone(&f);
        let t = thread::spawn(move || {
            g.rt.migrate_disable();
            bpf_obj_free_fields(
                &g.rt,
                g.map.record().expect("rec"),
                g.map.array_value(0, 0).expect("v"),
            );
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
        check_clean(Arc::try_unwrap(f).ok().expect("joined"));
    });
}
