//! Maps at run time: array and per-CPU array (kernel/bpf/arraymap.c), hash maps
//! preallocated or not, per-CPU and LRU (kernel/bpf/hashtab.c), local storage
//! ([`super::local_storage`]) and arrays of maps (kernel/bpf/arraymap.c,
//! kernel/bpf/map_in_map.c), with the value operations that touch special fields, the
//! syscall layer's own checks (kernel/bpf/syscall.c: `map_update_elem`,
//! `map_lookup_elem`, `bpf_map_value_size`: a per-CPU map's value is one slice per
//! CPU), the user references (`usercnt`: `map_release_uref` cancels timers and
//! workqueues when the last one goes), and the map's end: `bpf_map_put`, the grace
//! periods an inner map removed from its outer map waits for, and the deferred free in
//! the profile's order.

use alloc::vec::Vec;

use hashbrown::HashMap;

use super::bpf_map::BpfMap;
use super::local_storage::{
    BpfLocalStorageElem, BpfLocalStorageMap, StorageOwner, bpf_local_storage_delete_elem,
    bpf_local_storage_lookup_elem, bpf_local_storage_map_free, local_storage_update_elem,
};
use super::lru::BpfLru;
use super::types::*;
use super::value::copy_map_value_locked;
pub use super::value::{
    BPF_EXIST, BPF_F_LOCK, BPF_NOEXIST, check_and_init_map_value, copy_map_value,
};
use crate::errno::{Errno, KResult};
use crate::obj::uptr::{bpf_obj_pin_uptrs, bpf_obj_unpin_uptrs};
use crate::obj::{BpfRuntime, Words, WordsBuf, bpf_obj_free_fields};
use crate::record::{BtfFieldType as F, BtfRecord, btf_record_free};
use crate::sync::Word;
use crate::sync::{Arc, AtomicBool, Ordering, SpinLock};
use crate::trace::{Event, emit};

/// The largest map (values times CPUs, in bytes) the run-time model allocates.
pub const MAP_MODEL_LIMIT: u64 = 1 << 30;

/// Number of CPUs the per-CPU maps model.
pub const NR_CPUS: usize = 2;

/// The CPU the model's map operations run on (`raw_smp_processor_id()`): CPU 0 of
/// [`NR_CPUS`].
pub const THIS_CPU: usize = 0;

/// One hash element's value (one per CPU for per-CPU hashes).
pub struct HtabElem {
    /// The value (one per CPU for per-CPU maps).
    pub values: Vec<WordsBuf>,
    /// Its index among the map's preallocated elements (its LRU node); unused for a
    /// map that is not preallocated.
    idx: usize,
}

/// The hash table and the element pools of kernel/bpf/hashtab.c's `struct bpf_htab`.
struct Htab {
    /// The linked elements by key (the buckets).
    table: HashMap<Vec<u8>, Arc<HtabElem>>,
    /// `htab->freelist` (`pcpu_freelist`, last in first out on one CPU) of a
    /// preallocated map that is not an LRU.
    freelist: Vec<Arc<HtabElem>>,
    /// `htab->extra_elems`: one spare element per CPU, for an update that replaces an
    /// existing key (a preallocated HASH, `htab_has_extra_elems`).
    extra: Vec<Arc<HtabElem>>,
    /// Every preallocated element, by index (`htab->elems`): the LRU's nodes.
    all: Vec<Arc<HtabElem>>,
    /// The key each preallocated element is linked under, if it is.
    keys: Vec<Option<Vec<u8>>>,
    /// The element allocator's free list of a non-preallocated map (`htab->ma`, one
    /// CPU's `free_llist`): `bpf_mem_cache_free` puts a freed element here and the next
    /// `bpf_mem_cache_alloc` takes it back at once, last in first out, with whatever a
    /// program wrote into it after its delete (`alloc_htab_elem` copies the value
    /// only). What is still here when the map is freed goes back to the slab.
    retired: Vec<Arc<HtabElem>>,
    /// `htab->lru` of an LRU map.
    lru: Option<BpfLru>,
}

impl Htab {
    /// Links `e`, a free element, under `key`; the element it replaces, if any.
    fn link(&mut self, key: &[u8], e: &Arc<HtabElem>) -> Option<Arc<HtabElem>> {
        let old = self.table.insert(key.to_vec(), Arc::clone(e));
        if let Some(k) = old.as_ref().and_then(|o| self.keys.get_mut(o.idx)) {
            *k = None;
        }
        if let Some(k) = self.keys.get_mut(e.idx) {
            *k = Some(key.to_vec());
        }
        old
    }

    /// Unlinks the element under `key` (`hlist_nulls_del_rcu`).
    fn unlink(&mut self, key: &[u8]) -> Option<Arc<HtabElem>> {
        let e = self.table.remove(key)?;
        if let Some(k) = self.keys.get_mut(e.idx) {
            *k = None;
        }
        Some(e)
    }

    /// `prealloc_lru_pop`: a free LRU element, evicting (`htab_lru_map_delete_node`:
    /// unlink, and the caller frees the evicted elements' special fields, collected in
    /// `evicted`) when none is free.
    fn prealloc_lru_pop(&mut self, evicted: &mut Vec<Arc<HtabElem>>) -> Option<Arc<HtabElem>> {
        let Htab {
            table,
            all,
            keys,
            lru,
            ..
        } = self;
        let lru = lru.as_mut()?;
        // htab_lru_map_delete_node: the node's element is unlinked only if it is the
        // one linked in its bucket (`l == tgt_l`); an element already unlinked, whose
        // key may hold another element by now, is left alone (false).
        let mut del_from_htab = |n: usize| {
            let Some(key) = keys.get(n).and_then(Option::as_ref) else {
                return false;
            };
            if table.get(key).is_none_or(|e| e.idx != n) {
                return false;
            }
            if let Some(e) = table.remove(key) {
                evicted.push(e);
            }
            if let Some(k) = keys.get_mut(n) {
                *k = None;
            }
            true
        };
        let n = lru.bpf_lru_pop_free(THIS_CPU, &mut del_from_htab)?;
        all.get(n).cloned()
    }
}

enum Storage {
    /// Every element's values in one allocation, as the kernel's array map keeps them
    /// (`array->value`, `elem_size` = the value size rounded up to 8); `ncpu`
    /// consecutive values per element for a per-CPU array.
    Array {
        ncpu: usize,
        /// Words per value.
        elem: usize,
        vals: alloc::boxed::Box<[Word]>,
    },
    Htab(alloc::boxed::Box<SpinLock<Htab>>),
    /// A local storage map (task, cgroup, socket, inode storage).
    Local(alloc::boxed::Box<BpfLocalStorageMap>),
    /// An ARRAY_OF_MAPS (`array->ptrs`): each slot holds a reference on its inner map.
    FdArray(alloc::boxed::Box<SpinLock<Vec<Option<Arc<MapRt>>>>>),
}

/// A map with values.
pub struct MapRt {
    /// The created map (attributes, BTF, record).
    pub map: BpfMap,
    storage: Storage,
    refcnt: crate::sync::AtomicU64,
    /// `map->usercnt`: the references user space holds (fds, pins); 1 at creation.
    usercnt: crate::sync::AtomicU64,
    /// `map->sleepable_refcnt`: sleepable programs using the map.
    sleepable_refcnt: crate::sync::AtomicU64,
    /// `map->free_after_rcu_gp`.
    free_after_rcu_gp: AtomicBool,
    /// `map->free_after_mult_rcu_gp`.
    free_after_mult_rcu_gp: AtomicBool,
    map_btf_put_after_free: bool,
}

fn percpu(t: u32) -> bool {
    matches!(
        t,
        BPF_MAP_TYPE_PERCPU_ARRAY | BPF_MAP_TYPE_PERCPU_HASH | BPF_MAP_TYPE_LRU_PERCPU_HASH
    )
}

fn is_lru_type(t: u32) -> bool {
    matches!(t, BPF_MAP_TYPE_LRU_HASH | BPF_MAP_TYPE_LRU_PERCPU_HASH)
}

fn prealloc(m: &BpfMap) -> bool {
    // htab_map_alloc_check: an LRU map is always preallocated.
    m.map_flags & BPF_F_NO_PREALLOC == 0 || is_lru_type(m.map_type)
}

/// `htab_has_extra_elems`: a preallocated HASH keeps a spare element per CPU.
fn has_extra_elems(m: &BpfMap) -> bool {
    !percpu(m.map_type) && !is_lru_type(m.map_type)
}

