//! Shared set-up of the loom models: a kernel with a tiny vmlinux BTF, a program BTF
//! with a refcounted local object type, an ARRAY map whose value holds a kptr to it,
//! and the run-time model over them. Everything here is `kernel-core`'s own code.
#![cfg(loom)]

use kernel_core::Semantics;
use kernel_core::btf::builder::BtfBuilder;
use kernel_core::btf::uapi::*;
use kernel_core::btf::{BtfRef, KernelBtfs};
use kernel_core::map::MapAttr;
pub use kernel_core::map::runtime::BPF_NOEXIST;
use kernel_core::map::runtime::MapRt;
use kernel_core::obj::{BpfRuntime, MemFault, MetaRec, find_meta};
use kernel_core::sync::{Arc, Rcu};
use kernel_core::syscall::bpf_btf_load;
use kernel_core::syscall::map_create;

/// A kernel with a tiny vmlinux BTF (one int, `task_struct`) and its RCU domain.
pub fn small_kernel(sem: Semantics) -> (Arc<KernelBtfs>, Arc<Rcu>) {
    kernel_core::testing::tiny_kernel(sem).expect("kernel")
}

/// An ARRAY map (int keys) of `value` over `btf`, at run time.
pub fn array_map(
    kernel: &KernelBtfs,
    btf: &BtfRef,
    key: u32,
    value: u32,
    size: u32,
    entries: u32,
    sem: &Semantics,
) -> Arc<MapRt> {
    let attr = kernel_core::testing::array_attr(btf, key, value, size, entries, "m");
    MapRt::new(map_create(kernel, &attr, sem).expect("map"), sem).expect("rt")
}

// A model's bookkeeping is per test thread: loom runs a model's threads as coroutines
// on the thread that called `loom::model`, so the models of one binary may run in
// parallel (`cargo test` without `--test-threads=1`) without seeing each other's WARNs.
std::thread_local! {
    static EXECUTIONS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    /// Every WARN raised in the current execution (the model's global WARN hook), the
    /// runtime's own and those without one (a refcount's, `btf_record_free`'s, a module's).
    static WARNS: std::cell::RefCell<Vec<&'static str>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn warn_hook(msg: &'static str) {
    WARNS.with(|w| w.borrow_mut().push(msg));
}

/// Runs a loom model and reports how many executions it explored. Each execution
/// starts with no WARN recorded.
pub fn model(name: &str, f: impl Fn() + Sync + Send + 'static) {
    kernel_core::sync::warn::set_warn_hook(warn_hook);
    let start = std::time::Instant::now();
    EXECUTIONS.with(|e| e.set(0));
    loom::model(move || {
        EXECUTIONS.with(|e| e.set(e.get() + 1));
        WARNS.with(|w| w.borrow_mut().clear());
        f();
    });
    eprintln!(
        "loom model {name}: {} executions in {:.2?}",
        EXECUTIONS.with(|e| e.get()),
        start.elapsed()
    );
}

/// One fault an execution ended with: what the allocator saw (by kind and the
/// object's type, not its address, which depends on the interleaving), an object left
/// allocated, or a kernel WARN (its message names the fault and, for a read of a freed
/// BTF, the kernel function).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    /// An object freed twice.
    DoubleFree(String),
    /// An object used after it was freed.
    UseAfterFree(String),
    /// An address never handed out.
    Wild,
    /// A NULL pointer dereference in the named kernel function.
    NullDeref(String),
    /// An object still allocated at the end (after every grace period).
    Leak(String),
    /// A kernel WARN.
    Warn(&'static str),
}

/// The faults of an execution so far, sorted (a multiset): runs the grace periods
/// still due first, so frees through RCU are counted.
pub fn faults(rt: &BpfRuntime) -> Vec<Fault> {
    rt.rcu.rcu_barrier();
    let mut v: Vec<Fault> = rt
        .mem
        .faults()
        .into_iter()
        .map(|m| match m {
            MemFault::UseAfterFree(_, t) => Fault::UseAfterFree(t),
            MemFault::DoubleFree(_, t) => Fault::DoubleFree(t),
            MemFault::Wild(_) => Fault::Wild,
            MemFault::NullDeref(_, s) => Fault::NullDeref(s),
        })
        .collect();
    v.extend(
        rt.mem
            .live()
            .into_iter()
            .map(|(_, i)| Fault::Leak(i.ty.to_string())),
    );
    v.extend(warns());
    v.sort();
    v
}

