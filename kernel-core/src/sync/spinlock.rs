//! `spinlock_t` with guards: the `spin` crate's mutex, or loom's under `cfg(loom)`.

use core::ops::{Deref, DerefMut};

/// A spin lock protecting `T` (the kernel's `spin_lock`/`spin_lock_bh`/`_irqsave`
/// differ only in what they disable, which a host has no notion of).
pub struct SpinLock<T> {
    #[cfg(not(loom))]
    inner: spin::Mutex<T>,
    #[cfg(loom)]
    inner: loom::sync::Mutex<T>,
}

/// Held lock; released on drop (`spin_unlock`).
pub struct SpinLockGuard<'a, T> {
    #[cfg(not(loom))]
    inner: spin::MutexGuard<'a, T>,
    #[cfg(loom)]
    inner: loom::sync::MutexGuard<'a, T>,
}

impl<T> SpinLock<T> {
    /// `spin_lock_init` (include/linux/spinlock.h).
    pub fn new(v: T) -> Self {
        SpinLock {
            #[cfg(not(loom))]
            inner: spin::Mutex::new(v),
            #[cfg(loom)]
            inner: loom::sync::Mutex::new(v),
        }
    }

    /// `spin_lock` (include/linux/spinlock.h).
    pub fn lock(&self) -> SpinLockGuard<'_, T> {
        #[cfg(not(loom))]
        let inner = self.inner.lock();
        #[cfg(loom)]
        let inner = match self.inner.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        SpinLockGuard { inner }
    }
}

impl<T> Deref for SpinLockGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.inner
    }
}

impl<T> DerefMut for SpinLockGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.inner
    }
}
