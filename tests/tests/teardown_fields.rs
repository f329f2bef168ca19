//! Teardown of every kind of special field, on the run-time model: what each field
//! releases, idempotence, updates, two owners of a refcounted object, hash element
//! recycling, and the kernel bugs and leaks the profiles carry.

use kernel_core::Semantics;
use kernel_core::btf::builder::BtfBuilder;
use kernel_core::btf::uapi::*;
use kernel_core::btf::{BtfRef, KernelBtfs};
use kernel_core::map::runtime::MapRt;
use kernel_core::map::{BPF_F_NO_PREALLOC, BPF_MAP_TYPE_LRU_HASH, MapAttr};
use kernel_core::obj::*;
use kernel_core::record::BtfFieldType as F;
use kernel_core::sync::Arc;
use kernel_core::syscall::bpf_btf_load;
use kernel_core::syscall::map_create;

struct Prog {
    btf: BtfRef,
    value_id: u32,
    value_size: u32,
    node_id: u32,
}

fn kernel(sem: &Semantics) -> Arc<KernelBtfs> {
    kptr_tests::kernel_with_dtors(sem)
}

/// value { spin_lock l @0; timer t @8; task_struct __kptr_untrusted *u @24;
///         task_struct __kptr *k @32; node __kptr *n @40; list_head h @48 (contains node:ln) }
/// node  { long key @0; refcount r @8; list_node ln @16; node __kptr *inner @40 }
fn prog(k: &KernelBtfs, sem: &Semantics) -> Prog {
    let mut b = BtfBuilder::new();
    let int = b.int("int", 4, BTF_INT_SIGNED, 32);
    let long = b.int("long", 8, BTF_INT_SIGNED, 64);
    let lock = b.struct_("bpf_spin_lock", 4, &[("v", int, 0)]);
    let timer = b.struct_("bpf_timer", 16, &[("a", long, 0), ("b", long, 64)]);
    let head = b.struct_("bpf_list_head", 16, &[("a", long, 0), ("b", long, 64)]);
    let lnode = b.struct_(
        "bpf_list_node",
        24,
        &[("a", long, 0), ("b", long, 64), ("c", long, 128)],
    );
    let rc = b.struct_("bpf_refcount", 4, &[("v", int, 0)]);
    let task = b.struct_("task_struct", 8, &[("pid", int, 0)]);
    let node_fwd_ptr_target = b.next_id() + 3;
    let ntag = b.type_tag("kptr", node_fwd_ptr_target);
    let nptr = b.ptr(ntag);
    let _pad = b.int("pad", 4, 0, 32);
    let node = b.struct_(
        "node",
        48,
        &[
            ("key", long, 0),
            ("r", rc, 64),
            ("ln", lnode, 128),
            ("inner", nptr, 320),
        ],
    );
    assert_eq!(node, node_fwd_ptr_target);
    let ut = b.type_tag("kptr_untrusted", task);
    let up = b.ptr(ut);
    let kt = b.type_tag("kptr", task);
    let kp = b.ptr(kt);
    let v = b.struct_(
        "value",
        64,
        &[
            ("l", lock, 0),
            ("t", timer, 64),
            ("u", up, 192),
            ("k", kp, 256),
            ("n", nptr, 320),
            ("h", head, 384),
        ],
    );
    b.decl_tag("contains:node:ln", v, 5);
    let (btf, _) = bpf_btf_load(k, &b.build(), 0, sem).expect("program BTF loads");
    Prog {
        btf,
        value_id: v,
        value_size: 64,
        node_id: node,
    }
}

fn map(k: &KernelBtfs, p: &Prog, map_type: u32, flags: u32, sem: &Semantics) -> Arc<MapRt> {
    let attr = MapAttr {
        inner_map: None,
        map_type,
        key_size: 4,
        value_size: p.value_size,
        max_entries: 4,
        map_flags: flags,
        btf: Some(&p.btf),
        btf_key_type_id: 1,
        btf_value_type_id: p.value_id,
        name: "m",
    };
    let m = map_create(k, &attr, sem).expect("map");
    assert!(m.record.is_some(), "record: {:?}", m.record_error);
    MapRt::new(m, sem).expect("map rt")
}

