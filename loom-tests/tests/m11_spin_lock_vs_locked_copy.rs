//! Scenario 11: a program updating two fields of a value under `bpf_spin_lock` against
//! a `BPF_F_LOCK` update from user space (`copy_map_value_locked`).
//! Invariant: readers under the lock see either update whole, never a mix; the lock
//! word itself is never overwritten by the copy.
//! Bound: `LOOM_MAX_PREEMPTIONS`.
//! Catches: a copy that includes the lock word, or a lock taken with a plain store
//! instead of a compare-and-exchange in `bpf_spin_lock`.
#![cfg(loom)]

use kernel_core::Semantics;
use kernel_core::map::value::BPF_F_LOCK;
use kernel_core::obj::{bpf_spin_lock, bpf_spin_unlock};
use loom::sync::Arc;
use loom::thread;
use loom_tests::{finish, fixture_graph};

#[test]
fn spin_lock_vs_locked_copy() {
    loom_tests::model("m11 bpf_spin_lock vs locked copy", || {
        let f = Arc::new(fixture_graph(Semantics::V6_18));
        let g = Arc::clone(&f);
        // The program: bytes 4..8 (after the lock word, before the list head) set to 1.
        let prog = thread::spawn(move || {
            let v = g.map.array_value(0, 0).expect("v");
            bpf_spin_lock(v, 0);
            for i in 4..8 {
                v.set_byte(i, 1);
            }
            bpf_spin_unlock(v, 0);
        });
        let mut bytes = [2u8; 24];
        bytes[0] = 0xff;
        f.map
            .update(&f.rt, &0u32.to_ne_bytes(), &bytes, BPF_F_LOCK)
            .expect("BPF_F_LOCK update");
        prog.join().expect("join");
        let v = f.map.array_value(0, 0).expect("v");
        bpf_spin_lock(v, 0);
        let seen: Vec<u8> = (4..8).map(|i| v.byte(i)).collect();
        bpf_spin_unlock(v, 0);
        assert!(
            seen == [1, 1, 1, 1] || seen == [2, 2, 2, 2],
            "torn: {seen:?}"
        );
        assert_eq!(v.load_u32(0), 0, "the lock word is not copied");
        finish(Arc::try_unwrap(f).ok().expect("joined"));
    });
}
