//! Scenario 7: the last `btf_put` of a published BTF against a lookup of it by id
//! (`btf_get_fd_by_id`: `rcu_read_lock`, IDR lookup, `refcount_inc_not_zero`).
//! Invariant: the lookup either fails with -ENOENT or returns a live reference; the
//! object is freed exactly once, after a grace period; no increment from zero.
//! Bound: `LOOM_MAX_PREEMPTIONS`.
//! Catches: `refcount_inc` instead of `refcount_inc_not_zero` in `btf_get_by_id`
//! (an increment from zero: WARN and a reference to a dying object).
#![cfg(loom)]

use kernel_core::Semantics;
use kernel_core::btf::builder::BtfBuilder;
use kernel_core::btf::uapi::BTF_INT_SIGNED;
use kernel_core::btf::{BtfIdr, btf_parse};
use loom::sync::Arc;
use loom::thread;

#[test]
fn btf_put_vs_lookup() {
    loom_tests::model("m07 last btf_put vs lookup by id", || {
        let mut b = BtfBuilder::new();
        b.int("int", 4, BTF_INT_SIGNED, 32);
        let rcu = Arc::new(kernel_core::sync::Rcu::new());
        let idr = BtfIdr::new(Arc::clone(&rcu));
        let mut btf = btf_parse(&b.build(), 0, Semantics::V6_18).expect("btf");
        let id = BtfIdr::publish(&idr, &mut btf).expect("id");
        let addr = btf.addr();
        let idr2 = Arc::clone(&idr);
        let t = thread::spawn(move || {
            if let Ok(r) = idr2.btf_get_by_id(id) {
                assert!(r.refcount() >= 1);
                drop(r);
            }
        });
        drop(btf);
        t.join().expect("join");
        rcu.rcu_barrier();
        assert!(idr.is_freed(addr), "freed after the grace period");
        assert!(loom_tests::warns().is_empty(), "no refcount WARN");
        assert!(idr.is_empty());
    });
}
