//! The RCU model: readers, `call_rcu`, `synchronize_rcu`, `rcu_barrier`.
//!
//! A grace period ends when no reader is inside a read-side critical section. Callbacks
//! queued with [`Rcu::call_rcu`] run only after a grace period, when the host asks for
//! one ([`Rcu::synchronize_rcu`], [`Rcu::rcu_barrier`]); the shim's deterministic
//! executor decides when, so tests can hold objects in the "freed but not yet
//! reclaimed" window on purpose.

use alloc::boxed::Box;
use alloc::vec::Vec;

use super::{AtomicUsize, Ordering, SpinLock, cpu_relax};

type Callback = Box<dyn FnOnce() + Send>;

/// One RCU domain.
pub struct Rcu {
    readers: AtomicUsize,
    pending: SpinLock<Vec<Callback>>,
    completed: AtomicUsize,
}

/// An `rcu_read_lock` section; `rcu_read_unlock` on drop.
pub struct RcuReadGuard<'a> {
    rcu: &'a Rcu,
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
            readers: AtomicUsize::new(0),
            pending: SpinLock::new(Vec::new()),
            completed: AtomicUsize::new(0),
        }
    }

    /// `rcu_read_lock` (include/linux/rcupdate.h).
    pub fn read_lock(&self) -> RcuReadGuard<'_> {
        self.readers.fetch_add(1, Ordering::SeqCst);
        RcuReadGuard { rcu: self }
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

    fn wait_for_readers(&self) {
        while self.readers.load(Ordering::SeqCst) != 0 {
            cpu_relax();
        }
    }

    /// `synchronize_rcu` (kernel/rcu/tree.c): waits until no reader is inside a read-side
    /// section, then runs the callbacks that were queued before the call. This waits
    /// longer than the kernel, which waits only for the readers present at the call:
    /// readers arriving meanwhile are waited for too (never shorter, so never unsafe).
    /// Must not be called from inside a read-side section of the same domain.
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
        self.rcu.readers.fetch_sub(1, Ordering::SeqCst);
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
        assert_eq!(rcu.pending(), 1);
        rcu.rcu_barrier();
        assert_eq!(hits.load(Ordering::SeqCst), 1);
        assert_eq!(rcu.completed(), 1);
    }
}
