//! Shared set-up of the loom models: a kernel with a tiny vmlinux BTF, a program BTF
//! with a refcounted local object type, an ARRAY map whose value holds a kptr to it,
//! and the run-time model over them. Everything here is `kernel-core`'s own code.
#![cfg(loom)]

use kernel_core::Semantics;
use kernel_core::btf::builder::BtfBuilder;
use kernel_core::btf::uapi::*;
use kernel_core::btf::{BtfIdr, BtfRef, KernelBtfs, btf_parse_vmlinux};
use kernel_core::map::runtime::MapRt;
use kernel_core::map::{MapAttr, map_create};
use kernel_core::obj::{BpfRuntime, MemFault, MetaRec, find_meta};
use kernel_core::record::bpf_btf_load;
use kernel_core::sync::{Arc, Rcu};

/// A kernel with a tiny vmlinux BTF (one int, `task_struct`) and its RCU domain.
pub fn small_kernel(sem: Semantics) -> (Arc<KernelBtfs>, Arc<Rcu>) {
    let mut vb = BtfBuilder::new();
    let vint = vb.int("int", 4, BTF_INT_SIGNED, 32);
    vb.struct_("task_struct", 8, &[("pid", vint, 0)]);
    let vm = btf_parse_vmlinux(&vb.build(), true, sem).expect("vmlinux");
    let rcu = Arc::new(Rcu::new());
    let kernel =
        Arc::new(KernelBtfs::new(BtfIdr::new(Arc::clone(&rcu)), Some(vm)).expect("kernel"));
    (kernel, rcu)
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
    let attr = MapAttr {
        inner_map: None,
        map_type: 2,
        key_size: 4,
        value_size: size,
        max_entries: entries,
        map_flags: 0,
        btf: Some(btf),
        btf_key_type_id: key,
        btf_value_type_id: value,
        name: "m",
    };
    MapRt::new(map_create(kernel, &attr, sem).expect("map"), sem).expect("rt")
}

static EXECUTIONS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Runs a loom model and reports how many executions it explored.
pub fn model(name: &str, f: impl Fn() + Sync + Send + 'static) {
    let start = std::time::Instant::now();
    EXECUTIONS.store(0, std::sync::atomic::Ordering::SeqCst);
    loom::model(move || {
        EXECUTIONS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        f();
    });
    eprintln!(
        "loom model {name}: {} executions in {:.2?}",
        EXECUTIONS.load(std::sync::atomic::Ordering::SeqCst),
        start.elapsed()
    );
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

    let mut b = BtfBuilder::new();
    let int = b.int("int", 4, BTF_INT_SIGNED, 32);
    let long = b.int("long", 8, BTF_INT_SIGNED, 64);
    let rc = b.struct_("bpf_refcount", 4, &[("v", int, 0)]);
    let node = b.struct_("node", 16, &[("key", long, 0), ("r", rc, 64)]);
    let t = b.type_tag("kptr", node);
    let p = b.ptr(t);
    let v = b.struct_("value", 8, &[("n", p, 0)]);
    let (btf, _) = bpf_btf_load(&kernel, &b.build(), 0, &sem).expect("program BTF");
    let map = array_map(&kernel, &btf, int, v, 8, 2, &sem);
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

/// The invariants alone.
pub fn check(f: &Fix) {
    f.rt.rcu.rcu_barrier();
    let faults = f.rt.mem.faults();
    let kinds: Vec<&str> = faults
        .iter()
        .map(|m| match m {
            MemFault::UseAfterFree(..) => "use-after-free",
            MemFault::DoubleFree(..) => "double free",
            MemFault::Wild(_) => "wild address",
            MemFault::NullDeref(..) => "NULL pointer dereference",
        })
        .collect();
    assert!(faults.is_empty(), "faults {kinds:?}: {faults:?}");
    assert!(f.rt.mem.live().is_empty(), "leaked: {:?}", f.rt.mem.live());
    let (a, fr) = f.rt.mem.counts();
    assert_eq!(a, fr, "allocations and frees");
    assert!(f.rt.warnings().is_empty(), "WARN: {:?}", f.rt.warnings());
}

/// A value with a graph root: `gvalue { bpf_spin_lock l; bpf_list_head h
/// __contains(gnode, ln); }`, `gnode { long key; bpf_list_node ln; }`. Offsets: lock
/// 0, head 8; node at 8 in the object.
pub fn fixture_graph(sem: Semantics) -> Fix {
    let (kernel, rcu) = small_kernel(sem);
    let mut b = BtfBuilder::new();
    let int = b.int("int", 4, BTF_INT_SIGNED, 32);
    let long = b.int("long", 8, BTF_INT_SIGNED, 64);
    let lock = b.struct_("bpf_spin_lock", 4, &[("v", int, 0)]);
    let head = b.struct_("bpf_list_head", 16, &[("a", long, 0), ("b", long, 64)]);
    let ln = b.struct_(
        "bpf_list_node",
        24,
        &[("a", long, 0), ("b", long, 64), ("c", long, 128)],
    );
    let node = b.struct_("gnode", 32, &[("key", long, 0), ("ln", ln, 64)]);
    let v = b.struct_("gvalue", 24, &[("l", lock, 0), ("h", head, 64)]);
    b.decl_tag("contains:gnode:ln", v, 1);
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
