//! The object helpers of kernel/bpf/helpers.c: `bpf_obj_new_impl`, `bpf_obj_init`,
//! `__bpf_obj_drop_impl`, `bpf_obj_drop_impl`, `bpf_percpu_obj_new_impl`,
//! `bpf_percpu_obj_drop_impl`, `bpf_refcount_acquire_impl`, `bpf_kptr_xchg`, the list
//! and rbtree insertions with the node owner claim, `bpf_timer_init`.
//!
//! `__bpf_obj_drop_impl` and [`super::free_fields`]'s `bpf_obj_free_fields` call each
//! other, as in the kernel (an object's fields may hold objects): the one cycle
//! between the `obj` modules.

use alloc::format;

use super::free_fields::bpf_obj_free_fields;
use super::mem::Words;
use super::runtime::BpfRuntime;
use crate::btf::BtfRef;
use crate::errno::{Errno, KResult};
use crate::record::{BtfFieldType as F, BtfRecord};
use crate::sync::Ordering;
use crate::sync::refcount::REFCOUNT_SATURATED;
use crate::trace::{Event, emit};

pub use crate::record::field::{MetaRec, find_meta};

/// `bpf_obj_init`: zeroes the special fields of a new object, sets a refcount to 1.
pub fn bpf_obj_init(rec: Option<&BtfRecord>, mem: &Words) {
    let Some(rec) = rec else { return };
    for f in &rec.fields {
        mem.zero(f.offset, f.size);
        if f.ty == F::REFCOUNT {
            let _ = mem.cas_u32(f.offset, 0, 1);
        }
    }
}

/// `bpf_obj_new_impl`: a zeroed object of program type `type_id` from
/// `bpf_global_ma`, its special fields initialised; `None` when the allocator fails.
pub fn bpf_obj_new_impl(rt: &BpfRuntime, btf: &BtfRef, type_id: u32) -> Option<u64> {
    let t = btf.data().type_by_id(type_id)?;
    let name = btf.data().name_by_offset(t.name_off());
    let addr = rt.mem.alloc(name, t.size(), false)?;
    emit(Event::Alloc {
        addr,
        ty: name,
        size: t.size(),
    });
    let meta = find_meta(btf, type_id);
    if let Some(o) = rt.mem.get(addr) {
        bpf_obj_init(meta.as_ref().and_then(|m| m.rec()), &o.mem);
    }
    Some(addr)
}

/// `bpf_percpu_obj_new_impl`: from `bpf_global_percpu_ma` (v6.6).
pub fn bpf_percpu_obj_new_impl(rt: &BpfRuntime, btf: &BtfRef, type_id: u32) -> Option<u64> {
    let t = btf.data().type_by_id(type_id)?;
    let name = btf.data().name_by_offset(t.name_off());
    let addr = rt.mem.alloc(name, t.size(), true)?;
    emit(Event::Alloc {
        addr,
        ty: name,
        size: t.size(),
    });
    Some(addr)
}

/// Frees an object's memory (`bpf_mem_free_rcu`, or `bpf_mem_free` before v6.6). The
/// BPF allocator frees to this CPU's cache, so the task must not migrate: the free
/// checks the calling task's own migrate-disable count (`current->migration_disabled`)
/// itself, whoever disabled it, and WARNs when it is zero. No argument can vouch for
/// it.
fn free_obj(rt: &BpfRuntime, addr: u64) {
    rt.check_migrate("bpf_mem_free without migrate_disable");
    let rcu = rt.sem.obj_drop_free_rcu;
    if crate::trace::enabled() {
        let ty = rt.mem.info(addr).map(|i| i.ty).unwrap_or_default();
        emit(Event::Free { addr, ty: &ty, rcu });
    }
    if rcu {
        crate::obj::BpfMemAlloc::free_rcu(&rt.mem, addr);
    } else {
        rt.mem.free(addr);
    }
}

