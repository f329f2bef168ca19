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

use core::cell::UnsafeCell;
use core::mem::MaybeUninit;

use super::local_frees;
use crate::sync::{
    Arc, AtomicPtr, AtomicU8, AtomicU64, AtomicUsize, Ordering, Rcu, SpinLock, Word, word_atomic,
    word_read, word_write,
};

/// Words held inline: objects and values up to 16 bytes need no second allocation.
const INLINE_WORDS: usize = 2;

/// The words and the byte size, the size in each variant so that the variant's tag
/// fits the size's padding: a `WordsBuf` is 24 bytes.
enum Store {
    Inline {
        words: [Word; INLINE_WORDS],
        size: u32,
    },
    Heap {
        words: alloc::boxed::Box<[Word]>,
        size: u32,
    },
}

/// Owned memory as 8-byte atomic words: an object's, a hash element's value.
pub struct WordsBuf {
    store: Store,
}

#[cfg(not(loom))]
static_assertions::assert_eq_size!(WordsBuf, [u64; 3]);

impl WordsBuf {
    /// `size` zeroed bytes (whole words: the kernel's allocations round up to 8).
    pub fn new(size: u32) -> WordsBuf {
        let n = Words::count(size);
        let store = if n <= INLINE_WORDS {
            Store::Inline {
                words: core::array::from_fn(|_| Word::new(0)),
                size,
            }
        } else {
            Store::Heap {
                words: (0..n).map(|_| Word::new(0)).collect(),
                size,
            }
        };
        WordsBuf { store }
    }

    /// The size asked for, in bytes.
    pub fn size_bytes(&self) -> u32 {
        match self.store {
            Store::Inline { size, .. } | Store::Heap { size, .. } => size,
        }
    }
}

impl core::ops::Deref for WordsBuf {
    type Target = Words;

    #[inline]
    fn deref(&self) -> &Words {
        match &self.store {
            Store::Inline { words, size } if *size > 8 => Words::of(words),
            Store::Inline { words, .. } => Words::of(&words[..1]),
            Store::Heap { words, .. } => Words::of(words),
        }
    }
}

/// Memory as 8-byte words ([`Word`]), seen in place: a value inside an array map's one
/// allocation, an object's bytes. Its size is its whole words. Special fields are read
/// and written atomically ([`slot`](Self::slot), [`u32_at`](Self::u32_at) and the
/// methods over it); data bytes plainly ([`byte`](Self::byte),
/// [`set_byte`](Self::set_byte), [`zero`](Self::zero)), which loom checks for races.
#[repr(transparent)]
pub struct Words([Word]);

impl Words {
    /// The words `w` as one value's memory.
    pub fn of(w: &[Word]) -> &Words {
        // SAFETY: `Words` is a `repr(transparent)` wrapper of `[Word]`, so the two have
        // the same layout and pointer metadata; the lifetime is kept.
        unsafe { &*(w as *const [Word] as *const Words) }
    }

    /// Words for `size` bytes (at least one).
    pub fn count(size: u32) -> usize {
        (size as usize).div_ceil(8).max(1)
    }

    fn words(&self) -> &[Word] {
        &self.0
    }

    /// Size in bytes: its whole words.
    pub fn size(&self) -> u32 {
        u32::try_from(self.0.len() * 8).unwrap_or(u32::MAX)
    }

    /// The 8-byte slot at `off` (a kptr, a timer's pointer word); `off` must be
    /// 8-aligned and in range.
    pub fn slot(&self, off: u32) -> Option<&AtomicU64> {
        if !off.is_multiple_of(8) {
            return None;
        }
        self.words().get(off as usize / 8).map(word_atomic)
    }

    /// Reads byte `i`: a plain load (0 past the end).
    pub fn byte(&self, i: u32) -> u8 {
        let Some(w) = self.words().get(i as usize / 8) else {
            return 0;
        };
        (word_read(w) >> ((i % 8) * 8)) as u8
    }

    /// Writes byte `i`: a plain store (nothing past the end). The word's other bytes
    /// are kept ([`word_write`]).
    pub fn set_byte(&self, i: u32, b: u8) {
        let sh = (i % 8) * 8;
        let Some(w) = self.words().get(i as usize / 8) else {
            return;
        };
        word_write(w, |cur| (cur & !(0xffu64 << sh)) | ((b as u64) << sh));
    }

    /// The 4-byte word at `off` (4-aligned): the atomic word and the shift.
    pub fn u32_at(&self, off: u32) -> Option<(&AtomicU64, u32)> {
        if !off.is_multiple_of(4) {
            return None;
        }
        // Whole words: an aligned u32 is in range exactly when its word is.
        Some((
            word_atomic(self.words().get(off as usize / 8)?),
            (off % 8) * 8,
        ))
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

    /// Replaces the u32 at a 4-aligned offset with `f(current)` until that holds (one
    /// compare-and-exchange when nobody else writes the word); `Err(current)` once `f`
    /// gives `None`, or `Err(0)` out of range.
    #[inline]
    pub fn update_u32(&self, off: u32, mut f: impl FnMut(u32) -> Option<u32>) -> Result<u32, u32> {
        let Some((w, sh)) = self.u32_at(off) else {
            return Err(0);
        };
        let mut cur = w.load(Ordering::Acquire);
        loop {
            let old = (cur >> sh) as u32;
            let Some(new) = f(old) else {
                return Err(old);
            };
            let new_w = (cur & !(0xffff_ffffu64 << sh)) | ((new as u64) << sh);
            match w.compare_exchange_weak(cur, new_w, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Ok(old),
                Err(c) => cur = c,
            }
        }
    }

    /// Zeroes bytes `[off, off + len)`.
    pub fn zero(&self, off: u32, len: u32) {
        for i in off..off.saturating_add(len).min(self.size()) {
            self.set_byte(i, 0);
        }
    }
}

/// A shared type name.
pub type NameArc = alloc::sync::Arc<str>;

/// What the allocator knows of one object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjInfo {
    /// The object's type name (shared by all objects of the type; a plain `Arc`, as
    /// a name takes no part in the concurrency the loom models explore).
    pub ty: NameArc,
    /// Size in bytes.
    pub size: u32,
    /// From the per-CPU allocator.
    pub percpu: bool,
}

