//! A scenario on the model: the object's BTF loaded and its maps created as `check`
//! does (a map of maps holding the scenario's map too, with its preset slot), then
//! each step on `kernel-core`'s run-time model (program steps with migration disabled,
//! as a BPF program runs; user-space steps through the syscall layer of `MapRt`), then
//! the object closed as libbpf's `bpf_object__close` closes it: user space's map fds
//! first (`bpf_map_put_with_uref`), then the programs' references, the storage owners
//! the runner made, and the grace periods. Per-CPU values are CPU 0's, as the kernel
//! run pins itself to CPU 0.
//!
//! References as the kernel holds them: user space holds each map it created (one fd:
//! `refcnt` and `usercnt`); the programs hold the maps they use (`__add_used_map`:
//! the scenario's map, or the map of maps through which they reach it), as sleepable
//! programs (SEC("syscall")) or not (the socket storage's iterators); a map of maps'
//! slot holds its inner map.

use std::cell::{Cell, RefCell};
use std::sync::atomic::Ordering;

use kernel_core::btf::{BtfKind, BtfRef};
use kernel_core::map::local_storage::{
    BPF_LOCAL_STORAGE_GET_F_CREATE, OwnerKind, StorageOwner, bpf_local_storage_delete,
    bpf_local_storage_get, bpf_local_storage_owner_free, rcu_barrier_tasks_trace_and_rcu,
};
use kernel_core::map::runtime::{MapFree, MapRt, NR_CPUS};
use kernel_core::obj::{
    BpfRuntime, MemFault, Words, bpf_kptr_xchg, bpf_obj_drop_impl, bpf_obj_new_impl,
};
use kernel_core::record::BtfFieldType;
use kernel_core::sync::Arc;
use kernel_core::syscall::bpf_btf_load;
use kernel_core::syscall::map_create;
use kernel_core::{Errno, Semantics};

use super::{
    BPF_NOEXIST, FILL_MAX, OWNER_SELF, Scenario, Step, errno_result, outer_map, program_result,
    update_value, values_result,
};
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

/// The model's maps, the references held on them, and what the program steps need.
struct Setup {
    rt: Arc<BpfRuntime>,
    btf: BtfRef,
    /// User space's fd of the scenario's map (`None` once closed).
    map_fd: RefCell<Option<Arc<MapRt>>>,
    /// User space's fd of the map of maps holding it, if the object has one.
    outer_fd: RefCell<Option<Arc<MapRt>>>,
    /// The programs' reference: the map they use (the scenario's map, or the map of
    /// maps through which they reach it) and whether they are sleepable.
    progs: RefCell<Option<(Arc<MapRt>, bool)>>,
    /// The programs reach the scenario's map through slot `.0` of the map they use.
    via_outer: Option<u32>,
    /// The local storage owner (`self`) and whether it is still there.
    owner: Option<Arc<StorageOwner>>,
    owner_live: Cell<bool>,
    /// `struct obj` (what `bpf_obj_new` allocates) and the slot's offset, when the
    /// value has a referenced kptr under this profile (else the verifier refuses the
    /// programs).
    kptr: Option<(u32, u32)>,
    /// The value's `bpf_timer` offset.
    timer: Option<u32>,
    /// The scenario's map's order among the object's maps, and the outer map's:
    /// `bpf_object__close` closes their fds in the object's order.
    inner_first: bool,
}

