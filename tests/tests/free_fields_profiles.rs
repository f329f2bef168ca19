//! `bpf_obj_free_fields` where profiles differ at run time: c8e18754 releasing an empty
//! referenced local-kptr slot (`__bpf_obj_drop_impl(NULL, rec)` runs
//! `bpf_obj_free_fields(rec, NULL)`), and who disables migration around the drops
//! (`bpf_obj_free_fields` and the graph drains themselves up to v6.12; the callers,
//! `bpf_map_free` for the map's teardown, in v6.18).

use kernel_core::Semantics;
use kernel_core::btf::builder::BtfBuilder;
use kernel_core::btf::uapi::*;
use kernel_core::btf::{BtfIdr, BtfRef, KernelBtfs, btf_parse_vmlinux};
use kernel_core::map::MapAttr;
use kernel_core::map::runtime::MapRt;
use kernel_core::obj::*;
use kernel_core::record::BtfFieldType as F;
use kernel_core::sync::{Arc, Rcu};
use kernel_core::syscall::bpf_btf_load;
use kernel_core::syscall::map_create;
use shim_std::kernel_btf::embedded_vmlinux;

const NO_MIGRATE: &str = "bpf_mem_free without migrate_disable";

fn runtime(sem: Semantics) -> (Arc<KernelBtfs>, Arc<BpfRuntime>) {
    shim_std::tally::install();
    let vm = btf_parse_vmlinux(&embedded_vmlinux(), true, sem).expect("vmlinux");
    let k = Arc::new(
        KernelBtfs::new(BtfIdr::new(Arc::new(Rcu::new())), Some(vm)).expect("kernel BTFs"),
    );
    let rt = BpfRuntime::new(sem, Arc::clone(&k), Arc::clone(k.idr().rcu_arc()));
    (k, rt)
}

fn array(k: &KernelBtfs, btf: &BtfRef, value: u32, size: u32, sem: &Semantics) -> Arc<MapRt> {
    let attr = MapAttr {
        inner_map: None,
        map_type: 2,
        key_size: 4,
        value_size: size,
        max_entries: 1,
        map_flags: 0,
        btf: Some(btf),
        btf_key_type_id: 1,
        btf_value_type_id: value,
        name: "a",
    };
    let m = map_create(k, &attr, sem).expect("map");
    assert!(m.record.is_some(), "record: {:?}", m.record_error);
    MapRt::new(m, sem).expect("map rt")
}

/// The pointee of the value's local kptr at offset 0: with `list`, `struct pnode {
/// struct bpf_list_head h; struct bpf_spin_lock l; }` (the lock at 16) whose list holds
/// `struct item`s; without, `struct pnode { long key; struct bpf_spin_lock l; }`.
/// Returns the faults and WARNs of releasing the value's empty slot.
fn release_empty_slot(sem: Semantics, list: bool) -> (Vec<MemFault>, Vec<&'static str>) {
    let (k, rt) = runtime(sem);
    let mut b = BtfBuilder::new();
    let int = b.int("int", 4, BTF_INT_SIGNED, 32);
    let long = b.int("long", 8, BTF_INT_SIGNED, 64);
    let lock = b.struct_("bpf_spin_lock", 4, &[("v", int, 0)]);
    let pnode = if list {
        let head = b.struct_("bpf_list_head", 16, &[("a", long, 0), ("b", long, 64)]);
        let nsize = F::LIST_NODE.size(&sem);
        let members: Vec<(&str, u32, u32)> = (0..nsize / 8)
            .map(|i| (["a", "b", "c"][i as usize], long, i * 64))
            .collect();
        let lnode = b.struct_("bpf_list_node", nsize, &members);
        b.struct_("item", 8 + nsize, &[("key", long, 0), ("ln", lnode, 64)]);
        let p = b.struct_("pnode", 20, &[("h", head, 0), ("l", lock, 128)]);
        b.decl_tag("contains:item:ln", p, 0);
        p
    } else {
        b.struct_("pnode", 12, &[("key", long, 0), ("l", lock, 64)])
    };
    let t = b.type_tag("kptr", pnode);
    let ptr = b.ptr(t);
    let value = b.struct_("value", 8, &[("n", ptr, 0)]);
    let (btf, _) = bpf_btf_load(&k, &b.build(), 0, &sem).expect("program BTF loads");
    let m = array(&k, &btf, value, 8, &sem);
    let v = m.array_value(0, 0).expect("value");
    rt.migrate_disable();
    bpf_obj_free_fields(&rt, m.record().expect("record"), v);
    rt.migrate_enable();
    rt.rcu.rcu_barrier();
    let faults = rt.mem.faults();
    // The NULL dereference is c8e18754's, asserted by the caller: exactly these
    // faults, no object left.
    let kinds: Vec<kernel_core::obj::FaultKind> =
        faults.iter().map(kernel_core::obj::FaultKind::of).collect();
    rt.mem.acknowledge(&[], &kinds).expect("acknowledged");
    (faults, rt.warnings())
}

