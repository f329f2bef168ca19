//! The run-time context the BPF helpers and map operations run in: the BPF allocator,
//! RCU, the kernel's BTFs, kernel objects reachable as referenced kptrs, the
//! migrate-disable context, and the graph-root lists.

use alloc::string::String;
use alloc::vec::Vec;

use hashbrown::HashMap;

use super::mem::BpfMemAlloc;
use super::user_pages::UserPages;
use core::ptr::NonNull;

use crate::btf::{Btf, KernelBtfs};
use crate::profile::Semantics;
use crate::record::KptrBtf;
use crate::sync::task;
use crate::sync::warn::warn;
use crate::sync::{Arc, AtomicUsize, Ordering, Rcu, SpinLock};
use crate::trace::{Event, emit};

/// A kernel object a referenced kptr can hold (a `task_struct`, a `cgroup`, ...): its
/// type and reference count; the destructor kfunc drops one reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelObj {
    /// Type name.
    pub ty: String,
    /// References.
    pub refcnt: i32,
}

/// The context.
pub struct BpfRuntime {
    /// The profile.
    pub sem: Semantics,
    /// The kernel's BTFs.
    pub kernel: Arc<KernelBtfs>,
    /// `bpf_global_ma` / `bpf_global_percpu_ma`.
    pub mem: Arc<BpfMemAlloc>,
    /// The RCU domain.
    pub rcu: Arc<Rcu>,
    /// The RCU tasks trace domain (`call_rcu_tasks_trace`, `synchronize_rcu_tasks_trace`,
    /// kernel/rcu/tasks.h): the readers are sleepable programs (`rcu_read_lock_trace`).
    /// Its grace periods are independent of [`rcu`](Self::rcu)'s: the model takes the
    /// kernel's `!rcu_trace_implies_rcu_gp()` branches, so what waits for both kinds of
    /// readers waits for a grace period of each.
    pub rcu_tasks_trace: Arc<Rcu>,
    /// The user process's pages and their pins (`__uptr` pinning, profile flag
    /// `uptr`; see [`super::uptr`]).
    pub user_pages: UserPages,
    kobjs: SpinLock<HashMap<u64, KernelObj>>,
    kobj_next: AtomicUsize,
    pub(crate) lists: SpinLock<HashMap<u64, Vec<u64>>>,
    list_next: AtomicUsize,
    warns: SpinLock<Vec<&'static str>>,
}

impl BpfRuntime {
    /// A runtime for `sem` over `kernel`.
    pub fn new(sem: Semantics, kernel: Arc<KernelBtfs>, rcu: Arc<Rcu>) -> Arc<BpfRuntime> {
        Arc::new(BpfRuntime {
            sem,
            kernel,
            mem: BpfMemAlloc::new(Arc::clone(&rcu)),
            rcu,
            rcu_tasks_trace: Arc::new(Rcu::new()),
            user_pages: UserPages::new(),
            kobjs: SpinLock::new(HashMap::new()),
            kobj_next: AtomicUsize::new(0),
            lists: SpinLock::new(HashMap::new()),
            list_next: AtomicUsize::new(1),
            warns: SpinLock::new(Vec::new()),
        })
    }

    /// `migrate_disable` (kernel/sched/core.c) for the calling task
    /// ([`task::migrate_disable`]), on behalf of the model's caller (a program, a test).
    pub fn migrate_disable(&self) {
        self.migrate_disable_at("");
    }

    /// `migrate_enable` (kernel/sched/core.c) for the calling task; one without a
    /// matching disable WARNs and changes nothing.
    pub fn migrate_enable(&self) {
        self.migrate_enable_at("");
    }

    /// `migrate_disable` in the kernel function `site`, traced as
    /// [`Event::Migrate`].
    pub fn migrate_disable_at(&self, site: &'static str) {
        emit(Event::Migrate {
            disable: true,
            site,
        });
        task::migrate_disable();
    }

    /// `migrate_enable` in the kernel function `site`, traced as [`Event::Migrate`].
    pub fn migrate_enable_at(&self, site: &'static str) {
        emit(Event::Migrate {
            disable: false,
            site,
        });
        if !task::migrate_enable() {
            self.warn("migrate_enable without migrate_disable");
        }
    }

    /// True while the calling task is in a migrate-disabled section (a BPF program
    /// runs in one).
    pub fn migration_disabled(&self) -> bool {
        task::migration_disabled()
    }

