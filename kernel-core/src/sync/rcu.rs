//! The RCU model: readers, `call_rcu`, `synchronize_rcu`, `rcu_barrier`.
//!
//! A grace period ends when every reader that was inside a read-side critical section
//! when it began has left; readers that arrive meanwhile are not waited for, as in the
//! kernel. Readers count themselves in one of two counters, chosen by an epoch that a
//! grace period flips (the scheme of SRCU, kernel/rcu/srcutree.c): the grace period
//! waits for the other counter (stragglers from before the last flip), flips, then waits
//! for the counter the present readers used. Callbacks queued with [`Rcu::call_rcu`] run
//! only after a grace period, when the host asks for one ([`Rcu::synchronize_rcu`],
//! [`Rcu::rcu_barrier`]); the shim's deterministic executor decides when, so tests can
//! hold objects in the "freed but not yet reclaimed" window on purpose.

use alloc::boxed::Box;
use alloc::vec::Vec;

use super::{AtomicUsize, Ordering, SpinLock, cpu_relax};

type Callback = Box<dyn FnOnce() + Send>;

/// One RCU domain.
pub struct Rcu {
    epoch: AtomicUsize,
    readers: [AtomicUsize; 2],
    pending: SpinLock<Vec<Callback>>,
    completed: AtomicUsize,
}

/// An `rcu_read_lock` section; `rcu_read_unlock` on drop.
pub struct RcuReadGuard<'a> {
    rcu: &'a Rcu,
    slot: usize,
}

impl Default for Rcu {
    fn default() -> Self {
        Self::new()
    }
}

impl Rcu {
    /// A domain with no readers and no callbacks.
    pub fn new() -> Self {
        Rcu {
            epoch: AtomicUsize::new(0),
            readers: [AtomicUsize::new(0), AtomicUsize::new(0)],
            pending: SpinLock::new(Vec::new()),
            completed: AtomicUsize::new(0),
        }
    }

    /// `rcu_read_lock` (include/linux/rcupdate.h).
    pub fn read_lock(&self) -> RcuReadGuard<'_> {
        let slot = self.epoch.load(Ordering::SeqCst) & 1;
        self.readers[slot].fetch_add(1, Ordering::SeqCst);
        RcuReadGuard { rcu: self, slot }
    }

    /// `call_rcu` (kernel/rcu/tree.c): runs `f` after a later grace period.
    pub fn call_rcu(&self, f: impl FnOnce() + Send + 'static) {
        self.pending.lock().push(Box::new(f));
    }

    /// Number of callbacks queued and not yet run.
    pub fn pending(&self) -> usize {
        self.pending.lock().len()
    }

    /// Number of callbacks run so far.
    pub fn completed(&self) -> usize {
        self.completed.load(Ordering::SeqCst)
    }

    /// A grace period: returns once every reader present at the call has left.
    fn wait_for_readers(&self) {
        let wait = |slot: usize| {
            while self.readers[slot].load(Ordering::SeqCst) != 0 {
                cpu_relax();
            }
        };
        let cur = self.epoch.load(Ordering::SeqCst) & 1;
        // Readers still counted under the previous epoch began before this call.
        wait(cur ^ 1);
        // From here new readers count under the other slot; the present ones drain.
        self.epoch.fetch_add(1, Ordering::SeqCst);
        wait(cur);
    }

    /// `synchronize_rcu` (kernel/rcu/tree.c): waits for a grace period (every reader
    /// present at the call has left; later readers are not waited for), then runs the
    /// callbacks that were queued before the call. Must not be called from inside a
    /// read-side section of the same domain.
    pub fn synchronize_rcu(&self) {
        let batch: Vec<Callback> = core::mem::take(&mut *self.pending.lock());
        self.wait_for_readers();
        self.run(batch);
    }

    /// `rcu_barrier` (kernel/rcu/tree.c): waits until every callback queued so far, and every
    /// callback those callbacks queue, has run.
    pub fn rcu_barrier(&self) {
        loop {
            let batch: Vec<Callback> = core::mem::take(&mut *self.pending.lock());
            if batch.is_empty() {
                return;
            }
            self.wait_for_readers();
            self.run(batch);
        }
    }

    fn run(&self, batch: Vec<Callback>) {
        for cb in batch {
            cb();
            self.completed.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl Drop for RcuReadGuard<'_> {
    fn drop(&mut self) {
        self.rcu.readers[self.slot].fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::sync::{Arc, AtomicUsize, Ordering};

    #[test]
    fn callbacks_wait_for_grace_period() {
        let rcu = Rcu::new();
        let hits = Arc::new(AtomicUsize::new(0));
        let h = hits.clone();
        rcu.call_rcu(move || {
            h.fetch_add(1, Ordering::SeqCst);
        });
        assert_eq!(hits.load(Ordering::SeqCst), 0);
        assert_eq!((rcu.pending(), rcu.completed()), (1, 0));
        rcu.rcu_barrier();
        assert_eq!(hits.load(Ordering::SeqCst), 1);
        assert_eq!((rcu.pending(), rcu.completed()), (0, 1));
        for _ in 0..2 {
            let h = hits.clone();
            rcu.call_rcu(move || {
                h.fetch_add(1, Ordering::SeqCst);
            });
        }
        assert_eq!((rcu.pending(), rcu.completed()), (2, 1));
        rcu.synchronize_rcu();
        assert_eq!((rcu.pending(), rcu.completed()), (0, 3));
        assert_eq!(hits.load(Ordering::SeqCst), 3);
    }

    /// A grace period waits for the readers present when it begins, not for readers
    /// that arrive while it waits.
    #[test]
    fn grace_period_waits_for_present_readers_only() {
        extern crate std;
        let rcu = Arc::new(Rcu::new());
        let old = rcu.read_lock();
        let done = Arc::new(AtomicUsize::new(0));
        let (r, d) = (Arc::clone(&rcu), Arc::clone(&done));
        let gp = std::thread::spawn(move || {
            r.synchronize_rcu();
            d.store(1, Ordering::SeqCst);
        });
        // Wait until the grace period has flipped the epoch (it is draining `old`).
        while rcu.epoch.load(Ordering::SeqCst) == 0 {
            std::hint::spin_loop();
        }
        let late = rcu.read_lock();
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert_eq!(
            done.load(Ordering::SeqCst),
            0,
            "the present reader holds it"
        );
        drop(old);
        gp.join().expect("grace period");
        assert_eq!(
            done.load(Ordering::SeqCst),
            1,
            "the late reader does not hold it"
        );
        drop(late);
    }
}
