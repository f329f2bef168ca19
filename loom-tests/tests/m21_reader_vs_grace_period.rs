//! Scenario 21: a reader inside `rcu_read_lock` dereferences a published object and
//! reads its data, while an updater unpublishes it, waits for a grace period with
//! `synchronize_rcu` and frees it (reading and poisoning the data, the free path's
//! plain accesses). Only RCU orders the reader's read before the free.
//! Invariant: a reader that saw the object published reads it before it is freed (no
//! data race between its read and the free's write); a reader that comes later sees
//! nothing published; the object is freed once.
//! Bound: `LOOM_MAX_PREEMPTIONS`.
//! Catches: a grace period that does not wait for the readers present at its start
//! (F22: the free races with the reader's read); with a grace period before the
//! unpublishing, run while the reader runs, also one that waits for the same slot
//! twice or for slot 1 whatever the epoch (a reader that read the epoch before that
//! grace period's flip counts under the previous epoch's slot).
#![cfg(loom)]

use kernel_core::sync::{AtomicU64, Ordering, Rcu, Word, word_read, word_write};
use loom::sync::Arc;
use loom::thread;

/// The published pointer (1: the object, 0: NULL) and the object's one word of data.
struct Domain {
    rcu: Rcu,
    ptr: AtomicU64,
    data: Word,
}

#[test]
fn reader_vs_synchronize_rcu_free() {
    loom_tests::model("m21 rcu reader vs synchronize_rcu and free", || scenario(0));
}

#[test]
fn reader_vs_grace_period_then_synchronize_rcu_free() {
    loom_tests::model(
        "m21 rcu reader vs a grace period, synchronize_rcu and free",
        || scenario(1),
    );
}

/// The race, with `before` grace periods run by the updater before it unpublishes.
fn scenario(before: usize) {
    let d = Arc::new(Domain {
        rcu: Rcu::new(),
        ptr: AtomicU64::new(1),
        data: Word::new(42),
    });
    let r = Arc::clone(&d);
    let reader = thread::spawn(move || {
        let g = r.rcu.read_lock();
        // rcu_dereference, as a read-modify-write that changes nothing: loom
        // treats SeqCst as acquire-release, so a plain load could still read the
        // pointer after the grace period missed this reader (store buffering),
        // which the full barriers of the kernel's synchronize_rcu rule out.
        if r.ptr.fetch_or(0, Ordering::SeqCst) == 1 {
            assert_eq!(word_read(&r.data), 42, "the reader sees the live object");
        }
        drop(g);
    });
    // Grace periods while the reader runs: one that finds it not yet counted lets it
    // count under the slot of the epoch before (the next grace period must wait
    // for that slot).
    for _ in 0..before {
        d.rcu.synchronize_rcu();
    }
    // rcu_assign_pointer(p, NULL); synchronize_rcu(); kfree(old)
    let old = d.ptr.swap(0, Ordering::SeqCst);
    d.rcu.synchronize_rcu();
    assert_eq!(old, 1);
    assert_eq!(word_read(&d.data), 42);
    word_write(&d.data, |_| 0x6b6b_6b6b_6b6b_6b6b);
    reader.join().expect("join");
}
