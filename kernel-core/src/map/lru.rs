//! The LRU of LRU hash maps (kernel/bpf/bpf_lru_list.c): every preallocated element
//! is a node on one list at a time, with a reference bit that a program's lookup sets.
//!
//! The common LRU (the default) keeps one global list set (active, inactive, free) and
//! per CPU a local free and a local pending list; a CPU takes `target_free` free nodes
//! at once, and a shrink evicts unreferenced inactive nodes, or one node regardless of
//! its bit when none qualifies (`__bpf_lru_list_shrink`). `BPF_F_NO_COMMON_LRU` gives
//! each CPU its own list set and an equal share of the nodes. Eviction is a second
//! chance scheme, not strict LRU order.
//!
//! What the model changes: the lists are index links over the map's elements (no
//! pointers), the `del_from_htab` callback is a closure, and the locks are the caller's
//! (the map's). Every operation names its CPU; the map model runs everything on CPU 0
//! of [`NR_CPUS`](super::runtime::NR_CPUS) possible CPUs, so the other CPUs' local lists
//! stay empty and are only visited by the steal loop.

use alloc::vec::Vec;

/// `LOCAL_FREE_TARGET`: free nodes a CPU takes from the global list at once.
pub const LOCAL_FREE_TARGET: u32 = 128;
/// `LOCAL_NR_SCANS`.
const LOCAL_NR_SCANS: u32 = LOCAL_FREE_TARGET;
/// `PERCPU_FREE_TARGET`: nodes a per-CPU list frees in one shrink.
const PERCPU_FREE_TARGET: u32 = 4;
/// `PERCPU_NR_SCANS`.
const PERCPU_NR_SCANS: u32 = PERCPU_FREE_TARGET;

/// `enum bpf_lru_list_type`: the global lists, then the local ones.
const T_ACTIVE: u8 = 0;
const T_INACTIVE: u8 = 1;
const T_FREE: u8 = 2;
const T_LOCAL_FREE: u8 = 3;
const T_LOCAL_PENDING: u8 = 4;
/// Not on any list (popped, not yet pending).
const T_NONE: u8 = 0xff;

fn is_local(t: u8) -> bool {
    t == T_LOCAL_FREE || t == T_LOCAL_PENDING
}

/// `struct bpf_lru_node` and the `list_head` it links with; list heads are links too.
#[derive(Clone, Copy, Debug)]
struct Link {
    prev: usize,
    next: usize,
    cpu: u16,
    ty: u8,
    referenced: bool,
}

/// `struct bpf_lru_list`: its three list heads (link indexes), the active and inactive
/// counts, and where the next inactive rotation starts.
#[derive(Clone, Copy, Debug)]
struct LruList {
    heads: [usize; 3],
    counts: [u32; 2],
    next_inactive_rotation: usize,
}

/// `struct bpf_lru_locallist`: a CPU's free and pending list heads, and the CPU it
/// steals from next.
#[derive(Clone, Copy, Debug)]
struct LocalList {
    free: usize,
    pending: usize,
    next_steal: usize,
}

/// `struct bpf_lru`.
pub struct BpfLru {
    links: Vec<Link>,
    /// One list set for the common LRU, one per CPU with `percpu`.
    lists: Vec<LruList>,
    /// The common LRU's per-CPU local lists.
    local: Vec<LocalList>,
    percpu: bool,
    target_free: u32,
    nr_scans: u32,
}