/// An object from the BPF allocator: its bytes, and what the allocator keeps beside
/// them (32 bytes, held in the allocator's slab).
pub struct Obj {
    /// Its bytes.
    pub mem: WordsBuf,
    /// Its type: an index into the allocator's table of names.
    ty: u32,
    /// From the per-CPU allocator.
    percpu: bool,
}

#[cfg(not(loom))]
static_assertions::assert_eq_size!(Obj, [u64; 4]);

impl Obj {
    /// Size in bytes, as asked for.
    pub fn size(&self) -> u32 {
        self.mem.size_bytes()
    }

    /// From the per-CPU allocator.
    pub fn percpu(&self) -> bool {
        self.percpu
    }
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
    /// A dereference of `NULL + offset` (the address) in the named kernel function: a
    /// kernel oops ("BUG: kernel NULL pointer dereference"). Tallied as wild.
    NullDeref(u64, String),
}

/// The kind of a [`MemFault`], as a test acknowledges it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// [`MemFault::DoubleFree`].
    DoubleFree,
    /// [`MemFault::UseAfterFree`].
    UseAfterFree,
    /// [`MemFault::Wild`].
    Wild,
    /// [`MemFault::NullDeref`].
    NullDeref,
    /// A read of a freed BTF (`btf_is_kernel` on a put BTF).
    BtfUseAfterFree,
}

impl FaultKind {
    /// The kind of `f`.
    pub fn of(f: &MemFault) -> FaultKind {
        match f {
            MemFault::DoubleFree(..) => FaultKind::DoubleFree,
            MemFault::UseAfterFree(..) => FaultKind::UseAfterFree,
            MemFault::Wild(_) => FaultKind::Wild,
            MemFault::NullDeref(..) => FaultKind::NullDeref,
        }
    }
}

/// Objects per slab chunk, and chunks per allocator (loom's models allocate a few
/// objects; its atomics are costly to create).
#[cfg(not(loom))]
const CHUNK: usize = 4096;
#[cfg(not(loom))]
const CHUNKS: usize = 4096;
#[cfg(loom)]
const CHUNK: usize = 8;
#[cfg(loom)]
const CHUNKS: usize = 8;

/// A slab index never handed out.
const EMPTY: u8 = 0;
/// Handed out and not freed.
const LIVE: u8 = 1;
/// Freed; the object stays, so later uses are seen.
const FREED: u8 = 2;

/// `CHUNK` objects and their states. An object is written once, before its state
/// leaves `EMPTY` (a Release store), and never again until the allocator is dropped;
/// states are read without the lock and written only under it.
struct Chunk {
    state: alloc::boxed::Box<[AtomicU8]>,
    objs: alloc::boxed::Box<[UnsafeCell<MaybeUninit<Obj>>]>,
}

impl Chunk {
    fn new() -> alloc::boxed::Box<Chunk> {
        alloc::boxed::Box::new(Chunk {
            state: (0..CHUNK).map(|_| AtomicU8::new(EMPTY)).collect(),
            objs: (0..CHUNK)
                .map(|_| UnsafeCell::new(MaybeUninit::uninit()))
                .collect(),
        })
    }

    /// The object at `k`, once its state (`s`, loaded with Acquire) left `EMPTY`.
    fn obj(&self, k: usize, s: u8) -> Option<&Obj> {
        if s == EMPTY {
            return None;
        }
        let cell = self.objs.get(k)?;
        // SAFETY: a state other than EMPTY was stored with Release after the object
        // was written into this cell, and the Acquire load of `s` synchronises with
        // it; the cell is not written again until `Drop` (`&mut self`).
        Some(unsafe { (*cell.get()).assume_init_ref() })
    }
}

struct MemInner {
    /// Objects handed out (slab indexes `0..len`).
    len: usize,
    /// Type names, interned: an object keeps its name's index.
    names: Vec<NameArc>,
    types: HashMap<String, u32>,
    faults: Vec<MemFault>,
    frees: usize,
    /// The slab indexes of the objects live, and the number of faults seen, when
    /// [`BpfMemAlloc::acknowledge`] was called.
    acked: (Vec<usize>, usize),
    /// Reads of a freed BTF the runtime of this allocator reported, and how many of
    /// them were acknowledged.
    btf_uaf: (usize, usize),
}

impl MemInner {
    /// Objects allocated and not freed.
    fn live(&self) -> usize {
        self.len - self.frees
    }

