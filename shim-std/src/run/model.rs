//! A scenario on the model: the object's BTF loaded and the map created as
//! `check` does, then each step on `kernel-core`'s run-time model (program steps with
//! migration disabled, as a BPF program runs; user-space steps through
//! `MapRt::update`/`delete`), then the map closed: the last `bpf_map_put`, the
//! deferred `map_free`, an RCU barrier. Per-CPU values are CPU 0's, as the kernel run
//! pins itself to CPU 0.

use std::sync::atomic::Ordering;

use kernel_core::btf::{BtfKind, BtfRef};
use kernel_core::map::map_create;
use kernel_core::map::runtime::MapRt;
use kernel_core::obj::{
    BpfRuntime, MemFault, Words, bpf_kptr_xchg, bpf_obj_drop_impl, bpf_obj_new_impl,
};
use kernel_core::record::{BtfFieldType, bpf_btf_load};
use kernel_core::sync::Arc;
use kernel_core::{Errno, Semantics};

use super::{BPF_NOEXIST, FILL_MAX, Scenario, Step, errno_result, program_result};
use crate::elf::{LoadError, read_bpf_object_named};
use crate::maps::MapDef;

/// What closing the map left, on the model.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CloseSummary {
    /// Objects allocated and freed over the whole scenario.
    pub allocs: usize,
    /// Frees.
    pub frees: usize,
    /// Objects still allocated after the map's teardown and a grace period.
    pub leaks: usize,
    /// Double frees.
    pub double_frees: usize,
    /// Uses after free.
    pub use_after_free: usize,
    /// NULL dereferences (a kernel oops).
    pub null_derefs: usize,
    /// Kernel WARNs.
    pub warnings: Vec<&'static str>,
}

/// The model's run.
#[derive(Clone, Debug)]
pub struct ModelRun {
    /// The map as libbpf creates it.
    pub def: MapDef,
    /// One result per step.
    pub results: Vec<String>,
    /// After the close.
    pub close: CloseSummary,
}

fn err(e: Errno, why: String) -> LoadError {
    LoadError {
        errno: e,
        reason: why,
    }
}

/// The model's map and what its program steps need.
struct Setup {
    rt: Arc<BpfRuntime>,
    btf: BtfRef,
    map: Arc<MapRt>,
    /// `struct obj` (what `bpf_obj_new` allocates) and the slot's offset, when the
    /// value has a referenced kptr under this profile (else the verifier refuses the
    /// programs).
    kptr: Option<(u32, u32)>,
}

/// Runs `sc` on the model under `sem`.
pub fn run_model(sc: &Scenario, sem: Semantics) -> Result<ModelRun, LoadError> {
    crate::tally::install();
    let bytes = crate::kernel_btf::read(&sc.object)?;
    let oname = crate::libbpf::object_name(&sc.object.display().to_string());
    let o = read_bpf_object_named(&bytes, &oname)?;
    let def = o
        .maps
        .iter()
        .find(|m| m.libbpf_name() == sc.map)
        .cloned()
        .ok_or_else(|| {
            err(
                Errno::ENOENT,
                format!(
                    "{}: no map {:?} in {}",
                    sc.path.display(),
                    sc.map,
                    sc.object.display()
                ),
            )
        })?;
    let (kernel, _) = crate::kernel_btf::load_kernel_btfs(None, false, sem)?;
    let kernel = Arc::new(kernel);
    let rcu = Arc::clone(kernel.idr().rcu_arc());
    let rt = BpfRuntime::new(sem, Arc::clone(&kernel), rcu);
    let (btf, _) = bpf_btf_load(&kernel, &o.btf, 0, &sem).map_err(|e| {
        err(
            e.errno,
            format!(
                "{}: BTF load refused ({})",
                sc.object.display(),
                e.message()
            ),
        )
    })?;
    let name = def.kernel_name();
    let map = map_create(&kernel, &def.attr(&btf, &name), &sem).map_err(|e| {
        err(
            e,
            format!("{}: map {} refused", sc.object.display(), def.kname),
        )
    })?;
    let map = MapRt::new(map, &sem).map_err(|e| {
        err(
            e,
            format!("map {}: no run-time model for its type", def.kname),
        )
    })?;
    let obj_id = btf
        .data()
        .local_types()
        .find(|t| t.kind() == BtfKind::Struct && btf.data().name_by_offset(t.name_off()) == "obj")
        .map(|t| t.id());
    let slot = map
        .record()
        .and_then(|r| {
            r.fields
                .iter()
                .find(|f| f.ty.intersects(BtfFieldType::KPTR_REF))
        })
        .map(|f| f.offset);
    let s = Setup {
        rt,
        btf,
        map,
        kptr: obj_id.zip(slot),
    };
    let results = sc.lines.iter().map(|l| step(&s, &def, &l.step)).collect();
    let close = close(s, sc.leaks);
    Ok(ModelRun {
        def,
        results,
        close,
    })
}

fn key_bytes(k: u32) -> [u8; 4] {
    k.to_ne_bytes()
}

fn obj_id_of(rt: &BpfRuntime, addr: u64) -> u64 {
    rt.mem
        .get(addr)
        .and_then(|o| o.mem.slot(0).map(|w| w.load(Ordering::Relaxed)))
        .unwrap_or(0)
}

