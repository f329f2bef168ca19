//! The calling task's own `bpf_mem_free_rcu` list: the kernel's per-CPU
//! `c->free_by_rcu` (kernel/bpf/memalloc.c, `unit_free_rcu`), filled without atomics
//! and moved to the allocator's RCU batch in one step (`check_free_by_rcu`, run from
//! irq_work). A task has one only inside [`BpfMemAlloc::with_local_frees`]; a task
//! is a thread (loom's under `cfg(loom)`, the host's with the `std` feature); a build
//! with neither keeps no local lists.
//!
//! [`BpfMemAlloc::with_local_frees`]: super::BpfMemAlloc::with_local_frees

use alloc::vec::Vec;

/// Objects per chunk of a list of frees: a long list never copies what it holds as it
/// grows.
pub(crate) const FREE_CHUNK: usize = 4096;

/// Appends slab index `i` to a list kept in chunks of [`FREE_CHUNK`].
#[inline]
pub(crate) fn push_chunked(list: &mut Vec<Vec<u32>>, i: u32) {
    match list.last_mut() {
        Some(c) if c.len() < c.capacity() => c.push(i),
        _ => push_new_chunk(list, i),
    }
}

/// [`push_chunked`] when the last chunk is full: a new one.
#[cold]
#[inline(never)]
fn push_new_chunk(list: &mut Vec<Vec<u32>>, i: u32) {
    let mut c = Vec::with_capacity(FREE_CHUNK);
    c.push(i);
    list.push(c);
}

/// One task's list (slab indexes) for one allocator, named by its address (never
/// dereferenced).
pub(crate) struct LocalFrees {
    /// Read only where tasks keep lists (`std` or loom).
    #[cfg_attr(not(any(loom, feature = "std")), allow(dead_code))]
    pub(crate) alloc: usize,
    pub(crate) objs: Vec<Vec<u32>>,
}

#[cfg(any(loom, feature = "std"))]
mod imp {
    use super::LocalFrees;
    use core::cell::Cell;
    use core::ptr;

    // The task's installed list: null, or a list that `install`'s caller keeps alive
    // and uses only through this pointer until it installs the previous one again.
    crate::sync::task::task_local! {
        static LOCAL: Cell<*mut LocalFrees> = const { Cell::new(ptr::null_mut()) };
    }

    /// Appends slab index `i` to the task's list if it is the one of allocator `alloc`.
    #[inline]
    pub(crate) fn push(alloc: usize, i: u32) -> bool {
        LOCAL.with(|l| {
            let p = l.get();
            if p.is_null() {
                return false;
            }
            // SAFETY: a non-null pointer was installed by `install` on this thread
            // (the cell is thread-local) from a list its caller keeps alive and does
            // not touch until it has installed the previous pointer again; nothing
            // else dereferences it meanwhile, and this `&mut` ends here.
            let lf = unsafe { &mut *p };
            if lf.alloc != alloc {
                return false;
            }
            super::push_chunked(&mut lf.objs, i);
            true
        })
    }

    /// Installs `new` (null for none) as the task's list; the pointer it replaces.
    pub(crate) fn install(new: *mut LocalFrees) -> *mut LocalFrees {
        LOCAL.with(|l| l.replace(new))
    }
}

#[cfg(not(any(loom, feature = "std")))]
mod imp {
    use super::LocalFrees;

    /// No tasks of its own: every free goes to the allocator's batch.
    pub(crate) fn push(_alloc: usize, _i: u32) -> bool {
        false
    }

    /// No tasks of its own: nothing is installed, and nothing was.
    pub(crate) fn install(_new: *mut LocalFrees) -> *mut LocalFrees {
        core::ptr::null_mut()
    }
}

pub(crate) use imp::{install, push};

#[cfg(all(test, not(loom)))]
mod tests {
    use super::{FREE_CHUNK, push_chunked};
    use alloc::vec::Vec;

    /// A list fills each chunk to [`FREE_CHUNK`] and then starts another, so no chunk
    /// ever reallocates (copies) what it holds; the order is kept.
    #[test]
    fn chunks_fill_to_their_capacity_and_never_grow() {
        let mut list: Vec<Vec<u32>> = Vec::new();
        let n = 2 * FREE_CHUNK as u32 + 1;
        for i in 0..n {
            push_chunked(&mut list, i);
        }
        let lens: Vec<usize> = list.iter().map(Vec::len).collect();
        assert_eq!(lens, [FREE_CHUNK, FREE_CHUNK, 1]);
        assert!(list.iter().all(|c| c.capacity() == FREE_CHUNK));
        assert!(list.iter().flatten().copied().eq(0..n));
    }
}
