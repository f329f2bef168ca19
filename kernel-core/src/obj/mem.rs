//! Memory in the kernel's byte layout, and the BPF allocator model.
//!
//! [`Words`] holds a value or an object as 8-byte words, each an atomic (loom's under
//! `cfg(loom)`), so a special field lives at its record offset inside the bytes and a
//! kptr slot is read and written atomically. [`BpfMemAlloc`] models `bpf_mem_alloc`,
//! `bpf_mem_free` and `bpf_mem_free_rcu`, and accounts every object: live count, double
//! frees and uses after free, reported with the object's type.

use alloc::string::String;
use alloc::vec::Vec;

use hashbrown::HashMap;

use crate::sync::{Arc, AtomicU64, AtomicUsize, Ordering, Rcu, SpinLock};

/// Memory as 8-byte atomic words.
pub struct Words {
    words: alloc::boxed::Box<[AtomicU64]>,
    size: u32,
}

impl Words {
    /// `size` zeroed bytes.
    pub fn new(size: u32) -> Words {
        let n = (size as usize).div_ceil(8).max(1);
        Words {
            words: (0..n).map(|_| AtomicU64::new(0)).collect(),
            size,
        }
    }

    /// Size in bytes.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// The 8-byte slot at `off` (a kptr, a timer's pointer word); `off` must be
    /// 8-aligned and in range.
    pub fn slot(&self, off: u32) -> Option<&AtomicU64> {
        if !off.is_multiple_of(8) || off + 8 > self.size.div_ceil(8) * 8 {
            return None;
        }
        self.words.get(off as usize / 8)
    }

    /// Reads byte `i`.
    pub fn byte(&self, i: u32) -> u8 {
        let w = self.words[i as usize / 8].load(Ordering::Relaxed);
        (w >> ((i % 8) * 8)) as u8
    }

    /// Writes byte `i` (a read-modify-write of its word, so concurrent writers of other
    /// bytes of the word are not lost).
    pub fn set_byte(&self, i: u32, b: u8) {
        let sh = (i % 8) * 8;
        let w = &self.words[i as usize / 8];
        let mut cur = w.load(Ordering::Relaxed);
        loop {
            let new = (cur & !(0xffu64 << sh)) | ((b as u64) << sh);
            match w.compare_exchange_weak(cur, new, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return,
                Err(c) => cur = c,
            }
        }
    }

    /// The 4-byte word at `off` (4-aligned): the atomic word and the shift.
    pub fn u32_at(&self, off: u32) -> Option<(&AtomicU64, u32)> {
        if !off.is_multiple_of(4) || off + 4 > self.size {
            return None;
        }
        Some((&self.words[off as usize / 8], (off % 8) * 8))
    }

    /// Reads a u32 at a 4-aligned offset.
    pub fn load_u32(&self, off: u32) -> u32 {
        match self.u32_at(off) {
            Some((w, sh)) => (w.load(Ordering::Acquire) >> sh) as u32,
            None => 0,
        }
    }

    /// Compare-and-exchange of a u32 at a 4-aligned offset.
    pub fn cas_u32(&self, off: u32, old: u32, new: u32) -> Result<u32, u32> {
        let Some((w, sh)) = self.u32_at(off) else {
            return Err(0);
        };
        let mut cur = w.load(Ordering::Acquire);
        loop {
            if (cur >> sh) as u32 != old {
                return Err((cur >> sh) as u32);
            }
            let new_w = (cur & !(0xffff_ffffu64 << sh)) | ((new as u64) << sh);
            match w.compare_exchange_weak(cur, new_w, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Ok(old),
                Err(c) => cur = c,
            }
        }
    }

    /// Zeroes bytes `[off, off + len)`.
    pub fn zero(&self, off: u32, len: u32) {
        for i in off..(off + len).min(self.size) {
            self.set_byte(i, 0);
        }
    }
}

/// What the allocator knows of one object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjInfo {
    /// The object's type name.
    pub ty: String,
    /// Size in bytes.
    pub size: u32,
    /// From the per-CPU allocator.
    pub percpu: bool,
}

/// An object from the BPF allocator.
pub struct Obj {
    /// Its address (what kptr slots hold).
    pub addr: u64,
    /// Type and size.
    pub info: ObjInfo,
    /// Its bytes.
    pub mem: Words,
}

/// A misuse the allocator saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MemFault {
    /// The object was freed twice.
    DoubleFree(u64, String),
    /// The object was used after it was freed.
    UseAfterFree(u64, String),
    /// An address the allocator never handed out.
    Wild(u64),
}