impl BpfLru {
    /// `bpf_lru_init` and `bpf_lru_populate`: `nr_elems` nodes (the map's elements,
    /// node `i` is element `i`) on the free list(s) of `nr_cpus` CPUs. Profile flag
    /// `lru_free_target_clamped` (`clamped`) sets the common LRU's `target_free`.
    pub fn bpf_lru_init(nr_elems: usize, nr_cpus: usize, percpu: bool, clamped: bool) -> BpfLru {
        let nr_cpus = nr_cpus.max(1);
        let mut links = Vec::with_capacity(nr_elems + 5 * nr_cpus);
        let unlinked = Link {
            prev: 0,
            next: 0,
            cpu: 0,
            ty: T_NONE,
            referenced: false,
        };
        links.resize(nr_elems, unlinked);
        let head = |links: &mut Vec<Link>| {
            let at = links.len();
            links.push(Link {
                prev: at,
                next: at,
                ..unlinked
            });
            at
        };
        let new_list = |links: &mut Vec<Link>| {
            let heads = [head(links), head(links), head(links)];
            LruList {
                heads,
                counts: [0; 2],
                next_inactive_rotation: heads[T_INACTIVE as usize],
            }
        };
        let (lists, local) = if percpu {
            let lists = (0..nr_cpus).map(|_| new_list(&mut links)).collect();
            (lists, Vec::new())
        } else {
            let lists = alloc::vec![new_list(&mut links)];
            let local = (0..nr_cpus)
                .map(|cpu| LocalList {
                    free: head(&mut links),
                    pending: head(&mut links),
                    next_steal: cpu,
                })
                .collect();
            (lists, local)
        };
        let mut lru = BpfLru {
            links,
            lists,
            local,
            percpu,
            target_free: LOCAL_FREE_TARGET,
            nr_scans: if percpu {
                PERCPU_NR_SCANS
            } else {
                LOCAL_NR_SCANS
            },
        };
        if percpu {
            // bpf_percpu_lru_populate: an equal share per CPU, in order.
            let per_cpu = (nr_elems / nr_cpus).max(1);
            for i in 0..nr_elems {
                let cpu = (i / per_cpu).min(nr_cpus - 1);
                let free = lru.lists[cpu].heads[T_FREE as usize];
                lru.links[i].cpu = cpu as u16;
                lru.links[i].ty = T_FREE;
                lru.list_add(i, free);
            }
        } else {
            // bpf_common_lru_populate.
            let free = lru.lists[0].heads[T_FREE as usize];
            for i in 0..nr_elems {
                lru.links[i].ty = T_FREE;
                lru.list_add(i, free);
            }
            if clamped {
                let t = (nr_elems / nr_cpus / 2) as u32;
                lru.target_free = t.clamp(1, LOCAL_FREE_TARGET);
            }
        }
        lru
    }

    /// `lru->target_free`.
    pub fn target_free(&self) -> u32 {
        self.target_free
    }

    fn list_add(&mut self, n: usize, head: usize) {
        let next = self.links[head].next;
        self.links[n].prev = head;
        self.links[n].next = next;
        self.links[next].prev = n;
        self.links[head].next = n;
    }

    fn list_del(&mut self, n: usize) {
        let Link { prev, next, .. } = self.links[n];
        self.links[prev].next = next;
        self.links[next].prev = prev;
        self.links[n].prev = n;
        self.links[n].next = n;
    }

    fn list_move(&mut self, n: usize, head: usize) {
        self.list_del(n);
        self.list_add(n, head);
    }

    fn first(&self, head: usize) -> Option<usize> {
        let n = self.links[head].next;
        (n != head).then_some(n)
    }

    /// The nodes of the list at `head`, from the tail (oldest) to the head.
    fn tail_first(&self, head: usize) -> Vec<usize> {
        let mut out = Vec::new();
        let mut n = self.links[head].prev;
        while n != head {
            out.push(n);
            n = self.links[n].prev;
        }
        out
    }

    /// `bpf_lru_node_set_ref`: a program's lookup of the element.
    pub fn bpf_lru_node_set_ref(&mut self, node: usize) {
        if let Some(l) = self.links.get_mut(node) {
            l.referenced = true;
        }
    }

    fn count_inc(&mut self, l: usize, t: u8) {
        if let Some(c) = self.lists[l].counts.get_mut(t as usize) {
            *c += 1;
        }
    }

    fn count_dec(&mut self, l: usize, t: u8) {
        if let Some(c) = self.lists[l].counts.get_mut(t as usize) {
            *c = c.saturating_sub(1);
        }
    }

