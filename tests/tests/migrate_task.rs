//! `migrate_disable` is the calling task's state (`current->migration_disabled`): a
//! BPF program running in a migrate-disabled section on one thread does not cover a
//! free on another, and an unbalanced `migrate_enable` WARNs.

use std::sync::Barrier;

use kernel_core::Semantics;
use kernel_core::btf::{BtfIdr, KernelBtfs, btf_parse_vmlinux};
use kernel_core::map::MapAttr;
use kernel_core::map::runtime::MapRt;
use kernel_core::obj::{BpfRuntime, bpf_kptr_xchg, bpf_obj_free_fields, bpf_obj_new_impl};
use kernel_core::sync::{Arc, Rcu};
use kernel_core::syscall::bpf_btf_load;
use kernel_core::syscall::map_create;
use shim_std::kernel_btf::embedded_vmlinux;

const NO_MIGRATE: &str = "bpf_mem_free without migrate_disable";

/// The kernel BTFs (the embedded vmlinux) and a runtime over them.
fn runtime(sem: Semantics) -> (Arc<KernelBtfs>, Arc<BpfRuntime>) {
    shim_std::tally::install();
    let vm = btf_parse_vmlinux(&embedded_vmlinux(), true, sem).expect("vmlinux");
    let rcu = Arc::new(Rcu::new());
    let k = Arc::new(KernelBtfs::new(BtfIdr::new(Arc::clone(&rcu)), Some(vm)).expect("kernel"));
    let rt = BpfRuntime::new(sem, Arc::clone(&k), rcu);
    (k, rt)
}

/// An array map whose value holds a local kptr to a node, one node stashed;
/// `bpf_obj_free_fields` of that value runs while another thread sits in a
/// migrate-disabled section. Returns the WARNs of the runtime.
fn free_while_another_task_is_pinned(sem: Semantics) -> Vec<&'static str> {
    let (k, rt) = runtime(sem);
    let prog = kptr_tests::local_kptr_btf();
    let (btf, _) = bpf_btf_load(&k, &prog.blob, 0, &sem).expect("program BTF loads");
    let attr = MapAttr {
        inner_map: None,
        map_type: 2,
        key_size: 4,
        value_size: 8,
        max_entries: 1,
        map_flags: 0,
        btf: Some(&btf),
        btf_key_type_id: prog.int,
        btf_value_type_id: prog.value,
        name: "m",
    };
    let map = MapRt::new(map_create(&k, &attr, &sem).expect("map"), &sem).expect("rt");
    rt.migrate_disable();
    let obj = bpf_obj_new_impl(&rt, &btf, prog.node).expect("node");
    let value = map.array_value(0, 0).expect("value");
    bpf_kptr_xchg(value, 0, obj).expect("stash");
    rt.migrate_enable();
    assert!(!rt.migration_disabled(), "balanced on this task");

    let entered = Barrier::new(2);
    let freed = Barrier::new(2);
    let (other_pinned, this_pinned) = std::thread::scope(|s| {
        let other = s.spawn(|| {
            rt.migrate_disable();
            let pinned = rt.migration_disabled();
            entered.wait();
            freed.wait();
            rt.migrate_enable();
            pinned
        });
        entered.wait();
        let this_pinned = rt.migration_disabled();
        bpf_obj_free_fields(&rt, map.record().expect("record"), value);
        freed.wait();
        (other.join().expect("other task"), this_pinned)
    });
    assert!(other_pinned, "the other task is migrate-disabled");
    assert!(
        !this_pinned,
        "another task's migrate_disable is not this task's"
    );
    assert!(!rt.mem.is_live(obj) || sem.obj_drop_free_rcu, "dropped");
    rt.rcu.rcu_barrier();
    assert!(rt.mem.live().is_empty(), "the node was freed");
    rt.warnings()
}

#[test]
fn a_free_is_checked_against_its_own_task_not_another_cpu_s_program() {
    // c8e18754 drops the stashed node without migrate_disable: WARN even though a
    // program on another thread is migrate-disabled meanwhile.
    let w = free_while_another_task_is_pinned(Semantics::C8E18754);
    assert!(w.contains(&NO_MIGRATE), "c8e18754: {w:?}");
    // v6.4 wraps the drop in migrate_disable/enable itself: no WARN.
    let w = free_while_another_task_is_pinned(Semantics::V6_4);
    assert!(w.is_empty(), "v6.4: {w:?}");
}

#[test]
fn migrate_enable_without_disable_warns_and_stays_at_zero() {
    let (_k, rt) = runtime(Semantics::V6_18);
    rt.migrate_enable();
    assert_eq!(
        rt.warnings(),
        vec!["migrate_enable without migrate_disable"]
    );
    assert!(!rt.migration_disabled());
    rt.migrate_disable();
    assert!(
        rt.migration_disabled(),
        "one disable after the bad enable counts"
    );
    rt.migrate_enable();
    assert!(!rt.migration_disabled());
    assert_eq!(rt.warnings().len(), 1);
}
