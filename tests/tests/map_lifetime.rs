//! A map's references and end at run time (kernel/bpf/syscall.c, arraymap.c,
//! hashtab.c, map_in_map.c, helpers.c): `map_release_uref` when user space's last
//! reference goes (timers and workqueues cancelled and freed, kptrs kept), the grace
//! periods an inner map removed from its map of maps waits for before its free
//! (`free_after_rcu_gp`, `free_after_mult_rcu_gp`), and the order of
//! `map_update_elem`'s and `array_map_update_elem`'s refusals with `BPF_F_LOCK`. The
//! kernel shows what it can in tests/scenarios/ (`timer_*_release_uref.scn`,
//! `map_in_map_*.scn`, `array_lock*_errno_order.scn`).

use kernel_core::Semantics;
use kernel_core::btf::KernelBtfs;
use kernel_core::map::runtime::{GracePeriods, MapRt};
use kernel_core::map::{
    BPF_F_NO_PREALLOC, BPF_MAP_TYPE_ARRAY, BPF_MAP_TYPE_ARRAY_OF_MAPS, BPF_MAP_TYPE_HASH,
    BPF_MAP_TYPE_LRU_HASH, BPF_MAP_TYPE_PERCPU_ARRAY, BpfMap, MapAttr,
};
use kernel_core::obj::*;
use kernel_core::sync::Arc;
use kernel_core::syscall::map_create;
use kernel_core::{Errno, sync::Ordering};

const BPF_NOEXIST: u64 = 1;
const BPF_EXIST: u64 = 2;
const BPF_F_LOCK: u64 = 4;

use kptr_tests::{RtProg as Prog, runtime};

fn bpf_map(
    k: &KernelBtfs,
    p: &Prog,
    map_type: u32,
    flags: u32,
    value: (u32, u32),
    inner: Option<&BpfMap>,
    sem: &Semantics,
) -> BpfMap {
    let attr = MapAttr {
        inner_map: inner,
        map_type,
        key_size: 4,
        value_size: value.1,
        max_entries: 4,
        map_flags: flags,
        btf: if inner.is_some() { None } else { Some(&p.btf) },
        btf_key_type_id: if inner.is_some() { 0 } else { 1 },
        btf_value_type_id: value.0,
        name: "m",
    };
    map_create(k, &attr, sem).expect("map")
}

fn map(
    k: &KernelBtfs,
    p: &Prog,
    ty: u32,
    flags: u32,
    value: (u32, u32),
    sem: &Semantics,
) -> Arc<MapRt> {
    MapRt::new(bpf_map(k, p, ty, flags, value, None, sem), sem).expect("run-time map")
}

fn key(k: u32) -> [u8; 4] {
    k.to_ne_bytes()
}

/// A program: `bpf_obj_new` a node and `bpf_kptr_xchg` it into the value's slot at 8.
fn stash(rt: &BpfRuntime, p: &Prog, v: &Words) -> u64 {
    rt.migrate_disable();
    let n = bpf_obj_new_impl(rt, &p.btf, p.node).expect("node");
    assert_eq!(
        bpf_kptr_xchg(v, 8, n).expect("xchg"),
        0,
        "the slot was empty"
    );
    rt.migrate_enable();
    n
}

fn word(v: &Words, off: u32) -> u64 {
    v.slot(off).map_or(0, |s| s.load(Ordering::SeqCst))
}

fn drain(rt: &BpfRuntime) {
    kernel_core::map::local_storage::rcu_barrier_tasks_trace_and_rcu(rt);
}

fn assert_clean(rt: &BpfRuntime, what: &str) {
    assert!(rt.mem.live().is_empty(), "{what}: left {:?}", rt.mem.live());
    assert!(rt.mem.faults().is_empty(), "{what}: {:?}", rt.mem.faults());
    assert!(rt.warnings().is_empty(), "{what}: {:?}", rt.warnings());
}

/// A program's `bpf_timer_init` on the value of `k` (`__bpf_async_init`).
fn timer_init(rt: &BpfRuntime, m: &MapRt, k: u32) -> Result<(), Errno> {
    rt.migrate_disable();
    let r = match m.array_value(k, 0) {
        Some(v) => m.bpf_timer_init(rt, v, 16),
        None => {
            let e = m.htab_lookup(&key(k)).ok_or(Errno::ENOENT)?;
            m.bpf_timer_init(rt, &e.values[0], 16)
        }
    };
    rt.migrate_enable();
    r
}