/// The WARNs raised in this execution so far.
pub fn warns() -> Vec<Fault> {
    WARNS.with(|w| w.borrow().iter().map(|m| Fault::Warn(m)).collect())
}

/// Counts, over a model's executions, how often each outcome (a sorted list of
/// faults, empty for a clean execution) was seen, and checks each against the outcomes
/// a profile allows: anything else fails the execution that produced it, with the
/// exact faults. [`Outcomes::report`] then checks that every outcome marked as
/// required was seen in some execution.
pub struct Outcomes {
    allowed: Vec<Vec<Fault>>,
    seen: std::sync::Mutex<std::collections::BTreeMap<Vec<Fault>, usize>>,
}

impl Outcomes {
    /// Outcomes `allowed` (the clean one is not allowed unless listed).
    pub fn new(allowed: Vec<Vec<Fault>>) -> std::sync::Arc<Outcomes> {
        std::sync::Arc::new(Outcomes {
            allowed,
            seen: std::sync::Mutex::new(Default::default()),
        })
    }

    /// Records one execution's outcome; panics (failing the model, with the faults)
    /// unless it is allowed.
    pub fn record(&self, mut got: Vec<Fault>) {
        got.sort();
        assert!(
            self.allowed.contains(&got),
            "outcome {got:?} is none of the allowed {:?}",
            self.allowed
        );
        if let Ok(mut s) = self.seen.lock() {
            *s.entry(got).or_default() += 1;
        }
    }

    /// Prints how often each outcome was seen and checks that each of `required` was.
    pub fn report(&self, name: &str, required: &[Vec<Fault>]) {
        let seen = self.seen.lock().map(|s| s.clone()).unwrap_or_default();
        for (o, n) in &seen {
            eprintln!("loom model {name}: {n} executions ended with {o:?}");
        }
        for r in required {
            let mut r = r.clone();
            r.sort();
            assert!(
                seen.contains_key(&r),
                "{name}: no execution ended with {r:?}"
            );
        }
    }
}

/// The last reference of a map holder: `bpf_map_put`, and the deferred free
/// (`bpf_map_free_deferred`) where it was the map's last reference, run at once as the
/// workqueue would.
pub fn map_put(rt: &BpfRuntime, m: Arc<MapRt>) {
    if let Some(free) = MapRt::bpf_map_put(m) {
        free.run(rt);
    }
}

/// The set-up of one model execution.
pub struct Fix {
    /// The runtime.
    pub rt: Arc<BpfRuntime>,
    /// The program BTF (one reference, published).
    pub btf: BtfRef,
    /// The map (value 0 has the kptr at offset 0).
    pub map: Arc<MapRt>,
    /// The object type's id.
    pub node_id: u32,
    /// The object type's record.
    pub meta: Option<MetaRec>,
}

/// `node { long key; struct bpf_refcount r; }`, `value { struct node __kptr *n; }`.
pub fn fixture(sem: Semantics) -> Fix {
    let (kernel, rcu) = small_kernel(sem);
    let prog = kernel_core::testing::kptr_prog(kernel_core::testing::NodeField::Refcount);
    let node = prog.node;
    let (btf, _) = bpf_btf_load(&kernel, &prog.blob, 0, &sem).expect("program BTF");
    let map = array_map(&kernel, &btf, prog.int, prog.value, 8, 2, &sem);
    let rt = BpfRuntime::new(sem, kernel, rcu);
    let meta = find_meta(&btf, node);
    Fix {
        rt,
        btf,
        map,
        node_id: node,
        meta,
    }
}

/// Invariants checked at the end of every execution: each object freed exactly once,
/// nothing left allocated, no use after free, no WARN (refcount increment from zero
/// and underflow are WARNs). Then tears the set-up down, running the last RCU
/// callbacks (loom checks that every `Arc` is freed).
pub fn check_clean(f: Fix) {
    check(&f);
    finish(f);
}

/// Drops everything and runs the RCU callbacks still queued.
pub fn finish(f: Fix) {
    let rcu = Arc::clone(&f.rt.rcu);
    drop(f);
    rcu.rcu_barrier();
}

