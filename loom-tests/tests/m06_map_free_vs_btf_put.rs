//! Scenario 6: a map's teardown against the last put of its BTF by user space, with a
//! grace period able to end at any point (a concurrent `synchronize_rcu`).
//! Invariant: the graph-root drain in `map_free` never reads a freed BTF; the node is
//! dropped once; the BTF is freed once.
//! Bound: `LOOM_MAX_PREEMPTIONS`.
//! The kernel's past bug: v6.4 put the map's BTF before `map_free` (the drain's
//! `value_rec` is then freed memory, caught in some interleaving); v6.7 moved the put
//! after (59e5791f59dd); v6.18 is safe.
//! Catches: moving `btf_put(map->btf)` back before `map_free` (flag
//! `map_btf_put_after_free` off).
//! The v6.4 model asserts the kernel's fault exactly: every execution is clean or ends
//! with the drain's read of the freed BTF (a WARN) and the list's node left undropped,
//! and such an execution is seen; any other fault fails it.
//! A second pair of models has a local kptr instead of a list (v6.18: `kptr.btf` is
//! the program BTF, unreferenced; v6.4: referenced). Invariant: `btf_record_free`'s
//! `btf_is_kernel(kptr.btf)` never reads a freed BTF; the stashed object is freed once.
//! Catches: `bpf_map_free` putting `map->btf` before `btf_record_free(map->record)`
//! (in v6.18 the record's drop then reads the freed program BTF in some interleaving).
#![cfg(loom)]

use kernel_core::Semantics;
use kernel_core::map::runtime::MapRt;
use kernel_core::obj::{bpf_graph_push, bpf_obj_new_impl, bpf_spin_lock, bpf_spin_unlock};
use kernel_core::record::BtfFieldType;
use loom::sync::Arc;
use loom::thread;
use loom_tests::{Fault, Outcomes, faults, fixture, fixture_graph, map_put, prog_run};

fn scenario(sem: Semantics) -> Vec<Fault> {
    let f = fixture_graph(sem);
    let n = bpf_obj_new_impl(&f.rt, &f.btf, f.node_id).expect("node");
    {
        let v = f.map.array_value(0, 0).expect("v");
        f.rt.migrate_disable();
        bpf_spin_lock(v, 0);
        let rec = f.meta.as_ref().and_then(|m| m.rec());
        bpf_graph_push(&f.rt, v, 8, n, 8, BtfFieldType::LIST_NODE, rec).expect("push");
        bpf_spin_unlock(v, 0);
        f.rt.migrate_enable();
    }
    let loom_tests::Fix {
        rt, btf, map, meta, ..
    } = f;
    drop(meta);
    let rcu = Arc::clone(&rt.rcu);
    let user = thread::spawn(move || drop(btf));
    let rcu2 = Arc::clone(&rcu);
    let gp = thread::spawn(move || rcu2.synchronize_rcu());
    if let Some(free) = MapRt::bpf_map_put(map) {
        free.run(&rt);
    }
    user.join().expect("join");
    gp.join().expect("join");
    let got = faults(&rt);
    drop(rt);
    rcu.rcu_barrier();
    got
}

#[test]
fn map_free_vs_btf_put_v6_18() {
    loom_tests::model("m06 map free vs last btf_put (v6.18)", || {
        assert_eq!(scenario(Semantics::V6_18), vec![])
    });
}

#[test]
fn map_free_vs_btf_put_v6_4_reads_freed_btf() {
    let name = "m06 map free vs last btf_put (v6.4, bug)";
    // The drain finds the BTF freed: it WARNs and leaves the node (the kernel reads
    // freed memory there).
    let bug = vec![
        Fault::Leak("gnode".into()),
        Fault::Warn("use after free: an unreferenced program BTF was freed"),
    ];
    let o = Outcomes::new(vec![vec![], bug.clone()]);
    let o2 = std::sync::Arc::clone(&o);
    loom_tests::model(name, move || o2.record(scenario(Semantics::V6_4)));
    o.report(name, &[vec![], bug]);
}

/// A local kptr's record against the map's BTF put: the object stashed, user space
/// closes the BTF, a grace period may end at any time, the map's last put frees it.
fn scenario_kptr(sem: Semantics) -> Vec<Fault> {
    let (c, map) = fixture(sem).split();
    prog_run(&c.rt, || {
        let n = c.obj_new(5).expect("node");
        let v = map.array_value(0, 0).expect("value");
        assert_eq!(kernel_core::obj::bpf_kptr_xchg(v, 0, n), Ok(0));
    });
    let c = Arc::try_unwrap(c).ok().expect("one holder");
    let loom_tests::Ctx { rt, btf, meta, .. } = c;
    drop(meta);
    let rcu = Arc::clone(&rt.rcu);
    let user = thread::spawn(move || drop(btf));
    let rcu2 = Arc::clone(&rcu);
    let gp = thread::spawn(move || rcu2.synchronize_rcu());
    map_put(&rt, map);
    user.join().expect("join");
    gp.join().expect("join");
    let got = faults(&rt);
    drop(rt);
    rcu.rcu_barrier();
    got
}

#[test]
fn record_free_vs_btf_put_v6_18() {
    loom_tests::model("m06 kptr record free vs last btf_put (v6.18)", || {
        assert_eq!(scenario_kptr(Semantics::V6_18), vec![])
    });
}

#[test]
fn record_free_vs_btf_put_v6_4() {
    loom_tests::model("m06 kptr record free vs last btf_put (v6.4)", || {
        assert_eq!(scenario_kptr(Semantics::V6_4), vec![])
    });
}
