//! The one place that chooses synchronisation primitives.
//!
//! Under `cfg(loom)` the atomics, locks, cells and `Arc` come from loom so the models
//! in `loom-tests` explore this very code; otherwise they come from `core` and the
//! `spin` crate. Nothing outside this module names loom or spin. A value's or an
//! object's memory is made of [`Word`]s, whose plain accesses loom checks for data
//! races ([`word`]).

pub mod rcu;
pub mod refcount;
pub mod spinlock;
pub mod task;
pub mod warn;
pub mod word;

#[cfg(loom)]
pub use loom::sync::Arc;
#[cfg(loom)]
pub use loom::sync::atomic::{
    AtomicBool, AtomicI32, AtomicPtr, AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering,
};

#[cfg(not(loom))]
pub use alloc::sync::Arc;
#[cfg(not(loom))]
pub use core::sync::atomic::{
    AtomicBool, AtomicI32, AtomicPtr, AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering,
};

pub use rcu::{Rcu, RcuReadGuard};
pub use refcount::Refcount;
pub use spinlock::{SpinLock, SpinLockGuard};
pub use word::{Word, word_atomic, word_read, word_write};

/// `Arc::try_unwrap` for the holder that has just put the last count of an object it
/// shares through `Arc`s (`bpf_map_put`): the other holders have put their counts but
/// may still be returning with their `Arc`s. Under loom, where that window is explored,
/// it waits (yielding) until they are gone; a host build tries once, as its callers
/// hold the only `Arc` when they put the last count.
pub fn arc_try_unwrap_settled<T>(a: Arc<T>) -> Result<T, Arc<T>> {
    #[cfg(loom)]
    {
        let mut a = a;
        loop {
            match Arc::try_unwrap(a) {
                Ok(v) => return Ok(v),
                Err(b) => {
                    a = b;
                    loom::thread::yield_now();
                }
            }
        }
    }
    #[cfg(not(loom))]
    Arc::try_unwrap(a)
}

/// Busy-wait hint: loom's `yield_now` under loom (so the model can schedule the other
/// thread), a CPU relax hint otherwise.
#[inline]
pub fn cpu_relax() {
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(not(loom))]
    core::hint::spin_loop();
}
