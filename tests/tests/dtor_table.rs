//! The destructor table as data, checked against the running kernel: every type the
//! v6.18 table registers can be stored as a referenced kptr (its map record is valid),
//! and a kernel type without a destructor fails BTF load with -ENOENT, in the kernel
//! and in the model. Also: `btf_record_equal` compares identities, as the kernel's
//! byte comparison does.

use std::os::fd::AsFd;

use kernel_core::Semantics;
use kernel_core::btf::builder::BtfBuilder;
use kernel_core::btf::dtors::kernel_dtor_kfuncs;
use kernel_core::btf::uapi::*;
use kernel_core::map::{BPF_F_RDONLY_PROG, MapAttr};
use kernel_core::record::btf_record_equal;
use kernel_core::syscall::bpf_btf_load;
use kernel_core::syscall::map_create;
use shim_std::kernel_btf::load_kernel_btfs;
use shim_std::oracle;

/// A program BTF with `struct <name> __kptr *p` in a value; returns (blob, value id).
fn prog(name: &str) -> (Vec<u8>, u32) {
    let mut b = BtfBuilder::new();
    let int = b.int("int", 4, BTF_INT_SIGNED, 32);
    let obj = b.struct_(name, 8, &[("x", int, 0)]);
    let t = b.type_tag("kptr", obj);
    let p = b.ptr(t);
    let v = b.struct_("val", 8, &[("p", p, 0)]);
    (b.build(), v)
}

#[test]
fn every_registered_destructor_is_accepted_by_the_kernel() {
    if kptr_tests::kernel_skip("destructor table") {
        return;
    }
    let sem = Semantics::V6_18;
    let (kernel, _) = load_kernel_btfs(None, false, sem).expect("kernel BTF");
    let vm = kernel.vmlinux().expect("vmlinux");
    let mut checked = 0;
    for decl in kernel_dtor_kfuncs(&sem) {
        // The table's names exist in this kernel's BTF (skip what it was built without).
        let Ok(_) = kernel_core::btf::btf_find_by_name_kind(vm, decl.ty, BtfKind::Struct as u8)
        else {
            eprintln!("{} not in this kernel's BTF: skipped", decl.ty);
            continue;
        };
        kernel_core::btf::btf_find_by_name_kind(vm, decl.func, BtfKind::Func as u8)
            .unwrap_or_else(|_| panic!("{} missing from vmlinux BTF", decl.func));
        let (blob, v) = prog(decl.ty);
        let k = oracle::btf_load(&blob);
        let m = bpf_btf_load(&kernel, &blob, 0, &sem);
        assert_eq!(k.errno, None, "kernel refused a __kptr to {}", decl.ty);
        let (btf, _) = m.unwrap_or_else(|e| panic!("model refused {}: {e}", decl.ty));
        let fd = oracle::btf_load_fd(&blob).expect("loads");
        let kr = oracle::map_create(&oracle::MapCreate {
            map_type: 2,
            key_size: 4,
            value_size: 8,
            max_entries: 1,
            map_flags: BPF_F_RDONLY_PROG,
            btf_fd: Some(fd.as_fd()),
            btf_key_type_id: 1,
            btf_value_type_id: v,
            name: "dtor",
        })
        .err();
        let attr = MapAttr {
            inner_map: None,
            map_type: 2,
            key_size: 4,
            value_size: 8,
            max_entries: 1,
            map_flags: BPF_F_RDONLY_PROG,
            btf: Some(&btf),
            btf_key_type_id: 1,
            btf_value_type_id: v,
            name: "dtor",
        };
        let mr = map_create(&kernel, &attr, &sem).err().map(|e| e.raw());
        assert_eq!(
            kr,
            Some(13),
            "{}: the kernel's record is valid (EACCES)",
            decl.ty
        );
        assert_eq!(mr, kr, "{}", decl.ty);
        checked += 1;
    }
    assert!(checked >= 4, "only {checked} destructors checked");
    // A kernel type with no destructor: -ENOENT at BTF load (struct metas parse kptrs).
    for ty in ["file", "sock", "inode"] {
        let (blob, _) = prog(ty);
        let k = oracle::btf_load(&blob);
        let m = bpf_btf_load(&kernel, &blob, 0, &sem)
            .err()
            .map(|e| e.errno.raw());
        assert_eq!(k.errno, Some(2), "kernel: {ty}");
        assert_eq!(m, k.errno, "model: {ty}");
    }
}

#[test]
fn record_equal_compares_identities() {
    let sem = Semantics::V6_18;
    let (kernel, _) = load_kernel_btfs(None, false, sem).expect("kernel BTF");
    let rec_of = |name: &str| {
        let (blob, v) = prog(name);
        let (btf, _) = bpf_btf_load(&kernel, &blob, 0, &sem).expect("loads");
        let attr = MapAttr {
            inner_map: None,
            map_type: 2,
            key_size: 4,
            value_size: 8,
            max_entries: 1,
            map_flags: 0,
            btf: Some(&btf),
            btf_key_type_id: 1,
            btf_value_type_id: v,
            name: "eq",
        };
        (map_create(&kernel, &attr, &sem).expect("map"), btf)
    };
    // Same kernel pointee from two program BTFs: equal (same vmlinux, same dtor).
    let (a, _ba) = rec_of("task_struct");
    let (b, _bb) = rec_of("task_struct");
    assert!(btf_record_equal(a.record.as_ref(), b.record.as_ref()));
    // Same local layout from two program BTFs: not equal (different program BTFs).
    let (c, _bc) = rec_of("my_local_obj");
    let (d, _bd) = rec_of("my_local_obj");
    assert!(!btf_record_equal(c.record.as_ref(), d.record.as_ref()));
    assert!(!btf_record_equal(a.record.as_ref(), None));
    assert!(btf_record_equal(None, None));
}