/// The invariants alone: no fault of any kind ([`faults`]), every allocation freed.
pub fn check(f: &Fix) {
    assert_eq!(faults(&f.rt), vec![], "faults");
    let (a, fr) = f.rt.mem.counts();
    assert_eq!(a, fr, "allocations and frees");
}

/// A value with a graph root: `gvalue { bpf_spin_lock l; bpf_list_head h
/// __contains(gnode, ln); }`, `gnode { long key; bpf_list_node ln; }`. Offsets: lock
/// 0, head 8; node at 8 in the object.
pub fn fixture_graph(sem: Semantics) -> Fix {
    let (kernel, rcu) = small_kernel(sem);
    let lp = kernel_core::testing::list_prog("bpf_spin_lock");
    let (int, node, v) = (lp.int, lp.node, lp.value);
    let (btf, _) = bpf_btf_load(&kernel, &lp.blob, 0, &sem).expect("program BTF");
    let map = array_map(&kernel, &btf, int, v, 24, 1, &sem);
    let rt = BpfRuntime::new(sem, kernel, rcu);
    let meta = find_meta(&btf, node);
    Fix {
        rt,
        btf,
        map,
        node_id: node,
        meta,
    }
}

/// A kernel with a live module `testmod` whose BTF defines `mod_obj` with a registered
/// destructor, and a program BTF with `val { struct mod_obj __kptr *o; }`.
pub struct ModFix {
    /// The kernel.
    pub kernel: Arc<KernelBtfs>,
    /// The module.
    pub module: Arc<kernel_core::module::Module>,
    /// The module's BTF.
    pub mod_btf: BtfRef,
    /// The program BTF.
    pub prog: BtfRef,
    /// `val`'s id.
    pub value_id: u32,
    /// The RCU domain.
    pub rcu: Arc<Rcu>,
}

/// See [`ModFix`].
pub fn fixture_module(sem: Semantics) -> ModFix {
    let (kernel, rcu) = small_kernel(sem);
    let (nr, sl) = {
        let v = kernel.vmlinux().expect("vmlinux");
        (v.data().nr_types(), v.data().header().str_len)
    };
    let mut mb = BtfBuilder::new_split(nr, sl);
    mb.struct_("mod_obj", 8, &[("x", 1, 0)]);
    let p = mb.ptr(0);
    let proto = mb.func_proto(0, &[("p", p)]);
    mb.func("mod_obj_release_dtor", proto, 1);
    let mbtf = kernel_core::btf::btf_parse_module(
        "testmod",
        &mb.build(),
        kernel.vmlinux().expect("vm"),
        true,
        sem,
    )
    .expect("module BTF");
    let module = kernel_core::module::Module::new("testmod");
    kernel.add_module(mbtf, Arc::clone(&module)).expect("add");
    kernel.module_live("testmod").expect("live");
    let mod_btf = kernel.modules().pop().expect("module btf");
    kernel
        .register_btf_id_dtor_kfuncs(&mod_btf, &[("mod_obj", "mod_obj_release_dtor")])
        .expect("dtor");
    let mut b = BtfBuilder::new();
    let int = b.int("int", 4, BTF_INT_SIGNED, 32);
    let obj = b.struct_("mod_obj", 8, &[("x", int, 0)]);
    let t = b.type_tag("kptr", obj);
    let pp = b.ptr(t);
    let v = b.struct_("val", 8, &[("o", pp, 0)]);
    let (prog, _) = bpf_btf_load(&kernel, &b.build(), 0, &sem).expect("program BTF");
    ModFix {
        kernel,
        module,
        mod_btf,
        prog,
        value_id: v,
        rcu,
    }
}

/// An ARRAY map over [`ModFix`]'s value.
pub fn module_map(f: &ModFix, sem: &Semantics) -> kernel_core::KResult<kernel_core::map::BpfMap> {
    let attr = MapAttr {
        inner_map: None,
        map_type: 2,
        key_size: 4,
        value_size: 8,
        max_entries: 1,
        map_flags: 0,
        btf: Some(&f.prog),
        btf_key_type_id: 1,
        btf_value_type_id: f.value_id,
        name: "m",
    };
    map_create(&f.kernel, &attr, sem)
}