    fn name(&self, o: &Obj) -> NameArc {
        self.names
            .get(o.ty as usize)
            .cloned()
            .unwrap_or_else(|| NameArc::from(""))
    }
}

/// Base of the addresses handed out; object `i` is at `BASE + i * 64`.
const BASE: u64 = 0x1000;
const STRIDE: u64 = 64;

/// The BPF allocator model (`bpf_mem_alloc`/`bpf_mem_free`/`bpf_mem_free_rcu`, the
/// global and per-CPU caches), with accounting. Objects live in a slab indexed by
/// address, each beside a one-byte state; freed addresses are never reused, so every
/// later use is seen. A lookup takes no lock (the slab only grows, one chunk at a
/// time); allocation and every change of an object's state take the allocator's lock.
/// `bpf_mem_free_rcu` batches: a batch closes a grace period after its first object
/// and is reclaimed a full grace period after it closes, so no object is reclaimed
/// before every reader that could have seen it has left.
pub struct BpfMemAlloc {
    inner: SpinLock<MemInner>,
    chunks: alloc::boxed::Box<[AtomicPtr<Chunk>]>,
    rcu: Arc<Rcu>,
    fail_next: AtomicUsize,
    /// The open `bpf_mem_free_rcu` batch (slab indexes), in chunks
    /// (`local_frees::FREE_CHUNK` each), so a large batch never copies what it already
    /// holds as it grows.
    rcu_pending: SpinLock<Vec<Vec<u32>>>,
}

impl BpfMemAlloc {
    /// An allocator deferring through `rcu`.
    pub fn new(rcu: Arc<Rcu>) -> Arc<BpfMemAlloc> {
        crate::tally::created();
        Arc::new(BpfMemAlloc {
            inner: SpinLock::new(MemInner {
                len: 0,
                names: Vec::new(),
                types: HashMap::new(),
                faults: Vec::new(),
                frees: 0,
                acked: (Vec::new(), 0),
                btf_uaf: (0, 0),
            }),
            chunks: (0..CHUNKS)
                .map(|_| AtomicPtr::new(core::ptr::null_mut()))
                .collect(),
            rcu,
            fail_next: AtomicUsize::new(0),
            rcu_pending: SpinLock::new(Vec::new()),
        })
    }

    /// The chunk of slab index `i`, if it exists.
    fn chunk(&self, i: usize) -> Option<&Chunk> {
        let c = self.chunks.get(i / CHUNK)?.load(Ordering::Acquire);
        // SAFETY: a chunk pointer, once published (with Release, after the chunk was
        // built), points to a leaked `Box<Chunk>` that is freed only by `Drop`
        // (`&mut self`), so it is valid for `&self`'s lifetime.
        (!c.is_null()).then(|| unsafe { &*c })
    }

    /// The state of slab index `i` (loaded with Acquire), its value, and its object
    /// once the state left `EMPTY`; `None` past the slab.
    fn at(&self, i: usize) -> Option<(&AtomicU8, u8, Option<&Obj>)> {
        let c = self.chunk(i)?;
        let k = i % CHUNK;
        let st = c.state.get(k)?;
        let s = st.load(Ordering::Acquire);
        Some((st, s, c.obj(k, s)))
    }

    /// Makes the next `n` allocations fail (as `bpf_mem_alloc` (kernel/bpf/memalloc.c) can
    /// under load).
    pub fn fail_next(&self, n: usize) {
        self.fail_next.store(n, Ordering::SeqCst);
    }

    fn index(addr: u64) -> Option<usize> {
        let off = addr.checked_sub(BASE)?;
        if off % STRIDE != 0 {
            return None;
        }
        Some((off / STRIDE) as usize)
    }