struct MemInner {
    next: u64,
    live: HashMap<u64, Arc<Obj>>,
    freed: HashMap<u64, Arc<Obj>>,
    faults: Vec<MemFault>,
    allocs: usize,
    frees: usize,
}

/// The BPF allocator model (`bpf_mem_alloc`/`bpf_mem_free`/`bpf_mem_free_rcu`, the
/// global and per-CPU caches), with accounting. Freed addresses are never reused, so
/// every later use is seen.
pub struct BpfMemAlloc {
    inner: SpinLock<MemInner>,
    rcu: Arc<Rcu>,
    fail_next: AtomicUsize,
}

impl BpfMemAlloc {
    /// An allocator deferring through `rcu`.
    pub fn new(rcu: Arc<Rcu>) -> Arc<BpfMemAlloc> {
        Arc::new(BpfMemAlloc {
            inner: SpinLock::new(MemInner {
                next: 0x1000,
                live: HashMap::new(),
                freed: HashMap::new(),
                faults: Vec::new(),
                allocs: 0,
                frees: 0,
            }),
            rcu,
            fail_next: AtomicUsize::new(0),
        })
    }

    /// Makes the next `n` allocations fail (as `bpf_mem_alloc` can under load).
    pub fn fail_next(&self, n: usize) {
        self.fail_next.store(n, Ordering::SeqCst);
    }

    /// `bpf_mem_alloc`: zeroed memory for an object of type `ty`.
    pub fn alloc(&self, ty: &str, size: u32, percpu: bool) -> Option<u64> {
        if self
            .fail_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return None;
        }
        let mut g = self.inner.lock();
        let addr = g.next;
        g.next += (size as u64).div_ceil(64).max(1) * 64;
        let obj = Arc::new(Obj {
            addr,
            info: ObjInfo {
                ty: String::from(ty),
                size,
                percpu,
            },
            mem: Words::new(size),
        });
        g.live.insert(addr, obj);
        g.allocs += 1;
        Some(addr)
    }

    /// The object at `addr`; a use of a freed or unknown address is recorded as a
    /// fault and yields `None`.
    pub fn get(&self, addr: u64) -> Option<Arc<Obj>> {
        let mut g = self.inner.lock();
        if let Some(o) = g.live.get(&addr) {
            return Some(Arc::clone(o));
        }
        let f = match g.freed.get(&addr) {
            Some(o) => MemFault::UseAfterFree(addr, o.info.ty.clone()),
            None => MemFault::Wild(addr),
        };
        g.faults.push(f);
        None
    }

    /// True if `addr` is live (no fault recorded).
    pub fn is_live(&self, addr: u64) -> bool {
        self.inner.lock().live.contains_key(&addr)
    }

    fn free_now(&self, addr: u64) {
        let mut g = self.inner.lock();
        match g.live.remove(&addr) {
            Some(o) => {
                g.freed.insert(addr, o);
                g.frees += 1;
            }
            None => {
                let f = match g.freed.get(&addr) {
                    Some(o) => MemFault::DoubleFree(addr, o.info.ty.clone()),
                    None => MemFault::Wild(addr),
                };
                g.faults.push(f);
            }
        }
    }

    /// `bpf_mem_free`: the memory may be reused at once.
    pub fn free(&self, addr: u64) {
        self.free_now(addr);
    }

    /// `bpf_mem_free_rcu`: freed after an RCU grace period.
    pub fn free_rcu(this: &Arc<Self>, addr: u64) {
        let me = Arc::clone(this);
        this.rcu.call_rcu(move || me.free_now(addr));
    }

    /// Objects allocated and not freed.
    pub fn live(&self) -> Vec<(u64, ObjInfo)> {
        let g = self.inner.lock();
        let mut v: Vec<(u64, ObjInfo)> = g.live.iter().map(|(a, o)| (*a, o.info.clone())).collect();
        v.sort_by_key(|(a, _)| *a);
        v
    }

    /// Faults seen so far.
    pub fn faults(&self) -> Vec<MemFault> {
        self.inner.lock().faults.clone()
    }

    /// (allocations, frees) so far.
    pub fn counts(&self) -> (usize, usize) {
        let g = self.inner.lock();
        (g.allocs, g.frees)
    }

    /// The RCU domain frees are deferred through.
    pub fn rcu(&self) -> &Arc<Rcu> {
        &self.rcu
    }
}