fn value_of(m: &MapRt, k: u32) -> (u64, u64) {
    match m.array_value(k, 0) {
        Some(v) => (word(v, 8), word(v, 16)),
        None => {
            let e = m.htab_lookup_sys(&key(k)).expect("key");
            (word(&e.values[0], 8), word(&e.values[0], 16))
        }
    }
}

/// An ARRAY_OF_MAPS of 4 slots whose template is an ARRAY of `plain` values, and an
/// inner map that matches it, in no slot yet.
fn outer_and_inner(k: &KernelBtfs, p: &Prog, sem: &Semantics) -> (Arc<MapRt>, Arc<MapRt>) {
    let template = bpf_map(k, p, BPF_MAP_TYPE_ARRAY, 0, (p.plain, 16), None, sem);
    let outer = MapRt::new(
        bpf_map(
            k,
            p,
            BPF_MAP_TYPE_ARRAY_OF_MAPS,
            0,
            (0, 4),
            Some(&template),
            sem,
        ),
        sem,
    )
    .expect("outer");
    (outer, map(k, p, BPF_MAP_TYPE_ARRAY, 0, (p.plain, 16), sem))
}

/// `bpf_map_release` -> `bpf_map_put_with_uref` -> `bpf_map_put_uref`: when user
/// space's last reference goes while a program still holds the map, the map's
/// `map_release_uref` runs (`array_map_free_timers_wq`, kernel/bpf/arraymap.c;
/// `htab_map_free_timers_and_wq`, kernel/bpf/hashtab.c): every timer is cancelled and
/// freed (its callback object after a grace period), the kptrs stay for the map's free
/// (`bpf_map_free_deferred`), and `bpf_timer_init` (kernel/bpf/helpers.c,
/// `__bpf_async_init`) answers -EPERM from then on. While another user reference is
/// held nothing is released. No profile flag changes it.
#[test]
fn the_last_user_reference_frees_the_timers_and_keeps_the_kptrs() {
    for sem in [Semantics::V6_12, Semantics::V6_18] {
        for (ty, flags) in [
            (BPF_MAP_TYPE_ARRAY, 0),
            (BPF_MAP_TYPE_HASH, 0),
            (BPF_MAP_TYPE_HASH, BPF_F_NO_PREALLOC),
            (BPF_MAP_TYPE_LRU_HASH, 0),
        ] {
            let what = format!("{} type {ty} flags {flags}", sem.name);
            let (k, rt, p) = runtime(sem);
            let m = map(&k, &p, ty, flags, (p.timed, 32), &sem);
            if ty != BPF_MAP_TYPE_ARRAY {
                m.update(&rt, &key(1), &[0u8; 32], 0).expect("insert");
            }
            // The program's reference (__add_used_map), and a second fd.
            m.__add_used_map(true);
            m.bpf_map_inc_with_uref();
            assert_eq!(timer_init(&rt, &m, 1), Ok(()), "{what}");
            assert_eq!(timer_init(&rt, &m, 1), Err(Errno::EBUSY), "{what}");
            let n = match m.array_value(1, 0) {
                Some(v) => stash(&rt, &p, v),
                None => stash(&rt, &p, &m.htab_lookup(&key(1)).expect("key").values[0]),
            };
            let cb = value_of(&m, 1).1;
            assert_ne!(cb, 0, "{what}: the timer's callback object");
            // One fd of two closed: nothing released.
            assert!(MapRt::bpf_map_put_with_uref(Arc::clone(&m), &rt).is_none());
            assert_eq!(m.usercnt(), 1, "{what}");
            assert_eq!(value_of(&m, 1), (n, cb), "{what}: nothing released yet");
            assert_eq!(timer_init(&rt, &m, 1), Err(Errno::EBUSY), "{what}");
            // The last fd: map_release_uref.
            assert!(MapRt::bpf_map_put_with_uref(Arc::clone(&m), &rt).is_none());
            assert_eq!(m.usercnt(), 0, "{what}");
            assert_eq!(
                value_of(&m, 1),
                (n, 0),
                "{what}: the timer freed, the kptr kept"
            );
            drain(&rt);
            assert!(!rt.mem.is_live(cb), "{what}: the callback object reclaimed");
            assert!(rt.mem.is_live(n), "{what}");
            assert_eq!(timer_init(&rt, &m, 1), Err(Errno::EPERM), "{what}");
            assert_eq!(value_of(&m, 1).1, 0, "{what}: EPERM leaves no timer");
            assert_eq!(
                m.update(&rt, &key(1), &[0u8; 32], 0),
                Err(Errno::EBADF),
                "{what}: no fd left"
            );
            // The program goes: the map's free releases the kptr.
            if let Some(f) = MapRt::bpf_free_used_map(m, true) {
                f.run(&rt);
            }
            drain(&rt);
            assert_clean(&rt, &what);
        }
    }
}

