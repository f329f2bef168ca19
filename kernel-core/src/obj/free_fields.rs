//! `bpf_obj_free_fields` (kernel/bpf/syscall.c) and what it calls for each field:
//! `bpf_timer_cancel_and_free`, `bpf_wq_cancel_and_free`, the kptr release, and the
//! graph-root drains `bpf_list_head_free`/`bpf_rb_root_free` (kernel/bpf/helpers.c),
//! and a uptr's unpin (`unpin_uptr_kaddr`, kernel/bpf/syscall.c, see [`super::uptr`]).
//!
//! This module and [`super::helpers`] use each other because the kernel's functions
//! recurse: `bpf_obj_free_fields` drops a local kptr's object or a graph root's nodes
//! with `__bpf_obj_drop_impl`, which frees that object's own fields with
//! `bpf_obj_free_fields`.

use alloc::vec::Vec;

use super::helpers::{__bpf_obj_drop_impl, bpf_spin_lock, bpf_spin_unlock, find_meta};
use super::mem::Words;
use super::runtime::{BpfRuntime, kptr_btf, unref_btf};
use super::uptr::unpin_uptr_kaddr;
use crate::record::{BtfField, BtfFieldType as F, BtfRecord, KptrDtor};
use crate::sync::Ordering;
use crate::trace::{Event, emit};

/// `bpf_timer_cancel_and_free` / `bpf_wq_cancel_and_free`: detaches the callback
/// object and frees it after a grace period.
#[inline(never)]
fn async_cancel_and_free(rt: &BpfRuntime, mem: &Words, off: u32) {
    let Some(slot) = mem.slot(off) else { return };
    let cb = slot.swap(0, Ordering::AcqRel);
    if cb != 0 {
        let ty = rt
            .mem
            .get(cb)
            .and_then(|_| rt.mem.info(cb))
            .map(|i| i.ty)
            .unwrap_or_default();
        emit(Event::Free {
            addr: cb,
            ty: &ty,
            rcu: true,
        });
        crate::obj::BpfMemAlloc::free_rcu(&rt.mem, cb);
    }
}

fn release_kptr(rt: &BpfRuntime, f: &BtfField, mem: &Words) {
    let Some(k) = &f.kptr else { return };
    let Some(slot) = mem.slot(f.offset) else {
        return;
    };
    let old = slot.swap(0, Ordering::AcqRel);
    emit(Event::Xchg {
        off: f.offset,
        old,
        new: 0,
    });
    if old == 0 && rt.sem.free_fields_null_check {
        return;
    }
    let Some(btf) = kptr_btf(rt, &k.btf) else {
        return;
    };
    if !btf.is_kernel() {
        let looked_up;
        let meta = match &k.pointee_meta {
            Some(m) => Some(m),
            None => {
                looked_up = find_meta(btf, k.btf_id);
                looked_up.as_ref()
            }
        };
        if meta.is_none() && rt.sem.warn_missing_pointee_meta {
            rt.warn("bpf_obj_free_fields: local kptr pointee without struct meta");
        }
        // 9e36a204bd43 (v6.4) to v6.12 disable migration here; v6.18's callers have.
        let wrap = rt.sem.free_fields_migrate_disable && !rt.sem.map_free_migrate_disable;
        if wrap {
            rt.migrate_disable_at("bpf_obj_free_fields");
        }
        __bpf_obj_drop_impl(rt, old, meta.and_then(|m| m.rec()), f.ty == F::KPTR_PERCPU);
        if wrap {
            rt.migrate_enable_at("bpf_obj_free_fields");
        }
    } else if let KptrDtor::Kfunc { name, .. } = &k.dtor {
        rt.kernel_dtor(name, old);
    }
}

/// Whether freeing the fields of a value of `rec` WARNs (so closing a map with such
/// values WARNs): `bpf_obj_free_fields` skips a graph root with
/// `WARN_ON_ONCE(rec->spin_lock_off < 0)` (kernel/bpf/syscall.c), and a record whose
/// list or rb root is guarded only by a `bpf_res_spin_lock` (v6.15+, profile flag
/// `res_spin_lock`) has no `spin_lock_off`. The check `graph_root_free` makes.
pub fn graph_root_free_warns(rec: &BtfRecord) -> bool {
    rec.has_field(F::GRAPH_ROOT) && rec.spin_lock_off < 0
}