/// The program type and owner a map type's scenario programs have.
fn owner_kind(map_type: u32) -> Option<OwnerKind> {
    OwnerKind::of_map_type(map_type)
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
    check_keys(sc, &def)?;
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
    let create = |d: &MapDef, inner: Option<&kernel_core::map::BpfMap>| {
        let name = d.kernel_name();
        let mut attr = d.attr(&btf, &name);
        attr.inner_map = inner;
        let m = map_create(&kernel, &attr, &sem).map_err(|e| {
            err(
                e,
                format!("{}: map {} refused", sc.object.display(), d.kname),
            )
        })?;
        MapRt::new(m, &sem).map_err(|e| {
            err(
                e,
                format!("map {}: no run-time model for its type", d.kname),
            )
        })
    };
    let map = create(&def, None)?;
    let outer_def = outer_map(&o.maps, &sc.map);
    let (outer, via_outer) = match &outer_def {
        None => (None, None),
        Some(od) => {
            let inner_def = od.inner.as_deref().ok_or_else(|| {
                err(
                    Errno::EINVAL,
                    format!("map {}: a map of maps without an inner map", od.kname),
                )
            })?;
            // libbpf: the inner template first, as the outer map's inner_map_fd.
            let name = inner_def.kernel_name();
            let template = map_create(&kernel, &inner_def.attr(&btf, &name), &sem)
                .map_err(|e| err(e, format!("inner map of {} refused", od.kname)))?;
            let outer = create(od, Some(&template))?;
            drop(template);
            let slot = od
                .init_slots
                .iter()
                .position(|s| s.as_deref() == Some(sc.map.as_str()))
                .unwrap_or(0) as u32;
            // libbpf's init_map_in_map_slots: BPF_MAP_UPDATE_ELEM(outer, slot, fd).
            outer
                .bpf_fd_array_map_update_elem(&rt, slot, &map, 0)
                .map_err(|e| err(e, format!("preset slot {slot} of {}", od.kname)))?;
            (Some(outer), Some(slot))
        }
    };
    let inner_first = outer_def.as_ref().is_none_or(|od| {
        let pos = |n: &str| o.maps.iter().position(|m| m.name == n);
        pos(&def.name) < pos(&od.name)
    });
    let obj_id = btf
        .data()
        .local_types()
        .find(|t| t.kind() == BtfKind::Struct && btf.data().name_by_offset(t.name_off()) == "obj")
        .map(|t| t.id());
    let field = |ty: BtfFieldType| {
        map.record()
            .and_then(|r| r.fields.iter().find(|f| f.ty.intersects(ty)))
            .map(|f| f.offset)
    };
    let slot = field(BtfFieldType::KPTR_REF);
    let timer = field(BtfFieldType::TIMER);
    let kind = owner_kind(def.map_type);
    // The programs are loaded after the maps: SEC("syscall") programs are sleepable,
    // the socket storage's iterators are not.
    let sleepable = kind != Some(OwnerKind::Sock);
    let prog_map = outer.as_ref().unwrap_or(&map);
    prog_map.__add_used_map(sleepable);
    let s = Setup {
        progs: RefCell::new(Some((Arc::clone(prog_map), sleepable))),
        rt,
        btf,
        map_fd: RefCell::new(Some(map)),
        outer_fd: RefCell::new(outer),
        via_outer,
        owner: kind.map(StorageOwner::new),
        owner_live: Cell::new(true),
        kptr: obj_id.zip(slot),
        timer,
        inner_first,
    };
    let results = sc.lines.iter().map(|l| step(&s, &def, &l.step)).collect();
    let close = close(s, sc.leaks);
    Ok(ModelRun {
        def,
        results,
        close,
    })
}