    /// Checks the BPF allocator's requirement: freeing to the per-CPU caches needs
    /// migration disabled (WARN otherwise, as `bpf_mem_free`'s callers assume).
    pub(crate) fn check_migrate(&self, what: &'static str) {
        if !self.migration_disabled() {
            self.warn(what);
        }
    }

    /// A kernel WARN raised by this runtime's code (also sent to the global sink).
    pub fn warn(&self, msg: &'static str) {
        self.warns.lock().push(msg);
        warn(msg);
    }

    /// The WARNs this runtime raised.
    pub fn warnings(&self) -> Vec<&'static str> {
        self.warns.lock().clone()
    }

    /// A kernel object with one reference (what `bpf_task_acquire` (kernel/bpf/helpers.c) and
    /// friends return).
    pub fn kernel_obj_new(&self, ty: &str) -> u64 {
        let n = self.kobj_next.fetch_add(1, Ordering::SeqCst) as u64;
        let addr = 0xffff_8880_0000_0000 + n * 0x1000;
        self.kobjs.lock().insert(
            addr,
            KernelObj {
                ty: String::from(ty),
                refcnt: 1,
            },
        );
        addr
    }

    /// Another reference on a kernel object (`bpf_task_acquire` (kernel/bpf/helpers.c)).
    pub fn kernel_obj_get(&self, addr: u64) -> bool {
        let mut g = self.kobjs.lock();
        match g.get_mut(&addr) {
            Some(o) if o.refcnt > 0 => {
                o.refcnt += 1;
                true
            }
            _ => false,
        }
    }

    /// A destructor kfunc on a kernel object: drops one reference (a NULL object is a
    /// kernel crash in a real destructor; the model WARNs).
    pub fn kernel_dtor(&self, dtor: &str, addr: u64) {
        emit(Event::Dtor { name: dtor, addr });
        if addr == 0 {
            self.warn("kptr destructor called on NULL");
            return;
        }
        let mut g = self.kobjs.lock();
        match g.get_mut(&addr) {
            Some(o) if o.refcnt > 0 => {
                o.refcnt -= 1;
                let now = o.refcnt;
                let what = alloc::format!("{} kernel object", o.ty);
                drop(g);
                emit(Event::Ref {
                    what: &what,
                    addr,
                    now,
                });
            }
            _ => {
                drop(g);
                self.warn("kptr destructor on a released kernel object");
            }
        }
    }

    /// Kernel objects and their counts.
    pub fn kernel_objs(&self) -> Vec<(u64, KernelObj)> {
        let mut v: Vec<(u64, KernelObj)> = self
            .kobjs
            .lock()
            .iter()
            .map(|(a, o)| (*a, o.clone()))
            .collect();
        v.sort_by_key(|(a, _)| *a);
        v
    }

    pub(crate) fn new_list(&self) -> u64 {
        let id = self.list_next.fetch_add(1, Ordering::SeqCst) as u64;
        self.lists.lock().insert(id, Vec::new());
        id
    }
}

/// The BTF behind a kptr field, if it is still alive: a held reference always is; an
/// unreferenced program BTF (v6.12+) is checked against the IDR's freed list, and a
/// use of a freed one is reported (WARN) instead of performed.
#[inline(always)]
pub(crate) fn kptr_btf<'a>(rt: &'a BpfRuntime, k: &'a KptrBtf) -> Option<&'a Btf> {
    match k {
        KptrBtf::Held(b) => Some(b),
        KptrBtf::Borrowed(p) => unref_btf(rt, p.as_ptr()),
    }
}

/// The BTF behind an unreferenced pointer (a local kptr's, a graph root's), if it is
/// still alive; a freed one is the kernel's use after free, reported (a WARN of the
/// runtime, counted in the suite tally) instead of read.
pub(crate) fn unref_btf(rt: &BpfRuntime, p: NonNull<Btf>) -> Option<&Btf> {
    if rt.kernel.idr().is_freed(p.as_ptr() as usize) {
        rt.warn("use after free: an unreferenced program BTF was freed");
        rt.mem.note_btf_use_after_free();
        return None;
    }
    // SAFETY: the address is not on the IDR's freed list; a published BTF is freed
    // only by an RCU callback that marks the address freed before it releases
    // anything, and its memory stays in the IDR's quarantine until the IDR goes, which
    // the runtime holds (`rt.kernel`) for longer than any caller's borrow. The record's
    // owner (a map holding `map->btf`) keeps it published; a profile that drops that
    // reference early (v6.4) is the kernel's use after free, reported on the next
    // check.
    Some(unsafe { p.as_ref() })
}