    /// `__bpf_lru_node_move_to_free`.
    fn move_to_free(&mut self, l: usize, n: usize, free: usize, tgt: u8) {
        if is_local(self.links[n].ty) {
            crate::sync::warn::warn("__bpf_lru_node_move_to_free: a local node");
            return;
        }
        if self.lists[l].next_inactive_rotation == n {
            self.lists[l].next_inactive_rotation = self.links[n].prev;
        }
        self.count_dec(l, self.links[n].ty);
        self.links[n].ty = tgt;
        self.list_move(n, free);
    }

    /// `__bpf_lru_node_move_in`: from a local list onto the global one.
    fn move_in(&mut self, l: usize, n: usize, tgt: u8) {
        if !is_local(self.links[n].ty) || is_local(tgt) {
            crate::sync::warn::warn("__bpf_lru_node_move_in: not a local node");
            return;
        }
        self.count_inc(l, tgt);
        self.links[n].ty = tgt;
        self.links[n].referenced = false;
        let head = self.lists[l].heads[tgt as usize];
        self.list_move(n, head);
    }

    /// `__bpf_lru_node_move`: between or within the global lists; clears the bit.
    fn node_move(&mut self, l: usize, n: usize, tgt: u8) {
        let ty = self.links[n].ty;
        if is_local(ty) || is_local(tgt) {
            crate::sync::warn::warn("__bpf_lru_node_move: a local node");
            return;
        }
        if ty != tgt {
            self.count_dec(l, ty);
            self.count_inc(l, tgt);
            self.links[n].ty = tgt;
        }
        self.links[n].referenced = false;
        if self.lists[l].next_inactive_rotation == n {
            self.lists[l].next_inactive_rotation = self.links[n].prev;
        }
        let head = self.lists[l].heads[tgt as usize];
        self.list_move(n, head);
    }

    /// `__bpf_lru_list_rotate_active`: from the tail, referenced nodes go back to the
    /// head, the others to the inactive list; at most `nr_scans`.
    fn rotate_active(&mut self, l: usize) {
        let active = self.lists[l].heads[T_ACTIVE as usize];
        let Some(first) = self.first(active) else {
            return;
        };
        for (i, n) in self.tail_first(active).into_iter().enumerate() {
            let tgt = if self.links[n].referenced {
                T_ACTIVE
            } else {
                T_INACTIVE
            };
            self.node_move(l, n, tgt);
            if i as u32 + 1 == self.nr_scans || n == first {
                break;
            }
        }
    }

    /// `__bpf_lru_list_rotate_inactive`: from `next_inactive_rotation` towards the head,
    /// referenced nodes go to the active list; at most `nr_scans`.
    fn rotate_inactive(&mut self, l: usize) {
        let inactive = self.lists[l].heads[T_INACTIVE as usize];
        if self.first(inactive).is_none() {
            return;
        }
        let mut last = self.links[self.lists[l].next_inactive_rotation].next;
        if last == inactive {
            last = self.links[last].next;
        }
        let mut cur = self.lists[l].next_inactive_rotation;
        let mut next = inactive;
        let mut i = 0;
        while i < self.nr_scans {
            if cur == inactive {
                cur = self.links[cur].prev;
                continue;
            }
            next = self.links[cur].prev;
            if self.links[cur].referenced {
                self.node_move(l, cur, T_ACTIVE);
            }
            if cur == last {
                break;
            }
            cur = next;
            i += 1;
        }
        self.lists[l].next_inactive_rotation = next;
    }

    /// `__bpf_lru_list_rotate`.
    fn rotate(&mut self, l: usize) {
        let [active, inactive] = self.lists[l].counts;
        if inactive < active {
            self.rotate_active(l);
        }
        self.rotate_inactive(l);
    }

    /// `__bpf_lru_list_shrink_inactive`: from the tail, unreferenced nodes that
    /// `del_from_htab` takes out of the map go to `free`.
    fn shrink_inactive(
        &mut self,
        l: usize,
        tgt_nshrink: u32,
        free: usize,
        tgt: u8,
        del_from_htab: &mut dyn FnMut(usize) -> bool,
    ) -> u32 {
        let inactive = self.lists[l].heads[T_INACTIVE as usize];
        let mut nshrinked = 0;
        for (i, n) in self.tail_first(inactive).into_iter().enumerate() {
            if self.links[n].referenced {
                self.node_move(l, n, T_ACTIVE);
            } else if del_from_htab(n) {
                self.move_to_free(l, n, free, tgt);
                nshrinked += 1;
                if nshrinked == tgt_nshrink {
                    break;
                }
            }
            if i as u32 + 1 == self.nr_scans {
                break;
            }
        }
        nshrinked
    }