    /// `bpf_mem_alloc` (kernel/bpf/memalloc.c): zeroed memory for an object of type `ty`;
    /// `None` when told to fail or when the slab is full (`CHUNKS * CHUNK` objects,
    /// 16,777,216 on a host).
    pub fn alloc(&self, ty: &str, size: u32, percpu: bool) -> Option<u64> {
        if self
            .fail_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return None;
        }
        let mem = WordsBuf::new(size);
        let mut g = self.inner.lock();
        let i = g.len;
        let cp = self.chunks.get(i / CHUNK)?;
        if i.is_multiple_of(CHUNK) {
            cp.store(alloc::boxed::Box::into_raw(Chunk::new()), Ordering::Release);
        }
        let ty = match g.types.get(ty) {
            Some(&t) => t,
            None => {
                let t = u32::try_from(g.names.len()).ok()?;
                g.names.push(NameArc::from(ty));
                g.types.insert(String::from(ty), t);
                t
            }
        };
        let c = self.chunk(i)?;
        let k = i % CHUNK;
        let (st, cell) = (c.state.get(k)?, c.objs.get(k)?);
        // SAFETY: slab index `i` is `g.len`, so its state is EMPTY: no reader reads
        // the cell, and the allocator's lock (held) makes this the only writer.
        unsafe { (*cell.get()).write(Obj { mem, ty, percpu }) };
        st.store(LIVE, Ordering::Release);
        g.len = i + 1;
        Some(BASE + i as u64 * STRIDE)
    }

    /// The object at `addr`; a use of a freed or unknown address is recorded as a
    /// fault and yields `None`.
    pub fn get(&self, addr: u64) -> Option<&Obj> {
        match self.live_obj(addr) {
            Some(o) => Some(o),
            None => self.get_fault(addr),
        }
    }

    /// The live object at `addr`, if any: one state load.
    #[inline]
    fn live_obj(&self, addr: u64) -> Option<&Obj> {
        let off = addr.wrapping_sub(BASE);
        if !off.is_multiple_of(STRIDE) {
            return None;
        }
        let i = usize::try_from(off / STRIDE).ok()?;
        let c = self.chunk(i)?;
        let k = i % CHUNK;
        let s = c.state.get(k)?.load(Ordering::Acquire);
        if s != LIVE {
            return None;
        }
        c.obj(k, s)
    }

    /// [`get`](Self::get) of an address that is not live: the fault it records.
    #[cold]
    fn get_fault(&self, addr: u64) -> Option<&Obj> {
        let at = Self::index(addr).and_then(|i| self.at(i));
        let mut g = self.inner.lock();
        let f = match at {
            Some((_, _, Some(o))) => MemFault::UseAfterFree(addr, String::from(&*g.name(o))),
            _ => MemFault::Wild(addr),
        };
        g.faults.push(f);
        None
    }

    /// Records a free of `addr` into the other of the two BPF allocators
    /// (`bpf_global_ma` and `bpf_global_percpu_ma`), which never handed it out: a
    /// [`MemFault::Wild`] free. The object stays allocated.
    #[cold]
    pub fn wrong_allocator(&self, addr: u64) {
        self.inner.lock().faults.push(MemFault::Wild(addr));
    }

    /// Records a dereference of `NULL + addr` by the kernel function `site`
    /// ([`MemFault::NullDeref`]): the kernel oopses there.
    #[cold]
    pub fn null_deref(&self, addr: u64, site: &str) {
        let f = MemFault::NullDeref(addr, String::from(site));
        self.inner.lock().faults.push(f);
    }

    /// What the allocator knows of the object ever handed out at `addr`, live or freed.
    pub fn info(&self, addr: u64) -> Option<ObjInfo> {
        let o = Self::index(addr).and_then(|i| self.at(i)?.2)?;
        Some(ObjInfo {
            ty: self.inner.lock().name(o),
            size: o.size(),
            percpu: o.percpu,
        })
    }

    /// True if `addr` is live (no fault recorded).
    pub fn is_live(&self, addr: u64) -> bool {
        Self::index(addr).is_some_and(|i| self.live_at(i))
    }

    /// True if slab index `i` holds a live object.
    fn live_at(&self, i: usize) -> bool {
        matches!(self.at(i), Some((_, LIVE, _)))
    }

    /// Frees `addr` under the allocator's lock (`g`), which serialises every change of
    /// a state: a double free is seen even when two frees race.
    fn free_locked(&self, g: &mut MemInner, addr: u64) {
        match Self::index(addr) {
            Some(i) => self.free_index_locked(g, i),
            None => g.faults.push(MemFault::Wild(addr)),
        }
    }

    /// [`free_locked`](Self::free_locked) of slab index `i`.
    #[inline]
    fn free_index_locked(&self, g: &mut MemInner, i: usize) {
        if let Some(c) = self.chunk(i)
            && let Some(s) = c.state.get(i % CHUNK)
            && s.load(Ordering::Relaxed) == LIVE
        {
            s.store(FREED, Ordering::Release);
            g.frees += 1;
            return;
        }
        self.free_fault(g, i);
    }

    /// [`free_index_locked`](Self::free_index_locked) of each of `idx`, looking a
    /// chunk up once for a run of indexes in it.
    fn free_indexes_locked(&self, g: &mut MemInner, idx: &[u32]) {
        let mut cur: Option<(usize, &Chunk)> = None;
        for &i in idx {
            let i = i as usize;
            let c = match cur {
                Some((n, c)) if n == i / CHUNK => Some(c),
                _ => {
                    let c = self.chunk(i);
                    cur = c.map(|c| (i / CHUNK, c));
                    c
                }
            };
            if let Some(s) = c.and_then(|c| c.state.get(i % CHUNK))
                && s.load(Ordering::Relaxed) == LIVE
            {
                s.store(FREED, Ordering::Release);
                g.frees += 1;
            } else {
                self.free_fault(g, i);
            }
        }
    }

    /// The fault of freeing slab index `i` that is not live.
    #[cold]
    fn free_fault(&self, g: &mut MemInner, i: usize) {
        let addr = BASE + i as u64 * STRIDE;
        match self.at(i) {
            Some((_, _, Some(o))) => {
                let ty = String::from(&*g.name(o));
                g.faults.push(MemFault::DoubleFree(addr, ty));
            }
            _ => g.faults.push(MemFault::Wild(addr)),
        }
    }

    /// `bpf_mem_free` (kernel/bpf/memalloc.c): the memory may be reused at once.
    pub fn free(&self, addr: u64) {
        self.free_locked(&mut self.inner.lock(), addr);
    }

    /// `bpf_mem_free_rcu` (kernel/bpf/memalloc.c): freed after an RCU grace period.
    /// Inside [`with_local_frees`](Self::with_local_frees) the address goes to the
    /// task's own list (the per-CPU `free_by_rcu`), otherwise to the open batch.
    #[inline]
    pub fn free_rcu(this: &Arc<Self>, addr: u64) {
        let i = addr.wrapping_sub(BASE);
        if i.is_multiple_of(STRIDE)
            && let Ok(i) = u32::try_from(i / STRIDE)
            && local_frees::push(Arc::as_ptr(this) as usize, i)
        {
            return;
        }
        Self::free_rcu_to_batch(this, addr);
    }

    /// [`free_rcu`](Self::free_rcu) outside the task's own list: into the open batch.
    #[inline(never)]
    fn free_rcu_to_batch(this: &Arc<Self>, addr: u64) {
        let Some(i) = Self::index(addr).and_then(|i| u32::try_from(i).ok()) else {
            this.inner.lock().faults.push(MemFault::Wild(addr));
            return;
        };
        let first = {
            let mut p = this.rcu_pending.lock();
            let first = p.is_empty();
            local_frees::push_chunked(&mut p, i);
            first
        };
        if first {
            Self::close_batch_after_gp(this);
        }
    }

    /// Runs `f` with the calling task's own `bpf_mem_free_rcu` list for this
    /// allocator, filled without a lock and moved to the open batch in one step when
    /// `f` returns (or unwinds): the kernel's per-CPU `free_by_rcu` list, which
    /// `unit_free_rcu` fills with interrupts off and irq_work moves on
    /// (`check_free_by_rcu`). The objects are reclaimed no earlier than if each had
    /// joined the batch when freed. Lists nest: an inner one is moved when its `f`
    /// returns and the outer one is the task's again.
    pub fn with_local_frees<R>(this: &Arc<Self>, f: impl FnOnce() -> R) -> R {
        /// Puts the previous list back and moves this one into the batch, also when
        /// `f` unwinds.
        struct Scope<'a> {
            alloc: &'a Arc<BpfMemAlloc>,
            mine: *mut local_frees::LocalFrees,
            prev: *mut local_frees::LocalFrees,
        }
        impl Drop for Scope<'_> {
            fn drop(&mut self) {
                local_frees::install(self.prev);
                // SAFETY: `mine` points to the list declared before this guard in
                // `with_local_frees`, so it is still alive; it is no longer installed,
                // so this is the only access to it.
                let objs = core::mem::take(unsafe { &mut (*self.mine).objs });
                BpfMemAlloc::join_batch(self.alloc, objs);
            }
        }
        let mut mine = local_frees::LocalFrees {
            alloc: Arc::as_ptr(this) as usize,
            objs: Vec::new(),
        };
        let mine: *mut local_frees::LocalFrees = &mut mine;
        let prev = local_frees::install(mine);
        let _scope = Scope {
            alloc: this,
            mine,
            prev,
        };
        f()
    }

    /// Moves a task's list into the open batch.
    fn join_batch(this: &Arc<Self>, objs: Vec<Vec<u32>>) {
        if objs.is_empty() {
            return;
        }
        let first = {
            let mut p = this.rcu_pending.lock();
            let first = p.is_empty();
            p.extend(objs);
            first
        };
        if first {
            Self::close_batch_after_gp(this);
        }
    }

    /// The open batch's first object was added: the batch closes after a grace
    /// period and is reclaimed after one more.
    fn close_batch_after_gp(this: &Arc<Self>) {
        let me = Arc::clone(this);
        this.rcu.call_rcu(move || {
            // The batch closes here, after a grace period. Objects freed after that
            // grace period began are in it too, so the whole batch waits for one
            // more full grace period (do_call_rcu_ttrace moves the list to
            // waiting_for_gp when it queues the callback).
            let batch = core::mem::take(&mut *me.rcu_pending.lock());
            let me2 = Arc::clone(&me);
            me.rcu.call_rcu(move || {
                let mut g = me2.inner.lock();
                for part in &batch {
                    me2.free_indexes_locked(&mut g, part);
                }
            });
        });
    }

    /// Objects allocated and not freed.
    pub fn live(&self) -> Vec<(u64, ObjInfo)> {
        let g = self.inner.lock();
        if g.live() == 0 {
            return Vec::new();
        }
        (0..g.len)
            .filter_map(|i| {
                let Some((_, LIVE, Some(o))) = self.at(i) else {
                    return None;
                };
                let info = ObjInfo {
                    ty: g.name(o),
                    size: o.size(),
                    percpu: o.percpu,
                };
                Some((BASE + i as u64 * STRIDE, info))
            })
            .collect()
    }

    /// Faults seen so far.
    pub fn faults(&self) -> Vec<MemFault> {
        self.inner.lock().faults.clone()
    }

    /// (allocations, frees) so far.
    pub fn counts(&self) -> (usize, usize) {
        let g = self.inner.lock();
        (g.len, g.frees)
    }

    /// Acknowledges a reproduced kernel bug, and only it: the objects live now must be
    /// exactly `live_types` (their type names, in any order) and the faults seen since
    /// the last acknowledgement exactly `faults` (their kinds, in order; a read of a
    /// freed BTF by the runtime this allocator serves counts as
    /// [`FaultKind::BtfUseAfterFree`]). Then they are expected: the process-wide
    /// [`mem_tally`](crate::tally::mem_tally) counts only what happens beyond them.
    /// Anything else acknowledges nothing and says what was found.
    pub fn acknowledge(&self, live_types: &[&str], faults: &[FaultKind]) -> Result<(), String> {
        let mut want: Vec<&str> = live_types.to_vec();
        want.sort_unstable();
        let live = self.live();
        let mut got: Vec<&str> = live.iter().map(|(_, i)| &*i.ty).collect();
        got.sort_unstable();
        let mut g = self.inner.lock();
        let mut kinds: Vec<FaultKind> = g.faults[g.acked.1.min(g.faults.len())..]
            .iter()
            .map(FaultKind::of)
            .collect();
        kinds.extend((g.btf_uaf.1..g.btf_uaf.0).map(|_| FaultKind::BtfUseAfterFree));
        if got != want || kinds != faults {
            return Err(alloc::format!(
                "acknowledged live {want:?} and faults {faults:?}; found live {got:?} and faults {kinds:?}"
            ));
        }
        let live_idx: Vec<usize> = (0..g.len).filter(|&i| self.live_at(i)).collect();
        g.acked = (live_idx, g.faults.len());
        g.btf_uaf.1 = g.btf_uaf.0;
        Ok(())
    }

    /// A read of a freed BTF by the runtime this allocator serves: tallied with the
    /// allocator, so [`acknowledge`](Self::acknowledge) covers it too.
    pub(crate) fn note_btf_use_after_free(&self) {
        self.inner.lock().btf_uaf.0 += 1;
    }

    /// The RCU domain frees are deferred through.
    pub fn rcu(&self) -> &Arc<Rcu> {
        &self.rcu
    }
}

