//! Local storage at run time: the element lists of kernel/bpf/bpf_local_storage.c and
//! the storages built on them, task storage (kernel/bpf/bpf_task_storage.c), cgroup
//! storage (kernel/bpf/bpf_cgrp_storage.c), socket storage (net/core/bpf_sk_storage.c)
//! and inode storage (kernel/bpf/bpf_inode_storage.c).
//!
//! An owner (a task, a cgroup, a socket, an inode: a [`StorageOwner`]) points at its
//! `bpf_local_storage` ([`BpfLocalStorage`]), a list of elements
//! ([`BpfLocalStorageElem`], at most one per map); each element is also linked in its
//! map's buckets ([`BpfLocalStorageMap`]). An element is unlinked from both
//! ([`bpf_selem_unlink`]) by a delete, by an update that replaces it
//! ([`bpf_local_storage_update`]), by the map's free ([`bpf_local_storage_map_free`]) or
//! by its owner's destruction ([`bpf_local_storage_destroy`]), then freed
//! ([`bpf_selem_free`]): its special fields (`bpf_obj_free_fields`) at once or in an RCU
//! callback, per profile. An update with `BPF_F_LOCK` of an existing element copies in
//! place under the value's lock (`copy_map_value_locked`), its special fields kept.
//!
//! Profile flags: `selem_free_fields_rcu` (c8e18754: every element's fields freed in an
//! RCU callback), `local_storage_bpf_ma` (task and cgroup storage from the BPF memory
//! allocator, v6.4+), `selem_free_fields_postponed` (v6.13+: a `bpf_ma` element freed
//! without `reuse_now` frees its fields in the RCU callback), and those of
//! `bpf_obj_free_fields`; `kptr_more_maps` decides (in `map_check_btf`) whether a
//! storage value may hold a kptr at all.
//!
//! Not modelled: the elements' and storages' memory (only their special fields are:
//! what a freed element held is released, or leaks), the owner's memory charge
//! (`mem_charge`), the per-map lookup cache (`cache_idx`: a lookup walks the list),
//! the per-CPU busy counters' recursion refusals (`-EBUSY` of the `_recur` helpers),
//! and `bpf_sk_storage_clone`.
//!
//! `__uptr` pinning (profile flag `uptr`, v6.13+; modelled from the upstream series
//! "bpf: Support __uptr type tag in task local storage", not read from a local tree):
//! a user-space update pins (`bpf_obj_pin_uptrs`, in `MapRt::update_owner`), the new
//! element takes the pinned addresses (`bpf_obj_swap_uptrs` in `bpf_selem_alloc`, the
//! kernel's `swap_uptrs`), and the element's free unpins (`bpf_obj_free_fields`); an
//! update that replaces an element thus unpins the old pages when the old element's
//! fields are freed. See [`crate::obj::uptr`].

use alloc::vec::Vec;

use super::bpf_map::BpfMap;
use super::types::*;
use super::value::{BPF_EXIST, BPF_F_LOCK, BPF_NOEXIST, copy_map_value, copy_map_value_locked};
use crate::errno::{Errno, KResult};
use crate::obj::uptr::bpf_obj_swap_uptrs;
use crate::obj::{BpfRuntime, Words, WordsBuf, bpf_obj_free_fields};
use crate::record::{BtfFieldType as F, BtfRecord};
use crate::sync::{Arc, AtomicBool, Ordering, SpinLock};
use crate::trace::{Event, emit};

/// `BPF_LOCAL_STORAGE_GET_F_CREATE` (include/uapi/linux/bpf.h).
pub const BPF_LOCAL_STORAGE_GET_F_CREATE: u64 = 1;

/// What owns a local storage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OwnerKind {
    /// A `task_struct` (`task->bpf_storage`), BPF_MAP_TYPE_TASK_STORAGE.
    Task,
    /// A `cgroup` (`cgroup->bpf_cgrp_storage`), BPF_MAP_TYPE_CGRP_STORAGE.
    Cgroup,
    /// A `sock` (`sk->sk_bpf_storage`), BPF_MAP_TYPE_SK_STORAGE.
    Sock,
    /// An `inode` (`bpf_inode(inode)->storage`), BPF_MAP_TYPE_INODE_STORAGE.
    Inode,
}

impl OwnerKind {
    /// The owner of a local storage map type's values.
    pub fn of_map_type(t: u32) -> Option<OwnerKind> {
        Some(match t {
            BPF_MAP_TYPE_TASK_STORAGE => OwnerKind::Task,
            BPF_MAP_TYPE_CGRP_STORAGE => OwnerKind::Cgroup,
            BPF_MAP_TYPE_SK_STORAGE => OwnerKind::Sock,
            BPF_MAP_TYPE_INODE_STORAGE => OwnerKind::Inode,
            _ => return None,
        })
    }

    /// The storage's busy lock taken around its map operations
    /// (`bpf_task_storage_lock`, `bpf_cgrp_storage_lock`: `migrate_disable` and a
    /// per-CPU count); socket and inode storage take none.
    fn busy_lock(self) -> Option<&'static str> {
        match self {
            OwnerKind::Task => Some("bpf_task_storage_lock"),
            OwnerKind::Cgroup => Some("bpf_cgrp_storage_lock"),
            OwnerKind::Sock | OwnerKind::Inode => None,
        }
    }
}

/// A kernel object that owns local storage: its `bpf_storage` pointer
/// (`map_owner_storage_ptr`: `task_storage_ptr`, `cgroup_storage_ptr`,
/// `bpf_sk_storage_ptr`, `inode_storage_ptr`) and whether it is still alive (a task's
/// `usage`, a socket's `sk_refcnt` above zero, a cgroup's `self.refcnt` not dying).
pub struct StorageOwner {
    kind: OwnerKind,
    bpf_storage: SpinLock<Option<Arc<BpfLocalStorage>>>,
    alive: AtomicBool,
}

impl StorageOwner {
    /// A live owner without storage.
    pub fn new(kind: OwnerKind) -> Arc<StorageOwner> {
        Arc::new(StorageOwner {
            kind,
            bpf_storage: SpinLock::new(None),
            alive: AtomicBool::new(true),
        })
    }