/// What the last put of an inner map does, per profile: `bpf_map_fd_put_ptr`
/// (kernel/bpf/map_in_map.c) marks an inner map removed from user space
/// (`fd_array_map_delete_elem`, `need_defer`) `free_after_mult_rcu_gp` when a sleepable
/// program uses the outer map, else `free_after_rcu_gp`, and `bpf_map_put`
/// (kernel/bpf/syscall.c) then queues the free after those grace periods
/// (`call_rcu_tasks_trace(bpf_map_free_mult_rcu_gp)` -> `call_rcu(bpf_map_free_rcu_gp)`
/// -> `bpf_map_free_in_work`). Before v6.8 (profile flag `inner_map_free_after_gp`
/// off: v6.4) the free is queued at once, while a program that looked the inner map up
/// may still use it. The trace shows the order; the outer map's own free puts its inner
/// maps without `need_defer`.
#[test]
fn an_inner_maps_free_waits_for_the_grace_periods_its_removal_asked_for() {
    for sem in [Semantics::V6_4, Semantics::V6_12, Semantics::V6_18] {
        for sleepable in [false, true] {
            let what = format!("{} sleepable {sleepable}", sem.name);
            let (k, rt, p) = runtime(sem);
            let (outer, inner) = outer_and_inner(&k, &p, &sem);
            outer
                .bpf_fd_array_map_update_elem(&rt, 0, &inner, 0)
                .expect("into the slot");
            assert_eq!(
                outer.bpf_fd_array_map_update_elem(&rt, 4, &inner, 0),
                Err(Errno::E2BIG),
                "{what}"
            );
            outer.__add_used_map(sleepable);
            let n = stash(&rt, &p, inner.array_value(0, 0).expect("value"));
            let events = trace(|| {
                outer.fd_array_map_delete_elem(&rt, 0).expect("delete");
                assert_eq!(outer.fd_array_map_delete_elem(&rt, 0), Err(Errno::ENOENT));
                // User space closes the inner map's fd: its last reference.
                let free = MapRt::bpf_map_put_with_uref(inner, &rt).expect("the last put");
                let want = match (sem.inner_map_free_after_gp, sleepable) {
                    (false, _) => GracePeriods::None,
                    (true, false) => GracePeriods::Rcu,
                    (true, true) => GracePeriods::RcuTasksTraceAndRcu,
                };
                assert_eq!(free.grace_periods(), want, "{what}");
                free.schedule(&rt);
                mark("put");
                rt.rcu_tasks_trace.synchronize_rcu();
                mark("tasks trace gp");
                rt.rcu.synchronize_rcu();
                mark("rcu gp");
            });
            let at = |s: &str| events.iter().position(|e| e == s);
            let freed = at("map_free").expect("the inner map is freed");
            let want_after = match (sem.inner_map_free_after_gp, sleepable) {
                (false, _) => None,
                (true, false) => Some("put"),
                (true, true) => Some("tasks trace gp"),
            };
            match want_after {
                None => assert!(freed < at("put").expect("put"), "{what}: {events:?}"),
                Some(m) => {
                    assert!(freed > at(m).expect("mark"), "{what}: {events:?}");
                    assert!(freed < at("rcu gp").expect("rcu"), "{what}: {events:?}");
                }
            }
            drain(&rt);
            assert!(
                !rt.mem.is_live(n),
                "{what}: the inner map's object released"
            );
            // The outer map's free with an inner map still in a slot: no deferral.
            let inner = map(&k, &p, BPF_MAP_TYPE_ARRAY, 0, (p.plain, 16), &sem);
            outer
                .bpf_fd_array_map_update_elem(&rt, 1, &inner, 0)
                .expect("into the slot");
            let n = stash(&rt, &p, inner.array_value(0, 0).expect("value"));
            assert!(
                MapRt::bpf_map_put_with_uref(inner, &rt).is_none(),
                "the slot holds it"
            );
            assert!(MapRt::bpf_map_put_with_uref(Arc::clone(&outer), &rt).is_none());
            if let Some(f) = MapRt::bpf_free_used_map(outer, sleepable) {
                assert_eq!(f.grace_periods(), GracePeriods::None, "{what}");
                f.schedule(&rt);
            }
            drain(&rt);
            assert!(!rt.mem.is_live(n), "{what}: freed with the outer map");
            assert_clean(&rt, &what);
        }
    }
}