/// Fills a value: a timer, an unreferenced and a referenced task, a node (refcounted,
/// with an inner node), and one node on the list. Returns the kernel task.
fn fill(rt: &BpfRuntime, p: &Prog, v: &Words) -> u64 {
    rt.migrate_disable();
    bpf_timer_init(rt, v, 8, "bpf_hrtimer").expect("timer");
    let task = rt.kernel_obj_new("task_struct");
    bpf_kptr_xchg(v, 24, task).expect("unref");
    assert!(rt.kernel_obj_get(task));
    assert_eq!(bpf_kptr_xchg(v, 32, task).expect("ref"), 0);
    let n = bpf_obj_new_impl(rt, &p.btf, p.node_id).expect("node");
    let inner = bpf_obj_new_impl(rt, &p.btf, p.node_id).expect("inner");
    let nobj = rt.mem.get(n).expect("live");
    assert_eq!(bpf_kptr_xchg(&nobj.mem, 40, inner).expect("inner"), 0);
    assert_eq!(bpf_kptr_xchg(v, 40, n).expect("node"), 0);
    let l = bpf_obj_new_impl(rt, &p.btf, p.node_id).expect("list node");
    bpf_spin_lock(v, 0);
    let meta = find_meta(&p.btf, p.node_id);
    // A root outside the value is refused before the node is claimed: the same node
    // can then be pushed where it belongs.
    assert_eq!(
        bpf_graph_push(
            rt,
            v,
            4096,
            l,
            16,
            F::LIST_NODE,
            meta.as_ref().and_then(|m| m.rec()),
        ),
        Err(kernel_core::Errno::EINVAL)
    );
    bpf_graph_push(
        rt,
        v,
        48,
        l,
        16,
        F::LIST_NODE,
        meta.as_ref().and_then(|m| m.rec()),
    )
    .expect("push");
    bpf_spin_unlock(v, 0);
    rt.migrate_enable();
    task
}

fn runtime(sem: Semantics) -> (Arc<KernelBtfs>, Arc<BpfRuntime>) {
    shim_std::tally::install();
    let k = kernel(&sem);
    let rt = BpfRuntime::new(sem, Arc::clone(&k), Arc::clone(k.idr().rcu_arc()));
    (k, rt)
}

#[test]
fn every_field_is_released_once_and_a_second_teardown_frees_nothing() {
    let sem = Semantics::V6_18;
    let (k, rt) = runtime(sem);
    let p = prog(&k, &sem);
    let m = map(&k, &p, 2, 0, &sem);
    let v = m.array_value(0, 0).expect("value");
    let task = fill(&rt, &p, v);
    assert_eq!(
        rt.mem.live().len(),
        4,
        "timer callback, node, inner node, list node"
    );
    let rec = m.record().expect("record");
    // bpf_obj_free_fields' callers run with migration disabled (v6.18 leaves it to them).
    rt.migrate_disable();
    bpf_obj_free_fields(&rt, rec, v);
    rt.migrate_enable();
    rt.rcu.rcu_barrier();
    assert!(rt.mem.live().is_empty(), "left: {:?}", rt.mem.live());
    assert!(rt.mem.faults().is_empty());
    let tobj = rt
        .kernel_objs()
        .into_iter()
        .find(|(a, _)| *a == task)
        .expect("the task object");
    assert_eq!(
        tobj.1.refcnt, 1,
        "the dtor dropped the map's task reference"
    );
    for off in [8, 24, 32, 40, 48] {
        assert_eq!(
            v.slot(off)
                .map(|s| s.load(std::sync::atomic::Ordering::SeqCst)),
            Some(0),
            "slot {off} cleared"
        );
    }
    // Again: nothing to release.
    let before = rt.mem.counts();
    rt.migrate_disable();
    bpf_obj_free_fields(&rt, rec, v);
    rt.migrate_enable();
    rt.rcu.rcu_barrier();
    assert_eq!(rt.mem.counts(), before);
    assert!(
        rt.mem.faults().is_empty() && rt.warnings().is_empty(),
        "{:?}",
        rt.warnings()
    );
}