/// Scenario mistakes the parser cannot see: `self` is the key of a local storage map
/// and of no other; a task storage's owner (the runner's own thread) cannot go; there
/// is no `fill` of a storage.
fn check_keys(sc: &Scenario, def: &MapDef) -> Result<(), LoadError> {
    let kind = owner_kind(def.map_type);
    for l in &sc.lines {
        let why = match (&l.step, l.step.key(), kind) {
            (Step::Fill(_), _, Some(_)) => Some("a local storage map cannot be filled"),
            (_, Some(OWNER_SELF), None) => Some("`self` is the key of a local storage map only"),
            (_, Some(k), Some(_)) if k != OWNER_SELF => {
                Some("a local storage map's key is its owner: `self`")
            }
            (Step::OwnerFree, _, None) => Some("`owner-free` needs a local storage map"),
            (Step::OwnerFree, _, Some(OwnerKind::Task)) => Some(
                "the task storage's owner is the runner's own thread: it cannot go (owner-free)",
            ),
            (Step::TimerInit(_), _, Some(_)) => Some("local storage values have no timer"),
            _ => None,
        };
        if let Some(why) = why {
            return Err(super::bad(&sc.path, l.no, why));
        }
    }
    Ok(())
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

fn enoent() -> i64 {
    -i64::from(Errno::ENOENT.raw())
}

/// The map the programs reach the scenario's map through: `f` on the scenario's map
/// (looked up in the map of maps, when there is one).
fn with_prog_map(s: &Setup, f: impl FnOnce(&MapRt) -> i64) -> i64 {
    let progs = s.progs.borrow();
    let Some((m, _)) = progs.as_ref() else {
        return enoent();
    };
    match s.via_outer {
        None => f(m),
        Some(slot) => match m.array_of_map_lookup_elem(slot) {
            Some(inner) => f(&inner),
            None => enoent(),
        },
    }
}

/// A program step: the value the program's lookup finds (a local storage value with
/// `create` made if missing), then `f` on it.
fn with_value(s: &Setup, key: u32, create: bool, f: impl FnOnce(&Words) -> i64) -> i64 {
    with_prog_map(s, |m| {
        if let Some(smap) = m.local_storage() {
            if !s.owner_live.get() {
                return enoent();
            }
            let flags = if create {
                BPF_LOCAL_STORAGE_GET_F_CREATE
            } else {
                0
            };
            let sleepable = s.progs.borrow().as_ref().is_some_and(|p| p.1);
            return match bpf_local_storage_get(
                &s.rt,
                smap,
                s.owner.as_ref(),
                None,
                flags,
                sleepable,
            ) {
                Some(e) => f(e.data()),
                None => enoent(),
            };
        }
        if let Some(v) = m.array_value(key, 0) {
            return f(v);
        }
        match m.htab_lookup(&key_bytes(key)) {
            Some(e) => match e.values.first() {
                Some(v) => f(v),
                None => enoent(),
            },
            None => enoent(),
        }
    })
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

/// `stash_deleted`: the value looked up, its key (or the owner's element) deleted by
/// the program while it holds the value, then a new object stashed into it.
fn stash_deleted(s: &Setup, key: u32, obj_ty: u32, off: u32, id: u64) -> i64 {
    let rt = &s.rt;
    with_prog_map(s, |m| {
        if let Some(smap) = m.local_storage() {
            if !s.owner_live.get() {
                return enoent();
            }
            let sleepable = s.progs.borrow().as_ref().is_some_and(|p| p.1);
            let Some(e) = bpf_local_storage_get(rt, smap, s.owner.as_ref(), None, 0, sleepable)
            else {
                return enoent();
            };
            let _ = bpf_local_storage_delete(rt, smap, s.owner.as_ref());
            return stash(s, e.data(), obj_ty, off, id);
        }
        match m.htab_lookup(&key_bytes(key)) {
            Some(e) => {
                // The program holds the element across its own delete.
                let _ = m.htab_map_delete_elem(rt, &key_bytes(key));
                match e.values.first() {
                    Some(v) => stash(s, v, obj_ty, off, id),
                    None => enoent(),
                }
            }
            None => enoent(),
        }
    })
}

fn program(s: &Setup, st: &Step) -> String {
    let rt = &s.rt;
    if let Step::TimerInit(key) = *st {
        let Some(off) = s.timer else {
            return "verifier refuses the program (the value has no bpf_timer)".into();
        };
        rt.migrate_disable();
        let ret = with_prog_map(s, |m| {
            let v = m
                .array_value(key, 0)
                .map(|v| m.bpf_timer_init(rt, v, off))
                .or_else(|| {
                    m.htab_lookup(&key_bytes(key))
                        .map(|e| match e.values.first() {
                            Some(v) => m.bpf_timer_init(rt, v, off),
                            None => Err(Errno::ENOENT),
                        })
                });
            match v {
                Some(Ok(())) => 0,
                Some(Err(e)) => -i64::from(e.raw()),
                None => enoent(),
            }
        });
        rt.migrate_enable();
        return program_result(st, ret);
    }
    let Some((obj_ty, off)) = s.kptr else {
        return "verifier refuses the program (the value has no referenced kptr under this profile)".into();
    };
    rt.migrate_disable();
    let ret = match *st {
        Step::Stash(key, id) => with_value(s, key, true, |v| stash(s, v, obj_ty, off, id)),
        Step::StashDeleted(key, id) => stash_deleted(s, key, obj_ty, off, id),
        Step::Take(key) => with_value(s, key, false, |v| match bpf_kptr_xchg(v, off, 0) {
            Ok(0) => 0,
            Ok(old) => {
                let oid = obj_id_of(rt, old);
                bpf_obj_drop_impl(rt, &s.btf, obj_ty, old);
                oid as i64
            }
            Err(e) => -i64::from(e.raw()),
        }),
        Step::Peek(key) => with_value(s, key, false, |v| match bpf_kptr_xchg(v, off, 0) {
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

/// User space's fd of the scenario's map: `f` on it, -EBADF once closed.
fn user_map<T>(s: &Setup, f: impl FnOnce(&Arc<MapRt>) -> Result<T, Errno>) -> Result<T, Errno> {
    match s.map_fd.borrow().as_ref() {
        Some(m) => f(m),
        None => Err(Errno::EBADF),
    }
}

/// The owner's fd: -EBADF once the owner went (the runner closed it).
fn owner_fd(s: &Setup) -> Result<&Arc<StorageOwner>, Errno> {
    match &s.owner {
        Some(o) if s.owner_live.get() => Ok(o),
        _ => Err(Errno::EBADF),
    }
}

fn step(s: &Setup, def: &MapDef, st: &Step) -> String {
    let rt = &s.rt;
    let res =
        |r: Result<(), Errno>| r.map_or_else(|e| errno_result(e.raw()), |()| "ok".to_string());
    let (size, slice) = user_sizes(s, def);
    match st {
        Step::Stash(..)
        | Step::StashDeleted(..)
        | Step::Take(_)
        | Step::Peek(_)
        | Step::TimerInit(_) => program(s, st),
        Step::Update(key, flags, data) => {
            let value = update_value(size, slice, data);
            res(user_map(s, |m| {
                if m.local_storage().is_some() {
                    m.update_owner(rt, owner_fd(s)?, &value, *flags)
                } else {
                    m.update(rt, &key_bytes(*key), &value, *flags)
                }
            }))
        }
        Step::Delete(key) => res(user_map(s, |m| {
            if m.local_storage().is_some() {
                m.delete_owner(rt, owner_fd(s)?)
            } else {
                m.delete(rt, &key_bytes(*key))
            }
        })),
        Step::Lookup(key) => match user_lookup(s, *key, 0) {
            Ok(_) => "present".into(),
            Err(e) => errno_result(e.raw()),
        },
        Step::Values(key, flags) => match user_lookup(s, *key, *flags) {
            Ok(v) => values_result(&v, slice, NR_CPUS),
            Err(e) => errno_result(e.raw()),
        },
        Step::Fill(first) => {
            let zero = vec![0u8; size];
            for n in 0..FILL_MAX {
                let k = first.saturating_add(n);
                if let Err(e) = user_map(s, |m| m.update(rt, &key_bytes(k), &zero, BPF_NOEXIST)) {
                    return format!("filled {n}, then {e}");
                }
            }
            format!("filled {FILL_MAX}")
        }
        Step::CloseFd => match s.map_fd.borrow_mut().take() {
            Some(m) => {
                // bpf_map_release: bpf_map_put_with_uref.
                if let Some(free) = MapRt::bpf_map_put_with_uref(m, rt) {
                    free.schedule(rt);
                }
                "closed".into()
            }
            None => errno_result(Errno::EBADF.raw()),
        },
        Step::OuterDelete(k) => res(match s.outer_fd.borrow().as_ref() {
            Some(o) => o.fd_array_map_delete_elem(rt, *k),
            None => Err(Errno::EBADF),
        }),
        Step::OuterUpdate(k) => res(match s.outer_fd.borrow().as_ref() {
            Some(o) => user_map(s, |m| o.bpf_fd_array_map_update_elem(rt, *k, m, 0)),
            None => Err(Errno::EBADF),
        }),
        Step::OwnerFree => match &s.owner {
            Some(o) if s.owner_live.get() => {
                s.owner_live.set(false);
                bpf_local_storage_owner_free(rt, o);
                "freed".into()
            }
            _ => errno_result(Errno::EBADF.raw()),
        },
    }
}

/// The user buffer's size (`bpf_map_value_size`) and one CPU's slice of it.
fn user_sizes(s: &Setup, def: &MapDef) -> (usize, usize) {
    let per_cpu = matches!(def.map_type, 5 | 6 | 10);
    let slice = if per_cpu {
        def.value_size.div_ceil(8) as usize * 8
    } else {
        def.value_size as usize
    };
    let size = s
        .map_fd
        .borrow()
        .as_ref()
        .map_or(slice * if per_cpu { NR_CPUS } else { 1 }, |m| {
            m.bpf_map_value_size()
        });
    (size, slice)
}

fn user_lookup(s: &Setup, key: u32, flags: u64) -> Result<Vec<u8>, Errno> {
    user_map(s, |m| {
        if m.local_storage().is_some() {
            m.lookup_owner(&s.rt, owner_fd(s)?, flags)
        } else {
            m.bpf_map_copy_value(&key_bytes(key), flags)
        }
    })
}

/// Runs a map's deferred free as the kernel schedules it.
fn free(rt: &Arc<BpfRuntime>, f: Option<MapFree>) {
    if let Some(f) = f {
        f.schedule(rt);
    }
}

/// Closes the object as `bpf_object__close` does (the map fds in the object's order,
/// then the programs), lets the owners go, waits for every grace period, and counts
/// what is left; exactly `expected_leaks` left objects are acknowledged as the
/// kernel's leak.
fn close(s: Setup, expected_leaks: usize) -> CloseSummary {
    let Setup {
        rt,
        btf,
        map_fd,
        outer_fd,
        progs,
        owner,
        owner_live,
        inner_first,
        ..
    } = s;
    let mut fds = vec![map_fd.into_inner(), outer_fd.into_inner()];
    if !inner_first {
        fds.reverse();
    }
    for m in fds.into_iter().flatten() {
        free(&rt, MapRt::bpf_map_put_with_uref(m, &rt));
    }
    if let Some((m, sleepable)) = progs.into_inner() {
        free(&rt, MapRt::bpf_free_used_map(m, sleepable));
    }
    rcu_barrier_tasks_trace_and_rcu(&rt);
    if let Some(o) = owner
        && owner_live.get()
        && o.kind() != OwnerKind::Task
    {
        // The runner closes its socket and removes its cgroup after the object.
        bpf_local_storage_owner_free(&rt, &o);
    }
    rcu_barrier_tasks_trace_and_rcu(&rt);
    drop(btf);
    rcu_barrier_tasks_trace_and_rcu(&rt);
    let faults = rt.mem.faults();
    let (allocs, frees) = rt.mem.counts();
    let count = |f: fn(&MemFault) -> bool| faults.iter().filter(|x| f(x)).count();
    let leaks = rt.mem.live().len();
    if leaks > 0 && leaks == expected_leaks && faults.is_empty() {
        // The scenario's objects are its `struct obj`s: exactly that many of them are
        // the kernel's leak (anything else stays unacknowledged and fails the tally).
        let _ = rt.mem.acknowledge(&vec!["obj"; expected_leaks], &[]);
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