impl ModFix {
    /// Tears down, running the RCU callbacks still queued.
    pub fn finish(self) {
        let rcu = Arc::clone(&self.rcu);
        drop(self);
        rcu.rcu_barrier();
    }
}

/// A map of `map_type` with `map_flags` over `btf` (int keys), at run time.
#[allow(clippy::too_many_arguments)]
pub fn map_of(
    kernel: &KernelBtfs,
    btf: &BtfRef,
    map_type: u32,
    map_flags: u32,
    key: u32,
    value: u32,
    size: u32,
    entries: u32,
    sem: &Semantics,
) -> Arc<MapRt> {
    let attr = MapAttr {
        inner_map: None,
        map_type,
        key_size: 4,
        value_size: size,
        max_entries: entries,
        map_flags,
        btf: Some(btf),
        btf_key_type_id: key,
        btf_value_type_id: value,
        name: "m",
    };
    MapRt::new(map_create(kernel, &attr, sem).expect("map"), sem).expect("rt")
}

/// `node { long key; struct bpf_refcount r; }` and `pv { long data; struct node __kptr
/// *n; }` (the kptr at 8, plain data at 0) in a map of `map_type` with `map_flags` and
/// `entries` entries (the [`Fix`]'s `map`).
pub fn fixture_map(sem: Semantics, map_type: u32, map_flags: u32, entries: u32) -> Fix {
    let (kernel, rcu) = small_kernel(sem);
    let mut b = BtfBuilder::new();
    let int = b.int("int", 4, BTF_INT_SIGNED, 32);
    let long = b.int("long", 8, BTF_INT_SIGNED, 64);
    let rc = b.struct_("bpf_refcount", 4, &[("v", int, 0)]);
    let node = b.struct_("node", 16, &[("key", long, 0), ("r", rc, 64)]);
    let t = b.type_tag("kptr", node);
    let p = b.ptr(t);
    let v = b.struct_("pv", 16, &[("data", long, 0), ("n", p, 64)]);
    let (btf, _) = bpf_btf_load(&kernel, &b.build(), 0, &sem).expect("program BTF");
    let map = map_of(
        &kernel, &btf, map_type, map_flags, int, v, 16, entries, &sem,
    );
    let rt = BpfRuntime::new(sem, kernel, rcu);
    let meta = find_meta(&btf, node);
    Fix {
        rt,
        btf,
        map,
        node_id: node,
        meta,
    }
}

/// A refcounted object on a list: `rnode { long key; struct bpf_list_node ln; struct
/// bpf_refcount r; }` (node at 8, refcount at 32), `rvalue { struct bpf_spin_lock l;
/// struct bpf_list_head h __contains(rnode, ln); }` (lock 0, head 8), one ARRAY value.
pub fn fixture_refcounted_list(sem: Semantics) -> Fix {
    let (kernel, rcu) = small_kernel(sem);
    let mut b = BtfBuilder::new();
    let int = b.int("int", 4, BTF_INT_SIGNED, 32);
    let long = b.int("long", 8, BTF_INT_SIGNED, 64);
    let lock = b.struct_("bpf_spin_lock", 4, &[("v", int, 0)]);
    let rc = b.struct_("bpf_refcount", 4, &[("v", int, 0)]);
    let head = b.struct_("bpf_list_head", 16, &[("a", long, 0), ("b", long, 64)]);
    let ln = b.struct_(
        "bpf_list_node",
        24,
        &[("a", long, 0), ("b", long, 64), ("c", long, 128)],
    );
    let node = b.struct_(
        "rnode",
        40,
        &[("key", long, 0), ("ln", ln, 64), ("r", rc, 256)],
    );
    let v = b.struct_("rvalue", 24, &[("l", lock, 0), ("h", head, 64)]);
    b.decl_tag("contains:rnode:ln", v, 1);
    let (btf, _) = bpf_btf_load(&kernel, &b.build(), 0, &sem).expect("program BTF");
    let map = array_map(&kernel, &btf, int, v, 24, 1, &sem);
    let rt = BpfRuntime::new(sem, kernel, rcu);
    let meta = find_meta(&btf, node);
    Fix {
        rt,
        btf,
        map,
        node_id: node,
        meta,
    }
}

