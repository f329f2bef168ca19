//! Trace events: what the model does to objects, references and BTFs, for the
//! `kptr-model trace` command and for tests. A host installs a hook; without one the
//! events cost a load and a branch.

use core::sync::atomic::{AtomicPtr, Ordering};

/// One event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// `bpf_mem_alloc` of an object.
    Alloc {
        /// Address.
        addr: u64,
        /// Type name.
        ty: &'a str,
        /// Size.
        size: u32,
    },
    /// An object freed (`rcu`: through `bpf_mem_free_rcu`, after a grace period).
    Free {
        /// Address.
        addr: u64,
        /// Type name.
        ty: &'a str,
        /// Deferred by RCU.
        rcu: bool,
    },
    /// A refcount changed.
    Ref {
        /// What the count belongs to (`btf <name>`, `obj node_data@0x..`, ...).
        what: &'a str,
        /// Object address (0 for BTFs and modules).
        addr: u64,
        /// The count after the change.
        now: i32,
    },
    /// A destructor kfunc called on a kernel object.
    Dtor {
        /// Destructor name.
        name: &'a str,
        /// The object.
        addr: u64,
    },
    /// `__bpf_obj_drop_impl` entered for a local object.
    ObjDrop {
        /// The object (0 = NULL).
        addr: u64,
    },
    /// `bpf_kptr_xchg` on a slot.
    Xchg {
        /// Slot's value offset.
        off: u32,
        /// Old pointer.
        old: u64,
        /// New pointer.
        new: u64,
    },
    /// A BTF reference taken or dropped.
    Btf {
        /// BTF name ("vmlinux", module, "" for program BTF).
        name: &'a str,
        /// Address of the `struct btf`.
        addr: usize,
        /// Count after the change.
        now: i32,
    },
    /// A map step (`bpf_map_put`, `map_free`, BTF put order...).
    Map {
        /// What happened.
        what: &'a str,
    },
    /// `migrate_disable` or `migrate_enable` of the running task.
    Migrate {
        /// True for `migrate_disable`.
        disable: bool,
        /// The kernel function that toggles it (`bpf_map_free`,
        /// `bpf_obj_free_fields`, ...); empty for a caller of the model (a test, a
        /// scenario's program).
        site: &'a str,
    },
}

/// The hook type.
pub type TraceHook = fn(&Event<'_>);

static HOOK: AtomicPtr<()> = AtomicPtr::new(core::ptr::null_mut());

/// Installs the hook (replaces any previous one).
pub fn set_trace_hook(h: Option<TraceHook>) {
    let p = h.map_or(core::ptr::null_mut(), |f| f as *mut ());
    HOOK.store(p, Ordering::Release);
}

/// True when a hook is installed (callers skip building event text otherwise).
#[inline]
pub fn enabled() -> bool {
    !HOOK.load(Ordering::Acquire).is_null()
}

/// Emits an event.
#[inline]
pub fn emit(ev: Event<'_>) {
    let p = HOOK.load(Ordering::Acquire);
    if !p.is_null() {
        // SAFETY: only `set_trace_hook` stores non-null values, and those are
        // `TraceHook` fn pointers cast to `*mut ()`.
        let f: TraceHook = unsafe { core::mem::transmute::<*mut (), TraceHook>(p) };
        f(&ev);
    }
}