/// `check_flags` (kernel/bpf/hashtab.c), `BPF_F_LOCK` aside.
fn check_flags(exists: bool, flags: u64) -> KResult<()> {
    match flags & !BPF_F_LOCK {
        BPF_NOEXIST if exists => Err(Errno::EEXIST),
        BPF_EXIST if !exists => Err(Errno::ENOENT),
        _ => Ok(()),
    }
}

impl MapRt {
    /// `map_alloc` of an array, per-CPU array, hash map, local storage
    /// ([`BpfLocalStorageMap`], which takes the record) or ARRAY_OF_MAPS; -EOPNOTSUPP for
    /// another type. Profile flags: `map_btf_put_after_free` decides when its BTF is put
    /// at the end, `lru_free_target_clamped` the LRU's free target,
    /// `local_storage_bpf_ma` a storage's allocator.
    pub fn new(mut map: BpfMap, sem: &crate::profile::Semantics) -> KResult<Arc<MapRt>> {
        if let Some(ls) = BpfLocalStorageMap::bpf_local_storage_map_alloc(&mut map, sem) {
            return Ok(Self::with_storage(
                map,
                Storage::Local(alloc::boxed::Box::new(ls)),
                sem,
            ));
        }
        if map.map_type == BPF_MAP_TYPE_ARRAY_OF_MAPS {
            // array_of_map_alloc: the inner map template is the created map's
            // (bpf_map_meta_alloc, done by map_create); every slot empty.
            if map.max_entries as u64 * 8 > MAP_MODEL_LIMIT {
                return Err(Errno::ENOMEM);
            }
            let slots = (0..map.max_entries).map(|_| None).collect();
            return Ok(Self::with_storage(
                map,
                Storage::FdArray(alloc::boxed::Box::new(SpinLock::new(slots))),
                sem,
            ));
        }
        let ncpu = if percpu(map.map_type) { NR_CPUS } else { 1 };
        // The model allocates every value up front (as a preallocated map does): refuse
        // what would not fit, as the kernel's allocation would (-ENOMEM).
        let bytes =
            (map.max_entries as u64) * (map.value_size.div_ceil(8) as u64 * 8) * ncpu as u64;
        if bytes > MAP_MODEL_LIMIT {
            return Err(Errno::ENOMEM);
        }
        let rec = map.record.as_ref();
        let one = |n: u32| {
            let w = WordsBuf::new(n);
            check_and_init_map_value(rec, &w);
            w
        };
        let mk = |n: u32| -> Vec<WordsBuf> { (0..ncpu).map(|_| one(n)).collect() };
        let storage = match map.map_type {
            BPF_MAP_TYPE_ARRAY | BPF_MAP_TYPE_PERCPU_ARRAY => {
                let elem = Words::count(map.value_size);
                let n = map.max_entries as usize * ncpu * elem;
                let vals: alloc::boxed::Box<[Word]> = (0..n).map(|_| Word::new(0)).collect();
                for v in vals.chunks_exact(elem) {
                    check_and_init_map_value(rec, Words::of(v));
                }
                Storage::Array { ncpu, elem, vals }
            }
            BPF_MAP_TYPE_HASH
            | BPF_MAP_TYPE_PERCPU_HASH
            | BPF_MAP_TYPE_LRU_HASH
            | BPF_MAP_TYPE_LRU_PERCPU_HASH => {
                let lru = is_lru_type(map.map_type);
                let percpu_lru = lru && map.map_flags & BPF_F_NO_COMMON_LRU != 0;
                let mut entries = map.max_entries as usize;
                if percpu_lru {
                    // htab_map_alloc: every CPU's list gets the same share, at least 1.
                    let up = entries.div_ceil(NR_CPUS) * NR_CPUS;
                    entries = if up < entries {
                        entries / NR_CPUS * NR_CPUS
                    } else {
                        up
                    };
                }
                let mut h = Htab {
                    table: HashMap::new(),
                    freelist: Vec::new(),
                    extra: Vec::new(),
                    all: Vec::new(),
                    keys: Vec::new(),
                    retired: Vec::new(),
                    lru: None,
                };
                if prealloc(&map) {
                    // prealloc_init: max_entries elements, and one more per CPU where
                    // updates use extra elements.
                    let n = entries + if has_extra_elems(&map) { NR_CPUS } else { 0 };
                    for idx in 0..n {
                        h.all.push(Arc::new(HtabElem {
                            values: mk(map.value_size),
                            idx,
                        }));
                    }
                    h.keys = alloc::vec![None; n];
                    if lru {
                        h.lru = Some(BpfLru::bpf_lru_init(
                            n,
                            NR_CPUS,
                            percpu_lru,
                            sem.lru_free_target_clamped,
                        ));
                    } else {
                        h.freelist = h.all.iter().rev().cloned().collect();
                        if has_extra_elems(&map) {
                            // alloc_extra_elems: one popped for each CPU.
                            for _ in 0..NR_CPUS {
                                if let Some(e) = h.freelist.pop() {
                                    h.extra.push(e);
                                }
                            }
                        }
                    }
                }
                Storage::Htab(alloc::boxed::Box::new(SpinLock::new(h)))
            }
            _ => return Err(Errno::EOPNOTSUPP),
        };
        Ok(Self::with_storage(map, storage, sem))
    }

    /// The map around its storage: one reference, held by user space (the fd
    /// `BPF_MAP_CREATE` returns: `refcnt` and `usercnt` 1).
    fn with_storage(map: BpfMap, storage: Storage, sem: &crate::profile::Semantics) -> Arc<MapRt> {
        Arc::new(MapRt {
            map,
            storage,
            refcnt: crate::sync::AtomicU64::new(1),
            usercnt: crate::sync::AtomicU64::new(1),
            sleepable_refcnt: crate::sync::AtomicU64::new(0),
            free_after_rcu_gp: AtomicBool::new(false),
            free_after_mult_rcu_gp: AtomicBool::new(false),
            map_btf_put_after_free: sem.map_btf_put_after_free,
        })
    }

    /// The record (a local storage map keeps it with its elements' shared part).
    pub fn record(&self) -> Option<&BtfRecord> {
        match &self.storage {
            Storage::Local(m) => m.record(),
            _ => self.map.record.as_ref(),
        }
    }

    /// The local storage map, for a task, cgroup, socket or inode storage.
    pub fn local_storage(&self) -> Option<&BpfLocalStorageMap> {
        match &self.storage {
            Storage::Local(m) => Some(m),
            _ => None,
        }
    }

    /// Array lookup (`array_map_lookup_elem`; `cpu` picks a per-CPU array's copy).
    pub fn array_value(&self, key: u32, cpu: usize) -> Option<&Words> {
        let Storage::Array { ncpu, elem, .. } = &self.storage else {
            return None;
        };
        if cpu >= *ncpu {
            return None;
        }
        self.array_elem(key)?
            .chunks_exact(*elem)
            .nth(cpu)
            .map(Words::of)
    }

    /// An array element's words: its `ncpu` values, one after another.
    fn array_elem(&self, key: u32) -> Option<&[Word]> {
        let Storage::Array { ncpu, elem, vals } = &self.storage else {
            return None;
        };
        let len = ncpu.checked_mul(*elem)?;
        let at = (key as usize).checked_mul(len)?;
        vals.get(at..at.checked_add(len)?)
    }

    /// A BPF program's hash lookup (`htab_map_lookup_elem`, `htab_lru_map_lookup_elem`,
    /// the per-CPU ones): the element, held as an RCU reader would hold it; an LRU
    /// element's reference bit is set (`bpf_lru_node_set_ref`).
    pub fn htab_lookup(&self, key: &[u8]) -> Option<Arc<HtabElem>> {
        self.lookup(key, true)
    }

    /// A lookup from user space (`htab_lru_map_lookup_elem_sys` for LRU maps): as
    /// [`htab_lookup`](Self::htab_lookup), but an LRU element's reference bit is left
    /// alone.
    pub fn htab_lookup_sys(&self, key: &[u8]) -> Option<Arc<HtabElem>> {
        self.lookup(key, false)
    }

    fn lookup(&self, key: &[u8], mark: bool) -> Option<Arc<HtabElem>> {
        let Storage::Htab(h) = &self.storage else {
            return None;
        };
        let mut g = h.lock();
        let e = g.table.get(key).cloned()?;
        if mark && let Some(lru) = g.lru.as_mut() {
            lru.bpf_lru_node_set_ref(e.idx);
        }
        Some(e)
    }

