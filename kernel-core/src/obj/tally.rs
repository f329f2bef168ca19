//! The process-wide tally of every [`BpfMemAlloc`](super::BpfMemAlloc): what each
//! allocator allocated, freed, leaked and saw misused, added up when it is dropped, so
//! a whole test suite can be held to zero leaks and zero double frees.
//!
//! A test that provokes a leak or a fault on purpose (a kernel bug it reproduces)
//! acknowledges what it has asserted with
//! [`BpfMemAlloc::acknowledge`](super::BpfMemAlloc::acknowledge); only what goes beyond
//! the acknowledged counts is tallied as unexpected. The counters are plain atomics,
//! outside what the loom models explore.

use core::sync::atomic::{AtomicUsize, Ordering};

static CREATED: AtomicUsize = AtomicUsize::new(0);
static DROPPED: AtomicUsize = AtomicUsize::new(0);
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);
static FREES: AtomicUsize = AtomicUsize::new(0);
static LEAKS: AtomicUsize = AtomicUsize::new(0);
static DOUBLE_FREES: AtomicUsize = AtomicUsize::new(0);
static USES_AFTER_FREE: AtomicUsize = AtomicUsize::new(0);
static WILD: AtomicUsize = AtomicUsize::new(0);
static ACKNOWLEDGED: AtomicUsize = AtomicUsize::new(0);

/// The sums over every allocator of this process.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemTally {
    /// Allocators created.
    pub allocators_created: usize,
    /// Allocators dropped (fewer than created: an allocator itself leaked, with
    /// whatever it still held, e.g. RCU callbacks that never ran).
    pub allocators_dropped: usize,
    /// Objects allocated.
    pub allocations: usize,
    /// Objects freed.
    pub frees: usize,
    /// Objects live when their allocator was dropped, not acknowledged.
    pub leaks: usize,
    /// Double frees, not acknowledged.
    pub double_frees: usize,
    /// Uses after free, not acknowledged.
    pub uses_after_free: usize,
    /// Frees or uses of addresses never handed out, not acknowledged.
    pub wild: usize,
    /// Leaks and faults acknowledged by the tests that provoked them.
    pub acknowledged: usize,
}

impl MemTally {
    /// True if nothing unexpected happened and every allocator was dropped.
    pub fn is_clean(&self) -> bool {
        self.allocators_created == self.allocators_dropped
            && self.leaks == 0
            && self.double_frees == 0
            && self.uses_after_free == 0
            && self.wild == 0
    }
}

/// The tally so far.
pub fn mem_tally() -> MemTally {
    let l = |a: &AtomicUsize| a.load(Ordering::Relaxed);
    MemTally {
        allocators_created: l(&CREATED),
        allocators_dropped: l(&DROPPED),
        allocations: l(&ALLOCATIONS),
        frees: l(&FREES),
        leaks: l(&LEAKS),
        double_frees: l(&DOUBLE_FREES),
        uses_after_free: l(&USES_AFTER_FREE),
        wild: l(&WILD),
        acknowledged: l(&ACKNOWLEDGED),
    }
}

pub(crate) fn created() {
    CREATED.fetch_add(1, Ordering::Relaxed);
}

/// One dropped allocator's figures; `unexpected` holds (leaks, double frees, uses
/// after free, wild) beyond what was acknowledged.
pub(crate) fn dropped(
    allocations: usize,
    frees: usize,
    unexpected: [usize; 4],
    acknowledged: usize,
) {
    DROPPED.fetch_add(1, Ordering::Relaxed);
    ALLOCATIONS.fetch_add(allocations, Ordering::Relaxed);
    FREES.fetch_add(frees, Ordering::Relaxed);
    LEAKS.fetch_add(unexpected[0], Ordering::Relaxed);
    DOUBLE_FREES.fetch_add(unexpected[1], Ordering::Relaxed);
    USES_AFTER_FREE.fetch_add(unexpected[2], Ordering::Relaxed);
    WILD.fetch_add(unexpected[3], Ordering::Relaxed);
    ACKNOWLEDGED.fetch_add(acknowledged, Ordering::Relaxed);
}