    /// `__bpf_lru_list_shrink`: the inactive shrink, else one node from the tail of the
    /// inactive (or, empty, the active) list whatever its bit.
    fn shrink(
        &mut self,
        l: usize,
        tgt_nshrink: u32,
        free: usize,
        tgt: u8,
        del_from_htab: &mut dyn FnMut(usize) -> bool,
    ) -> u32 {
        let n = self.shrink_inactive(l, tgt_nshrink, free, tgt, del_from_htab);
        if n != 0 {
            return n;
        }
        let [active, inactive, _] = self.lists[l].heads;
        let force = if self.first(inactive).is_some() {
            inactive
        } else {
            active
        };
        for n in self.tail_first(force) {
            if del_from_htab(n) {
                self.move_to_free(l, n, free, tgt);
                return 1;
            }
        }
        0
    }

    /// `__local_list_flush`: a CPU's pending nodes onto the global lists.
    fn local_list_flush(&mut self, cpu: usize) {
        let pending = self.local[cpu].pending;
        for n in self.tail_first(pending) {
            let tgt = if self.links[n].referenced {
                T_ACTIVE
            } else {
                T_INACTIVE
            };
            self.move_in(0, n, tgt);
        }
    }

    /// `bpf_lru_list_pop_free_to_local`.
    fn pop_free_to_local(&mut self, cpu: usize, del_from_htab: &mut dyn FnMut(usize) -> bool) {
        self.local_list_flush(cpu);
        self.rotate(0);
        let free = self.lists[0].heads[T_FREE as usize];
        let local_free = self.local[cpu].free;
        let mut nfree = 0;
        let mut n = self.links[free].next;
        while n != free {
            let next = self.links[n].next;
            self.move_to_free(0, n, local_free, T_LOCAL_FREE);
            nfree += 1;
            if nfree == self.target_free {
                break;
            }
            n = next;
        }
        if nfree < self.target_free {
            self.shrink(
                0,
                self.target_free - nfree,
                local_free,
                T_LOCAL_FREE,
                del_from_htab,
            );
        }
    }

    /// `__local_list_add_pending`.
    fn local_add_pending(&mut self, cpu: usize, n: usize) {
        self.links[n].cpu = cpu as u16;
        self.links[n].ty = T_LOCAL_PENDING;
        self.links[n].referenced = false;
        let pending = self.local[cpu].pending;
        self.list_add(n, pending);
    }

    /// `__local_list_pop_free`.
    fn local_pop_free(&mut self, cpu: usize) -> Option<usize> {
        let n = self.first(self.local[cpu].free)?;
        self.list_del(n);
        self.links[n].ty = T_NONE;
        Some(n)
    }

    /// `__local_list_pop_pending`: the oldest unreferenced pending node the map gives up,
    /// else the oldest it gives up at all.
    fn local_pop_pending(
        &mut self,
        cpu: usize,
        del_from_htab: &mut dyn FnMut(usize) -> bool,
    ) -> Option<usize> {
        let pending = self.local[cpu].pending;
        for force in [false, true] {
            for n in self.tail_first(pending) {
                if (!self.links[n].referenced || force) && del_from_htab(n) {
                    self.list_del(n);
                    self.links[n].ty = T_NONE;
                    return Some(n);
                }
            }
        }
        None
    }

    /// `bpf_percpu_lru_pop_free`.
    fn percpu_pop_free(
        &mut self,
        cpu: usize,
        del_from_htab: &mut dyn FnMut(usize) -> bool,
    ) -> Option<usize> {
        let l = cpu.min(self.lists.len().checked_sub(1)?);
        self.rotate(l);
        let free = self.lists[l].heads[T_FREE as usize];
        if self.first(free).is_none() {
            self.shrink(l, PERCPU_FREE_TARGET, free, T_FREE, del_from_htab);
        }
        let n = self.first(free)?;
        self.links[n].referenced = false;
        self.node_move(l, n, T_INACTIVE);
        Some(n)
    }