    /// What it is.
    pub fn kind(&self) -> OwnerKind {
        self.kind
    }

    /// Its references have not yet dropped to zero.
    pub fn is_alive(&self) -> bool {
        self.alive.load(Ordering::Acquire)
    }

    /// Its storage, if it has one (`rcu_dereference(*owner_storage(smap, owner))`).
    pub fn storage(&self) -> Option<Arc<BpfLocalStorage>> {
        self.bpf_storage.lock().clone()
    }
}

/// `struct bpf_local_storage`: an owner's elements, one per map, under `lock`.
pub struct BpfLocalStorage {
    list: SpinLock<Vec<Arc<BpfLocalStorageElem>>>,
    /// `local_storage->owner`: cleared when the last element goes.
    owner: SpinLock<Option<Arc<StorageOwner>>>,
}

impl BpfLocalStorage {
    /// Elements linked (`hlist_empty(&local_storage->list)` is `== 0`).
    pub fn len(&self) -> usize {
        self.list.lock().len()
    }

    /// No element linked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The part of a local storage map its elements point at (`SDATA(selem)->smap`): the
/// map's record and allocator kind. Elements and their RCU callbacks hold it; the
/// record is freed with the map (`btf_record_free` in `bpf_map_free`), after which a
/// callback that still reads it is the kernel's use after free (reported as a WARN).
pub(crate) struct SmapShared {
    record: Option<BtfRecord>,
    record_freed: AtomicBool,
    kind: OwnerKind,
    /// `smap->bpf_ma`.
    bpf_ma: bool,
    /// `smap->buckets` (one list here): the elements linked to the map.
    buckets: SpinLock<Vec<Arc<BpfLocalStorageElem>>>,
}

/// `struct bpf_local_storage_elem` with its `bpf_local_storage_data`.
pub struct BpfLocalStorageElem {
    data: WordsBuf,
    smap: Arc<SmapShared>,
    /// `selem->local_storage`, while linked to it.
    local_storage: SpinLock<Option<Arc<BpfLocalStorage>>>,
    /// `selem_linked_to_storage`.
    in_storage: AtomicBool,
    /// `selem_linked_to_map`.
    in_map: AtomicBool,
}

impl BpfLocalStorageElem {
    /// `SDATA(selem)->data`: the value.
    pub fn data(&self) -> &Words {
        &self.data
    }

    /// Still linked to its owner's storage.
    pub fn linked(&self) -> bool {
        self.in_storage.load(Ordering::Acquire)
    }
}

/// `struct bpf_local_storage_map`: what its elements point at (the record, the
/// buckets of linked elements) and the value size.
pub struct BpfLocalStorageMap {
    shared: Arc<SmapShared>,
    value_size: u32,
}

impl BpfLocalStorageMap {
    /// `bpf_local_storage_map_alloc` (kernel/bpf/bpf_local_storage.c) for the map
    /// `map` of a local storage type, taking its record: `task_storage_map_alloc` and
    /// `cgroup_storage_map_alloc` ask for the BPF memory allocator (profile flag
    /// `local_storage_bpf_ma`), `bpf_sk_storage_map_alloc` and `inode_storage_map_alloc`
    /// do not. `None` for another map type.
    pub(crate) fn bpf_local_storage_map_alloc(
        map: &mut BpfMap,
        sem: &crate::profile::Semantics,
    ) -> Option<BpfLocalStorageMap> {
        let kind = OwnerKind::of_map_type(map.map_type)?;
        let bpf_ma =
            sem.local_storage_bpf_ma && matches!(kind, OwnerKind::Task | OwnerKind::Cgroup);
        Some(BpfLocalStorageMap {
            shared: Arc::new(SmapShared {
                record: map.record.take(),
                record_freed: AtomicBool::new(false),
                kind,
                bpf_ma,
                buckets: SpinLock::new(Vec::new()),
            }),
            value_size: map.value_size,
        })
    }

    /// The map's record (`smap->map.record`).
    pub fn record(&self) -> Option<&BtfRecord> {
        self.shared.record.as_ref()
    }

    /// What owns its values.
    pub fn owner_kind(&self) -> OwnerKind {
        self.shared.kind
    }

    /// Elements linked to the map.
    pub fn len(&self) -> usize {
        self.shared.buckets.lock().len()
    }