#[test]
fn update_drops_the_stashed_objects_of_the_overwritten_value() {
    let sem = Semantics::V6_18;
    let (k, rt) = runtime(sem);
    let p = prog(&k, &sem);
    for (ty, flags) in [(2u32, 0u32), (1, 0), (1, BPF_F_NO_PREALLOC)] {
        let m = map(&k, &p, ty, flags, &sem);
        m.update(&rt, &0u32.to_ne_bytes(), &[0u8; 64], 0)
            .expect("insert");
        let slot_value = match ty {
            2 => m.array_value(0, 0).expect("value"),
            _ => {
                let e = m.htab_lookup(&0u32.to_ne_bytes()).expect("elem");
                let n = bpf_obj_new_impl(&rt, &p.btf, p.node_id).expect("node");
                bpf_kptr_xchg(&e.values[0], 40, n).expect("stash");
                m.update(&rt, &0u32.to_ne_bytes(), &[0xffu8; 64], 0)
                    .expect("overwrite");
                rt.rcu.rcu_barrier();
                assert!(
                    rt.mem.live().is_empty(),
                    "type {ty} flags {flags}: {:?}",
                    rt.mem.live()
                );
                continue;
            }
        };
        let n = bpf_obj_new_impl(&rt, &p.btf, p.node_id).expect("node");
        bpf_kptr_xchg(slot_value, 40, n).expect("stash");
        m.update(&rt, &0u32.to_ne_bytes(), &[0xffu8; 64], 0)
            .expect("overwrite");
        rt.rcu.rcu_barrier();
        assert!(rt.mem.live().is_empty(), "array: {:?}", rt.mem.live());
        // The copy skipped the special fields and wrote the rest.
        assert_eq!(slot_value.byte(4), 0xff);
        assert_eq!(
            slot_value
                .slot(40)
                .map(|s| s.load(std::sync::atomic::Ordering::SeqCst)),
            Some(0)
        );
    }
    assert!(rt.mem.faults().is_empty());
}

#[test]
fn a_refcounted_object_with_two_owners_is_freed_once_by_the_last() {
    let sem = Semantics::V6_18;
    let (k, rt) = runtime(sem);
    let p = prog(&k, &sem);
    let m = map(&k, &p, 2, 0, &sem);
    let (a, b) = (
        m.array_value(0, 0).expect("a"),
        m.array_value(1, 0).expect("b"),
    );
    let n = bpf_obj_new_impl(&rt, &p.btf, p.node_id).expect("node");
    let meta = find_meta(&p.btf, p.node_id);
    let rec = meta.as_ref().and_then(|m| m.rec());
    let second = bpf_refcount_acquire_impl(&rt, n, rec).expect("second owner");
    bpf_kptr_xchg(a, 40, n).expect("owner a");
    bpf_kptr_xchg(b, 40, second).expect("owner b");
    let r = m.record().expect("record");
    rt.migrate_disable();
    bpf_obj_free_fields(&rt, r, a);
    rt.migrate_enable();
    rt.rcu.rcu_barrier();
    assert!(rt.mem.is_live(n), "still owned by b");
    rt.migrate_disable();
    bpf_obj_free_fields(&rt, r, b);
    rt.migrate_enable();
    rt.rcu.rcu_barrier();
    assert!(!rt.mem.is_live(n));
    assert_eq!(rt.mem.counts(), (1, 1));
    assert!(rt.mem.faults().is_empty());
}

#[test]
fn refcount_acquire_on_a_dying_object_differs_by_profile() {
    for (sem, expect_some) in [(Semantics::V6_18, false), (Semantics::V6_4, true)] {
        let (k, rt) = runtime(sem);
        let p = prog(&k, &sem);
        let n = bpf_obj_new_impl(&rt, &p.btf, p.node_id).expect("node");
        let meta = find_meta(&p.btf, p.node_id);
        let rec = meta.as_ref().and_then(|m| m.rec());
        // The last owner drops the object; under v6.4 the memory is reused at once,
        // under v6.6+ it waits for a grace period, so an RCU reader still sees it.
        let obj = rt.mem.get(n).expect("live");
        let off = rec.expect("rec").refcount_off as u32;
        assert_eq!(
            obj.mem.cas_u32(off, 1, 0),
            Ok(1),
            "the object held one reference"
        );
        let got = bpf_refcount_acquire_impl(&rt, n, rec);
        assert_eq!(got.is_some(), expect_some, "{}", sem.name);
        if got.is_some() {
            // v6.4: refcount_inc on 0 WARNs and saturates the count; the object can
            // never be freed. The leak is the kernel's; acknowledged for the tally.
            assert!(
                rt.warnings().iter().any(|w| w.contains("addition on 0")),
                "{}: {:?}",
                sem.name,
                rt.warnings()
            );
            assert_eq!(obj.mem.load_u32(off), 0xc000_0000, "saturated");
            assert_eq!(rt.mem.live().len(), 1);
            rt.mem
                .acknowledge(&["node"], &[])
                .expect("the saturated object");
            continue;
        }
        // v6.6+: the owner's drop completes; the object is freed after the grace period.
        assert_eq!(
            obj.mem.cas_u32(off, 0, 1),
            Ok(0),
            "the dying object is at 0"
        );
        rt.migrate_disable();
        __bpf_obj_drop_impl(&rt, n, rec, false);
        rt.migrate_enable();
        rt.rcu.rcu_barrier();
        assert!(rt.mem.live().is_empty(), "{}", sem.name);
        assert!(
            rt.mem.faults().is_empty(),
            "{}: {:?}",
            sem.name,
            rt.mem.faults()
        );
        assert!(
            rt.warnings().is_empty(),
            "{}: {:?}",
            sem.name,
            rt.warnings()
        );
    }
}