/// `bpf_list_head_free` / `bpf_rb_root_free`: detaches every node under the value's
/// lock, then drops the objects outside it with the contained type's record. Profile
/// flag `map_free_migrate_disable`: up to v6.12 each drop is wrapped in
/// `migrate_disable`/`migrate_enable` here; v6.18's callers have disabled it.
#[inline(never)]
fn graph_root_free(rt: &BpfRuntime, rec: &BtfRecord, f: &BtfField, mem: &Words) {
    let Some(g) = &f.graph_root else { return };
    if graph_root_free_warns(rec) {
        rt.warn("bpf_obj_free_fields: graph root without spin lock");
        return;
    }
    let lock = rec.spin_lock_off as u32;
    let Some(head) = mem.slot(f.offset) else {
        return;
    };
    bpf_spin_lock(mem, lock);
    let id = head.swap(0, Ordering::AcqRel);
    let nodes: Vec<u64> = if id == 0 {
        Vec::new()
    } else {
        rt.lists.lock().remove(&id).unwrap_or_default()
    };
    bpf_spin_unlock(mem, lock);
    if nodes.is_empty() {
        return;
    }
    // value_rec: the contained type's record in the BTF the root was parsed from.
    let Some(b) = unref_btf(rt, g.btf_ptr) else {
        return;
    };
    let meta = find_meta(b, g.value_btf_id);
    let wrap = !rt.sem.map_free_migrate_disable;
    let site = if f.ty == F::RB_ROOT {
        "bpf_rb_root_free"
    } else {
        "bpf_list_head_free"
    };
    for obj in nodes {
        if wrap {
            rt.migrate_disable_at(site);
        }
        __bpf_obj_drop_impl(rt, obj, meta.as_ref().and_then(|m| m.rec()), false);
        if wrap {
            rt.migrate_enable_at(site);
        }
    }
}

/// The types the kernel's switch in `bpf_obj_free_fields` passes over.
const NOTHING: u32 =
    F::SPIN_LOCK.0 | F::RES_SPIN_LOCK.0 | F::LIST_NODE.0 | F::RB_NODE.0 | F::REFCOUNT.0;

/// `bpf_obj_free_fields` (kernel/bpf/syscall.c): releases every special field of the
/// value or object `mem` per `rec`; running it twice releases nothing the second time
/// (each slot is cleared as it is released; the kernel leaves a uptr's slot as it
/// was). A uptr's page is unpinned (`unpin_uptr_kaddr`, v6.13+: only profiles with
/// `uptr` have uptr fields). Profile flags: `free_fields_null_check` (c8e18754 releases NULL too),
/// `free_fields_migrate_disable` and `map_free_migrate_disable` (who disables
/// migration around a local kptr's drop), `warn_missing_pointee_meta`, and those of
/// `__bpf_obj_drop_impl`.
#[inline]
pub fn bpf_obj_free_fields(rt: &BpfRuntime, rec: &BtfRecord, mem: &Words) {
    if rec.field_mask.0 & !NOTHING != 0 {
        free_each_field(rt, rec, mem);
    }
}

/// The loop of `bpf_obj_free_fields` over a record with a field to release.
fn free_each_field(rt: &BpfRuntime, rec: &BtfRecord, mem: &Words) {
    for f in &rec.fields {
        if f.ty == F::KPTR_REF {
            // The common field first: a referenced kptr.
            release_kptr(rt, f, mem);
            continue;
        }
        if f.ty.0 & NOTHING != 0 && f.ty.0.is_power_of_two() {
            continue;
        }
        match f.ty {
            F::TIMER | F::WORKQUEUE | F::TASK_WORK => async_cancel_and_free(rt, mem, f.offset),
            F::KPTR_UNREF => {
                if let Some(s) = mem.slot(f.offset) {
                    s.store(0, Ordering::Release);
                }
            }
            F::KPTR_REF | F::KPTR_PERCPU => release_kptr(rt, f, mem),
            F::UPTR => {
                // The caller ensured no one uses the uptr any more: unpin its page.
                if let Some(s) = mem.slot(f.offset) {
                    unpin_uptr_kaddr(rt, s.swap(0, Ordering::AcqRel));
                }
            }
            F::LIST_HEAD | F::RB_ROOT => graph_root_free(rt, rec, f, mem),
            _ => rt.warn("bpf_obj_free_fields: unknown field type"),
        }
    }
}

