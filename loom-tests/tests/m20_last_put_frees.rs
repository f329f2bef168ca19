//! Scenario 20: an object with a `refcount_t` and two owners. One owner writes the
//! object's data and puts its reference; the other puts its own; whichever
//! `refcount_dec_and_test` reaches zero frees the object, reading its data and
//! poisoning it (the free path's plain accesses). Nothing but the count orders the two
//! owners: no lock, no `Arc` drop.
//! Invariant: exactly one put reports the last reference, no WARN, and the free's
//! plain accesses do not race with the other owner's write (include/linux/refcount.h:
//! the decrement is a release, the last one an acquire).
//! Bound: `LOOM_MAX_PREEMPTIONS` (4 executions at 2 and 3).
//! Catches: `refcount_dec_and_test` with relaxed ordering (F23: the writer's decrement
//! does not release its write, a data race at the free).
#![cfg(loom)]

use kernel_core::sync::{AtomicUsize, Ordering, Refcount, Word, word_read, word_write};
use loom::sync::Arc;
use loom::thread;

/// The object: its count and one word of its data.
struct Obj {
    refcnt: Refcount,
    data: Word,
    frees: AtomicUsize,
}

/// `refcount_dec_and_test`, then the free on the last reference: the free reads the
/// data the last owner left (what `bpf_obj_free_fields` reads) and poisons it.
fn put(o: &Obj) {
    if o.refcnt.dec_and_test() {
        let last = word_read(&o.data);
        assert!(
            last == 0 || last == 42,
            "the data is one owner's write: {last}"
        );
        word_write(&o.data, |_| 0x6b6b_6b6b_6b6b_6b6b);
        o.frees.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn last_put_frees_what_another_owner_wrote() {
    loom_tests::model("m20 the last put frees another owner's write", || {
        let o = Arc::new(Obj {
            refcnt: Refcount::new(2),
            data: Word::new(0),
            frees: AtomicUsize::new(0),
        });
        let o2 = Arc::clone(&o);
        let writer = thread::spawn(move || {
            word_write(&o2.data, |_| 42);
            put(&o2);
        });
        put(&o);
        writer.join().expect("join");
        assert_eq!(o.frees.load(Ordering::SeqCst), 1, "freed exactly once");
        assert_eq!(o.refcnt.read(), 0);
        assert!(loom_tests::warns().is_empty(), "no refcount WARN");
    });
}
