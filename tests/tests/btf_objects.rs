//! `struct btf` lifetimes, split (module) BTF, the registry, and profile differences of
//! the verifier.

use kernel_core::btf::builder::BtfBuilder;
use kernel_core::btf::uapi::*;
use kernel_core::btf::*;
use kernel_core::sync::{Arc, Rcu};
use kernel_core::{Errno, Semantics};

fn base_blob() -> Vec<u8> {
    let mut b = BtfBuilder::new();
    let int = b.int("int", 4, BTF_INT_SIGNED, 32);
    b.struct_("task_struct", 8, &[("pid", int, 0), ("tgid", int, 32)]);
    let p = b.ptr(0);
    let proto = b.func_proto(0, &[("p", p)]);
    b.func("bpf_task_release_dtor", proto, 1);
    b.build()
}

fn module_blob(base: &BtfData) -> Vec<u8> {
    let mut b = BtfBuilder::new_split(base.nr_types(), base.header().str_len);
    // Refers to base type 1 (int) and to its own types.
    let s = b.struct_("prog_test_ref_kfunc", 8, &[("a", 1, 0), ("b", 1, 32)]);
    let p = b.ptr(s);
    b.struct_("holder", 8, &[("p", p, 0)]);
    b.build()
}

fn kernel() -> KernelBtfs {
    let idr = BtfIdr::new(Arc::new(Rcu::new()));
    let vm = btf_parse_vmlinux(&base_blob(), true, Semantics::V6_18).expect("base");
    KernelBtfs::new(idr, Some(vm)).expect("kernel")
}

#[test]
fn split_btf_resolves_across_the_base() {
    let k = kernel();
    let vm = k.vmlinux().expect("vmlinux");
    let m = btf_parse_module(
        "bpf_testmod",
        &module_blob(vm.data()),
        vm,
        true,
        Semantics::V6_18,
    )
    .expect("module BTF verifies");
    let d = m.data();
    assert_eq!(d.start_id(), vm.data().nr_types());
    assert_eq!(d.start_str_off(), vm.data().header().str_len);
    let first = d.start_id();
    let t = d.type_by_id(first).expect("first module type");
    assert_eq!(d.name_by_offset(t.name_off()), "prog_test_ref_kfunc");
    // A base id read through the module BTF.
    let int = d.type_by_id(1).expect("base int");
    assert_eq!(d.name_by_offset(int.name_off()), "int");
    assert!(d.type_by_id(d.nr_types()).is_none());
    assert!(m.is_module() && !m.is_vmlinux() && m.is_kernel());

    let id = k
        .add_module(m, kernel_core::module::Module::new("bpf_testmod"))
        .expect("publish");
    assert!(id > vm.id());
    let (tid, owner) = k
        .bpf_find_btf_id("prog_test_ref_kfunc", BtfKind::Struct as u8)
        .expect("found in module");
    assert_eq!(tid, first);
    assert_eq!(owner.name(), "bpf_testmod");
    assert_eq!(owner.refcount(), 2, "list reference + the lookup's");
    drop(owner);
    let (tid, owner) = k
        .bpf_find_btf_id("task_struct", BtfKind::Struct as u8)
        .expect("vmlinux");
    assert_eq!(tid, 2);
    assert!(owner.is_vmlinux());
}

#[test]
fn module_type_referring_past_its_end_is_rejected() {
    let k = kernel();
    let vm = k.vmlinux().expect("vmlinux");
    let mut b = BtfBuilder::new_split(vm.data().nr_types(), vm.data().header().str_len);
    b.ptr(vm.data().nr_types() + 5);
    let e = btf_parse_module("m", &b.build(), vm, true, Semantics::V6_18)
        .err()
        .expect("rejected");
    assert_eq!(e.errno, Errno::EINVAL);
    assert_eq!(e.reason, "Invalid type_id");
}