/// A program's run: `f` inside `rcu_read_lock` with migration disabled, as a BPF
/// program runs.
pub fn prog_run<R>(rt: &BpfRuntime, f: impl FnOnce() -> R) -> R {
    let _rcu = rt.rcu.read_lock();
    rt.migrate_disable();
    let r = f();
    rt.migrate_enable();
    r
}

/// What the actors of a model share besides the map: the runtime, the program BTF and
/// the object type (a map shared through its own `Arc`s, one per holder, so that the
/// holder that puts the last count takes it whole).
pub struct Ctx {
    /// The runtime.
    pub rt: Arc<BpfRuntime>,
    /// The program BTF.
    pub btf: BtfRef,
    /// The object type's id.
    pub node_id: u32,
    /// The object type's record.
    pub meta: Option<MetaRec>,
}

impl Ctx {
    /// The object type's record (`btf_find_struct_meta(..)->record`).
    pub fn rec(&self) -> Option<&kernel_core::record::BtfRecord> {
        self.meta.as_ref().and_then(|m| m.rec())
    }

    /// A program's `bpf_obj_new` of the object type, its `key` written (a plain store
    /// before the object is published).
    pub fn obj_new(&self, key: u8) -> Option<u64> {
        let n = kernel_core::obj::bpf_obj_new_impl(&self.rt, &self.btf, self.node_id)?;
        if let Some(o) = self.rt.mem.get(n) {
            o.mem.set_byte(0, key);
        }
        Some(n)
    }

    /// A program's `bpf_obj_drop` of an object of the type (0: nothing).
    pub fn obj_drop(&self, n: u64) {
        if n != 0 {
            kernel_core::obj::__bpf_obj_drop_impl(&self.rt, n, self.rec(), false);
        }
    }
}

impl Fix {
    /// The map apart from the rest, each in its own `Arc`.
    pub fn split(self) -> (Arc<Ctx>, Arc<MapRt>) {
        let Fix {
            rt,
            btf,
            map,
            node_id,
            meta,
        } = self;
        (
            Arc::new(Ctx {
                rt,
                btf,
                node_id,
                meta,
            }),
            map,
        )
    }
}

/// Drops the shared context once every actor is joined and runs the RCU callbacks
/// still queued (loom checks that every `Arc` is freed).
pub fn finish_ctx(c: Arc<Ctx>) {
    let c = Arc::try_unwrap(c).ok().expect("every actor joined");
    let rcu = Arc::clone(&c.rt.rcu);
    drop(c);
    rcu.rcu_barrier();
}

/// A kernel with two live modules, `moda` and `modb`, each defining an object type
/// with a registered destructor (`a_obj`, `b_obj`), and a program BTF with `val2 {
/// struct a_obj __kptr *a; struct b_obj __kptr *b; }` (offsets 0 and 8).
pub struct TwoModFix {
    /// The kernel.
    pub kernel: Arc<KernelBtfs>,
    /// The modules, `moda` then `modb`.
    pub modules: [Arc<kernel_core::module::Module>; 2],
    /// Their BTFs.
    pub mod_btfs: [BtfRef; 2],
    /// The program BTF.
    pub prog: BtfRef,
    /// `val2`'s id.
    pub value_id: u32,
    /// The RCU domain.
    pub rcu: Arc<Rcu>,
}

