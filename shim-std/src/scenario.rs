//! Scenarios run against the run-time model: the c8e18754 example end to end (allocate
//! a node, stash it with `bpf_kptr_xchg` into an array map value, close the map), for
//! `kptr-model trace` and the tests.

use kernel_core::btf::{BtfRef, KernelBtfs};
use kernel_core::map::map_create;
use kernel_core::map::runtime::MapRt;
use kernel_core::obj::{BpfRuntime, MemFault, bpf_kptr_xchg, bpf_obj_new_impl};
use kernel_core::record::{BtfFieldType, bpf_btf_load};
use kernel_core::sync::Arc;
use kernel_core::{Errno, Semantics};

use crate::elf::{LoadError, read_bpf_object};

/// What a scenario ended with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Objects allocated and freed.
    pub allocs: usize,
    /// Frees.
    pub frees: usize,
    /// Objects still allocated at the end.
    pub leaks: usize,
    /// Double frees seen.
    pub double_frees: usize,
    /// Uses after free seen.
    pub use_after_free: usize,
    /// The program BTF's refcount before the map and after everything.
    pub prog_btf_refs: (i32, i32),
    /// A step the kernel refuses (the verifier, map creation), if the scenario stopped.
    pub refused: Option<String>,
    /// The kernel WARNs the scenario raised.
    pub warnings: Vec<&'static str>,
    /// Who owns what once the node is stashed, as a Graphviz graph.
    pub dot: String,
}

/// Who owns what, as Graphviz: the map, its value slots, the objects they hold, the
/// BTFs and the references the record's fields hold.
fn ownership_dot(
    map_name: &str,
    map: &MapRt,
    rt: &BpfRuntime,
    prog: &BtfRef,
    vmlinux: Option<&BtfRef>,
) -> String {
    let mut d = String::from(
        "digraph ownership {\n  rankdir=LR;\n  node [shape=box, fontname=monospace];\n",
    );
    d += &format!("  map [label=\"map {map_name}\"];\n");
    d += &format!(
        "  prog_btf [label=\"program BTF #{} (refcount {})\", shape=folder];\n",
        prog.id(),
        prog.refcount()
    );
    if let Some(v) = vmlinux {
        d += &format!(
            "  vmlinux [label=\"vmlinux BTF (refcount {})\", shape=folder];\n",
            v.refcount()
        );
    }
    d += "  map -> prog_btf [label=\"map->btf\"];\n";
    if let Some(rec) = map.record() {
        for f in &rec.fields {
            let fid = format!("field_{}", f.offset);
            d += &format!(
                "  {fid} [label=\"record field +{} {}\", shape=note];\n",
                f.offset,
                f.ty.name()
            );
            d += &format!("  map -> {fid} [label=\"map->record\"];\n");
            if let Some(k) = &f.kptr {
                let target = if k.local { "prog_btf" } else { "vmlinux" };
                let style = if k.btf.is_held() { "solid" } else { "dashed" };
                let label = if k.btf.is_held() {
                    "holds a reference"
                } else {
                    "points to (no reference)"
                };
                d += &format!("  {fid} -> {target} [style={style}, label=\"{label}\"];\n");
            }
            if let Some(v) = map.array_value(0, 0)
                && let Some(slot) = v.slot(f.offset)
            {
                let p = slot.load(std::sync::atomic::Ordering::SeqCst);
                let sid = format!("slot_{}", f.offset);
                d += &format!("  {sid} [label=\"value[0] +{} = {:#x}\"];\n", f.offset, p);
                d += &format!("  map -> {sid} [label=\"value\"];\n");
                if p != 0 {
                    let ty = rt
                        .mem
                        .get(p)
                        .and_then(|_| rt.mem.info(p))
                        .map(|i| i.ty)
                        .unwrap_or_default();
                    d += &format!("  obj_{p:x} [label=\"{ty} @{p:#x}\", shape=ellipse];\n");
                    d += &format!("  {sid} -> obj_{p:x} [label=\"owns (kptr)\"];\n");
                }
            }
        }
    }
    d += "}\n";
    d
}

fn err(e: Errno, reason: &str) -> LoadError {
    LoadError {
        errno: e,
        reason: reason.into(),
    }
}

/// The c8e18754 example: BTF load, map create, `bpf_obj_new`, `bpf_kptr_xchg` into
/// the value, map close (`bpf_map_put`, deferred free), RCU barrier.
pub fn c8e18754_example(
    kernel: KernelBtfs,
    obj: &[u8],
    sem: Semantics,
) -> Result<Outcome, LoadError> {
    crate::tally::install();
    let kernel = Arc::new(kernel);
    let rcu = Arc::clone(kernel.idr().rcu_arc());
    let rt = BpfRuntime::new(sem, Arc::clone(&kernel), rcu);
    let o = read_bpf_object(obj)?;
    let (btf, _) =
        bpf_btf_load(&kernel, &o.btf, 0, &sem).map_err(|e| err(e.errno, "BTF load refused"))?;
    let before = btf.refcount();
    let def = o
        .maps
        .iter()
        .find(|m| !m.internal)
        .cloned()
        .ok_or_else(|| err(Errno::ENOENT, "no map"))?;
    let name = def.kernel_name();
    let attr = def.attr(&btf, &name);
    let map = map_create(&kernel, &attr, &sem).map_err(|e| err(e, "map create refused"))?;
    let map = MapRt::new(map, &sem).map_err(|e| err(e, "map type"))?;
    let mut refused = None;
    let field = map.record().and_then(|r| r.find(0, BtfFieldType::KPTR_REF));
    match field {
        None => {
            refused = Some(format!(
                "verifier: map '{}' has no valid kptr (record: {})",
                def.name,
                map.map
                    .record_error
                    .map_or("none".to_string(), |e| e.to_string())
            ));
        }
        Some(f) => {
            let node_id = f.kptr.as_ref().map_or(0, |k| k.btf_id);
            // The BPF program: runs with migration disabled.
            rt.migrate_disable();
            let node = bpf_obj_new_impl(&rt, &btf, node_id)
                .ok_or_else(|| err(Errno::ENOMEM, "bpf_obj_new"))?;
            let value = map
                .array_value(0, 0)
                .ok_or_else(|| err(Errno::ENOENT, "no value"))?;
            let old = bpf_kptr_xchg(value, 0, node).map_err(|e| err(e, "xchg"))?;
            if old != 0 {
                kernel_core::obj::bpf_obj_drop_impl(&rt, &btf, node_id, old);
            }
            rt.migrate_enable();
        }
    }
    let dot = ownership_dot(&def.name, &map, &rt, &btf, kernel.vmlinux());
    // Close the map: the last reference; the deferred free runs on the workqueue.
    if let Some(free) = MapRt::bpf_map_put(map) {
        free.run(&rt);
    }
    rt.rcu.rcu_barrier();
    let after = btf.refcount();
    drop(btf);
    rt.rcu.rcu_barrier();
    let faults = rt.mem.faults();
    let (allocs, frees) = rt.mem.counts();
    Ok(Outcome {
        allocs,
        frees,
        leaks: rt.mem.live().len(),
        double_frees: faults
            .iter()
            .filter(|f| matches!(f, MemFault::DoubleFree(..)))
            .count(),
        use_after_free: faults
            .iter()
            .filter(|f| matches!(f, MemFault::UseAfterFree(..)))
            .count(),
        prog_btf_refs: (before, after),
        refused,
        warnings: rt.warnings(),
        dot,
    })
}
