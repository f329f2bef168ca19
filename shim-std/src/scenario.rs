//! Scenarios run against the run-time model: the c8e18754 example end to end (allocate
//! a node, stash it with `bpf_kptr_xchg` into an array map value, close the map), for
//! `kptr-model trace` and the tests.

use kernel_core::btf::{BtfRef, KernelBtfs};
use kernel_core::map::runtime::MapRt;
use kernel_core::obj::{BpfRuntime, MemFault, Words, bpf_kptr_xchg, bpf_obj_new_impl};
use kernel_core::record::BtfFieldType;
use kernel_core::sync::Arc;
use kernel_core::syscall::bpf_btf_load;
use kernel_core::syscall::map_create;
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
    /// The map the object was stashed into.
    pub map: String,
}

/// Who owns what, as Graphviz: the map, its value slots, the objects they hold, the
/// BTFs and the references the record's fields hold. Objects are named as the trace
/// names them (`obj#1`, `kobj#1`), so two runs give the same graph.
fn ownership_dot(
    map_name: &str,
    map: &MapRt,
    value: Option<&Words>,
    prog: &BtfRef,
    vmlinux: Option<&BtfRef>,
    obj_name: &str,
) -> String {
    let mut d = String::from(
        "digraph ownership {\n  rankdir=LR;\n  node [shape=box, fontname=monospace];\n",
    );
    d += &format!("  map [label=\"map {map_name}\"];\n");
    d += &format!(
        "  prog_btf [label=\"btf#program (refcount {})\", shape=folder];\n",
        prog.refcount()
    );
    if let Some(v) = vmlinux {
        d += &format!(
            "  vmlinux [label=\"btf#vmlinux (refcount {})\", shape=folder];\n",
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
            if let Some(slot) = value.and_then(|v| v.slot(f.offset)) {
                let p = slot.load(std::sync::atomic::Ordering::SeqCst);
                let sid = format!("slot_{}", f.offset);
                let held = if p == 0 { "NULL" } else { obj_name };
                d += &format!("  {sid} [label=\"value[0] +{} = {held}\"];\n", f.offset);
                d += &format!("  map -> {sid} [label=\"value\"];\n");
                if p != 0 {
                    d += &format!("  obj [label=\"{obj_name}\", shape=ellipse];\n");
                    d += &format!("  {sid} -> obj [label=\"owns (kptr)\"];\n");
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
    stash_and_close(kernel, obj, sem, None)
}

fn value_of<'m>(
    map: &'m MapRt,
    rt: &BpfRuntime,
    held: &'m mut Option<Arc<kernel_core::map::runtime::HtabElem>>,
) -> Result<&'m Words, LoadError> {
    use kernel_core::map::types::*;
    match map.map.map_type {
        BPF_MAP_TYPE_ARRAY | BPF_MAP_TYPE_PERCPU_ARRAY => map
            .array_value(0, 0)
            .ok_or_else(|| err(Errno::ENOENT, "no value at key 0")),
        _ => {
            // A hash map: insert key 0 (zeroed), then look the element up as a
            // program would.
            let key = vec![0u8; map.map.key_size as usize];
            let value = vec![0u8; map.bpf_map_value_size()];
            map.update(rt, &key, &value, 0)
                .map_err(|e| err(e, "update of key 0"))?;
            *held = map.htab_lookup(&key);
            held.as_ref()
                .and_then(|e| e.values.first())
                .map(|w| &**w)
                .ok_or_else(|| err(Errno::ENOENT, "no element at key 0"))
        }
    }
}

/// Stashes one object into a map's first referenced kptr (`bpf_obj_new` for a local
/// pointee, an acquired kernel object otherwise) with `bpf_kptr_xchg`, then closes the
/// map (`bpf_map_put`, the deferred free, an RCU barrier). `map_name` picks the map
/// (its name, libbpf's name, or its section); by default the first map with a
/// referenced kptr, or the first map.
pub fn stash_and_close(
    kernel: KernelBtfs,
    obj: &[u8],
    sem: Semantics,
    map_name: Option<&str>,
) -> Result<Outcome, LoadError> {
    crate::tally::install();
    let kernel = Arc::new(kernel);
    let rcu = Arc::clone(kernel.idr().rcu_arc());
    let rt = BpfRuntime::new(sem, Arc::clone(&kernel), rcu);
    let o = read_bpf_object(obj)?;
    let (btf, _) =
        bpf_btf_load(&kernel, &o.btf, 0, &sem).map_err(|e| err(e.errno, "BTF load refused"))?;
    let before = btf.refcount();
    let candidates: Vec<_> = match map_name {
        Some(n) => o
            .maps
            .iter()
            .filter(|m| m.name == n || m.kname == n || m.libbpf_name() == n)
            .cloned()
            .collect(),
        None => o.maps.iter().filter(|m| !m.internal).cloned().collect(),
    };
    if candidates.is_empty() {
        let names: Vec<String> = o.maps.iter().map(|m| m.kname.clone()).collect();
        return Err(err(
            Errno::ENOENT,
            &match map_name {
                Some(n) => format!("no map {n:?} in the object (maps: {})", names.join(", ")),
                None => "the object has no map".into(),
            },
        ));
    }
    // The named map, or the first with a referenced kptr (else the first).
    let mut chosen = None;
    for def in &candidates {
        let name = def.kernel_name();
        let m = map_create(&kernel, &def.attr(&btf, &name), &sem);
        let has = m.as_ref().is_ok_and(|m| {
            m.record
                .as_ref()
                .is_some_and(|r| r.has_field(BtfFieldType::KPTR_REF))
        });
        if has || map_name.is_some() {
            chosen = Some((def.clone(), m));
            break;
        }
    }
    let (def, created) = match chosen {
        Some(c) => c,
        None => {
            let def = candidates[0].clone();
            let name = def.kernel_name();
            let m = map_create(&kernel, &def.attr(&btf, &name), &sem);
            (def, m)
        }
    };
    let map = created.map_err(|e| err(e, &format!("map {} create refused", def.kname)))?;
    let map = MapRt::new(map, &sem).map_err(|e| {
        err(
            e,
            &format!(
                "trace runs on ARRAY, PERCPU_ARRAY and hash maps; map {} is {}",
                def.kname,
                kernel_core::map::map_type_name(def.map_type)
            ),
        )
    })?;
    let mut refused = None;
    // (offset, local, pointee id, pointee name) of the first referenced kptr.
    let field = map.record().and_then(|r| {
        r.fields
            .iter()
            .find(|f| f.ty == BtfFieldType::KPTR_REF)
            .and_then(|f| {
                f.kptr
                    .as_ref()
                    .map(|k| (f.offset, k.local, k.btf_id, k.pointee.clone()))
            })
    });
    let mut held = None;
    let mut value_words = None;
    let mut obj_name = String::new();
    match field {
        None => {
            refused = Some(format!(
                "verifier: map '{}' has no valid kptr (record: {})",
                def.name,
                map.map
                    .record_error
                    .map_or("no referenced kptr".to_string(), |e| e.to_string())
            ));
        }
        Some((offset, local, btf_id, pointee)) => {
            let value = value_of(&map, &rt, &mut held)?;
            // The BPF program: runs with migration disabled.
            rt.migrate_disable();
            let new = if local {
                obj_name = "obj#1".into();
                bpf_obj_new_impl(&rt, &btf, btf_id)
                    .ok_or_else(|| err(Errno::ENOMEM, "bpf_obj_new"))?
            } else {
                obj_name = "kobj#1".into();
                rt.kernel_obj_new(&pointee)
            };
            let old = bpf_kptr_xchg(value, offset, new).map_err(|e| err(e, "xchg"))?;
            if old != 0 && local {
                kernel_core::obj::bpf_obj_drop_impl(&rt, &btf, btf_id, old);
            }
            rt.migrate_enable();
            value_words = Some(value);
        }
    }
    let dot = ownership_dot(
        &def.kname,
        &map,
        value_words,
        &btf,
        kernel.vmlinux(),
        &obj_name,
    );
    drop(held);
    let chosen_map = def.kname.clone();
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
    let kernel_left = rt
        .kernel_objs()
        .iter()
        .filter(|(_, k)| k.refcnt > 0)
        .count();
    Ok(Outcome {
        allocs,
        frees,
        leaks: rt.mem.live().len() + kernel_left,
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
        map: chosen_map,
    })
}
