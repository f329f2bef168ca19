//! Scenario 4: a refcounted object owned by two map values, both torn down at once.
//! Invariant: the object is freed exactly once, by whichever teardown drops the last
//! reference; no refcount underflow.
//! Bound: `LOOM_MAX_PREEMPTIONS`.
//! Catches: the refcount gate of `__bpf_obj_drop_impl` as a read followed by a write
//! instead of `refcount_dec_and_test` (both sides see 1, double free).
#![cfg(loom)]

use kernel_core::Semantics;
use kernel_core::obj::{
    bpf_kptr_xchg, bpf_obj_free_fields, bpf_obj_new_impl, bpf_refcount_acquire_impl,
};
use loom::sync::Arc;
use loom::thread;
use loom_tests::{check_clean, fixture};

#[test]
fn two_owners() {
    loom_tests::model("m04 two owners torn down at once", || {
        let f = fixture(Semantics::V6_18);
        let n = bpf_obj_new_impl(&f.rt, &f.btf, f.node_id).expect("node");
        let m = bpf_refcount_acquire_impl(&f.rt, n, f.meta.as_ref().and_then(|m| m.rec()))
            .expect("acquire");
        bpf_kptr_xchg(f.map.array_value(0, 0).expect("v0"), 0, n).expect("owner 0");
        bpf_kptr_xchg(f.map.array_value(1, 0).expect("v1"), 0, m).expect("owner 1");
        let f = Arc::new(f);
        let g = Arc::clone(&f);
        let t = thread::spawn(move || {
            g.rt.migrate_disable();
            bpf_obj_free_fields(
                &g.rt,
                g.map.record().expect("rec"),
                g.map.array_value(1, 0).expect("v1"),
            );
            g.rt.migrate_enable();
        });
        f.rt.migrate_disable();
        bpf_obj_free_fields(
            &f.rt,
            f.map.record().expect("rec"),
            f.map.array_value(0, 0).expect("v0"),
        );
        f.rt.migrate_enable();
        t.join().expect("join");
        check_clean(Arc::try_unwrap(f).ok().expect("joined"));
    });
}