/// See [`TwoModFix`].
pub fn fixture_two_modules(sem: Semantics) -> TwoModFix {
    let (kernel, rcu) = small_kernel(sem);
    let (nr, sl) = {
        let v = kernel.vmlinux().expect("vmlinux");
        (v.data().nr_types(), v.data().header().str_len)
    };
    let mut modules = Vec::new();
    let mut mod_btfs = Vec::new();
    for (m, ty) in [("moda", "a_obj"), ("modb", "b_obj")] {
        let mut mb = BtfBuilder::new_split(nr, sl);
        mb.struct_(ty, 8, &[("x", 1, 0)]);
        let p = mb.ptr(0);
        let proto = mb.func_proto(0, &[("p", p)]);
        let dtor = format!("{ty}_release_dtor");
        mb.func(&dtor, proto, 1);
        let vm = kernel.vmlinux().expect("vm");
        let mbtf =
            kernel_core::btf::btf_parse_module(m, &mb.build(), vm, true, sem).expect("module BTF");
        let module = kernel_core::module::Module::new(m);
        kernel.add_module(mbtf, Arc::clone(&module)).expect("add");
        kernel.module_live(m).expect("live");
        let mbtf = kernel
            .modules()
            .into_iter()
            .find(|b| b.name() == m)
            .expect("module btf");
        kernel
            .register_btf_id_dtor_kfuncs(&mbtf, &[(ty, dtor.as_str())])
            .expect("dtor");
        modules.push(module);
        mod_btfs.push(mbtf);
    }
    let mut b = BtfBuilder::new();
    let int = b.int("int", 4, BTF_INT_SIGNED, 32);
    let a = b.struct_("a_obj", 8, &[("x", int, 0)]);
    let bo = b.struct_("b_obj", 8, &[("x", int, 0)]);
    let ta = b.type_tag("kptr", a);
    let pa = b.ptr(ta);
    let tb = b.type_tag("kptr", bo);
    let pb = b.ptr(tb);
    let v = b.struct_("val2", 16, &[("a", pa, 0), ("b", pb, 64)]);
    let (prog, _) = bpf_btf_load(&kernel, &b.build(), 0, &sem).expect("program BTF");
    let [ma, mbm]: [Arc<kernel_core::module::Module>; 2] =
        modules.try_into().ok().expect("two modules");
    let [ba, bb]: [BtfRef; 2] = mod_btfs.try_into().ok().expect("two module BTFs");
    TwoModFix {
        kernel,
        modules: [ma, mbm],
        mod_btfs: [ba, bb],
        prog,
        value_id: v,
        rcu,
    }
}

impl TwoModFix {
    /// An ARRAY map of `val2`.
    pub fn map(&self, sem: &Semantics) -> kernel_core::KResult<kernel_core::map::BpfMap> {
        let attr = MapAttr {
            inner_map: None,
            map_type: 2,
            key_size: 4,
            value_size: 16,
            max_entries: 1,
            map_flags: 0,
            btf: Some(&self.prog),
            btf_key_type_id: 1,
            btf_value_type_id: self.value_id,
            name: "m2",
        };
        map_create(&self.kernel, &attr, sem)
    }

    /// (module BTF count, module count) of both modules.
    pub fn counts(&self) -> [(i32, i32); 2] {
        [0, 1].map(|i| (self.mod_btfs[i].refcount(), self.modules[i].refcount()))
    }

    /// Tears down, running the RCU callbacks still queued.
    pub fn finish(self) {
        let rcu = Arc::clone(&self.rcu);
        drop(self);
        rcu.rcu_barrier();
    }
}

/// A value with a lock, data and a kptr: `lv { struct bpf_spin_lock l; int counter;
/// struct node __kptr *n; }` (lock 0, counter 4 in the lock's 8-byte word, kptr 8),
/// `node { long key; struct bpf_refcount r; }`, one ARRAY value.
pub fn fixture_locked_kptr(sem: Semantics) -> Fix {
    let (kernel, rcu) = small_kernel(sem);
    let mut b = BtfBuilder::new();
    let int = b.int("int", 4, BTF_INT_SIGNED, 32);
    let long = b.int("long", 8, BTF_INT_SIGNED, 64);
    let lock = b.struct_("bpf_spin_lock", 4, &[("v", int, 0)]);
    let rc = b.struct_("bpf_refcount", 4, &[("v", int, 0)]);
    let node = b.struct_("node", 16, &[("key", long, 0), ("r", rc, 64)]);
    let t = b.type_tag("kptr", node);
    let p = b.ptr(t);
    let v = b.struct_(
        "lv",
        16,
        &[("l", lock, 0), ("counter", int, 32), ("n", p, 64)],
    );
    let (btf, _) = bpf_btf_load(&kernel, &b.build(), 0, &sem).expect("program BTF");
    let map = array_map(&kernel, &btf, int, v, 16, 1, &sem);
    let rt = BpfRuntime::new(sem, kernel, rcu);
    let meta = find_meta(&btf, node);
    Fix {
        rt,
        btf,
        map,
        node_id: node,
        meta,
    }
}