#[test]
fn c8e18754_calls_the_destructor_on_null() {
    for (sem, warns) in [(Semantics::C8E18754, true), (Semantics::V6_4, false)] {
        let (k, rt) = runtime(sem);
        let mut b = BtfBuilder::new();
        let int = b.int("int", 4, BTF_INT_SIGNED, 32);
        let task = b.struct_("task_struct", 8, &[("pid", int, 0)]);
        let kt = b.type_tag("kptr", task);
        let kp = b.ptr(kt);
        let v = b.struct_("value", 8, &[("k", kp, 0)]);
        let (btf, _) = bpf_btf_load(&k, &b.build(), 0, &sem).expect("loads");
        let p = Prog {
            btf,
            value_id: v,
            value_size: 8,
            node_id: 0,
        };
        let m = map(&k, &p, 2, 0, &sem);
        let v = m.array_value(0, 0).expect("value");
        bpf_obj_free_fields(&rt, m.record().expect("record"), v);
        let null_dtor = rt.warnings().iter().any(|w| w.contains("NULL"));
        assert_eq!(null_dtor, warns, "{}: {:?}", sem.name, rt.warnings());
    }
}

#[test]
fn deleted_non_preallocated_hash_element_leaks_what_is_stashed_after_delete() {
    // Kernel behaviour of 6.18 (no allocator destructor for hash elements): a program
    // holding an element stashes an object after the element was deleted; nothing
    // frees it. With the element destructor of newer kernels it is dropped.
    for (sem, leaks) in [
        (Semantics::V6_18, 1),
        (
            Semantics {
                htab_elem_dtor: true,
                ..Semantics::V6_18
            },
            0,
        ),
    ] {
        let (k, rt) = runtime(sem);
        let p = prog(&k, &sem);
        let m = map(&k, &p, 1, BPF_F_NO_PREALLOC, &sem);
        m.update(&rt, &0u32.to_ne_bytes(), &[0u8; 64], 0)
            .expect("insert");
        let e = m.htab_lookup(&0u32.to_ne_bytes()).expect("elem");
        m.delete(&rt, &0u32.to_ne_bytes()).expect("delete");
        let n = bpf_obj_new_impl(&rt, &p.btf, p.node_id).expect("node");
        bpf_kptr_xchg(&e.values[0], 40, n).expect("stash into the deleted element");
        drop(e);
        if let Some(f) = MapRt::bpf_map_put(m) {
            f.run(&rt);
        }
        rt.rcu.rcu_barrier();
        assert_eq!(
            rt.mem.live().len(),
            leaks,
            "htab_elem_dtor={}",
            sem.htab_elem_dtor
        );
        let leaked = vec!["node"; leaks];
        rt.mem.acknowledge(&leaked, &[]).expect("the stashed node");
    }
}

#[test]
fn preallocated_hash_frees_a_deleted_element_again_at_map_free_without_double_free() {
    let sem = Semantics::V6_18;
    let (k, rt) = runtime(sem);
    let p = prog(&k, &sem);
    let m = map(&k, &p, 1, 0, &sem);
    m.update(&rt, &0u32.to_ne_bytes(), &[0u8; 64], 0)
        .expect("insert");
    let e = m.htab_lookup(&0u32.to_ne_bytes()).expect("elem");
    let n = bpf_obj_new_impl(&rt, &p.btf, p.node_id).expect("node");
    bpf_kptr_xchg(&e.values[0], 40, n).expect("stash");
    m.delete(&rt, &0u32.to_ne_bytes())
        .expect("delete frees the node");
    drop(e);
    rt.rcu.rcu_barrier();
    assert!(!rt.mem.is_live(n));
    if let Some(f) = MapRt::bpf_map_put(m) {
        f.run(&rt);
    }
    rt.rcu.rcu_barrier();
    assert_eq!(rt.mem.counts(), (1, 1));
    assert!(rt.mem.faults().is_empty());
}

