//! The model's one user process's memory (mm/gup.c as `__uptr` pinning uses it): pages
//! mapped by [`UserPages::mmap`], each with its long-term pin count
//! (`pin_user_pages_fast`, `unpin_user_page`), and a direct map (`page_address`,
//! `virt_to_page`) that leads a kernel address back to its page.

use alloc::vec::Vec;

use crate::errno::{Errno, KResult};
use crate::sync::SpinLock;

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

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn mappings_are_contiguous_and_a_page_without_a_pin_is_not_unpinned() {
        let up = UserPages::new();
        let a = up.mmap(2);
        let b = up.mmap(1);
        assert_eq!(a, USER_BASE);
        assert_eq!(b, a + 2 * PAGE_SIZE, "the next mapping follows the first");
        let k = up.pin_user_pages_fast(b + 8).expect("mapped");
        assert_eq!(up.user_addr_of(k + 8), Some(b + 8));
        assert_eq!(up.pin_count(b), 1);
        assert!(up.unpin_user_page(k));
        assert_eq!(up.pin_count(b), 0);
        assert!(
            !up.unpin_user_page(k),
            "no pin left: the kernel's underflow"
        );
        assert_eq!(up.pin_count(b), 0);
        assert_eq!(up.pin_user_pages_fast(b + PAGE_SIZE), Err(Errno::EFAULT));
    }
}