/// `__bpf_obj_drop_impl` (kernel/bpf/helpers.c): the refcount gate (return if not the
/// last reference, v6.4+), the object's own special fields (`bpf_obj_free_fields`),
/// then the memory (`bpf_mem_free_rcu` since v6.6, `bpf_mem_free` before) to the
/// allocator `percpu` names; an object of the other allocator is a wild free. A NULL
/// object (only c8e18754 passes one) still has its record's fields released:
/// `bpf_obj_free_fields(rec, NULL)`. Profile flags: `obj_drop_free_rcu`, `refcount`.
pub fn __bpf_obj_drop_impl(rt: &BpfRuntime, addr: u64, rec: Option<&BtfRecord>, percpu: bool) {
    emit(Event::ObjDrop { addr });
    if addr == 0 {
        // c8e18754 reaches here with NULL: bpf_obj_free_fields(rec, NULL), then
        // bpf_mem_free(NULL), which returns at once.
        if let Some(r) = rec {
            super::free_fields::bpf_obj_free_fields_null(rt, r);
        }
        return;
    }
    let Some(obj) = rt.mem.get(addr) else {
        return;
    };
    if let Some(r) = rec
        && r.refcount_off >= 0
    {
        let off = r.refcount_off as u32;
        let now = refcount_dec(rt, &obj.mem, off);
        if crate::trace::enabled() {
            let ty = rt.mem.info(addr).map(|i| i.ty).unwrap_or_default();
            let what = format!("refcount {ty}");
            emit(Event::Ref {
                what: &what,
                addr,
                now,
            });
        }
        if now != 0 {
            return;
        }
    }
    if let Some(r) = rec {
        bpf_obj_free_fields(rt, r, &obj.mem);
    }
    if obj.percpu() != percpu {
        // bpf_mem_free_rcu(percpu ? &bpf_global_percpu_ma : &bpf_global_ma, p) with
        // the other allocator's object.
        rt.mem.wrong_allocator(addr);
        return;
    }
    free_obj(rt, addr);
}

/// Saturates a `bpf_refcount` inside an object (`refcount_warn_saturate`, lib/refcount.c:
/// a WARN and `refcount_set(r, REFCOUNT_SATURATED)`, one store; the model's store is a
/// read-modify-write of the 8-byte word, which keeps the word's other half).
fn refcount_saturate(rt: &BpfRuntime, mem: &Words, off: u32, msg: &'static str) {
    rt.warn(msg);
    let _ = mem.update_u32(off, |_| Some(REFCOUNT_SATURATED as u32));
}

/// `refcount_dec_and_test` on a `bpf_refcount` inside an object; the count after (an
/// underflow WARNs and saturates, so the object is never freed).
fn refcount_dec(rt: &BpfRuntime, mem: &Words, off: u32) -> i32 {
    match mem.update_u32(off, |cur| (cur as i32 > 0).then(|| cur - 1)) {
        Ok(old) => old as i32 - 1,
        Err(_) => {
            refcount_saturate(rt, mem, off, "refcount_t: underflow; use-after-free.");
            REFCOUNT_SATURATED
        }
    }
}

/// `bpf_obj_drop_impl` (the kfunc): drops a local object with its type's record.
pub fn bpf_obj_drop_impl(rt: &BpfRuntime, btf: &BtfRef, type_id: u32, addr: u64) {
    let meta = find_meta(btf, type_id);
    __bpf_obj_drop_impl(rt, addr, meta.as_ref().and_then(|m| m.rec()), false);
}

/// `bpf_percpu_obj_drop_impl`.
pub fn bpf_percpu_obj_drop_impl(rt: &BpfRuntime, addr: u64) {
    __bpf_obj_drop_impl(rt, addr, None, true);
}

/// `bpf_refcount_acquire_impl`: another owning reference to a refcounted object.
/// v6.6+: `refcount_inc_not_zero`, NULL when the object is already dying; v6.4:
/// `refcount_inc` (WARN and saturate from zero). Profile flag
/// `refcount_acquire_not_zero`.
pub fn bpf_refcount_acquire_impl(
    rt: &BpfRuntime,
    addr: u64,
    rec: Option<&BtfRecord>,
) -> Option<u64> {
    let off = rec.filter(|r| r.refcount_off >= 0)?.refcount_off as u32;
    let obj = rt.mem.get(addr)?;
    loop {
        let cur = obj.mem.load_u32(off) as i32;
        if cur == 0 {
            if rt.sem.refcount_acquire_not_zero {
                return None;
            }
            refcount_saturate(
                rt,
                &obj.mem,
                off,
                "refcount_t: addition on 0; use-after-free.",
            );
            return Some(addr);
        }
        if cur < 0 || cur == i32::MAX {
            refcount_saturate(rt, &obj.mem, off, "refcount_t: saturated; leaking memory.");
            return Some(addr);
        }
        if obj.mem.cas_u32(off, cur as u32, (cur + 1) as u32).is_ok() {
            if crate::trace::enabled() {
                let ty = rt.mem.info(addr).map(|i| i.ty).unwrap_or_default();
                let what = format!("refcount {ty}");
                emit(Event::Ref {
                    what: &what,
                    addr,
                    now: cur + 1,
                });
            }
            return Some(addr);
        }
    }
}