/// v6.18's `bpf_task_work` is one of the internal structs `map_release_uref` frees
/// (`bpf_map_free_internal_structs` -> `bpf_task_work_cancel_and_free`): user space's
/// last reference goes while a program still holds the map, and the context a
/// program's `bpf_task_work_schedule` set up is freed after a grace period, before the
/// map's own free. v6.12 has no such field: the struct is plain data, the value has no
/// record.
#[test]
fn the_last_user_reference_frees_a_task_works_context_from_v6_18() {
    use kernel_core::btf::builder::BtfBuilder;
    use kernel_core::btf::uapi::BTF_INT_SIGNED;
    use kernel_core::record::BtfFieldType as F;
    for sem in [Semantics::V6_12, Semantics::V6_18] {
        let (k, rt, _p) = runtime(sem);
        let mut b = BtfBuilder::new();
        let _int = b.int("int", 4, BTF_INT_SIGNED, 32);
        let long = b.int("long", 8, BTF_INT_SIGNED, 64);
        let tw = b.struct_("bpf_task_work", 8, &[("a", long, 0)]);
        let v = b.struct_("tw_value", 16, &[("pad", long, 0), ("tw", tw, 64)]);
        let (btf, _) =
            kernel_core::syscall::bpf_btf_load(&k, &b.build(), 0, &sem).expect("BTF loads");
        let attr = MapAttr {
            inner_map: None,
            map_type: BPF_MAP_TYPE_ARRAY,
            key_size: 4,
            value_size: 16,
            max_entries: 2,
            map_flags: 0,
            btf: Some(&btf),
            btf_key_type_id: 1,
            btf_value_type_id: v,
            name: "tw",
        };
        let m = MapRt::new(map_create(&k, &attr, &sem).expect("map"), &sem).expect("map rt");
        let fields: Vec<F> = m
            .record()
            .map(|r| r.fields.iter().map(|f| f.ty).collect())
            .unwrap_or_default();
        if !sem.task_work {
            assert!(fields.is_empty(), "{}: {fields:?}", sem.name);
            if let Some(f) = MapRt::bpf_map_put_with_uref(m, &rt) {
                f.run(&rt);
            }
            assert_clean(&rt, sem.name);
            continue;
        }
        assert_eq!(fields, [F::TASK_WORK], "{}", sem.name);
        rt.migrate_disable();
        bpf_timer_init(
            &rt,
            m.array_value(1, 0).expect("value"),
            8,
            "bpf_task_work_ctx",
        )
        .expect("the context");
        rt.migrate_enable();
        let ctx = word(m.array_value(1, 0).expect("value"), 8);
        m.__add_used_map(false);
        assert!(MapRt::bpf_map_put_with_uref(Arc::clone(&m), &rt).is_none());
        drain(&rt);
        assert!(
            !rt.mem.is_live(ctx),
            "{}: freed at map_release_uref",
            sem.name
        );
        assert_eq!(word(m.array_value(1, 0).expect("value"), 8), 0);
        if let Some(f) = MapRt::bpf_free_used_map(m, false) {
            f.run(&rt);
        }
        drain(&rt);
        assert_clean(&rt, sem.name);
    }
}