    fn is_lru(&self) -> bool {
        is_lru_type(self.map.map_type)
    }

    /// `check_and_free_fields` (kernel/bpf/hashtab.c): every CPU's value of `e`.
    fn check_and_free_fields(&self, rt: &BpfRuntime, e: &HtabElem) {
        if let Some(r) = self.record() {
            for w in &e.values {
                bpf_obj_free_fields(rt, r, w);
            }
        }
    }

    /// `pcpu_copy_value` (kernel/bpf/hashtab.c) with `onallcpus` (an update from user
    /// space): CPU `c`'s value gets the `c`th slice of `value`, `round_up(value_size,
    /// 8)` bytes each (`copy_map_value_long`, special fields skipped); then, with
    /// profile flag `htab_percpu_update_frees_fields`, each CPU's special fields are
    /// freed.
    fn pcpu_copy_value(&self, rt: &BpfRuntime, e: &HtabElem, value: &[u8]) {
        let rec = self.record();
        for (w, src) in e.values.iter().zip(value.chunks(self.elem_size())) {
            copy_map_value(rec, w, src);
            if rt.sem.htab_percpu_update_frees_fields
                && let Some(r) = rec
            {
                bpf_obj_free_fields(rt, r, w);
            }
        }
    }

    /// `round_up(value_size, 8)`: one CPU's slice of a per-CPU value (`elem_size`).
    fn elem_size(&self) -> usize {
        Words::count(self.map.value_size) * 8
    }

    /// `bpf_map_value_size` (kernel/bpf/syscall.c): the bytes user space passes and
    /// receives for one value: `round_up(value_size, 8) * num_possible_cpus()` (the
    /// model's [`NR_CPUS`]) for a per-CPU map, one slice per CPU; 4 (an fd) for an array
    /// of maps; else `value_size`. No profile flag changes it.
    pub fn bpf_map_value_size(&self) -> usize {
        if percpu(self.map.map_type) {
            self.elem_size() * NR_CPUS
        } else if matches!(self.storage, Storage::FdArray(_)) {
            4
        } else {
            self.map.value_size as usize
        }
    }

    /// The checks `map_update_elem` and `map_lookup_elem` (kernel/bpf/syscall.c) make
    /// before the map's own: no user reference left means no fd (`__bpf_map_get`:
    /// -EBADF); [`BPF_F_LOCK`] on a value without a `bpf_spin_lock` is refused here
    /// (-EINVAL), before any flag, key or value check of the map type; a user buffer
    /// shorter than [`bpf_map_value_size`](Self::bpf_map_value_size) cannot be copied
    /// (`kvmemdup_bpfptr`, `copy_to_user`: -EFAULT).
    fn syscall_checks(&self, value_len: usize, flags: u64) -> KResult<()> {
        if self.usercnt.load(Ordering::Acquire) == 0 {
            return Err(Errno::EBADF);
        }
        if flags & BPF_F_LOCK != 0 && !self.record().is_some_and(|r| r.has_field(F::SPIN_LOCK)) {
            return Err(Errno::EINVAL);
        }
        if value_len < self.bpf_map_value_size() {
            return Err(Errno::EFAULT);
        }
        Ok(())
    }

    /// `map_update_elem` from user space (kernel/bpf/syscall.c): [`BPF_F_LOCK`] without
    /// a `bpf_spin_lock` is -EINVAL before anything the map type checks (so before an
    /// index out of range, -E2BIG, or `BPF_NOEXIST` on an array, -EEXIST); `value` is the
    /// user's buffer of [`bpf_map_value_size`](Self::bpf_map_value_size) bytes (-EFAULT
    /// when shorter), one slice per CPU for a per-CPU map. Then `bpf_map_update_value`,
    /// inside `bpf_disable_instrumentation` (so with migration disabled):
    /// `array_map_update_elem` / `bpf_percpu_array_update`, `htab_map_update_elem`,
    /// `htab_lru_map_update_elem`, `bpf_percpu_hash_update`
    /// (`__htab_percpu_map_update_elem`, `__htab_lru_percpu_map_update_elem` with
    /// `onallcpus`). Flags: `BPF_ANY`, [`BPF_NOEXIST`], [`BPF_EXIST`], and [`BPF_F_LOCK`]
    /// for an ARRAY or a HASH whose value has a `bpf_spin_lock`. A local storage map's
    /// key is an owner's fd ([`update_owner`](Self::update_owner)): here -EBADF; an
    /// array of maps takes an inner map
    /// ([`bpf_fd_array_map_update_elem`](Self::bpf_fd_array_map_update_elem)): -EINVAL.
    /// Profile flags: `htab_percpu_update_frees_fields`, and those of
    /// `bpf_obj_free_fields`.
    pub fn update(&self, rt: &BpfRuntime, key: &[u8], value: &[u8], flags: u64) -> KResult<()> {
        self.syscall_checks(value.len(), flags)?;
        rt.migrate_disable_at("bpf_disable_instrumentation");
        let r = match &self.storage {
            Storage::Array { .. } => self.array_map_update_elem(rt, key, value, flags),
            Storage::Htab(_) => match self.map.map_type {
                BPF_MAP_TYPE_HASH => self.htab_map_update_elem(rt, key, value, flags),
                BPF_MAP_TYPE_LRU_HASH => self.htab_lru_map_update_elem(rt, key, value, flags),
                BPF_MAP_TYPE_PERCPU_HASH => {
                    self.__htab_percpu_map_update_elem(rt, key, value, flags)
                }
                _ => self.__htab_lru_percpu_map_update_elem(rt, key, value, flags),
            },
            Storage::Local(_) => Err(Errno::EBADF),
            Storage::FdArray(_) => Err(Errno::EINVAL),
        };
        rt.migrate_enable_at("bpf_disable_instrumentation");
        r
    }

    /// `array_map_update_elem` and `bpf_percpu_array_update` (kernel/bpf/arraymap.c),
    /// their checks in the kernel's order: unknown flags (-EINVAL; for a per-CPU array
    /// [`BPF_F_LOCK`] is one), an index out of range (-E2BIG), [`BPF_NOEXIST`]
    /// (-EEXIST), [`BPF_F_LOCK`] without a `bpf_spin_lock` (-EINVAL; from user space
    /// `map_update_elem` has refused it already). Then copy (under the value's lock
    /// with [`BPF_F_LOCK`]), special fields skipped, and free the value's special
    /// fields; a per-CPU array copies each CPU's slice into that CPU's value.
    fn array_map_update_elem(
        &self,
        rt: &BpfRuntime,
        key: &[u8],
        value: &[u8],
        flags: u64,
    ) -> KResult<()> {
        let rec = self.record();
        let idx = u32::from_ne_bytes(
            key.get(..4)
                .ok_or(Errno::EINVAL)?
                .try_into()
                .map_err(|_| Errno::EINVAL)?,
        );
        let Storage::Array { elem, ncpu, .. } = &self.storage else {
            return Err(Errno::EINVAL);
        };
        let percpu = *ncpu > 1;
        let known = if percpu { flags } else { flags & !BPF_F_LOCK };
        if known > BPF_EXIST {
            return Err(Errno::EINVAL);
        }
        let vals = self.array_elem(idx).ok_or(Errno::E2BIG)?;
        if flags & BPF_NOEXIST != 0 {
            return Err(Errno::EEXIST);
        }
        let locked = flags & BPF_F_LOCK != 0;
        let lock_rec = rec.filter(|r| r.spin_lock_off >= 0);
        if locked && lock_rec.is_none() {
            return Err(Errno::EINVAL);
        }
        // bpf_percpu_array_update: CPU c's value from the c-th slice of the user's
        // buffer (copy_map_value_long); an ARRAY's one value from the buffer.
        for (w, src) in vals
            .chunks_exact(*elem)
            .map(Words::of)
            .zip(value.chunks(*elem * 8))
        {
            match lock_rec {
                Some(r) if locked => copy_map_value_locked(r, w, src),
                _ => copy_map_value(rec, w, src),
            }
            if let Some(r) = rec {
                bpf_obj_free_fields(rt, r, w);
            }
        }
        Ok(())
    }

