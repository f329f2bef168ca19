//! Scenario 18, three actors on a value `{ struct bpf_spin_lock l; int counter; struct
//! node __kptr *n; }`: a program increments the counter under `bpf_spin_lock` (a read
//! and a write of ordinary memory), user space writes the value with `BPF_F_LOCK`
//! (`copy_map_value_locked`: the copy under the value's lock, special fields skipped;
//! then, as `array_map_update_elem` does, the value's special fields freed), and
//! another program stashes an object into the kptr with `bpf_kptr_xchg`, no lock
//! taken. The counter shares its 8-byte word with the lock word.
//! Invariant: no data race on the counter (its bytes are plain `Word` accesses, which
//! loom's cell checks: two critical sections the lock does not order are a "Causality
//! violation"); the counter ends as a serial order makes it (100 or 101: the copy
//! writes 100); the lock is free and was not copied; every object is freed exactly
//! once, nothing is left, no WARN.
//! Bound: `LOOM_MAX_PREEMPTIONS`, 3 in CI (finishes; README table); its faults are
//! caught at 2. Two lockers only: loom cannot bound a schedule in which two threads
//! spin on a lock a third holds.
//! Catches: `bpf_spin_lock` taking the lock with relaxed ordering (instead of
//! acquire) and `bpf_spin_unlock` releasing it with relaxed ordering (instead of
//! release): loom reports each as a data race on the counter, which the atomics
//! alone would show only through a lost update; a copy that writes the lock word or
//! the kptr; the update's field free as a load and a store.
#![cfg(loom)]

use kernel_core::Semantics;
use kernel_core::map::value::BPF_F_LOCK;
use kernel_core::obj::{bpf_kptr_xchg, bpf_spin_lock, bpf_spin_unlock};
use loom::sync::Arc;
use loom::thread;
use loom_tests::{Fault, faults, finish_ctx, fixture_locked_kptr, map_put, prog_run};

#[test]
fn spin_lock_guards_plain_data() {
    loom_tests::model("m18 bpf_spin_lock guards plain data (3 actors)", || {
        let (c, map) = fixture_locked_kptr(Semantics::V6_18).split();
        let (c1, m1) = (Arc::clone(&c), Arc::clone(&map));
        let inc = thread::spawn(move || {
            let v = m1.array_value(0, 0).expect("value");
            prog_run(&c1.rt, || {
                bpf_spin_lock(v, 0);
                let x = v.byte(4);
                v.set_byte(4, x.wrapping_add(1));
                bpf_spin_unlock(v, 0);
            })
        });
        let (c2, m2) = (Arc::clone(&c), Arc::clone(&map));
        let stash = thread::spawn(move || {
            let v = m2.array_value(0, 0).expect("value");
            prog_run(&c2.rt, || {
                let n = c2.obj_new(4).expect("node");
                let old = bpf_kptr_xchg(v, 8, n).expect("xchg");
                c2.obj_drop(old);
            })
        });
        let mut bytes = [0xeeu8; 16];
        bytes[..4].copy_from_slice(&[0xff; 4]);
        bytes[4..8].copy_from_slice(&[100, 0, 0, 0]);
        map.update(&c.rt, &0u32.to_ne_bytes(), &bytes, BPF_F_LOCK)
            .expect("BPF_F_LOCK update");
        inc.join().expect("incrementer");
        stash.join().expect("stasher");
        let v = map.array_value(0, 0).expect("value");
        let x = v.byte(4);
        assert!(x == 100 || x == 101, "counter {x}");
        assert_eq!(v.load_u32(0), 0, "the lock is free and was not copied");
        let slot = v
            .slot(8)
            .map(|s| s.load(std::sync::atomic::Ordering::SeqCst));
        assert_ne!(slot, Some(0xeeee_eeee_eeee_eeee), "the kptr was not copied");
        map_put(&c.rt, map);
        assert_eq!(faults(&c.rt), Vec::<Fault>::new());
        finish_ctx(c);
    });
}