/// An inner map in two slots of its map of maps: a delete from user space puts it with
/// `need_defer` (`bpf_map_fd_put_ptr`, kernel/bpf/map_in_map.c), which from v6.8 marks
/// it `free_after_rcu_gp`, or `free_after_mult_rcu_gp` when a sleepable program uses the
/// outer map; the other slot still holds it. The outer map's own free
/// (`array_of_map_free` -> `bpf_fd_array_map_clear(map, false)`) then puts its last
/// reference, and `bpf_map_put` honours the marks: the inner map's free comes after an
/// RCU grace period, after an RCU tasks trace one too, or (v6.4) at once. A callback
/// queued in each domain before the outer map's free shows which grace periods passed
/// first. A program's lookup (`array_of_map_lookup_elem`) finds the inner map in both
/// slots and nothing in an empty slot or past the end.
#[test]
fn an_outer_maps_free_waits_for_what_an_earlier_removal_asked_of_its_inner_map() {
    for sem in [Semantics::V6_4, Semantics::V6_12, Semantics::V6_18] {
        for sleepable in [false, true] {
            let what = format!("{} sleepable {sleepable}", sem.name);
            let (k, rt, p) = runtime(sem);
            let (outer, inner) = outer_and_inner(&k, &p, &sem);
            for slot in [0, 1] {
                outer
                    .bpf_fd_array_map_update_elem(&rt, slot, &inner, 0)
                    .expect("into the slot");
            }
            outer.__add_used_map(sleepable);
            let found: Vec<bool> = (0..5)
                .map(|i| {
                    outer
                        .array_of_map_lookup_elem(i)
                        .is_some_and(|m| Arc::ptr_eq(&m, &inner))
                })
                .collect();
            assert_eq!(found, [true, true, false, false, false], "{what}");
            let n = stash(&rt, &p, inner.array_value(0, 0).expect("value"));
            outer.fd_array_map_delete_elem(&rt, 0).expect("delete");
            assert!(
                MapRt::bpf_map_put_with_uref(inner, &rt).is_none(),
                "{what}: slot 1 holds it"
            );
            let events = trace(|| {
                rt.rcu_tasks_trace.call_rcu(|| mark("tasks trace gp"));
                rt.rcu.call_rcu(|| mark("rcu gp"));
                assert!(MapRt::bpf_map_put_with_uref(Arc::clone(&outer), &rt).is_none());
                let free =
                    MapRt::bpf_free_used_map(outer, sleepable).expect("the outer's last put");
                assert_eq!(free.grace_periods(), GracePeriods::None, "{what}");
                free.schedule(&rt);
            });
            let frees: Vec<usize> = (0..events.len())
                .filter(|&i| events[i] == "map_free")
                .collect();
            assert_eq!(
                frees.len(),
                2,
                "{what}: the outer map, then the inner: {events:?}"
            );
            let before = |m: &str| {
                events
                    .iter()
                    .position(|e| e == m)
                    .is_some_and(|i| i < frees[1])
            };
            let want = match (sem.inner_map_free_after_gp, sleepable) {
                (false, _) => (false, false),
                (true, false) => (false, true),
                (true, true) => (true, true),
            };
            assert_eq!(
                (before("tasks trace gp"), before("rcu gp")),
                want,
                "{what}: (tasks trace, rcu) grace periods before the inner map's free: {events:?}"
            );
            drain(&rt);
            assert!(
                !rt.mem.is_live(n),
                "{what}: the inner map's object released"
            );
            assert_clean(&rt, &what);
        }
    }
}