    /// `htab_map_update_elem` (kernel/bpf/hashtab.c). With [`BPF_F_LOCK`] an existing
    /// element is updated in place under its lock (`copy_map_value_locked`), its special
    /// fields kept. Otherwise a new element replaces the old one: a preallocated map
    /// takes it from the free list, or for an existing key the CPU's extra element
    /// (`alloc_htab_elem` with `l_old`; so a full map still updates), copies the value
    /// only (a reused element keeps whatever its special fields hold), and frees the old
    /// element's special fields before it becomes the extra one; a map that is not
    /// preallocated allocates (-E2BIG only for a new key of a full map) and frees the
    /// old element (`free_htab_elem`).
    fn htab_map_update_elem(
        &self,
        rt: &BpfRuntime,
        key: &[u8],
        value: &[u8],
        flags: u64,
    ) -> KResult<()> {
        let Storage::Htab(h) = &self.storage else {
            return Err(Errno::EINVAL);
        };
        if flags & !BPF_F_LOCK > BPF_EXIST {
            return Err(Errno::EINVAL);
        }
        let rec = self.record();
        if flags & BPF_F_LOCK != 0 {
            let r = rec.filter(|r| r.spin_lock_off >= 0).ok_or(Errno::EINVAL)?;
            let old = h.lock().table.get(key).cloned();
            check_flags(old.is_some(), flags)?;
            if let Some(old) = old {
                for w in &old.values {
                    copy_map_value_locked(r, w, value);
                }
                return Ok(());
            }
        }
        let prealloc = prealloc(&self.map);
        let replaced = {
            let mut g = h.lock();
            let exists = g.table.contains_key(key);
            check_flags(exists, flags)?;
            if flags & BPF_F_LOCK != 0
                && let Some(r) = rec
                && let Some(old) = g.table.get(key)
            {
                // Found only by the second lookup, under the bucket lock: in place
                // all the same.
                for w in &old.values {
                    copy_map_value_locked(r, w, value);
                }
                return Ok(());
            }
            let new = if prealloc {
                if exists {
                    // this_cpu_ptr(htab->extra_elems): swapped with l_old below.
                    g.extra.get(THIS_CPU).cloned().ok_or(Errno::E2BIG)?
                } else {
                    g.freelist.pop().ok_or(Errno::E2BIG)?
                }
            } else {
                if !exists && g.table.len() >= self.map.max_entries as usize {
                    return Err(Errno::E2BIG);
                }
                // bpf_mem_cache_alloc(&htab->ma): a freed element's memory first
                // (its special fields as a program left them), else zeroed memory.
                g.retired.pop().unwrap_or_else(|| {
                    let w = WordsBuf::new(self.map.value_size);
                    check_and_init_map_value(rec, &w);
                    Arc::new(HtabElem {
                        values: alloc::vec![w],
                        idx: usize::MAX,
                    })
                })
            };
            for w in &new.values {
                copy_map_value(rec, w, value);
            }
            let old = g.link(key, &new);
            if prealloc && let Some(o) = &old {
                // l_old is the CPU's extra element now; its special fields are freed
                // before it can be reused (under the bucket lock).
                if let Some(slot) = g.extra.get_mut(THIS_CPU) {
                    *slot = Arc::clone(o);
                }
                drop(g);
                self.check_and_free_fields(rt, o);
                return Ok(());
            }
            old
        };
        if let Some(old) = replaced {
            self.free_htab_elem(rt, old);
        }
        Ok(())
    }

    /// `htab_lru_map_update_elem` (kernel/bpf/hashtab.c): a free element is popped
    /// first (`prealloc_lru_pop`, which evicts when the map is full, whether or not
    /// `key` exists), the value copied into it (special fields skipped, so a reused
    /// element keeps its own), then linked; the old element, or on a flags error the
    /// new one, goes back through `htab_lru_push_free`.
    fn htab_lru_map_update_elem(
        &self,
        rt: &BpfRuntime,
        key: &[u8],
        value: &[u8],
        flags: u64,
    ) -> KResult<()> {
        let Storage::Htab(h) = &self.storage else {
            return Err(Errno::EINVAL);
        };
        if flags > BPF_EXIST {
            return Err(Errno::EINVAL);
        }
        let mut evicted = Vec::new();
        let popped = h.lock().prealloc_lru_pop(&mut evicted);
        self.free_evicted(rt, evicted);
        let new = popped.ok_or(Errno::ENOMEM)?;
        for w in &new.values {
            copy_map_value(self.record(), w, value);
        }
        let (res, back) = {
            let mut g = h.lock();
            let exists = g.table.contains_key(key);
            match check_flags(exists, flags) {
                Err(e) => (Err(e), new),
                Ok(()) => {
                    if exists && let Some(lru) = g.lru.as_mut() {
                        lru.bpf_lru_node_set_ref(new.idx);
                    }
                    match g.link(key, &new) {
                        Some(old) => (Ok(()), old),
                        None => return Ok(()),
                    }
                }
            }
        };
        self.htab_lru_push_free(rt, back);
        res
    }

    /// `__htab_percpu_map_update_elem` (kernel/bpf/hashtab.c): an existing key is
    /// updated in place (`pcpu_copy_value`); a new one takes a free element
    /// (`alloc_htab_elem`, no extra elements for per-CPU maps) whose values are copied
    /// with `pcpu_init_value`.
    fn __htab_percpu_map_update_elem(
        &self,
        rt: &BpfRuntime,
        key: &[u8],
        value: &[u8],
        flags: u64,
    ) -> KResult<()> {
        let Storage::Htab(h) = &self.storage else {
            return Err(Errno::EINVAL);
        };
        if flags > BPF_EXIST {
            return Err(Errno::EINVAL);
        }
        let mut g = h.lock();
        let old = g.table.get(key).cloned();
        check_flags(old.is_some(), flags)?;
        let e = match old {
            Some(old) => old,
            None if prealloc(&self.map) => g.freelist.pop().ok_or(Errno::E2BIG)?,
            None => {
                if g.table.len() >= self.map.max_entries as usize {
                    return Err(Errno::E2BIG);
                }
                // bpf_mem_cache_alloc(&htab->ma) and (&htab->pcpu_ma): a freed
                // element's memory first, else zero-filled per-CPU values.
                g.retired.pop().unwrap_or_else(|| {
                    let vals = (0..NR_CPUS)
                        .map(|_| {
                            let w = WordsBuf::new(self.map.value_size);
                            check_and_init_map_value(self.record(), &w);
                            w
                        })
                        .collect();
                    Arc::new(HtabElem {
                        values: vals,
                        idx: usize::MAX,
                    })
                })
            }
        };
        // Under the bucket lock, as the kernel copies.
        self.pcpu_copy_value(rt, &e, value);
        g.link(key, &e);
        Ok(())
    }

    /// `__htab_lru_percpu_map_update_elem` (kernel/bpf/hashtab.c): unless the flags are
    /// [`BPF_EXIST`] a free element is popped first (which may evict); an existing key is
    /// updated in place (`pcpu_copy_value`, its reference bit set) and the popped
    /// element goes back to the LRU without its fields being freed; a new key takes the
    /// popped element (`pcpu_init_value`).
    fn __htab_lru_percpu_map_update_elem(
        &self,
        rt: &BpfRuntime,
        key: &[u8],
        value: &[u8],
        flags: u64,
    ) -> KResult<()> {
        let Storage::Htab(h) = &self.storage else {
            return Err(Errno::EINVAL);
        };
        if flags > BPF_EXIST {
            return Err(Errno::EINVAL);
        }
        let mut new = None;
        if flags != BPF_EXIST {
            let mut evicted = Vec::new();
            let popped = h.lock().prealloc_lru_pop(&mut evicted);
            self.free_evicted(rt, evicted);
            new = Some(popped.ok_or(Errno::ENOMEM)?);
        }
        let res = {
            let mut g = h.lock();
            let old = g.table.get(key).cloned();
            match (check_flags(old.is_some(), flags), old) {
                (Err(e), _) => Err(e),
                (Ok(()), Some(old)) => {
                    if let Some(lru) = g.lru.as_mut() {
                        lru.bpf_lru_node_set_ref(old.idx);
                    }
                    self.pcpu_copy_value(rt, &old, value);
                    Ok(())
                }
                (Ok(()), None) => match new.take() {
                    Some(e) => {
                        self.pcpu_copy_value(rt, &e, value);
                        g.link(key, &e);
                        Ok(())
                    }
                    None => Err(Errno::ENOENT),
                },
            }
        };
        if let Some(e) = new
            && let Storage::Htab(h) = &self.storage
            && let Some(lru) = h.lock().lru.as_mut()
        {
            lru.bpf_lru_push_free(e.idx);
        }
        res
    }