/// The map holds the last reference to its BTF; the workqueue runs the deferred free
/// only after a grace period has passed.
fn graph_root_teardown(sem: Semantics) -> (Vec<&'static str>, usize) {
    let (k, rt) = runtime(sem);
    let lp = kernel_core::testing::list_prog("bpf_spin_lock");
    let (node, v) = (lp.node, lp.value);
    let (btf, _) = bpf_btf_load(&k, &lp.blob, 0, &sem).expect("loads");
    let p = Prog {
        btf,
        value_id: v,
        value_size: 24,
        node_id: node,
    };
    let m = map(&k, &p, 2, 0, &sem);
    let val = m.array_value(0, 0).expect("value");
    rt.migrate_disable();
    let n = bpf_obj_new_impl(&rt, &p.btf, p.node_id).expect("node");
    bpf_spin_lock(val, 0);
    let meta = find_meta(&p.btf, p.node_id);
    bpf_graph_push(
        &rt,
        val,
        8,
        n,
        8,
        F::LIST_NODE,
        meta.as_ref().and_then(|m| m.rec()),
    )
    .expect("push");
    drop(meta);
    bpf_spin_unlock(val, 0);
    rt.migrate_enable();
    // User space closes the BTF fd: the map's reference is the last one.
    drop(p);
    let free = MapRt::bpf_map_put(m).expect("last map reference");
    rt.rcu.rcu_barrier();
    free.run(&rt);
    rt.rcu.rcu_barrier();
    let leaks = rt.mem.live().len();
    // The callers assert the leak; the suite tally counts only what goes beyond it.
    // Before v6.7 (flag map_btf_put_after_free) the drain reads the freed BTF and
    // cannot free the node: exactly that is acknowledged.
    let (live, faults): (&[&str], &[FaultKind]) = if sem.map_btf_put_after_free {
        (&[], &[])
    } else {
        (&["gnode"], &[FaultKind::BtfUseAfterFree])
    };
    rt.mem.acknowledge(live, faults).expect("the drain's leak");
    (rt.warnings(), leaks)
}

#[test]
fn v6_4_puts_the_map_btf_before_map_free_and_the_drain_uses_freed_btf() {
    let (warns, leaks) = graph_root_teardown(Semantics::V6_4);
    assert!(
        warns.iter().any(|w| w.contains("use after free")),
        "v6.4: {warns:?}"
    );
    assert_eq!(leaks, 1, "the drain could not run");
    let (warns, leaks) = graph_root_teardown(Semantics::V6_12);
    assert!(warns.is_empty(), "v6.12: {warns:?}");
    assert_eq!(leaks, 0);
}