/// `map_update_elem` (kernel/bpf/syscall.c) refuses `BPF_F_LOCK` on a value without a
/// `bpf_spin_lock` (-EINVAL) before `array_map_update_elem` (kernel/bpf/arraymap.c)
/// checks anything: for such a value an index out of range or `BPF_NOEXIST` never
/// shows with `BPF_F_LOCK`. With a lock, `array_map_update_elem`'s own order holds:
/// unknown flags (-EINVAL), the index (-E2BIG), `BPF_NOEXIST` (-EEXIST).
/// `bpf_percpu_array_update` counts `BPF_F_LOCK` as an unknown flag, but a per-CPU
/// array never has a lock, so `map_update_elem` answers first. `map_lookup_elem` refuses
/// flags other than `BPF_F_LOCK`, and `BPF_F_LOCK` without a lock, alike. The old model
/// answered -E2BIG and -EEXIST for the first two.
#[test]
fn bpf_f_lock_is_refused_in_the_kernels_order() {
    for sem in [Semantics::V6_12, Semantics::V6_18] {
        let (k, rt, p) = runtime(sem);
        let nolock = map(&k, &p, BPF_MAP_TYPE_ARRAY, 0, (p.plain, 16), &sem);
        let locked = map(&k, &p, BPF_MAP_TYPE_ARRAY, 0, (p.locked, 16), &sem);
        let pcpu = map(&k, &p, BPF_MAP_TYPE_PERCPU_ARRAY, 0, (p.plain, 16), &sem);
        let v = [0u8; 32];
        for (m, k, flags, want) in [
            (&nolock, 9, BPF_F_LOCK, Errno::EINVAL),
            (&nolock, 0, BPF_NOEXIST | BPF_F_LOCK, Errno::EINVAL),
            (&nolock, 9, BPF_EXIST | BPF_F_LOCK, Errno::EINVAL),
            (&nolock, 9, 0, Errno::E2BIG),
            (&nolock, 0, BPF_NOEXIST, Errno::EEXIST),
            (&nolock, 0, 8, Errno::EINVAL),
            (&locked, 9, BPF_F_LOCK, Errno::E2BIG),
            (&locked, 9, BPF_NOEXIST | BPF_F_LOCK, Errno::E2BIG),
            (&locked, 0, BPF_NOEXIST | BPF_F_LOCK, Errno::EEXIST),
            (&locked, 9, 8 | BPF_F_LOCK, Errno::EINVAL),
            (&pcpu, 9, BPF_F_LOCK, Errno::EINVAL),
            (&pcpu, 9, 0, Errno::E2BIG),
        ] {
            assert_eq!(
                m.update(&rt, &key(k), &v, flags),
                Err(want),
                "{} key {k} flags {flags}",
                sem.name
            );
        }
        assert_eq!(
            locked.update(&rt, &key(0), &v, BPF_EXIST | BPF_F_LOCK),
            Ok(())
        );
        assert_eq!(
            nolock.bpf_map_copy_value(&key(0), BPF_F_LOCK),
            Err(Errno::EINVAL)
        );
        assert_eq!(locked.bpf_map_copy_value(&key(0), 8), Err(Errno::EINVAL));
        assert_eq!(
            locked.bpf_map_copy_value(&key(9), BPF_F_LOCK),
            Err(Errno::ENOENT)
        );
        assert_eq!(
            locked
                .bpf_map_copy_value(&key(0), BPF_F_LOCK)
                .map(|v| v.len()),
            Ok(16)
        );
        for m in [nolock, locked, pcpu] {
            if let Some(f) = MapRt::bpf_map_put_with_uref(m, &rt) {
                f.run(&rt);
            }
        }
        drain(&rt);
        assert_clean(&rt, sem.name);
    }
}

/// The map steps traced on this thread (other tests of this binary run on others).
static EVENTS: std::sync::Mutex<Vec<(std::thread::ThreadId, String)>> =
    std::sync::Mutex::new(Vec::new());

fn record(ev: &kernel_core::trace::Event<'_>) {
    if let kernel_core::trace::Event::Map { what } = *ev
        && let Ok(mut g) = EVENTS.lock()
    {
        g.push((std::thread::current().id(), what.to_string()));
    }
}

fn mark(what: &str) {
    if let Ok(mut g) = EVENTS.lock() {
        g.push((std::thread::current().id(), what.to_string()));
    }
}

fn trace(f: impl FnOnce()) -> Vec<String> {
    let me = std::thread::current().id();
    if let Ok(mut g) = EVENTS.lock() {
        g.retain(|(t, _)| *t != me);
    }
    kernel_core::trace::set_trace_hook(Some(record));
    f();
    let mut g = EVENTS.lock().expect("events");
    let mine = g
        .iter()
        .filter(|(t, _)| *t == me)
        .map(|(_, s)| s.clone())
        .collect();
    g.retain(|(t, _)| *t != me);
    mine
}