    /// The special fields of elements an LRU evicted (`htab_lru_map_delete_node`).
    fn free_evicted(&self, rt: &BpfRuntime, evicted: Vec<Arc<HtabElem>>) {
        for e in evicted {
            emit(Event::Map {
                what: "LRU eviction",
            });
            self.check_and_free_fields(rt, &e);
        }
    }

    /// `htab_lru_push_free`: the element's special fields, then back to the LRU.
    fn htab_lru_push_free(&self, rt: &BpfRuntime, e: Arc<HtabElem>) {
        self.check_and_free_fields(rt, &e);
        if let Storage::Htab(h) = &self.storage
            && let Some(lru) = h.lock().lru.as_mut()
        {
            lru.bpf_lru_push_free(e.idx);
        }
    }

    /// `map_delete_elem` from user space (kernel/bpf/syscall.c): -EBADF with no user
    /// reference left, then the map's delete ([`htab_map_delete_elem`](Self::htab_map_delete_elem))
    /// inside `bpf_disable_instrumentation`. Arrays cannot delete (-EINVAL); a local
    /// storage map's key is an owner's fd ([`delete_owner`](Self::delete_owner)): -EBADF
    /// here; an array of maps' slot is emptied by
    /// [`fd_array_map_delete_elem`](Self::fd_array_map_delete_elem) (-EINVAL here).
    pub fn delete(&self, rt: &BpfRuntime, key: &[u8]) -> KResult<()> {
        if self.usercnt.load(Ordering::Acquire) == 0 {
            return Err(Errno::EBADF);
        }
        if matches!(self.storage, Storage::Local(_)) {
            return Err(Errno::EBADF);
        }
        rt.migrate_disable_at("bpf_disable_instrumentation");
        let r = self.htab_map_delete_elem(rt, key);
        rt.migrate_enable_at("bpf_disable_instrumentation");
        r
    }

    /// `htab_map_delete_elem` / `htab_lru_map_delete_elem` (kernel/bpf/hashtab.c), from
    /// a program or from [`delete`](Self::delete): a hash element is unlinked and freed
    /// (`free_htab_elem`: its special fields at once, the element recycled
    /// (preallocated) or returned to the allocator after a grace period); an LRU element
    /// goes back through `htab_lru_push_free`. -ENOENT without the key; -EINVAL for a map
    /// that cannot delete (arrays: `array_map_delete_elem`). Profile flags: those of
    /// `free_htab_elem`.
    pub fn htab_map_delete_elem(&self, rt: &BpfRuntime, key: &[u8]) -> KResult<()> {
        let Storage::Htab(h) = &self.storage else {
            return Err(Errno::EINVAL);
        };
        let old = h.lock().unlink(key);
        match old {
            None => Err(Errno::ENOENT),
            Some(old) if self.is_lru() => {
                self.htab_lru_push_free(rt, old);
                Ok(())
            }
            Some(old) => {
                self.free_htab_elem(rt, old);
                Ok(())
            }
        }
    }

    /// `free_htab_elem`: a preallocated element's special fields are freed and it goes
    /// back on the free list; another is freed by `htab_elem_free` (its fields, then the
    /// memory to the allocator, which reuses it after a grace period). Profile flag
    /// `map_free_migrate_disable`: up to v6.12 `htab_elem_free` disables migration
    /// around the allocator's free itself.
    fn free_htab_elem(&self, rt: &BpfRuntime, e: Arc<HtabElem>) {
        self.check_and_free_fields(rt, &e);
        let Storage::Htab(h) = &self.storage else {
            return;
        };
        if prealloc(&self.map) {
            h.lock().freelist.push(e);
            return;
        }
        let own = !rt.sem.map_free_migrate_disable;
        if own {
            rt.migrate_disable_at("htab_elem_free");
        }
        // bpf_mem_cache_free: onto the allocator's free list, reused by the next
        // element allocation at once; a program still holding the element may write
        // into it meanwhile.
        h.lock().retired.push(e);
        if own {
            rt.migrate_enable_at("htab_elem_free");
        }
    }

    /// `map_free`'s walk over the values: every value's special fields
    /// (`array_map_free`; `htab_free_prealloced_fields`, every element, free and extra
    /// ones too; `delete_all_elements`, which up to v6.12 disables migration itself:
    /// profile flag `map_free_migrate_disable`).
    fn free_values(&self, rt: &BpfRuntime) {
        match &self.storage {
            Storage::Local(m) => return bpf_local_storage_map_free(rt, m),
            // array_of_map_free: bpf_fd_array_map_clear(map, false).
            Storage::FdArray(slots) => return Self::bpf_fd_array_map_clear(rt, slots),
            _ => {}
        }
        let Some(r) = self.map.record.as_ref() else {
            return;
        };
        match &self.storage {
            Storage::Array { elem, vals, .. } => {
                for w in vals.chunks_exact(*elem) {
                    bpf_obj_free_fields(rt, r, Words::of(w));
                }
            }
            Storage::Htab(h) => {
                let g = h.lock();
                if prealloc(&self.map) {
                    // htab_free_prealloced_fields: every element, free ones too.
                    for e in &g.all {
                        for w in &e.values {
                            bpf_obj_free_fields(rt, r, w);
                        }
                    }
                } else {
                    // delete_all_elements: every linked element unlinked and freed
                    // (htab_elem_free: its fields, then to the allocator).
                    let linked: Vec<Arc<HtabElem>> = {
                        let mut g = g;
                        g.table.drain().map(|(_, e)| e).collect()
                    };
                    let own = !rt.sem.map_free_migrate_disable;
                    if own {
                        rt.migrate_disable_at("delete_all_elements");
                    }
                    for e in linked {
                        self.free_htab_elem(rt, e);
                    }
                    if own {
                        rt.migrate_enable_at("delete_all_elements");
                    }
                }
            }
            Storage::Local(_) | Storage::FdArray(_) => {}
        }
    }

    /// `bpf_mem_alloc_destroy` of a non-preallocated hash map's element allocator, at
    /// map free: the elements still on its free list go back to the slab. With an
    /// element destructor (flag `htab_elem_dtor`, `htab_mem_dtor`) their special fields
    /// are freed first; without one whatever a program stashed into a deleted element
    /// that no insert reused leaks.
    fn htab_mem_destroy(&self, rt: &BpfRuntime) {
        let Storage::Htab(h) = &self.storage else {
            return;
        };
        let retired = core::mem::take(&mut h.lock().retired);
        if retired.is_empty() || !rt.sem.htab_elem_dtor {
            return;
        }
        let Some(r) = self.record() else {
            return;
        };
        // The allocator's RCU callbacks run in softirq context: not migratable.
        rt.migrate_disable_at("rcu callback");
        for e in retired {
            for w in &e.values {
                bpf_obj_free_fields(rt, r, w);
            }
        }
        rt.migrate_enable_at("rcu callback");
    }

    /// Takes a reference (`bpf_map_inc`).
    pub fn bpf_map_inc(&self) {
        self.refcnt.fetch_add(1, Ordering::AcqRel);
    }

    /// Another user reference (`bpf_map_inc_with_uref`, kernel/bpf/syscall.c: an fd
    /// from `BPF_MAP_GET_FD_BY_ID`, a pin): `refcnt` and `usercnt`. No profile flag.
    pub fn bpf_map_inc_with_uref(&self) {
        self.refcnt.fetch_add(1, Ordering::AcqRel);
        self.usercnt.fetch_add(1, Ordering::AcqRel);
    }

    /// User references left (`map->usercnt`).
    pub fn usercnt(&self) -> u64 {
        self.usercnt.load(Ordering::Acquire)
    }

