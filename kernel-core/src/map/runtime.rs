//! Maps at run time: array and per-CPU array (kernel/bpf/arraymap.c), hash maps
//! preallocated or not, per-CPU and LRU (kernel/bpf/hashtab.c), with the value
//! operations that touch special fields, and the map's end: `bpf_map_put` and the
//! deferred free in the profile's order (kernel/bpf/syscall.c).

use alloc::vec::Vec;

use hashbrown::HashMap;

use super::create::BpfMap;
use super::types::*;
use crate::errno::{Errno, KResult};
use crate::obj::{BpfRuntime, Words, WordsBuf, bpf_obj_free_fields, bpf_obj_init};
use crate::record::BtfRecord;
use crate::sync::AtomicU64;
use crate::sync::{Arc, Ordering, SpinLock};
use crate::trace::{Event, emit};

/// The largest map (values times CPUs, in bytes) the run-time model allocates.
pub const MAP_MODEL_LIMIT: u64 = 1 << 30;

/// Number of CPUs the per-CPU maps model.
pub const NR_CPUS: usize = 2;

/// `BPF_ANY`, `BPF_NOEXIST`, `BPF_EXIST`.
pub const BPF_NOEXIST: u64 = 1;
/// `BPF_EXIST`.
pub const BPF_EXIST: u64 = 2;

/// `copy_map_value`: copies `src` into `dst`, skipping the special fields.
pub fn copy_map_value(rec: Option<&BtfRecord>, dst: &Words, src: &[u8]) {
    let mut skip: Vec<(u32, u32)> = rec
        .map(|r| {
            r.fields
                .iter()
                .map(|f| (f.offset, f.offset + f.size))
                .collect()
        })
        .unwrap_or_default();
    skip.sort_unstable();
    let mut k = 0;
    for i in 0..(dst.size().min(src.len() as u32)) {
        while k < skip.len() && skip[k].1 <= i {
            k += 1;
        }
        if k < skip.len() && skip[k].0 <= i && i < skip[k].1 {
            continue;
        }
        dst.set_byte(i, src[i as usize]);
    }
}

/// `check_and_init_map_value`.
pub fn check_and_init_map_value(rec: Option<&BtfRecord>, v: &Words) {
    bpf_obj_init(rec, v);
}

/// Moves `key` to the most recently used end.
fn touch(lru: &mut Vec<Vec<u8>>, key: &[u8]) {
    lru.retain(|k| k.as_slice() != key);
    lru.push(key.to_vec());
}

/// One hash element's value (one per CPU for per-CPU hashes).
pub struct HtabElem {
    /// The value (one per CPU for per-CPU maps).
    pub values: Vec<WordsBuf>,
}

struct Htab {
    table: HashMap<Vec<u8>, Arc<HtabElem>>,
    freelist: Vec<Arc<HtabElem>>,
    all: Vec<Arc<HtabElem>>,
    /// Deleted elements of a non-preallocated map, waiting for their grace period.
    retired: Vec<Arc<HtabElem>>,
    /// LRU maps: keys from least to most recently used.
    lru: Vec<Vec<u8>>,
}

enum Storage {
    /// Every element's values in one allocation, as the kernel's array map keeps them
    /// (`array->value`, `elem_size` = the value size rounded up to 8); `ncpu`
    /// consecutive values per element for a per-CPU array.
    Array {
        ncpu: usize,
        /// Words per value.
        elem: usize,
        vals: alloc::boxed::Box<[AtomicU64]>,
    },
    Htab(SpinLock<Htab>),
}

/// A map with values.
pub struct MapRt {
    /// The created map (attributes, BTF, record).
    pub map: BpfMap,
    storage: Storage,
    refcnt: crate::sync::AtomicU64,
    map_btf_put_after_free: bool,
}

fn percpu(t: u32) -> bool {
    matches!(
        t,
        BPF_MAP_TYPE_PERCPU_ARRAY | BPF_MAP_TYPE_PERCPU_HASH | BPF_MAP_TYPE_LRU_PERCPU_HASH
    )
}