/// `bpf_kptr_xchg`: atomically exchanges the slot at `off` of `mem` with `new`.
pub fn bpf_kptr_xchg(mem: &Words, off: u32, new: u64) -> KResult<u64> {
    let slot = mem.slot(off).ok_or(Errno::EINVAL)?;
    let old = slot.swap(new, Ordering::AcqRel);
    emit(Event::Xchg { off, old, new });
    Ok(old)
}

/// `bpf_spin_lock` (kernel/bpf/helpers.c, `__bpf_spin_lock`: `arch_spin_lock`, whose
/// qspinlock fast path is a compare-and-exchange with acquire ordering,
/// `atomic_try_cmpxchg_acquire`) on the 4-byte lock word at `off` of a value. The lock
/// word shares its 8-byte [`Word`](crate::sync::Word) with what follows it, so the
/// model takes the lock with a test-and-set of its bit (`fetch_or`, acquire): a
/// read-modify-write always reads the word's latest value, so a waiter spins on what
/// the holder last wrote. The data the lock guards is read and written plainly, and
/// loom reports a race on it if the lock does not order the critical sections. A lock
/// word outside the value WARNs instead of spinning forever.
pub fn bpf_spin_lock(mem: &Words, off: u32) {
    let Some((w, sh)) = mem.u32_at(off) else {
        crate::sync::warn::warn("bpf_spin_lock: lock outside the value");
        return;
    };
    let mask = 0xffff_ffffu64 << sh;
    while w.fetch_or(1 << sh, Ordering::Acquire) & mask != 0 {
        crate::sync::cpu_relax();
    }
}

/// `bpf_spin_unlock` (`__bpf_spin_unlock`: `arch_spin_unlock`, a store with release
/// ordering, `smp_store_release` in qspinlock): clears the lock word with release
/// ordering, the word's other bytes kept. Unlocking a lock that is not held WARNs and
/// changes nothing.
pub fn bpf_spin_unlock(mem: &Words, off: u32) {
    let Some((w, sh)) = mem.u32_at(off) else {
        crate::sync::warn::warn("bpf_spin_unlock: lock outside the value");
        return;
    };
    let mask = 0xffff_ffffu64 << sh;
    let unlocked = w.fetch_update(Ordering::Release, Ordering::Relaxed, |cur| {
        (cur & mask == 1 << sh).then_some(cur & !mask)
    });
    if unlocked.is_err() {
        crate::sync::warn::warn("bpf_spin_unlock of an unlocked lock");
    }
}

/// `__bpf_list_add` / `__bpf_rbtree_add`: pushes object `obj` (its node at
/// `node_off`) onto the graph root at `root_off` of `value` (whose lock the caller
/// holds). The node's owner is claimed with a compare-and-exchange; a node already
/// owned is dropped and -EINVAL returned.
pub fn bpf_graph_push(
    rt: &BpfRuntime,
    value: &Words,
    root_off: u32,
    obj: u64,
    node_off: u32,
    node_ty: F,
    rec: Option<&BtfRecord>,
) -> KResult<()> {
    let o = rt.mem.get(obj).ok_or(Errno::EINVAL)?;
    let owner_off = node_off + if node_ty == F::RB_NODE { 24 } else { 16 };
    let owner = o.mem.slot(owner_off).ok_or(Errno::EINVAL)?;
    // The verifier guarantees the root; a model caller's bad offset is refused before
    // the node is claimed, so the object stays the caller's.
    let head = value.slot(root_off).ok_or(Errno::EINVAL)?;
    // BPF_PTR_POISON while inserting.
    if owner
        .compare_exchange(0, 0xeb9f_eb9f, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        __bpf_obj_drop_impl(rt, obj, rec, false);
        return Err(Errno::EINVAL);
    }
    let mut id = head.load(Ordering::Acquire);
    if id == 0 {
        id = rt.new_list();
        head.store(id, Ordering::Release);
    }
    if let Some(l) = rt.lists.lock().get_mut(&id) {
        l.push(obj);
    }
    owner.store(id, Ordering::Release);
    Ok(())
}

/// `bpf_timer_init` (and `bpf_wq_init`, `bpf_task_work` setup): allocates the async
/// callback object for the field at `off` of `value`; -EBUSY if one exists.
pub fn bpf_timer_init(rt: &BpfRuntime, value: &Words, off: u32, kind: &str) -> KResult<()> {
    let slot = value.slot(off).ok_or(Errno::EINVAL)?;
    let cb = rt.mem.alloc(kind, 64, false).ok_or(Errno::ENOMEM)?;
    emit(Event::Alloc {
        addr: cb,
        ty: kind,
        size: 64,
    });
    if slot
        .compare_exchange(0, cb, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        rt.mem.free(cb);
        return Err(Errno::EBUSY);
    }
    Ok(())
}