    /// A program using the map (`__add_used_map`, kernel/bpf/verifier.c): a reference
    /// (`bpf_map_inc`), and for a sleepable program `sleepable_refcnt`, which makes an
    /// inner map removed from this map wait for an RCU tasks trace grace period too
    /// ([`bpf_map_fd_put_ptr`](Self::bpf_map_fd_put_ptr)). No profile flag.
    pub fn __add_used_map(&self, sleepable: bool) {
        self.bpf_map_inc();
        if sleepable {
            self.sleepable_refcnt.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// The program's end (`__bpf_free_used_maps`, kernel/bpf/core.c): the reference of
    /// [`__add_used_map`](Self::__add_used_map) put ([`bpf_map_put`](Self::bpf_map_put)).
    pub fn bpf_free_used_map(this: Arc<Self>, sleepable: bool) -> Option<MapFree> {
        if sleepable {
            this.sleepable_refcnt.fetch_sub(1, Ordering::AcqRel);
        }
        Self::bpf_map_put(this)
    }

    /// `bpf_map_put_uref` (kernel/bpf/syscall.c): drops a user reference; the last one
    /// runs the map type's `map_release_uref` ([`map_release_uref`](Self::map_release_uref)),
    /// while programs may still hold the map. No profile flag of its own.
    pub fn bpf_map_put_uref(&self, rt: &BpfRuntime) {
        if self.usercnt.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.map_release_uref(rt);
        }
    }

    /// `bpf_map_put_with_uref` (kernel/bpf/syscall.c; `bpf_map_release`, the close of
    /// the last fd on the map's file): [`bpf_map_put_uref`](Self::bpf_map_put_uref), then
    /// [`bpf_map_put`](Self::bpf_map_put).
    pub fn bpf_map_put_with_uref(this: Arc<Self>, rt: &BpfRuntime) -> Option<MapFree> {
        this.bpf_map_put_uref(rt);
        Self::bpf_map_put(this)
    }

    /// `ops->map_release_uref` when the last user reference goes: for an ARRAY
    /// `array_map_free_timers_wq` (kernel/bpf/arraymap.c), for a HASH or LRU_HASH
    /// `htab_map_free_timers_and_wq` (kernel/bpf/hashtab.c; v6.18 names them
    /// `*_free_internal_structs`): every value's `bpf_timer` and `bpf_wq` (and, with
    /// profile flag `task_work`, `bpf_task_work`) cancelled and freed. Kptrs, graph
    /// roots and the rest stay until the map's free. A preallocated hash map's elements
    /// are all visited, free and extra ones too (`htab_free_prealloced_timers_and_wq`);
    /// another's linked elements only (`htab_free_malloced_timers_and_wq`). The per-CPU
    /// maps, local storage and arrays of maps have no `map_release_uref` here.
    pub fn map_release_uref(&self, rt: &BpfRuntime) {
        emit(Event::Map {
            what: "map_release_uref",
        });
        let Some(rec) = self.record() else {
            return;
        };
        if !rec.has_field(F::TIMER.or(F::WORKQUEUE).or(F::TASK_WORK)) {
            return;
        }
        match &self.storage {
            Storage::Array {
                ncpu: 1,
                elem,
                vals,
            } => {
                for w in vals.chunks_exact(*elem) {
                    free_internal_structs(rt, rec, Words::of(w));
                }
            }
            Storage::Htab(h)
                if matches!(self.map.map_type, BPF_MAP_TYPE_HASH | BPF_MAP_TYPE_LRU_HASH) =>
            {
                let g = h.lock();
                let elems: Vec<&Arc<HtabElem>> = if prealloc(&self.map) {
                    g.all.iter().collect()
                } else {
                    g.table.values().collect()
                };
                for e in elems {
                    for w in &e.values {
                        free_internal_structs(rt, rec, w);
                    }
                }
            }
            _ => {}
        }
    }

    /// `bpf_timer_init` (kernel/bpf/helpers.c, `__bpf_async_init`) on the `bpf_timer`
    /// at `off` of `value`, a value of this map: -EBUSY when the timer already has its
    /// callback object; else one is allocated and published, and when no user
    /// reference is left (`usercnt` 0: `map_release_uref` has run, or will never run
    /// again to free it) it is taken back and freed: -EPERM ("maps with timers must be
    /// either held by user space or pinned in bpffs"). No profile flag changes it.
    pub fn bpf_timer_init(&self, rt: &BpfRuntime, value: &Words, off: u32) -> KResult<()> {
        crate::obj::bpf_timer_init(rt, value, off, "bpf_hrtimer")?;
        if self.usercnt.load(Ordering::Acquire) == 0 {
            if let Some(slot) = value.slot(off) {
                let cb = slot.swap(0, Ordering::AcqRel);
                if cb != 0 {
                    // kfree(cb).
                    rt.mem.free(cb);
                }
            }
            return Err(Errno::EPERM);
        }
        Ok(())
    }

    /// `map_lookup_elem` from user space (kernel/bpf/syscall.c, `bpf_map_copy_value`):
    /// flags other than [`BPF_F_LOCK`] (-EINVAL), then the checks of
    /// [`update`](Self::update) (-EBADF, -EINVAL for [`BPF_F_LOCK`] without a lock);
    /// the value as user space receives it, [`bpf_map_value_size`](Self::bpf_map_value_size)
    /// bytes: the map's `map_lookup_elem` (`array_map_lookup_elem`, an LRU's
    /// `htab_lru_map_lookup_elem_sys`, which leaves the reference bit alone) copied with
    /// `copy_map_value` (under the value's lock with [`BPF_F_LOCK`],
    /// `copy_map_value_locked` with `lock_src`), or for a per-CPU map every CPU's value
    /// into its slice (`bpf_percpu_array_copy`, `bpf_percpu_hash_copy`:
    /// `copy_map_value_long`); then `check_and_init_map_value`, so a special field reads
    /// as zero (a `bpf_refcount` as 1). -ENOENT for no value (an index out of range of
    /// an array). A local storage map's key is an owner's fd
    /// ([`lookup_owner`](Self::lookup_owner)): -EBADF; an array of maps (inner map ids)
    /// is not modelled: -ENOTSUPP. No profile flag changes it.
    pub fn bpf_map_copy_value(&self, key: &[u8], flags: u64) -> KResult<Vec<u8>> {
        if flags & !BPF_F_LOCK != 0 {
            return Err(Errno::EINVAL);
        }
        self.syscall_checks(usize::MAX, flags)?;
        let locked = flags & BPF_F_LOCK != 0;
        let rec = self.record();
        let out = match &self.storage {
            Storage::Array { ncpu, elem, .. } => {
                let idx = u32::from_ne_bytes(
                    key.get(..4)
                        .ok_or(Errno::EINVAL)?
                        .try_into()
                        .map_err(|_| Errno::EINVAL)?,
                );
                let vals = self.array_elem(idx).ok_or(Errno::ENOENT)?;
                let vs: Vec<&Words> = vals.chunks_exact(*elem).map(Words::of).collect();
                self.copy_out(rec, &vs, *ncpu > 1, locked)
            }
            Storage::Htab(_) => {
                let e = self.htab_lookup_sys(key).ok_or(Errno::ENOENT)?;
                let vs: Vec<&Words> = e.values.iter().map(|w| &**w).collect();
                self.copy_out(rec, &vs, percpu(self.map.map_type), locked)
            }
            Storage::Local(_) => return Err(Errno::EBADF),
            Storage::FdArray(_) => return Err(Errno::ENOTSUPP),
        };
        Ok(out)
    }

    /// The bytes user space receives for `vals` (one value, or one per CPU).
    fn copy_out(
        &self,
        rec: Option<&BtfRecord>,
        vals: &[&Words],
        per_cpu: bool,
        locked: bool,
    ) -> Vec<u8> {
        let size = if per_cpu {
            self.elem_size()
        } else {
            self.map.value_size as usize
        };
        let mut out = Vec::with_capacity(size * vals.len());
        for v in vals {
            let lock = rec
                .filter(|r| locked && r.spin_lock_off >= 0)
                .map(|r| r.spin_lock_off as u32);
            if let Some(l) = lock {
                crate::obj::bpf_spin_lock(v, l);
            }
            let bytes: Vec<u8> = (0..size as u32).map(|i| v.byte(i)).collect();
            if let Some(l) = lock {
                crate::obj::bpf_spin_unlock(v, l);
            }
            let tmp = WordsBuf::new(size as u32);
            copy_map_value(rec, &tmp, &bytes);
            check_and_init_map_value(rec, &tmp);
            out.extend((0..size as u32).map(|i| tmp.byte(i)));
        }
        out
    }

    /// `map_update_elem` (kernel/bpf/syscall.c) on a local storage map, its key's fd
    /// resolved to `owner` (`pidfd_get_pid`, `cgroup_v1v2_get_from_fd`, `sockfd_lookup`):
    /// the syscall's own checks as [`update`](Self::update), then
    /// [`super::local_storage::bpf_local_storage_update_elem`] inside
    /// `bpf_disable_instrumentation`. -EINVAL for a map of another type. Profile flags:
    /// those of [`super::local_storage::bpf_selem_free`], and `uptr` (v6.13+): a value
    /// whose record has a uptr is copied into the kernel (`kvmemdup_bpfptr`) and
    /// `bpf_map_update_value` pins its uptrs first
    /// ([`crate::obj::uptr::bpf_obj_pin_uptrs`]: -EOPNOTSUPP for a pointee crossing a
    /// page, -EFAULT for an unmapped one), the new element takes them (task storage's
    /// `swap_uptrs`), and on an error what is left in the copy is unpinned
    /// ([`crate::obj::uptr::bpf_obj_unpin_uptrs`]). From the upstream uptr series, not
    /// a local tree.
    pub fn update_owner(
        &self,
        rt: &Arc<BpfRuntime>,
        owner: &Arc<StorageOwner>,
        value: &[u8],
        flags: u64,
    ) -> KResult<()> {
        self.syscall_checks(value.len(), flags)?;
        let Storage::Local(m) = &self.storage else {
            return Err(Errno::EINVAL);
        };
        let rec = self.record().filter(|r| r.has_field(F::UPTR));
        let kvalue = rec.map(|_| {
            let size = self.map.value_size;
            let k = WordsBuf::new(size);
            for (i, b) in value.iter().take(size as usize).enumerate() {
                k.set_byte(i as u32, *b);
            }
            k
        });
        if let Some(k) = &kvalue {
            bpf_obj_pin_uptrs(rt, rec, k)?;
        }
        rt.migrate_disable_at("bpf_disable_instrumentation");
        let r = local_storage_update_elem(rt, m, owner, value, kvalue.as_deref(), flags);
        rt.migrate_enable_at("bpf_disable_instrumentation");
        if let (Err(_), Some(k)) = (&r, &kvalue) {
            bpf_obj_unpin_uptrs(rt, rec, k);
        }
        r
    }

    /// `map_delete_elem` (kernel/bpf/syscall.c) on a local storage map, its key's fd
    /// resolved to `owner`: [`super::local_storage::bpf_local_storage_delete_elem`]
    /// inside `bpf_disable_instrumentation` (-EBADF with no user reference left, -EINVAL
    /// for a map of another type). Profile flags: those of
    /// [`super::local_storage::bpf_selem_free`].
    pub fn delete_owner(&self, rt: &Arc<BpfRuntime>, owner: &Arc<StorageOwner>) -> KResult<()> {
        if self.usercnt.load(Ordering::Acquire) == 0 {
            return Err(Errno::EBADF);
        }
        let Storage::Local(m) = &self.storage else {
            return Err(Errno::EINVAL);
        };
        rt.migrate_disable_at("bpf_disable_instrumentation");
        let r = bpf_local_storage_delete_elem(rt, m, owner);
        rt.migrate_enable_at("bpf_disable_instrumentation");
        r
    }

    /// `map_lookup_elem` (kernel/bpf/syscall.c, `bpf_map_copy_value`) on a local storage
    /// map, its key's fd resolved to `owner`: the checks of
    /// [`bpf_map_copy_value`](Self::bpf_map_copy_value), then the owner's element
    /// ([`super::local_storage::bpf_local_storage_lookup_elem`]) copied out as there.
    /// No profile flag changes it.
    pub fn lookup_owner(
        &self,
        rt: &BpfRuntime,
        owner: &StorageOwner,
        flags: u64,
    ) -> KResult<Vec<u8>> {
        if flags & !BPF_F_LOCK != 0 {
            return Err(Errno::EINVAL);
        }
        self.syscall_checks(usize::MAX, flags)?;
        let Storage::Local(m) = &self.storage else {
            return Err(Errno::EINVAL);
        };
        let selem: Arc<BpfLocalStorageElem> = bpf_local_storage_lookup_elem(rt, m, owner)?;
        Ok(self.copy_out(
            self.record(),
            &[selem.data()],
            false,
            flags & BPF_F_LOCK != 0,
        ))
    }

    /// `bpf_fd_array_map_update_elem` (kernel/bpf/arraymap.c) of an ARRAY_OF_MAPS from
    /// user space, the value's fd resolved to `inner`: flags other than `BPF_ANY`
    /// (-EINVAL), an index out of range (-E2BIG), then `bpf_map_fd_get_ptr`
    /// (kernel/bpf/map_in_map.c: the inner map must match the template, -EINVAL; it
    /// takes a reference, `bpf_map_inc`); the slot is exchanged and the inner map it
    /// held put with `need_defer` ([`bpf_map_fd_put_ptr`](Self::bpf_map_fd_put_ptr)).
    /// -EINVAL for a map of another type. Profile flags: those of
    /// `bpf_map_fd_get_ptr` and [`bpf_map_fd_put_ptr`](Self::bpf_map_fd_put_ptr).
    pub fn bpf_fd_array_map_update_elem(
        &self,
        rt: &Arc<BpfRuntime>,
        key: u32,
        inner: &Arc<MapRt>,
        flags: u64,
    ) -> KResult<()> {
        if self.usercnt.load(Ordering::Acquire) == 0 {
            return Err(Errno::EBADF);
        }
        let Storage::FdArray(slots) = &self.storage else {
            return Err(Errno::EINVAL);
        };
        if flags != 0 {
            return Err(Errno::EINVAL);
        }
        if key >= self.map.max_entries {
            return Err(Errno::E2BIG);
        }
        if inner.usercnt.load(Ordering::Acquire) == 0 {
            // No fd for it: __bpf_map_get.
            return Err(Errno::EBADF);
        }
        super::map_in_map::bpf_map_fd_get_ptr(&self.map, Some(&inner.map), &rt.sem)?;
        inner.bpf_map_inc();
        let old = slots
            .lock()
            .get_mut(key as usize)
            .and_then(|s| s.replace(Arc::clone(inner)));
        if let Some(old) = old {
            self.bpf_map_fd_put_ptr(rt, old, true);
        }
        Ok(())
    }

    /// `fd_array_map_delete_elem` (kernel/bpf/arraymap.c, `__fd_array_map_delete_elem`
    /// with `need_defer`): an index out of range (-E2BIG), an empty slot (-ENOENT);
    /// else the slot emptied and its inner map put
    /// ([`bpf_map_fd_put_ptr`](Self::bpf_map_fd_put_ptr)). -EINVAL for a map of another
    /// type. Profile flags: those of [`bpf_map_fd_put_ptr`](Self::bpf_map_fd_put_ptr).
    pub fn fd_array_map_delete_elem(&self, rt: &Arc<BpfRuntime>, key: u32) -> KResult<()> {
        if self.usercnt.load(Ordering::Acquire) == 0 {
            return Err(Errno::EBADF);
        }
        let Storage::FdArray(slots) = &self.storage else {
            return Err(Errno::EINVAL);
        };
        if key >= self.map.max_entries {
            return Err(Errno::E2BIG);
        }
        let old = slots.lock().get_mut(key as usize).and_then(Option::take);
        let old = old.ok_or(Errno::ENOENT)?;
        self.bpf_map_fd_put_ptr(rt, old, true);
        Ok(())
    }

    /// `array_of_map_lookup_elem` (kernel/bpf/arraymap.c): a program's lookup, the
    /// inner map in slot `key`.
    pub fn array_of_map_lookup_elem(&self, key: u32) -> Option<Arc<MapRt>> {
        let Storage::FdArray(slots) = &self.storage else {
            return None;
        };
        slots.lock().get(key as usize).cloned().flatten()
    }

    /// `bpf_map_fd_put_ptr` (kernel/bpf/map_in_map.c): an inner map leaves this map of
    /// maps. With `need_defer` (a delete or a replacement from user space, not the
    /// outer map's free) and profile flag `inner_map_free_after_gp` (v6.8+) it is
    /// marked to be freed after the grace periods of the programs that may still use
    /// it: `free_after_mult_rcu_gp` (an RCU tasks trace grace period and an RCU one)
    /// when a sleepable program uses this map (`sleepable_refcnt`), else
    /// `free_after_rcu_gp`; then `bpf_map_put`, whose last put waits for them
    /// ([`MapFree::schedule`]). Before v6.8 the last put frees it at once.
    pub fn bpf_map_fd_put_ptr(&self, rt: &Arc<BpfRuntime>, inner: Arc<MapRt>, need_defer: bool) {
        if need_defer && rt.sem.inner_map_free_after_gp {
            if self.sleepable_refcnt.load(Ordering::Acquire) != 0 {
                inner.free_after_mult_rcu_gp.store(true, Ordering::Release);
            } else {
                inner.free_after_rcu_gp.store(true, Ordering::Release);
            }
        }
        if let Some(free) = Self::bpf_map_put(inner) {
            free.schedule(rt);
        }
    }

    /// `bpf_fd_array_map_clear(map, false)` from `array_of_map_free`: every slot
    /// emptied and its inner map put without `need_defer`; an inner map's last put
    /// waits here for the grace periods an earlier removal asked for.
    fn bpf_fd_array_map_clear(rt: &BpfRuntime, slots: &SpinLock<Vec<Option<Arc<MapRt>>>>) {
        let inners: Vec<Arc<MapRt>> = slots.lock().iter_mut().filter_map(Option::take).collect();
        for inner in inners {
            if let Some(free) = Self::bpf_map_put(inner) {
                free.wait_and_run(rt);
            }
        }
    }

    /// `bpf_map_put`: drops a reference; the last one returns the deferred free
    /// (`bpf_map_free_deferred`), which the caller runs when the workqueue would.
    /// Profile flag `map_btf_put_after_free`: before v6.7 the map's BTF is put here,
    /// before `map_free`.
    pub fn bpf_map_put(this: Arc<Self>) -> Option<MapFree> {
        if this.refcnt.fetch_sub(1, Ordering::AcqRel) != 1 {
            return None;
        }
        let Ok(mut m) = crate::sync::arc_try_unwrap_settled(this) else {
            crate::sync::warn::warn("bpf_map_put: last reference while the map is still shared");
            return None;
        };
        let early = m.map.btf.is_some() && !m.map_btf_put_after_free;
        if early {
            emit(Event::Map {
                what: "btf_put(map->btf) in bpf_map_put, before map_free (v6.4 order)",
            });
            drop(m.map.btf.take());
        }
        let after = if m.free_after_mult_rcu_gp.load(Ordering::Acquire) {
            GracePeriods::RcuTasksTraceAndRcu
        } else if m.free_after_rcu_gp.load(Ordering::Acquire) {
            GracePeriods::Rcu
        } else {
            GracePeriods::None
        };
        Some(MapFree { map: m, after })
    }
}

/// `free_cb` for an async callback object (`bpf_timer_cancel_and_free`,
/// `bpf_wq_cancel_and_free`, `bpf_task_work_cancel_and_free`, kernel/bpf/helpers.c):
/// the field's callback object detached and freed after a grace period.
fn async_cancel_and_free(rt: &BpfRuntime, mem: &Words, off: u32) {
    let Some(slot) = mem.slot(off) else { return };
    let cb = slot.swap(0, Ordering::AcqRel);
    if cb != 0 {
        let ty = rt.mem.info(cb).map(|i| i.ty).unwrap_or_default();
        emit(Event::Free {
            addr: cb,
            ty: &ty,
            rcu: true,
        });
        crate::obj::BpfMemAlloc::free_rcu(&rt.mem, cb);
    }
}

/// `bpf_obj_free_timer`, `bpf_obj_free_workqueue` (kernel/bpf/syscall.c) and v6.18's
/// `bpf_map_free_internal_structs` (also `bpf_task_work`): the async fields of `w`.
fn free_internal_structs(rt: &BpfRuntime, rec: &BtfRecord, w: &Words) {
    for f in &rec.fields {
        match f.ty {
            // A record has a `bpf_task_work` only under profile flag `task_work`.
            F::TIMER | F::WORKQUEUE | F::TASK_WORK => async_cancel_and_free(rt, w, f.offset),
            _ => {}
        }
    }
}

/// The grace periods a map's last put waits for before its free is queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GracePeriods {
    /// None: `bpf_map_free_in_work` at once.
    None,
    /// `free_after_rcu_gp`: `call_rcu(bpf_map_free_rcu_gp)`.
    Rcu,
    /// `free_after_mult_rcu_gp`: `call_rcu_tasks_trace(bpf_map_free_mult_rcu_gp)`, then
    /// (the model's domains being independent: `!rcu_trace_implies_rcu_gp()`)
    /// `call_rcu(bpf_map_free_rcu_gp)`.
    RcuTasksTraceAndRcu,
}