    /// No element linked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `btf_record_free(map->record)` in `bpf_map_free`: the record, for the caller to
    /// drop, when nothing else holds the map's shared part; else it is marked freed (a
    /// callback that still reads it reads freed memory) and goes with its last holder.
    pub(crate) fn record_free(&mut self) -> Option<BtfRecord> {
        let empty = Arc::new(SmapShared {
            record: None,
            record_freed: AtomicBool::new(true),
            kind: self.shared.kind,
            bpf_ma: self.shared.bpf_ma,
            buckets: SpinLock::new(Vec::new()),
        });
        let shared = core::mem::replace(&mut self.shared, empty);
        match Arc::try_unwrap(shared) {
            Ok(s) => s.record,
            Err(held) => {
                held.record_freed.store(true, Ordering::Release);
                None
            }
        }
    }
}

/// `bpf_local_storage_lookup` (kernel/bpf/bpf_local_storage.c): `smap`'s element in
/// `local_storage`, if any (the per-map cache is not modelled). No profile flag
/// changes it.
pub fn bpf_local_storage_lookup(
    local_storage: &BpfLocalStorage,
    smap: &BpfLocalStorageMap,
) -> Option<Arc<BpfLocalStorageElem>> {
    lookup_in(&local_storage.list.lock(), smap)
}

fn lookup_in(
    list: &[Arc<BpfLocalStorageElem>],
    smap: &BpfLocalStorageMap,
) -> Option<Arc<BpfLocalStorageElem>> {
    list.iter()
        .find(|s| Arc::ptr_eq(&s.smap, &smap.shared))
        .cloned()
}

/// `bpf_selem_alloc`: a zeroed element (`bpf_map_kzalloc`, or the BPF allocator and a
/// `memset`), `value` copied in with its special fields skipped (`copy_map_value`);
/// with `uptrs` (v6.13's `swap_uptrs`: the kernel copy of a user-space update's value,
/// its uptrs pinned) the pinned addresses are swapped in (`bpf_obj_swap_uptrs`),
/// leaving NULL in the copy.
fn bpf_selem_alloc(
    rt: &BpfRuntime,
    smap: &BpfLocalStorageMap,
    value: Option<&[u8]>,
    uptrs: Option<&Words>,
) -> Arc<BpfLocalStorageElem> {
    if smap.shared.bpf_ma {
        rt.migrate_disable_at("bpf_selem_alloc");
        rt.migrate_enable_at("bpf_selem_alloc");
    }
    let data = WordsBuf::new(smap.value_size);
    if let Some(v) = value {
        copy_map_value(smap.record(), &data, v);
        if let Some(src) = uptrs {
            bpf_obj_swap_uptrs(smap.record(), &data, src);
        }
    }
    Arc::new(BpfLocalStorageElem {
        data,
        smap: Arc::clone(&smap.shared),
        local_storage: SpinLock::new(None),
        in_storage: AtomicBool::new(false),
        in_map: AtomicBool::new(false),
    })
}

/// `bpf_selem_link_map`.
fn bpf_selem_link_map(smap: &BpfLocalStorageMap, selem: &Arc<BpfLocalStorageElem>) {
    smap.shared.buckets.lock().push(Arc::clone(selem));
    selem.in_map.store(true, Ordering::Release);
}

/// `bpf_selem_unlink_map`: off its map's bucket (through `SDATA(selem)->smap`), if
/// still on it.
fn bpf_selem_unlink_map(selem: &Arc<BpfLocalStorageElem>) {
    if !selem.in_map.swap(false, Ordering::AcqRel) {
        return;
    }
    selem.smap.buckets.lock().retain(|s| !Arc::ptr_eq(s, selem));
}

/// `bpf_selem_link_storage_nolock`: `local_storage->lock` held (its list is `list`).
fn bpf_selem_link_storage_nolock(
    local_storage: &Arc<BpfLocalStorage>,
    list: &mut Vec<Arc<BpfLocalStorageElem>>,
    selem: &Arc<BpfLocalStorageElem>,
) {
    *selem.local_storage.lock() = Some(Arc::clone(local_storage));
    list.insert(0, Arc::clone(selem));
    selem.in_storage.store(true, Ordering::Release);
}

/// `bpf_selem_unlink_storage_nolock`: `local_storage->lock` held. Unlinks `selem` and
/// puts it on `free_list` (freed by the caller after the unlock); true when it was
/// the last element: the owner's pointer is cleared (`RCU_INIT_POINTER(*owner_storage,
/// NULL)`) and the caller frees the storage.
fn bpf_selem_unlink_storage_nolock(
    local_storage: &BpfLocalStorage,
    list: &mut Vec<Arc<BpfLocalStorageElem>>,
    selem: &Arc<BpfLocalStorageElem>,
    free_list: &mut Vec<Arc<BpfLocalStorageElem>>,
) -> bool {
    let free_local_storage = list.len() == 1 && list.iter().any(|s| Arc::ptr_eq(s, selem));
    if free_local_storage && let Some(owner) = local_storage.owner.lock().take() {
        *owner.bpf_storage.lock() = None;
    }
    list.retain(|s| !Arc::ptr_eq(s, selem));
    selem.in_storage.store(false, Ordering::Release);
    *selem.local_storage.lock() = None;
    free_list.push(Arc::clone(selem));
    free_local_storage
}

/// `bpf_local_storage_free`: the storage's memory (not modelled) after the grace
/// periods `reuse_now` does not skip.
fn bpf_local_storage_free(_local_storage: Arc<BpfLocalStorage>, reuse_now: bool) {
    emit(Event::Map {
        what: if reuse_now {
            "bpf_local_storage_free (reuse now)"
        } else {
            "bpf_local_storage_free (after an RCU tasks trace grace period)"
        },
    });
}

/// Where a free that the kernel defers to an RCU callback goes: queued on the RCU
/// domains (the runtime is at hand as an `Arc`), or kept for the caller, who runs it
/// after a grace period it waits for itself (the map's free, which then waits for
/// every callback anyway).
enum Defer<'a> {
    Rcu(&'a Arc<BpfRuntime>),
    Later(&'a mut Vec<Arc<BpfLocalStorageElem>>),
}

/// `call_rcu_tasks_trace` of a callback that, where `rcu_trace_implies_rcu_gp()` does
/// not hold (the model's two independent domains), goes on with `call_rcu`: `f` runs
/// after a grace period of each.
fn call_rcu_tasks_trace_then_rcu(rt: &Arc<BpfRuntime>, f: impl FnOnce() + Send + 'static) {
    let rcu = Arc::clone(&rt.rcu);
    rt.rcu_tasks_trace.call_rcu(move || rcu.call_rcu(f));
}

/// The special fields of a freed element, from an RCU callback (softirq context, not
/// migratable; v6.18's `bpf_selem_free_rcu` disables migration itself: profile flag
/// `map_free_migrate_disable`).
fn selem_free_fields_cb(rt: &BpfRuntime, selem: &BpfLocalStorageElem, site: &'static str) {
    let Some(rec) = selem.smap.record.as_ref() else {
        return;
    };
    if selem.smap.record_freed.load(Ordering::Acquire) {
        rt.warn(
            "use after free: a local storage element's RCU callback read its map's freed record",
        );
        return;
    }
    let site = if rt.sem.map_free_migrate_disable {
        site
    } else {
        "rcu callback"
    };
    rt.migrate_disable_at(site);
    bpf_obj_free_fields(rt, rec, &selem.data);
    rt.migrate_enable_at(site);
}

/// `bpf_selem_free` (kernel/bpf/bpf_local_storage.c): an unlinked element's special
/// fields and memory. Profile flags:
/// - `selem_free_fields_rcu` (c8e18754): the fields in an RCU callback
///   (`bpf_selem_free_fields_trace_rcu` after an RCU tasks trace grace period, or
///   `bpf_selem_free_fields_rcu` after an RCU one with `reuse_now`);
/// - otherwise a storage without the BPF allocator (socket, inode; before v6.4 every
///   one) frees the fields at once, its memory after the grace periods;
/// - a `bpf_ma` storage (task, cgroup; `local_storage_bpf_ma`) frees the fields at once
///   with `reuse_now` (`bpf_mem_cache_free` may reuse the memory at once); without it,
///   at once too up to v6.12, in `bpf_selem_free_rcu` after an RCU tasks trace grace
///   period with `selem_free_fields_postponed` (v6.13+).
///
/// With the fields freed at once, an object a program stashes into the element after
/// its unlink (it may still hold the value) is never released: the kernel's leak.
pub fn bpf_selem_free(rt: &Arc<BpfRuntime>, selem: Arc<BpfLocalStorageElem>, reuse_now: bool) {
    selem_free(rt, &mut Defer::Rcu(rt), selem, reuse_now);
}

fn selem_free(
    rt: &BpfRuntime,
    defer: &mut Defer<'_>,
    selem: Arc<BpfLocalStorageElem>,
    reuse_now: bool,
) {
    let has_rec = selem.smap.record.is_some();
    if rt.sem.selem_free_fields_rcu {
        if !has_rec {
            return;
        }
        match defer {
            Defer::Rcu(a) => {
                let a: &Arc<BpfRuntime> = a;
                let rt2 = Arc::clone(a);
                if reuse_now {
                    emit(Event::Map {
                        what: "call_rcu(bpf_selem_free_fields_rcu)",
                    });
                    a.rcu.call_rcu(move || {
                        selem_free_fields_cb(&rt2, &selem, "bpf_selem_free_fields_rcu")
                    });
                } else {
                    emit(Event::Map {
                        what: "call_rcu_tasks_trace(bpf_selem_free_fields_trace_rcu)",
                    });
                    call_rcu_tasks_trace_then_rcu(a, move || {
                        selem_free_fields_cb(&rt2, &selem, "bpf_selem_free_fields_rcu")
                    });
                }
            }
            Defer::Later(v) => v.push(selem),
        }
        return;
    }
    let Some(rec) = selem.smap.record.as_ref() else {
        return;
    };
    if !selem.smap.bpf_ma || reuse_now || !rt.sem.selem_free_fields_postponed {
        emit(Event::Map {
            what: "bpf_selem_free: bpf_obj_free_fields at the unlink",
        });
        bpf_obj_free_fields(rt, rec, &selem.data);
        if selem.smap.bpf_ma && reuse_now {
            // bpf_mem_cache_free(&smap->selem_ma, selem): reusable at once.
            rt.migrate_disable_at("bpf_selem_free");
            rt.migrate_enable_at("bpf_selem_free");
        }
        return;
    }
    match defer {
        Defer::Rcu(a) => {
            let a: &Arc<BpfRuntime> = a;
            emit(Event::Map {
                what: "call_rcu_tasks_trace(bpf_selem_free_trace_rcu)",
            });
            let rt2 = Arc::clone(a);
            call_rcu_tasks_trace_then_rcu(a, move || {
                selem_free_fields_cb(&rt2, &selem, "bpf_selem_free_rcu")
            });
        }
        Defer::Later(v) => v.push(selem),
    }
}

/// `bpf_selem_unlink_storage`: off its owner's storage (if still on it), then freed;
/// the storage too when it was the last element.
fn bpf_selem_unlink_storage(
    rt: &BpfRuntime,
    defer: &mut Defer<'_>,
    selem: &Arc<BpfLocalStorageElem>,
    reuse_now: bool,
) {
    if !selem.linked() {
        return;
    }
    let Some(local_storage) = selem.local_storage.lock().clone() else {
        return;
    };
    let mut free_list = Vec::new();
    let free_local_storage = {
        let mut list = local_storage.list.lock();
        selem.linked()
            && bpf_selem_unlink_storage_nolock(&local_storage, &mut list, selem, &mut free_list)
    };
    bpf_selem_free_list(rt, defer, free_list, reuse_now);
    if free_local_storage {
        bpf_local_storage_free(local_storage, reuse_now);
    }
}

/// `bpf_selem_free_list`.
fn bpf_selem_free_list(
    rt: &BpfRuntime,
    defer: &mut Defer<'_>,
    list: Vec<Arc<BpfLocalStorageElem>>,
    reuse_now: bool,
) {
    for s in list {
        selem_free(rt, defer, s, reuse_now);
    }
}

/// `bpf_selem_unlink` (kernel/bpf/bpf_local_storage.c): off its map, then off its
/// owner's storage, then freed
/// ([`bpf_selem_free`], whose profile flags apply).
pub fn bpf_selem_unlink(rt: &Arc<BpfRuntime>, selem: &Arc<BpfLocalStorageElem>, reuse_now: bool) {
    bpf_selem_unlink_map(selem);
    bpf_selem_unlink_storage(rt, &mut Defer::Rcu(rt), selem, reuse_now);
}

/// `check_flags` of kernel/bpf/bpf_local_storage.c.
fn check_flags(old: bool, map_flags: u64) -> KResult<()> {
    if old && map_flags & !BPF_F_LOCK == BPF_NOEXIST {
        return Err(Errno::EEXIST);
    }
    if !old && map_flags & !BPF_F_LOCK == BPF_EXIST {
        return Err(Errno::ENOENT);
    }
    Ok(())
}

/// `bpf_local_storage_alloc`: the owner's first storage with `first` linked, published
/// with a compare-and-exchange on the owner's pointer (-EAGAIN when another storage
/// got there first).
fn bpf_local_storage_alloc(
    owner: &Arc<StorageOwner>,
    smap: &BpfLocalStorageMap,
    first: &Arc<BpfLocalStorageElem>,
) -> KResult<()> {
    let storage = Arc::new(BpfLocalStorage {
        list: SpinLock::new(Vec::new()),
        owner: SpinLock::new(Some(Arc::clone(owner))),
    });
    bpf_selem_link_storage_nolock(&storage, &mut storage.list.lock(), first);
    bpf_selem_link_map(smap, first);
    let mut slot = owner.bpf_storage.lock();
    if slot.is_some() {
        drop(slot);
        bpf_selem_unlink_map(first);
        storage.list.lock().clear();
        first.in_storage.store(false, Ordering::Release);
        *first.local_storage.lock() = None;
        storage.owner.lock().take();
        return Err(Errno::EAGAIN);
    }
    *slot = Some(storage);
    Ok(())
}

/// `bpf_local_storage_update` (kernel/bpf/bpf_local_storage.c): `owner`'s element of
/// `smap` made from `value` (`None`: zeroed, as the `*_storage_get` helpers pass NULL).
/// -EINVAL for unknown flags or `BPF_F_LOCK` without a `bpf_spin_lock` (and, from a
/// sleepable program (`gfp_kernel`), for anything but `BPF_NOEXIST`); then
/// `BPF_NOEXIST`/`BPF_EXIST` against the existing element (-EEXIST, -ENOENT). With
/// `BPF_F_LOCK` an existing element is updated in place under its lock, its special
/// fields kept; otherwise a new element replaces it and the old one is unlinked and
/// freed without `reuse_now` ([`bpf_selem_free`]: its stashed objects go, at once or
/// after the grace periods, per profile). A storage whose last element is going
/// answers -EAGAIN. Profile flags: those of [`bpf_selem_free`]. This is the call
/// with `swap_uptrs` false (the helpers'); a user-space update of a value with uptrs
/// goes through `MapRt::update_owner`, which swaps them in (flag `uptr`).
pub fn bpf_local_storage_update(
    rt: &Arc<BpfRuntime>,
    owner: &Arc<StorageOwner>,
    smap: &BpfLocalStorageMap,
    value: Option<&[u8]>,
    map_flags: u64,
    gfp_kernel: bool,
) -> KResult<Arc<BpfLocalStorageElem>> {
    local_storage_update(rt, owner, smap, value, None, map_flags, gfp_kernel)
}

/// [`bpf_local_storage_update`] with v6.13's `swap_uptrs`: `uptrs`, the kernel copy
/// of the value whose pinned uptrs the new element takes ([`bpf_selem_alloc`]). Once
/// they are swapped in, a failure frees the new element, which unpins them.
fn local_storage_update(
    rt: &Arc<BpfRuntime>,
    owner: &Arc<StorageOwner>,
    smap: &BpfLocalStorageMap,
    value: Option<&[u8]>,
    uptrs: Option<&Words>,
    map_flags: u64,
    gfp_kernel: bool,
) -> KResult<Arc<BpfLocalStorageElem>> {
    let rec = smap.record();
    let locked = map_flags & BPF_F_LOCK != 0;
    if map_flags & !BPF_F_LOCK > BPF_EXIST
        || (locked && !rec.is_some_and(|r| r.has_field(F::SPIN_LOCK)))
    {
        return Err(Errno::EINVAL);
    }
    if gfp_kernel && map_flags & !BPF_F_LOCK != BPF_NOEXIST {
        return Err(Errno::EINVAL);
    }
    let local_storage = owner.storage().filter(|s| !s.is_empty());
    let Some(local_storage) = local_storage else {
        // The owner's very first element.
        check_flags(false, map_flags)?;
        let selem = bpf_selem_alloc(rt, smap, value, uptrs);
        if let Err(e) = bpf_local_storage_alloc(owner, smap, &selem) {
            bpf_selem_free(rt, selem, true);
            return Err(e);
        }
        return Ok(selem);
    };
    let zero = [0u8; 0];
    let src = value.unwrap_or(&zero);
    if locked && map_flags & BPF_NOEXIST == 0 {
        // Hoping for an in-place update without the storage's lock.
        let old = bpf_local_storage_lookup(&local_storage, smap);
        check_flags(old.is_some(), map_flags)?;
        if let (Some(old), Some(r)) = (old, rec)
            && old.linked()
        {
            copy_map_value_locked(r, &old.data, src);
            return Ok(old);
        }
    }
    let alloc_selem = bpf_selem_alloc(rt, smap, value, uptrs);
    let mut free_list = Vec::new();
    let res = {
        let mut list = local_storage.list.lock();
        if list.is_empty() {
            // A parallel delete is freeing the storage.
            Err(Errno::EAGAIN)
        } else {
            let old = lookup_in(&list, smap);
            match check_flags(old.is_some(), map_flags) {
                Err(e) => Err(e),
                Ok(()) => match (old, rec) {
                    (Some(old), Some(r)) if locked => {
                        copy_map_value_locked(r, &old.data, src);
                        Ok((old, false))
                    }
                    (old, _) => {
                        bpf_selem_link_map(smap, &alloc_selem);
                        bpf_selem_link_storage_nolock(&local_storage, &mut list, &alloc_selem);
                        if let Some(old) = old {
                            bpf_selem_unlink_map(&old);
                            bpf_selem_unlink_storage_nolock(
                                &local_storage,
                                &mut list,
                                &old,
                                &mut free_list,
                            );
                        }
                        Ok((Arc::clone(&alloc_selem), true))
                    }
                },
            }
        }
    };
    bpf_selem_free_list(rt, &mut Defer::Rcu(rt), free_list, false);
    match res {
        Ok((selem, true)) => Ok(selem),
        Ok((selem, false)) => {
            bpf_selem_free(rt, alloc_selem, true);
            Ok(selem)
        }
        Err(e) => {
            bpf_selem_free(rt, alloc_selem, true);
            Err(e)
        }
    }
}

/// `bpf_local_storage_destroy` (kernel/bpf/bpf_local_storage.c), from the owner's
/// destruction: every element unlinked from its map and the storage, then freed with
/// `reuse_now` ([`bpf_selem_free`], whose profile flags apply).
pub fn bpf_local_storage_destroy(rt: &Arc<BpfRuntime>, local_storage: Arc<BpfLocalStorage>) {
    let mut free_list = Vec::new();
    let mut free_storage = false;
    {
        let mut list = local_storage.list.lock();
        let all: Vec<Arc<BpfLocalStorageElem>> = list.clone();
        for selem in &all {
            bpf_selem_unlink_map(selem);
            free_storage =
                bpf_selem_unlink_storage_nolock(&local_storage, &mut list, selem, &mut free_list);
        }
    }
    bpf_selem_free_list(rt, &mut Defer::Rcu(rt), free_list, true);
    if free_storage {
        bpf_local_storage_free(local_storage, true);
    }
}

/// The common body of the owners' ends (kernel-named below): `bpf_task_storage_free`
/// (`__put_task_struct`),
/// `bpf_cgrp_storage_free` (`css_free_rwork_fn`), `bpf_sk_storage_free`
/// (`__sk_destruct`), `bpf_inode_storage_free` (`security_inode_free`): the owner's
/// references are gone, then [`bpf_local_storage_destroy`] under the storage's busy
/// lock (task, cgroup) or with migration disabled (socket, inode). No profile flag of
/// its own.
pub fn bpf_local_storage_owner_free(rt: &Arc<BpfRuntime>, owner: &Arc<StorageOwner>) {
    owner.alive.store(false, Ordering::Release);
    let Some(local_storage) = owner.storage() else {
        return;
    };
    let site = match owner.kind {
        OwnerKind::Task => "bpf_task_storage_free",
        OwnerKind::Cgroup => "bpf_cgrp_storage_free",
        OwnerKind::Sock => "bpf_sk_storage_free",
        OwnerKind::Inode => "bpf_inode_storage_free",
    };
    rt.migrate_disable_at(site);
    bpf_local_storage_destroy(rt, local_storage);
    rt.migrate_enable_at(site);
}

/// `bpf_local_storage_map_free` (kernel/bpf/bpf_local_storage.c), the map's
/// `map_free` (`task_storage_map_free`, `cgroup_storage_map_free` with their busy
/// counters, `bpf_sk_storage_map_free`, `inode_storage_map_free`): a grace period, every
/// element still linked to the map unlinked with `reuse_now` (its fields freed at
/// once, or with `selem_free_fields_rcu` after a grace period), another grace period,
/// then (`bpf_ma`, or with `selem_free_fields_rcu` a record) the barriers that wait for
/// every element's RCU callback before the record goes. Profile flags: those of
/// [`bpf_selem_free`].
pub fn bpf_local_storage_map_free(rt: &BpfRuntime, smap: &BpfLocalStorageMap) {
    rt.rcu.synchronize_rcu();
    let busy = smap.shared.kind.busy_lock();
    let mut later = Vec::new();
    loop {
        let Some(selem) = smap.shared.buckets.lock().first().cloned() else {
            break;
        };
        if let Some(site) = busy {
            rt.migrate_disable_at(site);
        }
        bpf_selem_unlink_map(&selem);
        bpf_selem_unlink_storage(rt, &mut Defer::Later(&mut later), &selem, true);
        if let Some(site) = busy {
            rt.migrate_enable_at(site);
        }
    }
    rt.rcu.synchronize_rcu();
    // The callbacks of the elements unlinked above (c8e18754's
    // bpf_selem_free_fields_rcu) have had their grace period: they run before the
    // barriers return.
    for selem in later {
        selem_free_fields_cb(rt, &selem, "bpf_selem_free_fields_rcu");
    }
    let wait = smap.shared.bpf_ma || (rt.sem.selem_free_fields_rcu && smap.record().is_some());
    if wait {
        // rcu_barrier_tasks_trace(), and rcu_barrier() where a tasks trace grace
        // period does not imply a normal one.
        emit(Event::Map {
            what: "rcu_barrier_tasks_trace, rcu_barrier",
        });
        rcu_barrier_tasks_trace_and_rcu(rt);
    }
}

/// `rcu_barrier_tasks_trace()` then `rcu_barrier()`, until neither domain has a
/// callback left (a tasks trace callback may queue a normal one).
pub fn rcu_barrier_tasks_trace_and_rcu(rt: &BpfRuntime) {
    loop {
        rt.rcu_tasks_trace.rcu_barrier();
        rt.rcu.rcu_barrier();
        if rt.rcu_tasks_trace.pending() == 0 && rt.rcu.pending() == 0 {
            return;
        }
    }
}

fn storage_lock(rt: &BpfRuntime, kind: OwnerKind) {
    if let Some(site) = kind.busy_lock() {
        rt.migrate_disable_at(site);
    }
}

fn storage_unlock(rt: &BpfRuntime, kind: OwnerKind) {
    if let Some(site) = kind.busy_lock() {
        rt.migrate_enable_at(site);
    }
}

fn owner_of(smap: &BpfLocalStorageMap, owner: &StorageOwner) -> KResult<()> {
    if owner.kind == smap.shared.kind {
        Ok(())
    } else {
        // The fd is not a pidfd / cgroup / socket: pidfd_get_pid,
        // cgroup_v1v2_get_from_fd, sockfd_lookup fail.
        Err(Errno::EBADF)
    }
}

/// The common body of the `*_storage_get` helpers (`bpf_task_storage_get`,
/// `bpf_cgrp_storage_get`, `bpf_sk_storage_get` of kernel/bpf/bpf_task_storage.c,
/// kernel/bpf/bpf_cgrp_storage.c, net/core/bpf_sk_storage.c; kernel-named below):
/// the owner's element of `smap`; with
/// [`BPF_LOCAL_STORAGE_GET_F_CREATE`] a new one from `value` (`None`: zeroed) when
/// there is none and the owner is alive (`bpf_local_storage_update` with `BPF_NOEXIST`).
/// `None` for unknown flags, a NULL or mismatched owner, or a failed create. Task and
/// cgroup storage run under their busy lock (`migrate_disable`); `gfp_kernel` is the
/// verifier's hidden argument (a sleepable program). Profile flags: those of
/// [`bpf_local_storage_update`].
pub fn bpf_local_storage_get(
    rt: &Arc<BpfRuntime>,
    smap: &BpfLocalStorageMap,
    owner: Option<&Arc<StorageOwner>>,
    value: Option<&[u8]>,
    flags: u64,
    gfp_kernel: bool,
) -> Option<Arc<BpfLocalStorageElem>> {
    let owner = owner?;
    if flags & !BPF_LOCAL_STORAGE_GET_F_CREATE != 0 || owner_of(smap, owner).is_err() {
        return None;
    }
    let kind = smap.shared.kind;
    storage_lock(rt, kind);
    let found = owner
        .storage()
        .and_then(|s| bpf_local_storage_lookup(&s, smap));
    let r = match found {
        Some(s) => Some(s),
        None if flags & BPF_LOCAL_STORAGE_GET_F_CREATE != 0 && owner.is_alive() => {
            bpf_local_storage_update(rt, owner, smap, value, BPF_NOEXIST, gfp_kernel).ok()
        }
        None => None,
    };
    storage_unlock(rt, kind);
    r
}

/// The common body of the `*_storage_delete` helpers (`bpf_task_storage_delete`,
/// `bpf_cgrp_storage_delete`, `bpf_sk_storage_delete`; kernel-named below): -EINVAL for a NULL owner, -ENOENT without an element (or, for a socket,
/// one whose references are gone), else the element unlinked and freed without
/// `reuse_now` (`task_storage_delete`, `cgroup_storage_delete`, `bpf_sk_storage_del`:
/// [`bpf_selem_unlink`]). Profile flags: those of [`bpf_selem_free`].
pub fn bpf_local_storage_delete(
    rt: &Arc<BpfRuntime>,
    smap: &BpfLocalStorageMap,
    owner: Option<&Arc<StorageOwner>>,
) -> KResult<()> {
    let owner = owner.ok_or(Errno::EINVAL)?;
    owner_of(smap, owner).map_err(|_| Errno::EINVAL)?;
    if owner.kind == OwnerKind::Sock && !owner.is_alive() {
        return Err(Errno::ENOENT);
    }
    let kind = smap.shared.kind;
    storage_lock(rt, kind);
    let r = storage_delete(rt, smap, owner);
    storage_unlock(rt, kind);
    r
}

fn storage_delete(
    rt: &Arc<BpfRuntime>,
    smap: &BpfLocalStorageMap,
    owner: &StorageOwner,
) -> KResult<()> {
    let selem = owner
        .storage()
        .and_then(|s| bpf_local_storage_lookup(&s, smap))
        .ok_or(Errno::ENOENT)?;
    bpf_selem_unlink(rt, &selem, false);
    Ok(())
}

/// The common body of the storages' `map_lookup_elem` from user space, the key's fd
/// resolved to `owner` (`bpf_pid_task_storage_lookup_elem`, `bpf_cgrp_storage_lookup_elem`,
/// `bpf_fd_sk_storage_lookup_elem`): the element, -ENOENT without one (or for a task
/// that has exited), -EBADF for an owner of another kind. No profile flag changes it.
pub fn bpf_local_storage_lookup_elem(
    rt: &BpfRuntime,
    smap: &BpfLocalStorageMap,
    owner: &StorageOwner,
) -> KResult<Arc<BpfLocalStorageElem>> {
    owner_of(smap, owner)?;
    if owner.kind == OwnerKind::Task && !owner.is_alive() {
        return Err(Errno::ENOENT);
    }
    let kind = smap.shared.kind;
    storage_lock(rt, kind);
    let r = owner
        .storage()
        .and_then(|s| bpf_local_storage_lookup(&s, smap));
    storage_unlock(rt, kind);
    r.ok_or(Errno::ENOENT)
}

/// The common body of the storages' `map_update_elem` from user space, the key's fd
/// resolved to `owner` (`bpf_pid_task_storage_update_elem`, `bpf_cgrp_storage_update_elem`,
/// `bpf_fd_sk_storage_update_elem`): [`bpf_local_storage_update`] with `map_flags`
/// (`GFP_ATOMIC`), under the busy lock for task and cgroup storage; -ENOENT for a task
/// that has exited, -EBADF for an owner of another kind. Profile flags: those of
/// [`bpf_local_storage_update`].
pub fn bpf_local_storage_update_elem(
    rt: &Arc<BpfRuntime>,
    smap: &BpfLocalStorageMap,
    owner: &Arc<StorageOwner>,
    value: &[u8],
    map_flags: u64,
) -> KResult<()> {
    local_storage_update_elem(rt, smap, owner, value, None, map_flags)
}

/// [`bpf_local_storage_update_elem`] with the kernel copy `uptrs` of a value whose
/// uptrs `bpf_obj_pin_uptrs` has pinned (`MapRt::update_owner`): task storage passes
/// `swap_uptrs` true to [`bpf_local_storage_update`], and (`bpf_pid_task_storage_update_elem`,
/// v6.13+, profile flag `uptr`) refuses `BPF_F_LOCK` on a value with a uptr,
/// -EOPNOTSUPP. The caller unpins what is left in `uptrs` on an error.
pub(crate) fn local_storage_update_elem(
    rt: &Arc<BpfRuntime>,
    smap: &BpfLocalStorageMap,
    owner: &Arc<StorageOwner>,
    value: &[u8],
    uptrs: Option<&Words>,
    map_flags: u64,
) -> KResult<()> {
    if map_flags & BPF_F_LOCK != 0 && smap.record().is_some_and(|r| r.has_field(F::UPTR)) {
        return Err(Errno::EOPNOTSUPP);
    }
    owner_of(smap, owner)?;
    if owner.kind == OwnerKind::Task && !owner.is_alive() {
        return Err(Errno::ENOENT);
    }
    let kind = smap.shared.kind;
    storage_lock(rt, kind);
    let r = local_storage_update(rt, owner, smap, Some(value), uptrs, map_flags, false);
    storage_unlock(rt, kind);
    r.map(|_| ())
}

/// The common body of the storages' `map_delete_elem` from user space, the key's fd
/// resolved to `owner` (`bpf_pid_task_storage_delete_elem`, `bpf_cgrp_storage_delete_elem`,
/// `bpf_fd_sk_storage_delete_elem`): -ENOENT without an element (or for a task that
/// has exited), -EBADF for an owner of another kind; else [`bpf_selem_unlink`] without
/// `reuse_now`. Profile flags: those of [`bpf_selem_free`].
pub fn bpf_local_storage_delete_elem(
    rt: &Arc<BpfRuntime>,
    smap: &BpfLocalStorageMap,
    owner: &Arc<StorageOwner>,
) -> KResult<()> {
    owner_of(smap, owner)?;
    if owner.kind == OwnerKind::Task && !owner.is_alive() {
        return Err(Errno::ENOENT);
    }
    let kind = smap.shared.kind;
    storage_lock(rt, kind);
    let r = storage_delete(rt, smap, owner);
    storage_unlock(rt, kind);
    r
}

/// The owner kind a storage's kernel-named entry points take (`bpf_task_storage_*`
/// want a task, ...): another is the wrong type of fd or pointer.
fn kind_is(smap: &BpfLocalStorageMap, kind: OwnerKind) -> bool {
    smap.shared.kind == kind
}

macro_rules! storage_entry_points {
    ($kind:expr, $file:literal, $get:ident, $delete:ident, $lookup_elem:ident,
     $update_elem:ident, $delete_elem:ident, $free:ident) => {
        #[doc = concat!("`", stringify!($get), "` (", $file, "): [`bpf_local_storage_get`] on a map of this storage (`None` for another). Profile flags: those of [`bpf_local_storage_update`].")]
        pub fn $get(
            rt: &Arc<BpfRuntime>,
            smap: &BpfLocalStorageMap,
            owner: Option<&Arc<StorageOwner>>,
            value: Option<&[u8]>,
            flags: u64,
            gfp_kernel: bool,
        ) -> Option<Arc<BpfLocalStorageElem>> {
            if !kind_is(smap, $kind) {
                return None;
            }
            bpf_local_storage_get(rt, smap, owner, value, flags, gfp_kernel)
        }

        #[doc = concat!("`", stringify!($delete), "` (", $file, "): [`bpf_local_storage_delete`] on a map of this storage (-EINVAL for another). Profile flags: those of [`bpf_selem_free`].")]
        pub fn $delete(
            rt: &Arc<BpfRuntime>,
            smap: &BpfLocalStorageMap,
            owner: Option<&Arc<StorageOwner>>,
        ) -> KResult<()> {
            if !kind_is(smap, $kind) {
                return Err(Errno::EINVAL);
            }
            bpf_local_storage_delete(rt, smap, owner)
        }

        #[doc = concat!("`", stringify!($lookup_elem), "` (", $file, "), the key's fd resolved to `owner`: [`bpf_local_storage_lookup_elem`]. No profile flag changes it.")]
        pub fn $lookup_elem(
            rt: &BpfRuntime,
            smap: &BpfLocalStorageMap,
            owner: &StorageOwner,
        ) -> KResult<Arc<BpfLocalStorageElem>> {
            if !kind_is(smap, $kind) {
                return Err(Errno::EINVAL);
            }
            bpf_local_storage_lookup_elem(rt, smap, owner)
        }

        #[doc = concat!("`", stringify!($update_elem), "` (", $file, "), the key's fd resolved to `owner`: [`bpf_local_storage_update_elem`]. Profile flags: those of [`bpf_local_storage_update`].")]
        pub fn $update_elem(
            rt: &Arc<BpfRuntime>,
            smap: &BpfLocalStorageMap,
            owner: &Arc<StorageOwner>,
            value: &[u8],
            map_flags: u64,
        ) -> KResult<()> {
            if !kind_is(smap, $kind) {
                return Err(Errno::EINVAL);
            }
            bpf_local_storage_update_elem(rt, smap, owner, value, map_flags)
        }

        #[doc = concat!("`", stringify!($delete_elem), "` (", $file, "), the key's fd resolved to `owner`: [`bpf_local_storage_delete_elem`]. Profile flags: those of [`bpf_selem_free`].")]
        pub fn $delete_elem(
            rt: &Arc<BpfRuntime>,
            smap: &BpfLocalStorageMap,
            owner: &Arc<StorageOwner>,
        ) -> KResult<()> {
            if !kind_is(smap, $kind) {
                return Err(Errno::EINVAL);
            }
            bpf_local_storage_delete_elem(rt, smap, owner)
        }

        #[doc = concat!("`", stringify!($free), "` (", $file, "): the owner's end, [`bpf_local_storage_owner_free`] (nothing for an owner of another kind). Profile flags: those of [`bpf_selem_free`].")]
        pub fn $free(rt: &Arc<BpfRuntime>, owner: &Arc<StorageOwner>) {
            if owner.kind == $kind {
                bpf_local_storage_owner_free(rt, owner);
            }
        }
    };
}

storage_entry_points!(
    OwnerKind::Task,
    "kernel/bpf/bpf_task_storage.c",
    bpf_task_storage_get,
    bpf_task_storage_delete,
    bpf_pid_task_storage_lookup_elem,
    bpf_pid_task_storage_update_elem,
    bpf_pid_task_storage_delete_elem,
    bpf_task_storage_free
);
storage_entry_points!(
    OwnerKind::Cgroup,
    "kernel/bpf/bpf_cgrp_storage.c",
    bpf_cgrp_storage_get,
    bpf_cgrp_storage_delete,
    bpf_cgrp_storage_lookup_elem,
    bpf_cgrp_storage_update_elem,
    bpf_cgrp_storage_delete_elem,
    bpf_cgrp_storage_free
);
storage_entry_points!(
    OwnerKind::Sock,
    "net/core/bpf_sk_storage.c",
    bpf_sk_storage_get,
    bpf_sk_storage_delete,
    bpf_fd_sk_storage_lookup_elem,
    bpf_fd_sk_storage_update_elem,
    bpf_fd_sk_storage_delete_elem,
    bpf_sk_storage_free
);
storage_entry_points!(
    OwnerKind::Inode,
    "kernel/bpf/bpf_inode_storage.c",
    bpf_inode_storage_get,
    bpf_inode_storage_delete,
    bpf_fd_inode_storage_lookup_elem,
    bpf_fd_inode_storage_update_elem,
    bpf_fd_inode_storage_delete_elem,
    bpf_inode_storage_free
);
