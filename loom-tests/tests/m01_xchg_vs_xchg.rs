//! Scenario 1: two programs `bpf_kptr_xchg` their own objects into the same slot at
//! once, each dropping what it gets back; then the map value is torn down.
//! Invariant: every object is freed exactly once, none leaks (the slot is exchanged
//! atomically, so each old pointer has exactly one receiver).
//! Bound: `LOOM_MAX_PREEMPTIONS` (2 in the README's run).
//! Each program allocates its object and writes its `key` plainly before the exchange;
//! the one that gets the other's object back reads that key (a data race loom reports
//! unless the exchange orders the two).
//! Catches: replacing the atomic exchange in `bpf_kptr_xchg` with a load and a store
//! (an object is then dropped twice or lost); the exchange with relaxed ordering (the
//! key's read races with its write).
#![cfg(loom)]

use kernel_core::Semantics;
use kernel_core::obj::{__bpf_obj_drop_impl, bpf_kptr_xchg, bpf_obj_free_fields, bpf_obj_new_impl};
use loom::thread;
use loom_tests::{check_clean, fixture};

#[test]
fn xchg_vs_xchg() {
    loom_tests::model("m01 xchg vs xchg", || {
        let f = fixture(Semantics::V6_18);
        let f = loom::sync::Arc::new(f);
        let hs: Vec<_> = (0..2)
            .map(|_| {
                let f = loom::sync::Arc::clone(&f);
                thread::spawn(move || {
                    f.rt.migrate_disable();
                    // bpf_obj_new and a plain store of its key, then the exchange
                    // publishes it.
                    let o = bpf_obj_new_impl(&f.rt, &f.btf, f.node_id).expect("obj");
                    if let Some(obj) = f.rt.mem.get(o) {
                        obj.mem.set_byte(0, 0x42);
                    }
                    let v = f.map.array_value(0, 0).expect("value");
                    let old = bpf_kptr_xchg(v, 0, o).expect("xchg");
                    if old != 0 {
                        // The program reads what it got back: the other program's
                        // plain store of `key` before its exchange.
                        if let Some(obj) = f.rt.mem.get(old) {
                            assert_eq!(obj.mem.byte(0), 0x42);
                        }
                        __bpf_obj_drop_impl(
                            &f.rt,
                            old,
                            f.meta.as_ref().and_then(|m| m.rec()),
                            false,
                        );
                    }
                    f.rt.migrate_enable();
                })
            })
            .collect();
        for h in hs {
            h.join().expect("join");
        }
        let v = f.map.array_value(0, 0).expect("value");
        // The caller of bpf_obj_free_fields runs with migration disabled (v6.18).
        f.rt.migrate_disable();
        bpf_obj_free_fields(&f.rt, f.map.record().expect("record"), v);
        f.rt.migrate_enable();
        let f = loom::sync::Arc::try_unwrap(f).ok().expect("threads joined");
        check_clean(f);
    });
}