/// The deferred free of a map (`bpf_map_free_deferred` on the workqueue).
pub struct MapFree {
    map: MapRt,
    after: GracePeriods,
}

impl MapFree {
    /// The grace periods the free waits for (the map's `free_after_*` flags at its last
    /// put).
    pub fn grace_periods(&self) -> GracePeriods {
        self.after
    }

    /// The end of `bpf_map_put` (kernel/bpf/syscall.c): with `free_after_mult_rcu_gp`
    /// `call_rcu_tasks_trace(bpf_map_free_mult_rcu_gp)`, which goes on with
    /// `call_rcu(bpf_map_free_rcu_gp)`; with `free_after_rcu_gp`
    /// `call_rcu(bpf_map_free_rcu_gp)`; else `bpf_map_free_in_work` at once. The work,
    /// `bpf_map_free_deferred` ([`run`](Self::run)), runs when it is queued (the
    /// model's workqueue is the caller, or the callback). Profile flag
    /// `inner_map_free_after_gp` (whether the flags are ever set).
    pub fn schedule(self, rt: &Arc<BpfRuntime>) {
        match self.after {
            GracePeriods::None => {
                emit(Event::Map {
                    what: "bpf_map_free_in_work",
                });
                self.run(rt);
            }
            GracePeriods::Rcu => {
                emit(Event::Map {
                    what: "call_rcu(bpf_map_free_rcu_gp)",
                });
                let rt2 = Arc::clone(rt);
                rt.rcu.call_rcu(move || {
                    emit(Event::Map {
                        what: "bpf_map_free_rcu_gp: bpf_map_free_in_work",
                    });
                    self.run(&rt2);
                });
            }
            GracePeriods::RcuTasksTraceAndRcu => {
                emit(Event::Map {
                    what: "call_rcu_tasks_trace(bpf_map_free_mult_rcu_gp)",
                });
                let rt2 = Arc::clone(rt);
                rt.rcu_tasks_trace.call_rcu(move || {
                    emit(Event::Map {
                        what: "bpf_map_free_mult_rcu_gp: call_rcu(bpf_map_free_rcu_gp)",
                    });
                    let rt3 = Arc::clone(&rt2);
                    rt2.rcu.call_rcu(move || {
                        emit(Event::Map {
                            what: "bpf_map_free_rcu_gp: bpf_map_free_in_work",
                        });
                        self.run(&rt3);
                    });
                });
            }
        }
    }