impl Drop for BpfMemAlloc {
    fn drop(&mut self) {
        let g = self.inner.lock();
        let (acked_live, acked_faults) = (&g.acked.0, g.acked.1);
        // Objects acknowledged as leaked and still live are expected; any other live
        // object is a leak, even when an acknowledged one was freed meanwhile.
        let expected = acked_live.iter().filter(|&&i| self.live_at(i)).count();
        let live = g.live();
        let mut unexpected = [live - expected, 0, 0, 0];
        for f in g.faults.iter().skip(acked_faults) {
            let k = match f {
                MemFault::DoubleFree(..) => 1,
                MemFault::UseAfterFree(..) => 2,
                MemFault::Wild(_) | MemFault::NullDeref(..) => 3,
            };
            unexpected[k] += 1;
        }
        crate::tally::dropped(
            g.len,
            g.frees,
            unexpected,
            expected + acked_faults.min(g.faults.len()),
        );
        crate::tally::btf_uses_after_free_dropped(g.btf_uaf.0, g.btf_uaf.1);
        drop(g);
        for c in self.chunks.iter() {
            let c = c.load(Ordering::Acquire);
            if c.is_null() {
                continue;
            }
            // SAFETY: published chunks are leaked boxes (see `alloc`); `&mut self`
            // means no reference into them is left, and each is rebuilt and dropped
            // once here.
            let mut chunk = unsafe { alloc::boxed::Box::from_raw(c) };
            let Chunk { state, objs } = &mut *chunk;
            for (s, o) in state.iter().zip(objs.iter_mut()) {
                if s.load(Ordering::Acquire) != EMPTY {
                    // SAFETY: a state other than EMPTY means the object was written
                    // (see `alloc`); it is dropped once, here, with no reference left.
                    unsafe { o.get_mut().assume_init_drop() };
                }
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::{BpfMemAlloc, CHUNK, FaultKind, MemFault, WordsBuf};
    use crate::obj::local_frees::FREE_CHUNK as PENDING_CHUNK;
    use crate::sync::{Arc, Rcu};
    use alloc::vec;
    use alloc::vec::Vec;

    /// The 4-byte and 1-byte accessors touch their own bytes of the 8-byte word and
    /// keep the others, in either half of the word and at each byte.
    #[test]
    fn word_accessors_keep_the_rest_of_the_word() {
        let w = WordsBuf::new(16);
        assert_eq!(w.cas_u32(0, 0, 0x1111_1111), Ok(0));
        assert_eq!(w.cas_u32(4, 0, 0x2222_2222), Ok(0));
        assert_eq!(
            w.cas_u32(4, 1, 3),
            Err(0x2222_2222),
            "the old value is compared"
        );
        assert_eq!((w.load_u32(0), w.load_u32(4)), (0x1111_1111, 0x2222_2222));
        assert_eq!(w.update_u32(4, |v| Some(v + 1)), Ok(0x2222_2222));
        assert_eq!(w.update_u32(0, |_| None), Err(0x1111_1111));
        assert_eq!(w.update_u32(0, |v| Some(v ^ 0xffff)), Ok(0x1111_1111));
        assert_eq!((w.load_u32(0), w.load_u32(4)), (0x1111_eeee, 0x2222_2223));
        // Replacing a non-zero upper half: its old bits go.
        assert_eq!(w.cas_u32(4, 0x2222_2223, 0x4000_0005), Ok(0x2222_2223));
        assert_eq!(w.load_u32(4), 0x4000_0005);
        assert_eq!(w.update_u32(4, |_| Some(0x0300_0000)), Ok(0x4000_0005));
        assert_eq!(w.load_u32(4), 0x0300_0000);
        assert_eq!(w.update_u32(4, |v| Some(v + 0x1f22_2223)), Ok(0x0300_0000));
        for i in 8..16 {
            w.set_byte(i, 0x10 + i as u8);
        }
        w.set_byte(11, 0xab);
        let bytes: Vec<u8> = (0..16).map(|i| w.byte(i)).collect();
        assert_eq!(
            bytes,
            [
                0xee, 0xee, 0x11, 0x11, 0x23, 0x22, 0x22, 0x22, 0x18, 0x19, 0x1a, 0xab, 0x1c, 0x1d,
                0x1e, 0x1f
            ]
        );
        assert_eq!((w.load_u32(8), w.load_u32(12)), (0xab1a_1918, 0x1f1e_1d1c));
        assert!(w.u32_at(2).is_none(), "a u32 must be 4-aligned");
        assert_eq!(w.u32_at(16).map(|(_, sh)| sh), None, "past the end");
        assert_eq!(w.u32_at(12).map(|(_, sh)| sh), Some(32));
    }

    /// `live` lists each live object at the address `alloc` gave it; `acknowledge`
    /// takes exactly what is live and exactly the faults seen, nothing else.
    #[test]
    fn live_objects_are_listed_at_their_addresses_and_acknowledged_exactly() {
        let rcu = Arc::new(Rcu::new());
        let a = BpfMemAlloc::new(Arc::clone(&rcu));
        let x = a.alloc("node", 16, false).expect("room");
        let y = a.alloc("pcpu", 8, true).expect("room");
        let z = a.alloc("node", 16, false).expect("room");
        a.free(x);
        a.free(x);
        let live: Vec<(u64, alloc::string::String, u32, bool)> = a
            .live()
            .into_iter()
            .map(|(p, i)| (p, alloc::string::String::from(&*i.ty), i.size, i.percpu))
            .collect();
        assert_eq!(
            live,
            [(y, "pcpu".into(), 8, true), (z, "node".into(), 16, false)]
        );
        assert!(
            a.acknowledge(&["pcpu"], &[FaultKind::DoubleFree]).is_err(),
            "z too"
        );
        assert!(
            a.acknowledge(&["node", "pcpu"], &[]).is_err(),
            "the double free too"
        );
        assert!(
            a.acknowledge(&["node", "node"], &[FaultKind::DoubleFree])
                .is_err()
        );
        a.acknowledge(&["pcpu", "node"], &[FaultKind::DoubleFree])
            .expect("exactly what is there");
        a.free(y);
        a.free(z);
        assert!(a.live().is_empty());
    }

    /// A batch of RCU frees over two slab chunks frees exactly its own objects (the
    /// reclaim looks each chunk up once for a run of indexes in it); `fail_next` makes
    /// the next allocations fail, then they succeed again.
    #[test]
    fn a_batch_over_two_slab_chunks_frees_its_own_objects() {
        let rcu = Arc::new(Rcu::new());
        let a = BpfMemAlloc::new(Arc::clone(&rcu));
        let xs: Vec<u64> = (0..CHUNK + 6)
            .map(|_| a.alloc("node", 16, false).expect("room"))
            .collect();
        for i in [1, CHUNK + 5, 2] {
            BpfMemAlloc::free_rcu(&a, xs[i]);
        }
        rcu.rcu_barrier();
        let freed: Vec<usize> = (0..xs.len()).filter(|&i| !a.is_live(xs[i])).collect();
        assert_eq!(freed, [1, 2, CHUNK + 5]);
        assert!(a.faults().is_empty());
        a.fail_next(2);
        assert_eq!(a.alloc("node", 16, false), None);
        assert_eq!(a.alloc("node", 16, false), None);
        let y = a.alloc("node", 16, false).expect("the third succeeds");
        for (i, &x) in xs.iter().enumerate() {
            if ![1, 2, CHUNK + 5].contains(&i) {
                a.free(x);
            }
        }
        a.free(y);
        assert!(a.live().is_empty() && a.faults().is_empty());
    }

    #[test]
    fn a_free_rcu_batch_longer_than_a_chunk_is_reclaimed_whole_and_once() {
        let rcu = Arc::new(Rcu::new());
        let a = BpfMemAlloc::new(Arc::clone(&rcu));
        let addrs: Vec<u64> = (0..PENDING_CHUNK + 2)
            .map(|_| a.alloc("node", 16, false).expect("room"))
            .collect();
        for &x in &addrs {
            BpfMemAlloc::free_rcu(&a, x);
        }
        BpfMemAlloc::free_rcu(&a, addrs[PENDING_CHUNK]);
        assert!(
            a.is_live(addrs[PENDING_CHUNK + 1]),
            "readable until reclaimed"
        );
        rcu.rcu_barrier();
        assert!(a.live().is_empty());
        assert_eq!(a.counts(), (PENDING_CHUNK + 2, PENDING_CHUNK + 2));
        assert_eq!(
            a.faults(),
            vec![MemFault::DoubleFree(addrs[PENDING_CHUNK], "node".into())]
        );
        a.acknowledge(&[], &[FaultKind::DoubleFree])
            .expect("the double free");
    }

    /// Inside `with_local_frees` an RCU free waits on the task's own list, which no
    /// grace period reclaims until the list joins the batch; another allocator's
    /// frees, and an inner list's, are not held by it. Only a build with tasks
    /// (`std` or loom) keeps such lists.
    #[test]
    #[cfg(any(loom, feature = "std"))]
    fn a_tasks_own_list_joins_the_batch_when_its_scope_ends() {
        let rcu = Arc::new(Rcu::new());
        let (a, b) = (
            BpfMemAlloc::new(Arc::clone(&rcu)),
            BpfMemAlloc::new(Arc::clone(&rcu)),
        );
        let xs: Vec<u64> = (0..PENDING_CHUNK + 3)
            .map(|_| a.alloc("node", 16, false).expect("room"))
            .collect();
        let y = b.alloc("other", 8, false).expect("room");
        BpfMemAlloc::with_local_frees(&a, || {
            BpfMemAlloc::free_rcu(&a, xs[0]);
            BpfMemAlloc::with_local_frees(&b, || {
                BpfMemAlloc::free_rcu(&a, xs[1]);
                BpfMemAlloc::free_rcu(&b, y);
                rcu.rcu_barrier();
                assert!(
                    !a.is_live(xs[1]),
                    "another allocator's free joins the batch"
                );
                assert!(b.is_live(y), "still on the inner list");
            });
            rcu.rcu_barrier();
            assert!(!b.is_live(y), "the inner list joined when its scope ended");
            for &x in &xs[2..] {
                BpfMemAlloc::free_rcu(&a, x);
            }
            BpfMemAlloc::free_rcu(&a, xs[2]);
            rcu.rcu_barrier();
            assert!(
                a.is_live(xs[0]) && a.is_live(xs[2]),
                "on the task's own list"
            );
        });
        assert!(a.is_live(xs[0]), "a grace period first");
        rcu.rcu_barrier();
        assert!(a.live().is_empty() && b.live().is_empty());
        assert_eq!(a.counts(), (PENDING_CHUNK + 3, PENDING_CHUNK + 3));
        assert_eq!(a.faults(), vec![MemFault::DoubleFree(xs[2], "node".into())]);
        a.acknowledge(&[], &[FaultKind::DoubleFree])
            .expect("the double free");
    }

    /// A build without tasks keeps no list of its own: inside `with_local_frees` an
    /// RCU free is in the allocator's batch at once, and a grace period reclaims it.
    #[test]
    #[cfg(not(any(loom, feature = "std")))]
    fn without_tasks_a_free_joins_the_batch_at_once() {
        let rcu = Arc::new(Rcu::new());
        let a = BpfMemAlloc::new(Arc::clone(&rcu));
        let x = a.alloc("node", 16, false).expect("room");
        BpfMemAlloc::with_local_frees(&a, || {
            BpfMemAlloc::free_rcu(&a, x);
            assert!(a.is_live(x), "a grace period first");
            rcu.rcu_barrier();
            assert!(!a.is_live(x), "no list of the task's holds it");
        });
        assert_eq!(a.counts(), (1, 1));
        assert!(a.faults().is_empty());
    }

    #[test]
    fn the_slab_grows_by_chunks_and_keeps_every_freed_address() {
        let a = BpfMemAlloc::new(Arc::new(Rcu::new()));
        let addrs: Vec<u64> = (0..=CHUNK)
            .map(|_| a.alloc("node", 16, false).expect("room"))
            .collect();
        let (last, before) = (addrs[CHUNK], addrs[CHUNK - 1]);
        assert_eq!(last - before, 64, "one stride across the chunk boundary");
        assert_eq!(a.get(last).map(|o| o.size()), Some(16));
        a.free(last);
        a.free(before);
        assert!(a.get(last).is_none() && !a.is_live(last));
        a.free(last);
        assert!(a.get(last + 64).is_none(), "never handed out");
        assert_eq!(
            a.faults(),
            vec![
                MemFault::UseAfterFree(last, "node".into()),
                MemFault::DoubleFree(last, "node".into()),
                MemFault::Wild(last + 64),
            ]
        );
        assert_eq!(a.counts(), (CHUNK + 1, 2));
        assert_eq!(a.live().len(), CHUNK - 1);
        for &x in &addrs[..CHUNK - 1] {
            a.free(x);
        }
        assert!(a.live().is_empty());
        a.acknowledge(
            &[],
            &[
                FaultKind::UseAfterFree,
                FaultKind::DoubleFree,
                FaultKind::Wild,
            ],
        )
        .expect("the three faults");
    }

    #[test]
    fn slots_and_bytes_end_at_the_size_inline_and_on_the_heap() {
        for size in [1u32, 8, 24, 32, 33, 40, 64] {
            let w = WordsBuf::new(size);
            let last = size.div_ceil(8) * 8;
            assert!(w.slot(last - 8).is_some(), "size {size}");
            assert!(w.slot(last).is_none(), "size {size}");
            assert!(w.slot(4).is_none(), "unaligned, size {size}");
            assert!(w.u32_at(size).is_none());
            if size >= 8 {
                let off = size / 4 * 4 - 4;
                assert_eq!(w.cas_u32(off, 0, 7), Ok(0));
                assert_eq!(w.load_u32(off), 7);
                w.zero(0, size);
                assert_eq!(w.load_u32(off), 0);
            }
            w.set_byte(size - 1, 0xab);
            assert_eq!(w.byte(size - 1), 0xab);
            w.zero(size - 1, 1);
            assert_eq!(w.byte(size - 1), 0);
        }
    }
}