    /// `bpf_common_lru_pop_free`: the CPU's local free list, refilled from the global
    /// lists; else steal from each CPU's local lists in turn.
    fn common_pop_free(
        &mut self,
        cpu: usize,
        del_from_htab: &mut dyn FnMut(usize) -> bool,
    ) -> Option<usize> {
        let cpu = cpu.min(self.local.len().checked_sub(1)?);
        let mut node = self.local_pop_free(cpu);
        if node.is_none() {
            self.pop_free_to_local(cpu, del_from_htab);
            node = self.local_pop_free(cpu);
        }
        if let Some(n) = node {
            self.local_add_pending(cpu, n);
            return Some(n);
        }
        let first_steal = self.local[cpu].next_steal;
        let mut steal = first_steal;
        loop {
            node = self.local_pop_free(steal);
            if node.is_none() {
                node = self.local_pop_pending(steal, del_from_htab);
            }
            steal = (steal + 1) % self.local.len();
            if node.is_some() || steal == first_steal {
                break;
            }
        }
        self.local[cpu].next_steal = steal;
        let n = node?;
        self.local_add_pending(cpu, n);
        Some(n)
    }

    /// `bpf_lru_pop_free`: a free node for a new element on `cpu`, evicting elements
    /// (through `del_from_htab`, which takes the element out of the map and answers
    /// whether it did) when there is none; `None` when nothing could be freed.
    pub fn bpf_lru_pop_free(
        &mut self,
        cpu: usize,
        del_from_htab: &mut dyn FnMut(usize) -> bool,
    ) -> Option<usize> {
        if self.percpu {
            self.percpu_pop_free(cpu, del_from_htab)
        } else {
            self.common_pop_free(cpu, del_from_htab)
        }
    }

    /// `bpf_lru_push_free`: a node whose element left the map goes back to a free list
    /// (its CPU's local free list while it is still pending there).
    pub fn bpf_lru_push_free(&mut self, node: usize) {
        let Some(link) = self.links.get(node).copied() else {
            return;
        };
        if self.percpu {
            let l = (link.cpu as usize).min(self.lists.len().saturating_sub(1));
            self.node_move(l, node, T_FREE);
            return;
        }
        match link.ty {
            T_FREE | T_LOCAL_FREE => {
                crate::sync::warn::warn("bpf_lru_push_free: a free node");
            }
            T_LOCAL_PENDING => {
                let cpu = (link.cpu as usize).min(self.local.len().saturating_sub(1));
                self.links[node].ty = T_LOCAL_FREE;
                self.links[node].referenced = false;
                let free = self.local[cpu].free;
                self.list_move(node, free);
            }
            // bpf_lru_list_push_free
            _ => self.node_move(0, node, T_FREE),
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::BpfLru;

    /// Fill a 4-node common LRU on CPU 0 of 2 CPUs, then one more: the oldest goes.
    #[test]
    fn the_common_lru_evicts_the_oldest_unreferenced_node() {
        let mut lru = BpfLru::bpf_lru_init(4, 2, false, true);
        assert_eq!(lru.target_free(), 1);
        let mut linked = [false; 4];
        let mut order = alloc::vec::Vec::new();
        for _ in 0..4 {
            let n = lru
                .bpf_lru_pop_free(0, &mut |n| core::mem::take(&mut linked[n]))
                .expect("free");
            linked[n] = true;
            order.push(n);
        }
        let mut evicted = alloc::vec::Vec::new();
        let n = lru
            .bpf_lru_pop_free(0, &mut |n| {
                evicted.push(n);
                core::mem::take(&mut linked[n])
            })
            .expect("an evicted node");
        assert_eq!(evicted, [order[0]]);
        assert_eq!(n, order[0]);
        assert_eq!(BpfLru::bpf_lru_init(4, 2, false, false).target_free(), 128);
    }
}