fn prealloc(m: &BpfMap) -> bool {
    m.map_flags & BPF_F_NO_PREALLOC == 0
}

impl MapRt {
    /// `map_alloc` of an array, per-CPU array or hash map. Profile flag
    /// `map_btf_put_after_free` decides when its BTF is put at the end.
    pub fn new(map: BpfMap, sem: &crate::profile::Semantics) -> KResult<Arc<MapRt>> {
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
                let vals: alloc::boxed::Box<[AtomicU64]> =
                    (0..n).map(|_| AtomicU64::new(0)).collect();
                for v in vals.chunks_exact(elem) {
                    check_and_init_map_value(rec, Words::of(v));
                }
                Storage::Array { ncpu, elem, vals }
            }
            BPF_MAP_TYPE_HASH
            | BPF_MAP_TYPE_PERCPU_HASH
            | BPF_MAP_TYPE_LRU_HASH
            | BPF_MAP_TYPE_LRU_PERCPU_HASH => {
                let mut h = Htab {
                    table: HashMap::new(),
                    freelist: Vec::new(),
                    all: Vec::new(),
                    retired: Vec::new(),
                    lru: Vec::new(),
                };
                if prealloc(&map) {
                    for _ in 0..map.max_entries {
                        let e = Arc::new(HtabElem {
                            values: mk(map.value_size),
                        });
                        h.all.push(Arc::clone(&e));
                        h.freelist.push(e);
                    }
                }
                Storage::Htab(SpinLock::new(h))
            }
            _ => return Err(Errno::EOPNOTSUPP),
        };
        Ok(Arc::new(MapRt {
            map,
            storage,
            refcnt: crate::sync::AtomicU64::new(1),
            map_btf_put_after_free: sem.map_btf_put_after_free,
        }))
    }

    /// The record.
    pub fn record(&self) -> Option<&BtfRecord> {
        self.map.record.as_ref()
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
    fn array_elem(&self, key: u32) -> Option<&[AtomicU64]> {
        let Storage::Array { ncpu, elem, vals } = &self.storage else {
            return None;
        };
        let len = ncpu.checked_mul(*elem)?;
        let at = (key as usize).checked_mul(len)?;
        vals.get(at..at.checked_add(len)?)
    }

    /// Hash lookup: the element (held as an RCU reader would hold it).
    pub fn htab_lookup(&self, key: &[u8]) -> Option<Arc<HtabElem>> {
        match &self.storage {
            Storage::Htab(h) => {
                let mut g = h.lock();
                let e = g.table.get(key).cloned();
                if e.is_some() && self.is_lru() {
                    touch(&mut g.lru, key);
                }
                e
            }
            Storage::Array { .. } => None,
        }
    }

    fn is_lru(&self) -> bool {
        matches!(
            self.map.map_type,
            BPF_MAP_TYPE_LRU_HASH | BPF_MAP_TYPE_LRU_PERCPU_HASH
        )
    }

    /// An LRU map that is full gives up its least recently used element (its special
    /// fields are freed as on a delete) to make room for a new key. The kernel's LRU is
    /// approximate (per-CPU lists, reference bits); the model evicts in strict order.
    fn lru_evict_if_full(&self, rt: &BpfRuntime, key: &[u8]) {
        let Storage::Htab(h) = &self.storage else {
            return;
        };
        let victim = {
            let mut g = h.lock();
            if !self.is_lru()
                || g.table.contains_key(key)
                || g.table.len() < self.map.max_entries as usize
            {
                return;
            }
            if g.lru.is_empty() {
                return;
            }
            let k = g.lru.remove(0);
            g.table.remove(&k)
        };
        if let Some(v) = victim {
            emit(Event::Map {
                what: "LRU eviction",
            });
            self.free_htab_elem(rt, v);
        }
    }

    /// `map_update_elem` from user space: arrays copy (skipping special fields) and then
    /// free the value's special fields (`array_map_update_elem`); hashes insert a new
    /// element and free the old one (`htab_map_update_elem` -> `free_htab_elem` ->
    /// `check_and_free_fields`).
    pub fn update(&self, rt: &BpfRuntime, key: &[u8], value: &[u8], flags: u64) -> KResult<()> {
        let rec = self.record();
        match &self.storage {
            Storage::Array { .. } => {
                let idx = u32::from_ne_bytes(
                    key.get(..4)
                        .ok_or(Errno::EINVAL)?
                        .try_into()
                        .map_err(|_| Errno::EINVAL)?,
                );
                let Storage::Array { elem, .. } = &self.storage else {
                    return Err(Errno::EINVAL);
                };
                let vals = self.array_elem(idx).ok_or(Errno::E2BIG)?;
                if flags == BPF_NOEXIST {
                    return Err(Errno::EEXIST);
                }
                for w in vals.chunks_exact(*elem).map(Words::of) {
                    copy_map_value(rec, w, value);
                    if let Some(r) = rec {
                        bpf_obj_free_fields(rt, r, w);
                    }
                }
                Ok(())
            }
            Storage::Htab(h) => {
                if flags != BPF_EXIST {
                    self.lru_evict_if_full(rt, key);
                }
                let new = {
                    let mut g = h.lock();
                    let exists = g.table.contains_key(key);
                    if exists && flags == BPF_NOEXIST {
                        return Err(Errno::EEXIST);
                    }
                    if !exists && flags == BPF_EXIST {
                        return Err(Errno::ENOENT);
                    }
                    if !exists && g.table.len() >= self.map.max_entries as usize {
                        return Err(Errno::E2BIG);
                    }
                    if prealloc(&self.map) {
                        // A recycled element; its special fields are initialised below.
                        g.freelist.pop().ok_or(Errno::E2BIG)?
                    } else {
                        let ncpu = if percpu(self.map.map_type) {
                            NR_CPUS
                        } else {
                            1
                        };
                        let vals = (0..ncpu)
                            .map(|_| WordsBuf::new(self.map.value_size))
                            .collect();
                        Arc::new(HtabElem { values: vals })
                    }
                };
                for w in &new.values {
                    check_and_init_map_value(rec, w);
                    copy_map_value(rec, w, value);
                }
                let old = {
                    let mut g = h.lock();
                    if self.is_lru() {
                        touch(&mut g.lru, key);
                    }
                    g.table.insert(key.to_vec(), Arc::clone(&new))
                };
                if let Some(old) = old {
                    self.free_htab_elem(rt, old);
                }
                Ok(())
            }
        }
    }

    /// `map_update_elem` with `BPF_F_LOCK` on an array (`copy_map_value_locked`): the
    /// copy happens under the value's `bpf_spin_lock`, special fields skipped; then, as
    /// `array_map_update_elem` does, the value's special fields are freed.
    pub fn update_locked(&self, rt: &BpfRuntime, key: u32, value: &[u8]) -> KResult<()> {
        let rec = self.record().ok_or(Errno::EINVAL)?;
        if rec.spin_lock_off < 0 {
            return Err(Errno::EINVAL);
        }
        let v = self.array_value(key, 0).ok_or(Errno::E2BIG)?;
        crate::obj::bpf_spin_lock(v, rec.spin_lock_off as u32);
        copy_map_value(Some(rec), v, value);
        crate::obj::bpf_spin_unlock(v, rec.spin_lock_off as u32);
        bpf_obj_free_fields(rt, rec, v);
        Ok(())
    }

    /// `map_delete_elem`: arrays cannot delete (-EINVAL); a hash element's special
    /// fields are freed at once (`free_htab_elem`), the element recycled (preallocated)
    /// or returned to the allocator after a grace period.
    pub fn delete(&self, rt: &BpfRuntime, key: &[u8]) -> KResult<()> {
        match &self.storage {
            Storage::Array { .. } => Err(Errno::EINVAL),
            Storage::Htab(h) => {
                let old = {
                    let mut g = h.lock();
                    g.lru.retain(|k| k.as_slice() != key);
                    g.table.remove(key).ok_or(Errno::ENOENT)?
                };
                self.free_htab_elem(rt, old);
                Ok(())
            }
        }
    }

    fn free_htab_elem(&self, rt: &BpfRuntime, e: Arc<HtabElem>) {
        if let Some(r) = self.record() {
            for w in &e.values {
                bpf_obj_free_fields(rt, r, w);
            }
        }
        match &self.storage {
            Storage::Htab(h) if prealloc(&self.map) => h.lock().freelist.push(e),
            Storage::Htab(h) => {
                // bpf_mem_cache_free: the memory goes back after a grace period; a
                // program still holding the element may write into it meanwhile.
                h.lock().retired.push(e);
            }
            Storage::Array { .. } => {}
        }
    }

    /// `map_free`'s walk over the values: every value's special fields
    /// (`array_map_free`; `htab_free_prealloced_fields`, every element, free ones too;
    /// `htab_free_malloced_fields`).
    fn free_values(&self, rt: &BpfRuntime) {
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
                    for e in g.table.values() {
                        for w in &e.values {
                            bpf_obj_free_fields(rt, r, w);
                        }
                    }
                }
            }
        }
    }

    /// The grace period of the hash map's element allocator ends: retired elements are
    /// freed. With an element destructor (flag `htab_elem_dtor`, newest kernels) their
    /// special fields are freed again first; without one (6.18) whatever a program
    /// stashed into a deleted element leaks.
    pub fn rcu_reclaim(&self, rt: &BpfRuntime) {
        let Storage::Htab(h) = &self.storage else {
            return;
        };
        let retired = core::mem::take(&mut h.lock().retired);
        for e in retired {
            if rt.sem.htab_elem_dtor
                && let Some(r) = self.record()
            {
                for w in &e.values {
                    bpf_obj_free_fields(rt, r, w);
                }
            }
        }
    }

    /// Takes a reference (`bpf_map_inc`).
    pub fn bpf_map_inc(&self) {
        self.refcnt.fetch_add(1, Ordering::AcqRel);
    }

    /// `bpf_map_put`: drops a reference; the last one returns the deferred free
    /// (`bpf_map_free_deferred`), which the caller runs when the workqueue would.
    /// Profile flag `map_btf_put_after_free`: before v6.7 the map's BTF is put here,
    /// before `map_free`.
    pub fn bpf_map_put(this: Arc<Self>) -> Option<MapFree> {
        if this.refcnt.fetch_sub(1, Ordering::AcqRel) != 1 {
            return None;
        }
        let Ok(mut m) = Arc::try_unwrap(this) else {
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
        Some(MapFree { map: m })
    }
}

/// The deferred free of a map (`bpf_map_free_deferred` on the workqueue).
pub struct MapFree {
    map: MapRt,
}

impl MapFree {
    /// `bpf_map_free_deferred`: `map_free` (every value's special fields), then the
    /// record, then (v6.7+) the map's BTF; before v6.7 the BTF was already put in
    /// `bpf_map_put`.
    pub fn run(self, rt: &BpfRuntime) {
        let MapFree { mut map } = self;
        let m = &mut map;
        emit(Event::Map { what: "map_free" });
        // One task runs the whole teardown: its objects gather on its own list.
        crate::obj::BpfMemAlloc::with_local_frees(&rt.mem, || m.free_values(rt));
        m.rcu_reclaim(rt);
        emit(Event::Map {
            what: "btf_record_free(map->record)",
        });
        drop(m.map.record.take());
        if m.map.btf.is_some() {
            emit(Event::Map {
                what: "btf_put(map->btf) after map_free",
            });
        }
        drop(m.map.btf.take());
    }
}