/// `bpf_obj_free_fields(rec, NULL)`: what c8e18754's `__bpf_obj_drop_impl(NULL, rec)`
/// does with the record of an empty slot's pointee (profile flag
/// `free_fields_null_check` off). Fields the switch passes over (spin locks, graph
/// nodes, refcounts) touch nothing; every other release reads or writes
/// `NULL + offset` first (a timer's or kptr's slot; a graph root's drain takes the
/// value's lock at `NULL + spin_lock_off` before anything else). The first such field
/// is a NULL pointer dereference, an oops that ends the teardown: it is recorded as
/// [`MemFault::NullDeref`](super::MemFault::NullDeref) and nothing after it runs.
pub(crate) fn bpf_obj_free_fields_null(rt: &BpfRuntime, rec: &BtfRecord) {
    for f in &rec.fields {
        if f.ty.0 & NOTHING != 0 && f.ty.0.is_power_of_two() {
            continue;
        }
        let (addr, site) = match f.ty {
            F::TIMER => (f.offset, "bpf_timer_cancel_and_free"),
            F::WORKQUEUE => (f.offset, "bpf_wq_cancel_and_free"),
            F::TASK_WORK => (f.offset, "bpf_task_work_cancel_and_free"),
            F::KPTR_UNREF | F::KPTR_REF | F::KPTR_PERCPU | F::UPTR => {
                (f.offset, "bpf_obj_free_fields")
            }
            F::LIST_HEAD | F::RB_ROOT => {
                if graph_root_free_warns(rec) {
                    rt.warn("bpf_obj_free_fields: graph root without spin lock");
                    continue;
                }
                let site = if f.ty == F::LIST_HEAD {
                    "bpf_list_head_free"
                } else {
                    "bpf_rb_root_free"
                };
                (rec.spin_lock_off as u32, site)
            }
            _ => {
                rt.warn("bpf_obj_free_fields: unknown field type");
                continue;
            }
        };
        rt.mem.null_deref(addr as u64, site);
        return;
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::btf::{BtfIdr, KernelBtfs};
    use crate::obj::MemFault;
    use crate::sync::{Arc, Rcu};
    use alloc::vec::Vec;

    /// `bpf_obj_free_fields(rec, NULL)` over a spin lock at 0, a refcount at 4, `ty` at
    /// 8 and a timer at 32: the first field that releases anything dereferences
    /// `NULL + 8` in `site`, and nothing after it runs. Only c8e18754 drops NULL, and its
    /// struct metas hold locks, graph roots, nodes and refcounts alone, so the other
    /// arms are the kernel's switch as written, reached by no profile.
    #[test]
    fn a_null_objects_first_releasing_field_is_the_null_dereference() {
        let field = |ty: F, offset: u32| BtfField {
            offset,
            size: 8,
            ty,
            kptr: None,
            graph_root: None,
        };
        for (ty, site) in [
            (F::TIMER, "bpf_timer_cancel_and_free"),
            (F::WORKQUEUE, "bpf_wq_cancel_and_free"),
            (F::TASK_WORK, "bpf_task_work_cancel_and_free"),
            (F::KPTR_UNREF, "bpf_obj_free_fields"),
            (F::KPTR_REF, "bpf_obj_free_fields"),
            (F::KPTR_PERCPU, "bpf_obj_free_fields"),
            (F::UPTR, "bpf_obj_free_fields"),
        ] {
            let rcu = Arc::new(Rcu::new());
            let k = Arc::new(KernelBtfs::new(BtfIdr::new(Arc::clone(&rcu)), None).expect("kernel"));
            let rt = BpfRuntime::new(crate::Semantics::C8E18754, k, rcu);
            let fields: Vec<BtfField> = [
                field(F::SPIN_LOCK, 0),
                field(F::REFCOUNT, 4),
                field(ty, 8),
                field(F::TIMER, 32),
            ]
            .into_iter()
            .collect();
            let rec = BtfRecord {
                field_mask: F::SPIN_LOCK.or(F::REFCOUNT).or(ty).or(F::TIMER),
                spin_lock_off: 0,
                res_spin_lock_off: -22,
                timer_off: 32,
                wq_off: -22,
                refcount_off: 4,
                task_work_off: -22,
                fields,
            };
            bpf_obj_free_fields_null(&rt, &rec);
            assert_eq!(
                rt.mem.faults(),
                [MemFault::NullDeref(8, site.into())],
                "{}",
                ty.name()
            );
            assert!(rt.warnings().is_empty(), "{}", ty.name());
        }
    }
}
