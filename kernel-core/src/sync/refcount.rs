//! `refcount_t` (include/linux/refcount.h, lib/refcount.c).
//!
//! # Invariants
//!
//! The counter saturates at [`REFCOUNT_SATURATED`] instead of wrapping: an increment
//! from zero, an overflow or an underflow WARNs and pins the counter there, so the
//! object leaks instead of being freed twice. Memory ordering follows the kernel:
//! increments are relaxed, `dec_and_test` is release with an acquire fence on the final
//! decrement.

use super::{AtomicI32, Ordering, warn::warn};

/// The saturation value, `INT_MIN / 2`.
pub const REFCOUNT_SATURATED: i32 = i32::MIN / 2;

/// A `refcount_t`.
#[derive(Debug)]
pub struct Refcount(AtomicI32);

impl Refcount {
    /// `REFCOUNT_INIT(n)`.
    pub fn new(n: i32) -> Self {
        Refcount(AtomicI32::new(n))
    }

    /// `refcount_read`.
    pub fn read(&self) -> i32 {
        self.0.load(Ordering::Relaxed)
    }

    /// `refcount_set`.
    pub fn set(&self, n: i32) {
        self.0.store(n, Ordering::Relaxed)
    }

    fn saturate(&self, msg: &'static str) {
        self.0.store(REFCOUNT_SATURATED, Ordering::Relaxed);
        warn(msg);
    }

    /// `refcount_inc`: WARNs on increment from zero ("addition on 0; use-after-free")
    /// and on overflow, saturating in both cases.
    pub fn inc(&self) {
        let old = self.0.fetch_add(1, Ordering::Relaxed);
        if old == 0 {
            self.saturate("refcount_t: addition on 0; use-after-free.");
        } else if old < 0 || old.wrapping_add(1) < 0 {
            self.saturate("refcount_t: saturated; leaking memory.");
        }
    }

    /// `refcount_inc_not_zero`: increments unless the count is zero; true if it did.
    pub fn inc_not_zero(&self) -> bool {
        let mut old = self.0.load(Ordering::Relaxed);
        loop {
            if old == 0 {
                return false;
            }
            match self.0.compare_exchange_weak(
                old,
                old.wrapping_add(1),
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(cur) => old = cur,
            }
        }
        if old < 0 || old.wrapping_add(1) < 0 {
            self.saturate("refcount_t: saturated; leaking memory.");
        }
        true
    }

    /// `refcount_dec_and_test`: true when this was the last reference. An underflow
    /// WARNs ("underflow; use-after-free") and saturates.
    pub fn dec_and_test(&self) -> bool {
        let old = self.0.fetch_sub(1, Ordering::Release);
        if old == 1 {
            #[cfg(not(loom))]
            core::sync::atomic::fence(Ordering::Acquire);
            #[cfg(loom)]
            loom::sync::atomic::fence(Ordering::Acquire);
            return true;
        }
        if old <= 0 || old.wrapping_sub(1) <= 0 {
            self.saturate("refcount_t: underflow; use-after-free.");
        }
        false
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::sync::warn::warn_count;

    #[test]
    fn inc_dec_last() {
        let r = Refcount::new(1);
        r.inc();
        assert_eq!(r.read(), 2);
        assert!(!r.dec_and_test());
        assert!(r.dec_and_test());
        assert_eq!(r.read(), 0);
    }

    #[test]
    fn inc_from_zero_saturates_and_warns() {
        let before = warn_count();
        let r = Refcount::new(0);
        r.inc();
        assert_eq!(r.read(), REFCOUNT_SATURATED);
        assert!(warn_count() > before);
        assert!(!r.dec_and_test(), "a saturated count never reaches zero");
    }

    #[test]
    fn inc_not_zero_refuses_zero() {
        let r = Refcount::new(0);
        assert!(!r.inc_not_zero());
        assert_eq!(r.read(), 0);
        let r = Refcount::new(3);
        assert!(r.inc_not_zero());
        assert_eq!(r.read(), 4);
    }

    #[test]
    fn underflow_saturates() {
        let before = warn_count();
        let r = Refcount::new(0);
        assert!(!r.dec_and_test());
        assert_eq!(r.read(), REFCOUNT_SATURATED);
        assert!(warn_count() > before);
    }

    #[test]
    fn overflow_saturates() {
        let r = Refcount::new(i32::MAX);
        r.inc();
        assert_eq!(r.read(), REFCOUNT_SATURATED);
    }

    /// The kernel's value (`INT_MIN / 2`, 0xc0000000), and `refcount_set`.
    #[test]
    fn saturation_value_and_set() {
        assert_eq!(REFCOUNT_SATURATED, -0x4000_0000);
        let r = Refcount::new(1);
        r.set(5);
        assert_eq!(r.read(), 5);
    }

    /// Every negative count saturates on each operation, -1 (whose increment would
    /// reach 0) and `INT_MIN` (whose decrement would wrap) included; so does the
    /// increment of `INT_MAX` by `refcount_inc_not_zero`.
    #[test]
    fn negative_and_edge_counts_saturate() {
        for n in [-1, -5, REFCOUNT_SATURATED, i32::MIN] {
            let r = Refcount::new(n);
            r.inc();
            assert_eq!(r.read(), REFCOUNT_SATURATED, "inc of {n}");
            let r = Refcount::new(n);
            assert!(r.inc_not_zero(), "inc_not_zero of {n}");
            assert_eq!(r.read(), REFCOUNT_SATURATED, "inc_not_zero of {n}");
            let r = Refcount::new(n);
            assert!(!r.dec_and_test(), "dec_and_test of {n}");
            assert_eq!(r.read(), REFCOUNT_SATURATED, "dec_and_test of {n}");
        }
        let r = Refcount::new(i32::MAX);
        assert!(r.inc_not_zero());
        assert_eq!(r.read(), REFCOUNT_SATURATED, "inc_not_zero of INT_MAX");
        let r = Refcount::new(2);
        assert!(!r.dec_and_test());
        assert_eq!(r.read(), 1, "an ordinary decrement does not saturate");
    }
}