/// c8e18754 has no NULL check: the empty slot reaches `__bpf_obj_drop_impl(NULL, rec)`,
/// which runs `bpf_obj_free_fields(rec, NULL)`. A list head's drain takes the lock at
/// NULL + spin_lock_off first: a NULL pointer dereference. A record whose fields the
/// switch passes over (a spin lock) touches nothing, and `bpf_mem_free(NULL)` returns
/// at once. v6.4 stops at the NULL exchange.
#[test]
fn c8e18754_dereferences_null_for_a_pointee_with_a_list_head() {
    let (faults, _) = release_empty_slot(Semantics::C8E18754, true);
    assert_eq!(faults.len(), 1, "{faults:?}");
    let f = format!("{faults:?}");
    assert!(
        f.contains("NullDeref(16") && f.contains("bpf_list_head_free"),
        "the lock at NULL + 16: {f}"
    );
    let (faults, warns) = release_empty_slot(Semantics::C8E18754, false);
    assert!(
        faults.is_empty() && warns.is_empty(),
        "{faults:?} {warns:?}"
    );
    let (faults, warns) = release_empty_slot(Semantics::V6_4, true);
    assert!(
        faults.is_empty() && warns.is_empty(),
        "{faults:?} {warns:?}"
    );
}

/// A value holding one stashed local object; returns its map and the object.
fn stashed(sem: Semantics) -> (Arc<KernelBtfs>, Arc<BpfRuntime>, Arc<MapRt>, u64, BtfRef) {
    let (k, rt) = runtime(sem);
    let prog = kptr_tests::local_kptr_btf();
    let (btf, _) = bpf_btf_load(&k, &prog.blob, 0, &sem).expect("program BTF loads");
    let m = array(&k, &btf, prog.value, 8, &sem);
    rt.migrate_disable();
    let n = bpf_obj_new_impl(&rt, &btf, prog.node).expect("node");
    bpf_kptr_xchg(m.array_value(0, 0).expect("value"), 0, n).expect("stash");
    rt.migrate_enable();
    (k, rt, m, n, btf)
}

/// The map's last reference goes and its free runs, as the workqueue would run it.
fn free_map(rt: &BpfRuntime, m: Arc<MapRt>) {
    if let Some(f) = MapRt::bpf_map_put(m) {
        f.run(rt);
    }
}

/// Up to v6.12 `bpf_obj_free_fields` disables migration around the local kptr's drop
/// itself; v6.18 leaves it to its callers, so a caller that does not is caught by the
/// allocator's check, while the map's own teardown (`bpf_map_free`) and a syscall update
/// (`bpf_disable_instrumentation`) run with migration disabled.
#[test]
fn v6_18_leaves_migrate_disable_to_the_callers_of_bpf_obj_free_fields() {
    for (sem, warns) in [(Semantics::V6_12, false), (Semantics::V6_18, true)] {
        let (_k, rt, m, n, _btf) = stashed(sem);
        bpf_obj_free_fields(
            &rt,
            m.record().expect("rec"),
            m.array_value(0, 0).expect("v"),
        );
        rt.rcu.rcu_barrier();
        assert!(!rt.mem.is_live(n), "{}", sem.name);
        assert_eq!(
            rt.warnings().contains(&NO_MIGRATE),
            warns,
            "{}: {:?}",
            sem.name,
            rt.warnings()
        );
        let (_k, rt, m, n, _btf) = stashed(sem);
        m.update(&rt, &0u32.to_ne_bytes(), &[0u8; 8], 0)
            .expect("syscall update");
        let (_k2, rt2, m2, n2, _btf2) = stashed(sem);
        free_map(&rt2, m2);
        rt.rcu.rcu_barrier();
        rt2.rcu.rcu_barrier();
        assert!(!rt.mem.is_live(n) && !rt2.mem.is_live(n2), "{}", sem.name);
        assert!(
            rt.warnings().is_empty(),
            "{}: {:?}",
            sem.name,
            rt.warnings()
        );
        assert!(
            rt2.warnings().is_empty(),
            "{}: {:?}",
            sem.name,
            rt2.warnings()
        );
        drop(m);
    }
}

