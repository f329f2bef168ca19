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
#![cfg(loom)]

use kernel_core::Semantics;
use kernel_core::map::runtime::MapRt;
use kernel_core::obj::{bpf_graph_push, bpf_obj_new_impl, bpf_spin_lock, bpf_spin_unlock};
use kernel_core::record::BtfFieldType;
use loom::sync::Arc;
use loom::thread;
use loom_tests::fixture_graph;

fn scenario(sem: Semantics) {
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
    rcu.rcu_barrier();
    assert!(rt.warnings().is_empty(), "{:?}", rt.warnings());
    assert!(
        rt.mem.faults().is_empty() && rt.mem.live().is_empty(),
        "{:?}",
        rt.mem.live()
    );
    drop(rt);
    rcu.rcu_barrier();
}

#[test]
fn map_free_vs_btf_put_v6_18() {
    loom_tests::model("m06 map free vs last btf_put (v6.18)", || {
        scenario(Semantics::V6_18)
    });
}

#[test]
#[should_panic(expected = "use after free")]
fn map_free_vs_btf_put_v6_4_reads_freed_btf() {
    loom_tests::model("m06 map free vs last btf_put (v6.4, bug)", || {
        scenario(Semantics::V6_4)
    });
}
