//! One 8-byte word of a value or an object, as the kernel's memory holds it: read and
//! written atomically where the kernel uses atomics (a kptr slot's `xchg`, a lock word,
//! a `bpf_refcount`), and plainly where it uses ordinary loads and stores (the data a
//! program keeps in a value, what `copy_map_value` copies).
//!
//! Outside loom a word is an `AtomicU64` and a plain access is a relaxed one. Under
//! `cfg(loom)` a word also carries a `loom::cell::UnsafeCell` that every plain access
//! goes through ([`word_read`], [`word_write`]), so two plain accesses of one word
//! that no happens-before edge orders (data a program writes under `bpf_spin_lock`,
//! read by another CPU under the same lock taken with a relaxed compare-and-exchange)
//! are a data race loom reports ("Causality violation"), as the kernel's memory model
//! makes them. The granularity is the word: plain accesses to different bytes of one
//! word from two CPUs without ordering are reported too (no model does that on
//! purpose; the kernel's is the byte).

use super::Ordering;

/// An 8-byte word: an `AtomicU64` (see the module documentation).
#[cfg(not(loom))]
pub type Word = core::sync::atomic::AtomicU64;

/// An 8-byte word: loom's `AtomicU64` for its bits, and a cell that records each plain
/// access for loom's race detector (see the module documentation).
#[cfg(loom)]
pub struct Word {
    bits: loom::sync::atomic::AtomicU64,
    plain: loom::cell::UnsafeCell<()>,
}

// SAFETY: the cell holds `()`: no data is ever read or written through it. It only
// records, for loom, which threads accessed the word plainly and when; the word's bits
// are in an atomic. Sharing it is what the model is for.
#[cfg(loom)]
unsafe impl Sync for Word {}

#[cfg(loom)]
impl Word {
    /// A word holding `v`.
    pub fn new(v: u64) -> Word {
        Word {
            bits: loom::sync::atomic::AtomicU64::new(v),
            plain: loom::cell::UnsafeCell::new(()),
        }
    }
}

#[cfg(loom)]
impl core::ops::Deref for Word {
    type Target = loom::sync::atomic::AtomicU64;

    fn deref(&self) -> &Self::Target {
        &self.bits
    }
}

/// The word as an atomic, for the kernel's atomic accesses to it.
#[inline(always)]
pub fn word_atomic(w: &Word) -> &super::AtomicU64 {
    #[cfg(loom)]
    return &w.bits;
    #[cfg(not(loom))]
    w
}

/// A plain load of the word: an ordinary C read of data bytes (no `READ_ONCE`).
#[inline]
pub fn word_read(w: &Word) -> u64 {
    #[cfg(loom)]
    w.plain.with(|_| ());
    w.load(Ordering::Relaxed)
}

/// A plain store of `f(old)` into the word (an ordinary write of some of its bytes).
/// The model keeps the word's other bytes: the store is a relaxed read-modify-write,
/// so an atomic neighbour in the same word (a lock word beside data) is not lost.
#[inline]
pub fn word_write(w: &Word, f: impl Fn(u64) -> u64) {
    #[cfg(loom)]
    w.plain.with_mut(|_| ());
    let mut cur = w.load(Ordering::Relaxed);
    loop {
        match w.compare_exchange_weak(cur, f(cur), Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return,
            Err(c) => cur = c,
        }
    }
}