#[test]
fn last_put_unpublishes_then_frees_after_grace_period() {
    let rcu = Arc::new(Rcu::new());
    let idr = BtfIdr::new(rcu.clone());
    let mut b = btf_parse(&base_blob(), 0, Semantics::V6_18).expect("parse");
    assert_eq!(b.refcount(), 1);
    let id = BtfIdr::publish(&idr, &mut b).expect("publish");
    assert_eq!(b.id(), id);
    let extra = btf_get(&b);
    assert_eq!(b.refcount(), 2);
    let by_id = idr.btf_get_by_id(id).expect("lookup");
    assert_eq!(b.refcount(), 3);
    drop(by_id);
    btf_put(extra);
    assert_eq!(b.refcount(), 1);
    assert_eq!(rcu.pending(), 0);
    btf_put(b);
    // Unpublished at once, freed only after a grace period.
    assert_eq!(idr.btf_get_by_id(id).err(), Some(Errno::ENOENT));
    assert!(idr.is_empty());
    assert_eq!(rcu.pending(), 1);
    rcu.rcu_barrier();
    assert_eq!(rcu.pending(), 0);
    assert_eq!(rcu.completed(), 1);
}

#[test]
fn ids_are_cyclic_from_one() {
    let idr = BtfIdr::new(Arc::new(Rcu::new()));
    let mut a = btf_parse(&base_blob(), 0, Semantics::V6_18).expect("parse");
    let mut b = btf_parse(&base_blob(), 0, Semantics::V6_18).expect("parse");
    assert_eq!(BtfIdr::publish(&idr, &mut a), Ok(1));
    assert_eq!(BtfIdr::publish(&idr, &mut b), Ok(2));
    drop(a);
    let mut c = btf_parse(&base_blob(), 0, Semantics::V6_18).expect("parse");
    assert_eq!(
        BtfIdr::publish(&idr, &mut c),
        Ok(3),
        "cyclic: a freed id is not reused at once"
    );
    assert_eq!(
        BtfIdr::publish(&idr, &mut c),
        Err(Errno::EINVAL),
        "already published"
    );
}

#[test]
fn no_vmlinux_means_einval() {
    let k = KernelBtfs::new(BtfIdr::new(Arc::new(Rcu::new())), None).expect("kernel");
    assert_eq!(
        k.bpf_find_btf_id("task_struct", BtfKind::Struct as u8)
            .err(),
        Some(Errno::EINVAL)
    );
}

#[test]
fn module_removal_drops_the_list_reference() {
    let k = kernel();
    let vm = k.vmlinux().expect("vmlinux");
    let m =
        btf_parse_module("mod", &module_blob(vm.data()), vm, true, Semantics::V6_18).expect("m");
    k.add_module(m, kernel_core::module::Module::new("mod"))
        .expect("add");
    assert!(k.bpf_find_btf_id("holder", BtfKind::Struct as u8).is_ok());
    k.remove_module("mod").expect("remove");
    assert_eq!(
        k.bpf_find_btf_id("holder", BtfKind::Struct as u8).err(),
        Some(Errno::ENOENT)
    );
    assert_eq!(k.remove_module("mod"), Err(Errno::ENOENT));
}

fn tagged_kflag_blob() -> Vec<u8> {
    let mut b = BtfBuilder::new();
    let int = b.int("int", 4, BTF_INT_SIGNED, 32);
    b.raw_named(
        "attr",
        btf_info_enc(BtfKind::TypeTag as u8, true, 0),
        int,
        &[],
    );
    b.build()
}

#[test]
fn tag_kflag_differs_between_profiles() {
    // v6.18 accepts kind_flag on TYPE_TAG (the running kernel agrees: see the corpus).
    assert!(btf_parse(&tagged_kflag_blob(), 0, Semantics::V6_18).is_ok());
    // v6.12 and earlier refuse it.
    for sem in [
        Semantics::V6_12,
        Semantics::V6_4,
        Semantics::C8E18754,
        Semantics::V6_3,
    ] {
        let e = btf_parse(&tagged_kflag_blob(), 1, sem)
            .err()
            .expect("refused");
        assert_eq!(e.errno, Errno::EINVAL, "{}", sem.name);
        assert!(
            e.message().ends_with("Invalid btf_info kind_flag"),
            "{}",
            e.message()
        );
    }
}

