//! `__uptr` pinning (profile flag `uptr`, v6.13+): a TASK_STORAGE value may hold a
//! pointer to user memory. A user-space `BPF_MAP_UPDATE_ELEM` pins the user page the
//! pointer names and stores its kernel address in the value (`bpf_obj_pin_uptrs`,
//! kernel/bpf/syscall.c); the new element takes the pinned addresses from the kernel's
//! copy of the value (`bpf_obj_swap_uptrs`, kernel/bpf/helpers.c, from
//! `bpf_selem_alloc`); the element's free unpins them (`bpf_obj_free_fields` ->
//! `unpin_uptr_kaddr`), and a failed update unpins what is still in its copy
//! (`bpf_obj_unpin_uptrs`).
//!
//! Source: modelled from the upstream series "bpf: Support __uptr type tag in task
//! local storage" (Martin KaFai Lau, v6.13) as recalled, not read from a local tree:
//! the offline tree is v6.12, which has no uptrs.
//!
//! The user pages are [`UserPages`] (`super::user_pages`), a table of the runtime: user page -> pin count,
//! with a model direct map (`page_address`, `virt_to_page`) so a stored kernel address
//! leads back to its page. Not modelled: `PageHighMem` (-EOPNOTSUPP on 32-bit
//! highmem; the model is 64-bit), `FOLL_WRITE` permission faults, the page's contents,
//! `mm` accounting of long-term pins.

use super::mem::Words;
use super::runtime::BpfRuntime;
use super::runtime::kptr_btf;
use crate::errno::{Errno, KResult};
use crate::record::{BtfFieldType as F, BtfRecord};
use crate::sync::Ordering;
use crate::trace::{Event, emit};

pub use super::user_pages::{PAGE_MASK, PAGE_OFFSET, PAGE_SIZE, USER_BASE, UserPages};

/// `unpin_uptr_kaddr` (kernel/bpf/syscall.c, v6.13+, profile flag `uptr`): unpins the
/// page of a uptr's kernel address; NULL is nothing. An unpin of a page without a pin
/// (a double unpin) WARNs, as the page refcount's underflow check does.
pub fn unpin_uptr_kaddr(rt: &BpfRuntime, kaddr: u64) {
    if kaddr == 0 {
        return;
    }
    emit(Event::Map {
        what: "unpin_uptr_kaddr",
    });
    if !rt.user_pages.unpin_user_page(kaddr) {
        rt.warn("unpin_uptr_kaddr: unpin of a page without a pin");
    }
}

/// `__bpf_obj_unpin_uptrs` (kernel/bpf/syscall.c): unpins the uptrs among the first
/// `cnt` fields of `rec` in `obj`.
fn __bpf_obj_unpin_uptrs(rt: &BpfRuntime, rec: &BtfRecord, cnt: usize, obj: &Words) {
    for f in rec.fields.iter().take(cnt) {
        if f.ty != F::UPTR {
            continue;
        }
        if let Some(s) = obj.slot(f.offset) {
            unpin_uptr_kaddr(rt, s.load(Ordering::Acquire));
        }
    }
}

/// `bpf_obj_unpin_uptrs` (kernel/bpf/syscall.c, v6.13+, profile flag `uptr`: without
/// it no record has a uptr and this does nothing): unpins every uptr of `obj` (the
/// kernel's copy of a value whose update failed). The slots keep their addresses, as
/// in the kernel (the copy is freed next).
pub fn bpf_obj_unpin_uptrs(rt: &BpfRuntime, rec: Option<&BtfRecord>, obj: &Words) {
    let Some(rec) = rec.filter(|r| r.has_field(F::UPTR)) else {
        return;
    };
    __bpf_obj_unpin_uptrs(rt, rec, rec.fields.len(), obj);
}

/// `bpf_obj_pin_uptrs` (kernel/bpf/syscall.c, v6.13+, profile flag `uptr`: without it
/// no record has a uptr and this does nothing), from `bpf_map_update_value` on the
/// kernel's copy `obj` of a user-space update's value: each non-NULL uptr's user
/// address is checked and its page pinned, and the slot rewritten to the kernel
/// address (`page_address(page) + offset_in_page(start)`). The pointee's size is its
/// BTF type's (`btf_type_by_id(kptr.btf, kptr.btf_id)->size`); a pointee that would
/// end past the address space is -EFAULT, one crossing a page boundary -EOPNOTSUPP, an
/// unmapped page -EFAULT (`pin_user_pages_fast`). On an error every uptr pinned before
/// it is unpinned (`unpin_all`) and nothing stays pinned.
pub fn bpf_obj_pin_uptrs(rt: &BpfRuntime, rec: Option<&BtfRecord>, obj: &Words) -> KResult<()> {
    let Some(rec) = rec.filter(|r| r.has_field(F::UPTR)) else {
        return Ok(());
    };
    for (i, f) in rec.fields.iter().enumerate() {
        if f.ty != F::UPTR {
            continue;
        }
        let Some(slot) = obj.slot(f.offset) else {
            continue;
        };
        let start = slot.load(Ordering::Acquire);
        if start == 0 {
            continue;
        }
        // t->size was checked for zero (and for more than a page) at map creation.
        let size = f
            .kptr
            .as_ref()
            .and_then(|k| {
                let btf = kptr_btf(rt, &k.btf)?;
                btf.data().type_by_id(k.btf_id).map(|t| t.size())
            })
            .unwrap_or(1)
            .max(1);
        let r = match start.checked_add(u64::from(size) - 1) {
            None => Err(Errno::EFAULT),
            Some(end) if start & PAGE_MASK != end & PAGE_MASK => Err(Errno::EOPNOTSUPP),
            Some(_) => rt.user_pages.pin_user_pages_fast(start),
        };
        match r {
            Ok(page) => {
                emit(Event::Map {
                    what: "bpf_obj_pin_uptrs: pin_user_pages_fast",
                });
                slot.store(page + (start & !PAGE_MASK), Ordering::Release);
            }
            Err(e) => {
                __bpf_obj_unpin_uptrs(rt, rec, i, obj);
                return Err(e);
            }
        }
    }
    Ok(())
}

/// `bpf_obj_swap_uptrs` (kernel/bpf/helpers.c, v6.13+, profile flag `uptr`: without it
/// no record has a uptr and this does nothing): swaps every uptr slot of `dst` and
/// `src`. `bpf_selem_alloc` calls it (when `bpf_local_storage_update` is asked to
/// `swap_uptrs`, from a user-space update) to move the pinned addresses of the value's
/// kernel copy into the new, zeroed element, leaving NULL in the copy.
pub fn bpf_obj_swap_uptrs(rec: Option<&BtfRecord>, dst: &Words, src: &Words) {
    let Some(rec) = rec.filter(|r| r.has_field(F::UPTR)) else {
        return;
    };
    for f in rec.fields.iter().filter(|f| f.ty == F::UPTR) {
        if let (Some(d), Some(s)) = (dst.slot(f.offset), src.slot(f.offset)) {
            let old_dst = d.load(Ordering::Acquire);
            let old_src = s.swap(old_dst, Ordering::AcqRel);
            d.store(old_src, Ordering::Release);
        }
    }
}
