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
//! The user pages are [`UserPages`], a table of the runtime: user page -> pin count,
//! with a model direct map (`page_address`, `virt_to_page`) so a stored kernel address
//! leads back to its page. Not modelled: `PageHighMem` (-EOPNOTSUPP on 32-bit
//! highmem; the model is 64-bit), `FOLL_WRITE` permission faults, the page's contents,
//! `mm` accounting of long-term pins.

use alloc::vec::Vec;

use super::helpers::kptr_btf;
use super::mem::Words;
use super::runtime::BpfRuntime;
use crate::errno::{Errno, KResult};
use crate::record::{BtfFieldType as F, BtfRecord};
use crate::sync::{Ordering, SpinLock};
use crate::trace::{Event, emit};

/// `PAGE_SIZE` (4 KiB pages).
pub const PAGE_SIZE: u64 = 4096;
/// `PAGE_MASK`.
pub const PAGE_MASK: u64 = !(PAGE_SIZE - 1);
/// Where the model's direct map starts (`PAGE_OFFSET`): page `pfn` of the table is at
/// `PAGE_OFFSET + pfn * PAGE_SIZE`.
pub const PAGE_OFFSET: u64 = 0xffff_8890_0000_0000;
/// Where the model's user mappings start.
pub const USER_BASE: u64 = 0x7f00_0000_0000;

/// One user page: its user address and long-term pins (`FOLL_PIN` count).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct UserPage {
    uaddr: u64,
    pins: u32,
}

/// The user pages of the model's one user process: mapped with [`mmap`](Self::mmap),
/// each a `struct page` (its index is the pfn) with a pin count.
pub struct UserPages {
    pages: SpinLock<Vec<UserPage>>,
}

impl Default for UserPages {
    fn default() -> Self {
        Self::new()
    }
}

impl UserPages {
    /// No user memory.
    pub fn new() -> UserPages {
        UserPages {
            pages: SpinLock::new(Vec::new()),
        }
    }

    /// Maps `npages` contiguous user pages (`mmap`); their user address. Successive
    /// mappings are contiguous too (no guard page): a value crossing from one into the
    /// next still crosses a page boundary.
    pub fn mmap(&self, npages: usize) -> u64 {
        let mut g = self.pages.lock();
        let base = USER_BASE + g.len() as u64 * PAGE_SIZE;
        for i in 0..npages as u64 {
            g.push(UserPage {
                uaddr: base + i * PAGE_SIZE,
                pins: 0,
            });
        }
        base
    }

    /// `pin_user_pages_fast(start, 1, FOLL_LONGTERM | FOLL_WRITE, &page)` (mm/gup.c)
    /// then `page_address(page)`: the kernel address of the page holding `start`, its
    /// pin count raised; -EFAULT for an address not mapped. No profile flag changes it.
    pub fn pin_user_pages_fast(&self, start: u64) -> KResult<u64> {
        let mut g = self.pages.lock();
        let page = start & PAGE_MASK;
        let (pfn, p) = g
            .iter_mut()
            .enumerate()
            .find(|(_, p)| p.uaddr == page)
            .ok_or(Errno::EFAULT)?;
        p.pins += 1;
        Ok(PAGE_OFFSET + pfn as u64 * PAGE_SIZE)
    }

    /// `unpin_user_page(virt_to_page(kaddr))` (mm/gup.c): drops one pin of the page
    /// `kaddr` is in; false (nothing changed) for an address outside the direct map or
    /// a page without a pin, the kernel's refcount underflow. No profile flag changes it.
    pub fn unpin_user_page(&self, kaddr: u64) -> bool {
        let Some(pfn) = kaddr.checked_sub(PAGE_OFFSET).map(|o| o / PAGE_SIZE) else {
            return false;
        };
        let mut g = self.pages.lock();
        match usize::try_from(pfn).ok().and_then(|i| g.get_mut(i)) {
            Some(p) if p.pins > 0 => {
                p.pins -= 1;
                true
            }
            _ => false,
        }
    }

    /// The user address behind a kernel address of the direct map (the inverse of
    /// `page_address(page) + offset_in_page(uaddr)`), if its page is mapped.
    pub fn user_addr_of(&self, kaddr: u64) -> Option<u64> {
        let off = kaddr.checked_sub(PAGE_OFFSET)?;
        let pfn = usize::try_from(off / PAGE_SIZE).ok()?;
        let g = self.pages.lock();
        g.get(pfn).map(|p| p.uaddr + off % PAGE_SIZE)
    }

    /// Pins on the page holding the user address `uaddr` (0 for an unmapped one).
    pub fn pin_count(&self, uaddr: u64) -> u32 {
        let page = uaddr & PAGE_MASK;
        self.pages
            .lock()
            .iter()
            .find(|p| p.uaddr == page)
            .map_or(0, |p| p.pins)
    }

    /// Every pinned page: its user address and pins.
    pub fn pinned(&self) -> Vec<(u64, u32)> {
        self.pages
            .lock()
            .iter()
            .filter(|p| p.pins > 0)
            .map(|p| (p.uaddr, p.pins))
            .collect()
    }
}

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