#[test]
fn kernel_btf_skips_resolve_unless_asked() {
    // A typedef loop passes the kernel's own (meta-only) check of its BTF but not the
    // full verifier.
    let mut b = BtfBuilder::new();
    let first = b.next_id();
    b.typedef("a", first + 1);
    b.typedef("b", first);
    let blob = b.build();
    assert!(
        btf_parse_vmlinux(&blob, false, Semantics::V6_18).is_err_and(|e| e.errno == Errno::ELOOP)
    );
    let e = btf_parse_vmlinux(&blob, true, Semantics::V6_18)
        .err()
        .expect("loop");
    assert_eq!(e.errno, Errno::EEXIST);
}

/// A local struct whose list head names a type the BTF lacks fails its struct meta
/// (-ENOENT, the kernel's BPF_BTF_LOAD verdict, compared below); the failed load takes
/// no BTF id, so the next load gets the id right after the last successful one
/// (btf_new_fd allocates the id only after btf_parse succeeded).
#[test]
fn a_failed_struct_meta_takes_no_btf_id() {
    let sem = Semantics::V6_18;
    let blob = |contains: &str| {
        let mut b = BtfBuilder::new();
        let int = b.int("int", 4, BTF_INT_SIGNED, 32);
        let long = b.int("long", 8, BTF_INT_SIGNED, 64);
        let lock = b.struct_("bpf_spin_lock", 4, &[("val", int, 0)]);
        let head = b.struct_("bpf_list_head", 16, &[("a", long, 0), ("b", long, 64)]);
        let node = b.struct_(
            "bpf_list_node",
            24,
            &[("a", long, 0), ("b", long, 64), ("c", long, 128)],
        );
        b.struct_("elem", 24, &[("n", node, 0)]);
        let holder = b.struct_("holder", 24, &[("head", head, 0), ("lock", lock, 128)]);
        b.decl_tag(contains, holder, 0);
        b.build()
    };
    let (good, bad) = (blob("contains:elem:n"), blob("contains:missing:n"));
    let k = kernel();
    let (first, _) = kernel_core::syscall::bpf_btf_load(&k, &good, 0, &sem).expect("good loads");
    let Err(e) = kernel_core::syscall::bpf_btf_load(&k, &bad, 0, &sem) else {
        panic!("bad is refused");
    };
    assert_eq!(
        (e.errno, e.reason),
        (Errno::ENOENT, "btf_parse_struct_metas")
    );
    let (second, _) = kernel_core::syscall::bpf_btf_load(&k, &good, 0, &sem).expect("good loads");
    assert_eq!(
        second.id(),
        first.id() + 1,
        "no id spent on the failed load"
    );
    if kptr_tests::kernel_skip("BPF_BTF_LOAD of the struct-meta blobs") {
        return;
    }
    assert!(
        shim_std::oracle::btf_load_fd(&good).is_ok(),
        "the kernel loads the good blob"
    );
    assert_eq!(
        shim_std::oracle::btf_load_fd(&bad).err(),
        Some(e.errno.raw()),
        "the kernel refuses the bad blob with the model's errno"
    );
}

/// `btf_free` of a module BTF puts its base reference once the grace period has passed,
/// while the object's memory stays in the IDR's quarantine: a late reader of an
/// unreferenced pointer (after checking `is_freed`) still reads a module, not a BTF
/// that lost its base.
#[test]
fn a_freed_module_puts_its_base_and_stays_readable_as_a_module() {
    let k = kernel();
    let vm = k.vmlinux().expect("vmlinux");
    let before = vm.refcount();
    let m =
        btf_parse_module("mod", &module_blob(vm.data()), vm, true, Semantics::V6_18).expect("m");
    assert_eq!(vm.refcount(), before + 1, "the module holds its base");
    let raw = m.raw();
    k.add_module(m, kernel_core::module::Module::new("mod"))
        .expect("add");
    k.remove_module("mod").expect("remove");
    k.idr().rcu().rcu_barrier();
    assert!(k.idr().is_freed(raw.as_ptr() as usize), "btf_free ran");
    assert_eq!(vm.refcount(), before, "btf_free put the base");
    // SAFETY: a published BTF's memory is kept until the IDR goes (`k` is alive), and
    // the read below is what the model's late readers do after `is_freed`.
    let late = unsafe { raw.as_ref() };
    assert!(late.is_module() && !late.is_vmlinux() && late.is_kernel());
    assert_eq!(late.data().start_id(), vm.data().nr_types());
}