/// The `migrate_disable`/`migrate_enable` toggles of kernel functions, traced on this
/// thread (other tests of this binary run on others).
static TOGGLES: std::sync::Mutex<Vec<(std::thread::ThreadId, String)>> =
    std::sync::Mutex::new(Vec::new());

fn record(ev: &kernel_core::trace::Event<'_>) {
    if let kernel_core::trace::Event::Migrate { disable, site } = *ev
        && !site.is_empty()
        && let Ok(mut g) = TOGGLES.lock()
    {
        let what = if disable { "disable" } else { "enable" };
        g.push((std::thread::current().id(), format!("{what} {site}")));
    }
}

fn toggles(f: impl FnOnce()) -> Vec<String> {
    let me = std::thread::current().id();
    if let Ok(mut g) = TOGGLES.lock() {
        g.retain(|(t, _)| *t != me);
    }
    kernel_core::trace::set_trace_hook(Some(record));
    f();
    let mut g = TOGGLES.lock().expect("toggles");
    let mine = g
        .iter()
        .filter(|(t, _)| *t == me)
        .map(|(_, s)| s.clone())
        .collect();
    g.retain(|(t, _)| *t != me);
    mine
}

/// `gvalue { bpf_spin_lock l; bpf_list_head h __contains(gnode, ln); }` in an array,
/// one `gnode` on the list; the map is then freed.
fn free_a_list(sem: Semantics) -> Vec<String> {
    let (k, rt) = runtime(sem);
    let lp = kernel_core::testing::list_prog("bpf_spin_lock");
    let (node, v) = (lp.node, lp.value);
    let (btf, _) = bpf_btf_load(&k, &lp.blob, 0, &sem).expect("loads");
    let m = array(&k, &btf, v, 24, &sem);
    let val = m.array_value(0, 0).expect("value");
    rt.migrate_disable();
    let n = bpf_obj_new_impl(&rt, &btf, node).expect("node");
    bpf_spin_lock(val, 0);
    let meta = find_meta(&btf, node);
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
    bpf_spin_unlock(val, 0);
    rt.migrate_enable();
    let t = toggles(|| free_map(&rt, m));
    rt.rcu.rcu_barrier();
    assert!(!rt.mem.is_live(n), "{}", sem.name);
    assert!(
        rt.warnings().is_empty(),
        "{}: {:?}",
        sem.name,
        rt.warnings()
    );
    t
}

/// The trace shows the kernel's own toggles: c8e18754 has none around the stashed
/// object's drop (its bug), v6.4 and v6.12 toggle in `bpf_obj_free_fields` and in the
/// list drain, v6.18 once in `bpf_map_free` around the whole `map_free`. A syscall
/// update toggles in `bpf_disable_instrumentation` under every profile.
#[test]
fn the_trace_shows_where_each_profile_disables_migration() {
    for (sem, want) in [
        (Semantics::C8E18754, &[][..]),
        (
            Semantics::V6_4,
            &["disable bpf_obj_free_fields", "enable bpf_obj_free_fields"][..],
        ),
        (
            Semantics::V6_12,
            &["disable bpf_obj_free_fields", "enable bpf_obj_free_fields"][..],
        ),
        (
            Semantics::V6_18,
            &["disable bpf_map_free", "enable bpf_map_free"][..],
        ),
    ] {
        let (_k, rt, m, n, _btf) = stashed(sem);
        let got = toggles(|| free_map(&rt, m));
        assert_eq!(got, want, "{}: stashed kptr", sem.name);
        rt.rcu.rcu_barrier();
        assert!(!rt.mem.is_live(n), "{}", sem.name);
        let (_k, rt, m, _n, _btf) = stashed(sem);
        let got = toggles(|| {
            m.update(&rt, &0u32.to_ne_bytes(), &[0u8; 8], 0)
                .expect("update");
        });
        let first = got.first().map(String::as_str);
        let last = got.last().map(String::as_str);
        assert_eq!(
            (first, last),
            (
                Some("disable bpf_disable_instrumentation"),
                Some("enable bpf_disable_instrumentation")
            ),
            "{}: {got:?}",
            sem.name
        );
    }
    assert_eq!(
        free_a_list(Semantics::V6_12),
        ["disable bpf_list_head_free", "enable bpf_list_head_free"]
    );
    assert_eq!(
        free_a_list(Semantics::V6_18),
        ["disable bpf_map_free", "enable bpf_map_free"]
    );
}

