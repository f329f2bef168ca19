//! Allocation accounting for tests: a global allocator wrapper that counts, per
//! thread, the bytes live and the peak since the last reset.
//!
//! Install with `#[global_allocator] static A: CountingAlloc = CountingAlloc;` in a
//! test binary.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

kernel_core::sync::task::task_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn largest(n: usize) {
    let _ = LARGEST.try_with(|l| {
        if n > l.get() {
            l.set(n)
        }
    });
}

/// The counting allocator (delegates to the system allocator).
pub struct CountingAlloc;

fn add(n: isize) {
    let _ = LIVE.try_with(|l| {
        let v = l.get() + n;
        l.set(v);
        let _ = PEAK.try_with(|p| {
            if v > p.get() {
                p.set(v)
            }
        });
    });
}

// SAFETY: every method forwards to `System` with the same layout and pointer, which
// upholds `GlobalAlloc`'s contract; the bookkeeping only touches thread-locals
// declared `const` (no lazy initialisation, hence no allocation inside the allocator).
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        add(layout.size() as isize);
        largest(layout.size());
        let _ = ALLOCS.try_with(|a| a.set(a.get() + 1));
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        add(layout.size() as isize);
        largest(layout.size());
        let _ = ALLOCS.try_with(|a| a.set(a.get() + 1));
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        add(-(layout.size() as isize));
        // SAFETY: `ptr` came from `System` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        add(new_size as isize - layout.size() as isize);
        largest(new_size);
        // SAFETY: `ptr` came from `System` with this layout.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Bytes live on this thread now.
pub fn live_bytes() -> isize {
    LIVE.with(|l| l.get())
}

/// Starts a new peak measurement on this thread (peak live bytes and the largest
/// single allocation); returns the live bytes now.
pub fn reset_peak() -> isize {
    let now = live_bytes();
    PEAK.with(|p| p.set(now));
    LARGEST.with(|l| l.set(0));
    now
}

/// The largest single allocation (or reallocation) on this thread since
/// [`reset_peak`].
pub fn largest_alloc() -> usize {
    LARGEST.with(|l| l.get())
}

/// Peak live bytes on this thread since [`reset_peak`].
pub fn peak_bytes() -> isize {
    PEAK.with(|p| p.get())
}

/// Allocations made on this thread so far.
pub fn alloc_count() -> usize {
    ALLOCS.with(|a| a.get())
}
