//! The one place that chooses synchronisation primitives.
//!
//! Under `cfg(loom)` the atomics, locks and `Arc` come from loom so the models in
//! `loom-tests` explore this very code; otherwise they come from `core` and the `spin`
//! crate. Nothing outside this module names loom or spin.

pub mod rcu;
pub mod refcount;
pub mod spinlock;
pub mod task;
pub mod warn;

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

/// Busy-wait hint: loom's `yield_now` under loom (so the model can schedule the other
/// thread), a CPU relax hint otherwise.
#[inline]
pub fn cpu_relax() {
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(not(loom))]
    core::hint::spin_loop();
}