    /// [`schedule`](Self::schedule) for a caller without the runtime's `Arc` (an outer
    /// map's free putting its inner maps): the grace periods waited for here
    /// (`synchronize_rcu_tasks_trace`, `synchronize_rcu`), then the free. Not from
    /// inside a read-side section.
    fn wait_and_run(self, rt: &BpfRuntime) {
        if self.after == GracePeriods::RcuTasksTraceAndRcu {
            rt.rcu_tasks_trace.synchronize_rcu();
        }
        if self.after != GracePeriods::None {
            rt.rcu.synchronize_rcu();
        }
        self.run(rt);
    }

    /// `bpf_map_free_deferred` and `bpf_map_free` (kernel/bpf/syscall.c): `map_free`
    /// (every value's special fields), then the record, then (v6.7+) the map's BTF;
    /// before v6.7 the BTF was already put in `bpf_map_put`. Profile flag
    /// `map_free_migrate_disable`: `bpf_map_free` runs `map_free` with migration
    /// disabled (v6.18); before, `bpf_obj_free_fields` and the drains disable it around
    /// each drop themselves.
    pub fn run(self, rt: &BpfRuntime) {
        let MapFree { mut map, .. } = self;
        let m = &mut map;
        emit(Event::Map { what: "map_free" });
        let pinned = rt.sem.map_free_migrate_disable;
        if pinned {
            rt.migrate_disable_at("bpf_map_free");
        }
        // One task runs the whole teardown: its objects gather on its own list.
        crate::obj::BpfMemAlloc::with_local_frees(&rt.mem, || m.free_values(rt));
        m.htab_mem_destroy(rt);
        if pinned {
            rt.migrate_enable_at("bpf_map_free");
        }
        if let Some(meta) = m.map.inner_map_meta.take() {
            // array_of_map_free: bpf_map_meta_free(map->inner_map_meta).
            super::map_in_map::bpf_map_meta_free(*meta);
        }
        emit(Event::Map {
            what: "btf_record_free(map->record)",
        });
        btf_record_free(m.map.record.take());
        if let Storage::Local(ls) = &mut m.storage {
            btf_record_free(ls.record_free());
        }
        if m.map.btf.is_some() {
            emit(Event::Map {
                what: "btf_put(map->btf) after map_free",
            });
        }
        drop(m.map.btf.take());
    }
}