/// A non-preallocated HASH holding one element with a stashed local object.
fn hash_stashed(sem: Semantics) -> (Arc<KernelBtfs>, Arc<BpfRuntime>, Arc<MapRt>, u64, BtfRef) {
    let (k, rt) = runtime(sem);
    let prog = kptr_tests::local_kptr_btf();
    let (btf, _) = bpf_btf_load(&k, &prog.blob, 0, &sem).expect("program BTF loads");
    let attr = MapAttr {
        inner_map: None,
        map_type: kernel_core::map::BPF_MAP_TYPE_HASH,
        key_size: 4,
        value_size: 8,
        max_entries: 4,
        map_flags: kernel_core::map::BPF_F_NO_PREALLOC,
        btf: Some(&btf),
        btf_key_type_id: 1,
        btf_value_type_id: prog.value,
        name: "h",
    };
    let m = MapRt::new(map_create(&k, &attr, &sem).expect("map"), &sem).expect("map rt");
    m.update(&rt, &0u32.to_ne_bytes(), &[0u8; 8], 0)
        .expect("insert");
    let e = m.htab_lookup(&0u32.to_ne_bytes()).expect("element");
    rt.migrate_disable();
    let n = bpf_obj_new_impl(&rt, &btf, prog.node).expect("node");
    bpf_kptr_xchg(&e.values[0], 0, n).expect("stash");
    rt.migrate_enable();
    (k, rt, m, n, btf)
}

/// A non-preallocated HASH's element frees (kernel/bpf/hashtab.c): up to v6.12
/// `htab_elem_free` disables migration around the allocator's free itself, after
/// `check_and_free_fields`, and `delete_all_elements` around the map free's walk, which
/// frees each element the same way; v6.18 leaves both to the callers
/// (`bpf_disable_instrumentation` for a syscall delete, `bpf_map_free` for the map's
/// free).
#[test]
fn hash_element_frees_toggle_migration_up_to_v6_12_only() {
    let syscall = |inner: &[&str]| -> Vec<String> {
        std::iter::once("disable bpf_disable_instrumentation")
            .chain(inner.iter().copied())
            .chain(std::iter::once("enable bpf_disable_instrumentation"))
            .map(String::from)
            .collect()
    };
    let v6_12_elem = [
        "disable bpf_obj_free_fields",
        "enable bpf_obj_free_fields",
        "disable htab_elem_free",
        "enable htab_elem_free",
    ];
    for (sem, delete, free) in [
        (
            Semantics::V6_12,
            syscall(&v6_12_elem),
            std::iter::once("disable delete_all_elements")
                .chain(v6_12_elem)
                .chain(std::iter::once("enable delete_all_elements"))
                .map(String::from)
                .collect::<Vec<_>>(),
        ),
        (
            Semantics::V6_18,
            syscall(&[]),
            vec!["disable bpf_map_free".into(), "enable bpf_map_free".into()],
        ),
    ] {
        let (_k, rt, m, n, _btf) = hash_stashed(sem);
        let got = toggles(|| {
            m.delete(&rt, &0u32.to_ne_bytes()).expect("delete");
        });
        assert_eq!(got, delete, "{}: delete", sem.name);
        rt.rcu.rcu_barrier();
        assert!(!rt.mem.is_live(n), "{}", sem.name);
        let (_k, rt, m, n, _btf) = hash_stashed(sem);
        let got = toggles(|| free_map(&rt, m));
        assert_eq!(got, free, "{}: map free", sem.name);
        rt.rcu.rcu_barrier();
        assert!(!rt.mem.is_live(n), "{}", sem.name);
        assert!(
            rt.warnings().is_empty(),
            "{}: {:?}",
            sem.name,
            rt.warnings()
        );
    }
}