/// A program step: the value the program's lookup finds, then `f` on it.
fn with_value(s: &Setup, key: u32, f: impl FnOnce(&Words) -> i64) -> i64 {
    let m = &s.map;
    if let Some(v) = m.array_value(key, 0) {
        return f(v);
    }
    match m.htab_lookup(&key_bytes(key)) {
        Some(e) => match e.values.first() {
            Some(v) => f(v),
            None => -i64::from(Errno::ENOENT.raw()),
        },
        None => -i64::from(Errno::ENOENT.raw()),
    }
}

/// `bpf_obj_new` an object with `id`, exchange it into `v`'s slot at `off`, drop what
/// it displaces: that object's id, 0, or -errno.
fn stash(s: &Setup, v: &Words, obj_ty: u32, off: u32, id: u64) -> i64 {
    let rt = &s.rt;
    let Some(obj) = bpf_obj_new_impl(rt, &s.btf, obj_ty) else {
        return -i64::from(Errno::ENOMEM.raw());
    };
    if let Some(w) = rt.mem.get(obj).and_then(|o| o.mem.slot(0)) {
        w.store(id, Ordering::Relaxed);
    }
    match bpf_kptr_xchg(v, off, obj) {
        Ok(0) => 0,
        Ok(old) => {
            let oid = obj_id_of(rt, old);
            bpf_obj_drop_impl(rt, &s.btf, obj_ty, old);
            oid as i64
        }
        Err(e) => -i64::from(e.raw()),
    }
}

fn program(s: &Setup, st: &Step) -> String {
    let Some((obj_ty, off)) = s.kptr else {
        return "verifier refuses the program (the value has no referenced kptr under this profile)".into();
    };
    let rt = &s.rt;
    rt.migrate_disable();
    let ret = match *st {
        Step::Stash(key, id) => with_value(s, key, |v| stash(s, v, obj_ty, off, id)),
        Step::StashDeleted(key, id) => match s.map.htab_lookup(&key_bytes(key)) {
            Some(e) => {
                // The program holds the element across its own delete.
                let _ = s.map.delete(rt, &key_bytes(key));
                match e.values.first() {
                    Some(v) => stash(s, v, obj_ty, off, id),
                    None => -i64::from(Errno::ENOENT.raw()),
                }
            }
            None => -i64::from(Errno::ENOENT.raw()),
        },
        Step::Take(key) => with_value(s, key, |v| match bpf_kptr_xchg(v, off, 0) {
            Ok(0) => 0,
            Ok(old) => {
                let oid = obj_id_of(rt, old);
                bpf_obj_drop_impl(rt, &s.btf, obj_ty, old);
                oid as i64
            }
            Err(e) => -i64::from(e.raw()),
        }),
        Step::Peek(key) => with_value(s, key, |v| match bpf_kptr_xchg(v, off, 0) {
            Ok(0) => 0,
            Ok(old) => {
                let oid = obj_id_of(rt, old);
                if let Ok(again) = bpf_kptr_xchg(v, off, old)
                    && again != 0
                {
                    bpf_obj_drop_impl(rt, &s.btf, obj_ty, again);
                }
                oid as i64
            }
            Err(e) => -i64::from(e.raw()),
        }),
        _ => 0,
    };
    rt.migrate_enable();
    program_result(st, ret)
}

fn step(s: &Setup, def: &MapDef, st: &Step) -> String {
    let zero = vec![0u8; def.value_size as usize];
    let res =
        |r: Result<(), Errno>| r.map_or_else(|e| errno_result(e.raw()), |()| "ok".to_string());
    match *st {
        Step::Stash(..) | Step::StashDeleted(..) | Step::Take(_) | Step::Peek(_) => program(s, st),
        Step::Update(key, flags) => res(s.map.update(&s.rt, &key_bytes(key), &zero, flags)),
        Step::Delete(key) => res(s.map.delete(&s.rt, &key_bytes(key))),
        Step::Lookup(key) => {
            let present = key < def.max_entries && s.map.array_value(key, 0).is_some()
                || s.map.htab_lookup_sys(&key_bytes(key)).is_some();
            if present {
                "present".into()
            } else {
                errno_result(Errno::ENOENT.raw())
            }
        }
        Step::Fill(first) => {
            for n in 0..FILL_MAX {
                let k = first.saturating_add(n);
                if let Err(e) = s.map.update(&s.rt, &key_bytes(k), &zero, BPF_NOEXIST) {
                    return format!("filled {n}, then {e}");
                }
            }
            format!("filled {FILL_MAX}")
        }
    }
}

/// Closes the map as the last fd's close does, and counts what is left; exactly
/// `expected_leaks` left objects are acknowledged as the kernel's leak.
fn close(s: Setup, expected_leaks: usize) -> CloseSummary {
    let Setup { rt, btf, map, .. } = s;
    if let Some(free) = MapRt::bpf_map_put(map) {
        free.run(&rt);
    }
    rt.rcu.rcu_barrier();
    drop(btf);
    rt.rcu.rcu_barrier();
    let faults = rt.mem.faults();
    let (allocs, frees) = rt.mem.counts();
    let count = |f: fn(&MemFault) -> bool| faults.iter().filter(|x| f(x)).count();
    let leaks = rt.mem.live().len();
    if leaks > 0 && leaks == expected_leaks && faults.is_empty() {
        rt.mem.acknowledge();
    }
    CloseSummary {
        allocs,
        frees,
        leaks,
        double_frees: count(|f| matches!(f, MemFault::DoubleFree(..))),
        use_after_free: count(|f| matches!(f, MemFault::UseAfterFree(..))),
        null_derefs: count(|f| matches!(f, MemFault::NullDeref(..))),
        warnings: rt.warnings(),
    }
}