/// The field types the first test does not hold: bpf_wq, bpf_task_work, a per-CPU kptr,
/// an rb_root with a node, and a uptr-free value of each.
#[test]
fn wq_task_work_percpu_kptr_and_rb_root_are_released() {
    let sem = Semantics::V6_18;
    let (k, rt) = runtime(sem);
    let mut b = BtfBuilder::new();
    let int = b.int("int", 4, BTF_INT_SIGNED, 32);
    let long = b.int("long", 8, BTF_INT_SIGNED, 64);
    let lock = b.struct_("bpf_spin_lock", 4, &[("v", int, 0)]);
    let wq = b.struct_("bpf_wq", 16, &[("a", long, 0), ("b", long, 64)]);
    let tw = b.struct_("bpf_task_work", 8, &[("a", long, 0)]);
    let root = b.struct_("bpf_rb_root", 16, &[("a", long, 0), ("b", long, 64)]);
    let rbn = b.struct_(
        "bpf_rb_node",
        32,
        &[
            ("a", long, 0),
            ("b", long, 64),
            ("c", long, 128),
            ("d", long, 192),
        ],
    );
    let pc = b.struct_("pcpu_obj", 8, &[("c", long, 0)]);
    let rnode = b.struct_("rnode", 40, &[("key", long, 0), ("n", rbn, 64)]);
    let pt = b.type_tag("percpu_kptr", pc);
    let pp = b.ptr(pt);
    let v = b.struct_(
        "value",
        64,
        &[
            ("w", wq, 0),
            ("t", tw, 128),
            ("p", pp, 192),
            ("l", lock, 256),
            ("r", root, 320),
        ],
    );
    b.decl_tag("contains:rnode:n", v, 4);
    let (btf, _) = bpf_btf_load(&k, &b.build(), 0, &sem).expect("loads");
    let p = Prog {
        btf,
        value_id: v,
        value_size: 64,
        node_id: rnode,
    };
    let m = map(&k, &p, 2, 0, &sem);
    let rec = m.record().expect("record");
    let kinds: Vec<&str> = rec.fields.iter().map(|f| f.ty.name()).collect();
    assert_eq!(
        kinds,
        ["wq", "task_work", "percpu_kptr", "spin_lock", "rb_root"]
    );
    let val = m.array_value(0, 0).expect("value");
    rt.migrate_disable();
    bpf_timer_init(&rt, val, 0, "bpf_work").expect("wq");
    bpf_timer_init(&rt, val, 16, "bpf_task_work_ctx").expect("task_work");
    let pobj = bpf_percpu_obj_new_impl(&rt, &p.btf, pc).expect("percpu obj");
    bpf_kptr_xchg(val, 24, pobj).expect("stash percpu");
    let n = bpf_obj_new_impl(&rt, &p.btf, rnode).expect("rb node obj");
    bpf_spin_lock(val, 32);
    let meta = find_meta(&p.btf, rnode);
    bpf_graph_push(
        &rt,
        val,
        40,
        n,
        8,
        F::RB_NODE,
        meta.as_ref().and_then(|m| m.rec()),
    )
    .expect("rbtree add");
    drop(meta);
    bpf_spin_unlock(val, 32);
    rt.migrate_enable();
    assert_eq!(rt.mem.live().len(), 4);
    rt.migrate_disable();
    bpf_obj_free_fields(&rt, rec, val);
    rt.migrate_enable();
    rt.rcu.rcu_barrier();
    assert!(rt.mem.live().is_empty(), "{:?}", rt.mem.live());
    assert_eq!(rt.mem.counts(), (4, 4));
    assert!(rt.mem.faults().is_empty() && rt.warnings().is_empty());
}

#[test]
fn a_map_too_large_for_the_model_is_enomem_not_an_allocation() {
    let sem = Semantics::V6_18;
    let (k, _rt) = runtime(sem);
    let p = prog(&k, &sem);
    let attr = MapAttr {
        inner_map: None,
        map_type: 2,
        key_size: 4,
        value_size: p.value_size,
        max_entries: 1 << 30,
        map_flags: 0,
        btf: Some(&p.btf),
        btf_key_type_id: 1,
        btf_value_type_id: p.value_id,
        name: "huge",
    };
    let m = map_create(&k, &attr, &sem).expect("map_create itself succeeds");
    assert_eq!(MapRt::new(m, &sem).err(), Some(kernel_core::Errno::ENOMEM));
}

#[test]
fn lru_eviction_drops_the_evicted_elements_stashed_object() {
    let sem = Semantics::V6_18;
    let (k, rt) = runtime(sem);
    // value { node __kptr *n @40 } in 64 bytes (LRU maps take no spin lock).
    let mut b = BtfBuilder::new();
    let _int = b.int("int", 4, BTF_INT_SIGNED, 32);
    let long = b.int("long", 8, BTF_INT_SIGNED, 64);
    let node = b.struct_("lnode", 8, &[("key", long, 0)]);
    let t = b.type_tag("kptr", node);
    let np = b.ptr(t);
    let v = b.struct_("lvalue", 64, &[("pad", long, 0), ("n", np, 320)]);
    let (btf, _) = bpf_btf_load(&k, &b.build(), 0, &sem).expect("loads");
    let p = Prog {
        btf,
        value_id: v,
        value_size: 64,
        node_id: node,
    };
    // max_entries 4 (see `map`): fill it, look every key up as a program does (each
    // sets its LRU reference bit), stash into key 3, then insert a fifth key. The
    // kernel's LRU (bpf_lru_list.c) flushes key 3, still pending on this CPU, to the
    // active list first and rotates the others in front of it; with no unreferenced
    // inactive node left, the forced shrink takes the active list's tail: key 3.
    let m = map(&k, &p, BPF_MAP_TYPE_LRU_HASH, 0, &sem);
    for key in 0u32..4 {
        m.update(&rt, &key.to_ne_bytes(), &[0u8; 64], 0)
            .expect("insert");
    }
    let n = bpf_obj_new_impl(&rt, &p.btf, p.node_id).expect("node");
    let e = m.htab_lookup(&3u32.to_ne_bytes()).expect("key 3");
    bpf_kptr_xchg(&e.values[0], 40, n).expect("stash");
    drop(e);
    for key in 0u32..3 {
        assert!(m.htab_lookup(&key.to_ne_bytes()).is_some());
    }
    m.update(&rt, &9u32.to_ne_bytes(), &[0u8; 64], 0)
        .expect("a fifth key evicts one");
    rt.rcu.rcu_barrier();
    assert!(
        m.htab_lookup_sys(&3u32.to_ne_bytes()).is_none(),
        "key 3 evicted"
    );
    assert!(!rt.mem.is_live(n), "its node dropped");
    assert!(rt.mem.faults().is_empty());
    // A plain hash refuses the fifth key instead.
    let h = map(&k, &p, 1, 0, &sem);
    for key in 0u32..4 {
        h.update(&rt, &key.to_ne_bytes(), &[0u8; 64], 0)
            .expect("insert");
    }
    assert_eq!(
        h.update(&rt, &9u32.to_ne_bytes(), &[0u8; 64], 0),
        Err(kernel_core::Errno::E2BIG)
    );
}

/// A map's record keeps its local kptr's pointee struct meta (the answer every release
/// would look up) only where the BTF outlives the record: the field holds the BTF
/// (c8e18754, v6.4) or the map puts its BTF after freeing its record (v6.12+). A copy
/// of the record, and a profile with neither, look it up at each release instead.
#[test]
fn a_map_record_keeps_the_pointee_meta_only_while_the_btf_outlives_it() {
    let unheld_early_put = Semantics {
        local_kptr_holds_btf: false,
        ..Semantics::V6_4
    };
    for (sem, kept) in [
        (Semantics::C8E18754, true),
        (Semantics::V6_4, true),
        (Semantics::V6_12, true),
        (Semantics::V6_18, true),
        (unheld_early_put, false),
    ] {
        let (k, rt) = runtime(sem);
        let b = kptr_tests::local_kptr_btf();
        let node = b.node;
        let (btf, _) = bpf_btf_load(&k, &b.blob, 0, &sem).expect("program BTF loads");
        let p = Prog {
            btf,
            value_id: b.value,
            value_size: 8,
            node_id: node,
        };
        let m = map(&k, &p, 2, 0, &sem);
        let rec = m.record().expect("record");
        let field = rec.fields[0].kptr.as_ref().expect("local kptr field");
        let looked_up = find_meta(&p.btf, node).expect("node is a struct meta");
        match &field.pointee_meta {
            Some(m) => assert!(
                kept && std::ptr::eq(
                    m.rec().expect("rec") as *const _,
                    looked_up.rec().expect("rec") as *const _
                ),
                "{}: the kept meta is the table's own record",
                sem.name
            ),
            None => assert!(!kept, "{}: pointee meta not kept", sem.name),
        }
        let dup = kernel_core::record::parse::btf_record_dup(rec).expect("dup");
        let copy = dup.fields[0].kptr.as_ref().expect("copied field");
        assert!(
            copy.pointee_meta.is_none(),
            "{}: a copy looks the meta up itself",
            sem.name
        );
        // Either way the stashed node is dropped once, through its struct meta.
        let v = m.array_value(0, 0).expect("value");
        rt.migrate_disable();
        let n = bpf_obj_new_impl(&rt, &p.btf, node).expect("node");
        bpf_kptr_xchg(v, 0, n).expect("stash");
        rt.migrate_enable();
        rt.migrate_disable();
        for r in [&dup, rec] {
            bpf_obj_free_fields(&rt, r, v);
        }
        rt.migrate_enable();
        rt.rcu.rcu_barrier();
        assert!(
            rt.mem.live().is_empty(),
            "{}: {:?}",
            sem.name,
            rt.mem.live()
        );
        assert!(rt.mem.faults().is_empty(), "{}", sem.name);
        assert_eq!(rt.mem.counts(), (1, 1), "{}: freed once", sem.name);
    }
}
