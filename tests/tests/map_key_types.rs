//! Map keys described through typedefs and modifiers: `map_check_btf` resolves the key
//! type (`btf_type_id_size`) before the map type's own check sees it, so an ARRAY map
//! keyed by `typedef unsigned int __u32` is accepted. The running kernel decides.
//!
//! Also the per-struct uniqueness of `btf_find_struct_field` (each struct, nested ones
//! included, has its own `seen_mask`; `bpf_refcount` is not unique): those layouts fire
//! a kernel WARN, so only the model is asked, against the kernel source's rules.

use std::os::fd::AsFd;

use kernel_core::Semantics;
use kernel_core::btf::builder::BtfBuilder;
use kernel_core::btf::uapi::*;
use kernel_core::map::{BPF_MAP_TYPE_ARRAY, MapAttr};
use kernel_core::record::{BtfFieldType as F, btf_parse_fields};
use kernel_core::syscall::bpf_btf_load;
use kernel_core::syscall::map_create;
use shim_std::kernel_btf::load_kernel_btfs;
use shim_std::oracle;

#[test]
fn typedef_and_const_keys_resolve_as_the_kernel_does() {
    if kptr_tests::kernel_skip("map key types") {
        return;
    }
    let sem = Semantics::V6_18;
    let (kernel, _) = load_kernel_btfs(None, false, sem).expect("kernel BTF");
    let mut b = BtfBuilder::new();
    let uint = b.int("unsigned int", 4, 0, 32);
    let u32t = b.typedef("__u32", uint);
    let cst = b.const_(uint);
    let td2 = b.typedef("key_t", u32t);
    let long = b.int("long", 8, BTF_INT_SIGNED, 64);
    let blob = b.build();
    let fd = oracle::btf_load_fd(&blob).expect("the kernel loads the blob");
    let (btf, _) = bpf_btf_load(&kernel, &blob, 0, &sem).expect("the model loads it");
    let mut compared = 0;
    let mut accepted_through_typedef = false;
    let map_types = [BPF_MAP_TYPE_ARRAY, 1 /* HASH */];
    let keys = [
        ("int", uint),
        ("typedef", u32t),
        ("const", cst),
        ("typedef of typedef", td2),
        ("long", long),
    ];
    kptr_tests::readme::states(&format!(
        "({} ARRAY and HASH keys",
        map_types.len() * keys.len()
    ));
    for map_type in map_types {
        for (what, key) in keys {
            let key_size = if key == long { 8 } else { 4 };
            let kr = oracle::map_create(&oracle::MapCreate {
                map_type,
                key_size,
                value_size: 4,
                max_entries: 1,
                map_flags: 0,
                btf_fd: Some(fd.as_fd()),
                btf_key_type_id: key,
                btf_value_type_id: uint,
                name: "keys",
            })
            .err();
            let attr = MapAttr {
                inner_map: None,
                map_type,
                key_size,
                value_size: 4,
                max_entries: 1,
                map_flags: 0,
                btf: Some(&btf),
                btf_key_type_id: key,
                btf_value_type_id: uint,
                name: "keys",
            };
            let mr = map_create(&kernel, &attr, &sem).err().map(|e| e.raw());
            assert_eq!(kr, mr, "map type {map_type}, key {what}");
            compared += 1;
            if map_type == BPF_MAP_TYPE_ARRAY && key == td2 && kr.is_none() {
                accepted_through_typedef = true;
            }
        }
    }
    assert_eq!(compared, map_types.len() * keys.len(), "every key compared");
    assert!(
        accepted_through_typedef,
        "the kernel accepts an ARRAY key behind two typedefs"
    );
}

/// CGROUP_STORAGE and PERCPU_CGROUP_STORAGE keys: `cgroup_storage_check_btf` checks each
/// member of `struct bpf_cgroup_storage_key` with `btf_member_is_reg_int`, which resolves
/// the member's typedefs and modifiers (vmlinux.h spells the members `__u64`/`__u32`)
/// and refuses bitfields of a kind_flag struct.
#[test]
fn cgroup_storage_keys_resolve_as_the_kernel_does() {
    if kptr_tests::kernel_skip("cgroup storage keys") {
        return;
    }
    let sem = Semantics::V6_18;
    let (kernel, _) = load_kernel_btfs(None, false, sem).expect("kernel BTF");
    let mut b = BtfBuilder::new();
    let ull = b.int("unsigned long long", 8, 0, 64);
    let ui = b.int("unsigned int", 4, 0, 32);
    let u64t = b.typedef("__u64", ull);
    let u32t = b.typedef("__u32", ui);
    let cu64 = b.const_(u64t);
    let vu32 = b.volatile(u32t);
    let e = b.enum_("e", 4, false, &[("E", 1)]);
    let val = b.int("int", 4, BTF_INT_SIGNED, 32);
    let m = |a: u32, bt: u32| [("a", a, 0), ("b", bt, 64)];
    let key = b.struct_("bpf_cgroup_storage_key", 16, &m(u64t, u32t));
    let cases = [
        ("vmlinux.h's typedefs", key, 16),
        ("plain ints", b.struct_("k_plain", 16, &m(ull, ui)), 16),
        (
            "const and volatile",
            b.struct_("k_mod", 16, &m(cu64, vu32)),
            16,
        ),
        (
            "kind_flag, no bitfields",
            b.struct_kflag("k_kf0", 16, &m(u64t, u32t)),
            16,
        ),
        (
            "kind_flag bitfields",
            b.struct_kflag(
                "k_bf",
                16,
                &[("a", ull, 64 << 24), ("b", ui, 32 << 24 | 64)],
            ),
            16,
        ),
        (
            "swapped",
            b.struct_("k_swap", 16, &[("b", ui, 0), ("a", ull, 64)]),
            16,
        ),
        ("two u64", b.struct_("k_uu", 16, &m(ull, ull)), 16),
        ("an enum", b.struct_("k_enum", 16, &m(ull, e)), 16),
        (
            "a union",
            b.union_("k_union", 16, &[("a", ull, 0), ("b", ui, 0)]),
            16,
        ),
        ("typedef of the key struct", b.typedef("key_t", key), 16),
        ("u64 typedef", u64t, 8),
        ("const u64", cu64, 8),
    ];
    let blob = b.build();
    let fd = oracle::btf_load_fd(&blob).expect("the kernel loads the blob");
    let (btf, _) = bpf_btf_load(&kernel, &blob, 0, &sem).expect("the model loads it");
    let (mut accepted, mut refused) = (0, 0);
    let map_types = [
        19, /* CGROUP_STORAGE */
        21, /* PERCPU_CGROUP_STORAGE */
    ];
    kptr_tests::readme::states(&format!(
        "{} CGROUP_STORAGE and PERCPU_CGROUP_STORAGE keys, against the kernel",
        map_types.len() * cases.len()
    ));
    for (what, key, key_size) in cases {
        for map_type in map_types {
            let kr = oracle::map_create(&oracle::MapCreate {
                map_type,
                key_size,
                value_size: 4,
                max_entries: 0,
                map_flags: 0,
                btf_fd: Some(fd.as_fd()),
                btf_key_type_id: key,
                btf_value_type_id: val,
                name: "cs",
            })
            .err();
            let attr = MapAttr {
                inner_map: None,
                map_type,
                key_size,
                value_size: 4,
                max_entries: 0,
                map_flags: 0,
                btf: Some(&btf),
                btf_key_type_id: key,
                btf_value_type_id: val,
                name: "cs",
            };
            let mr = map_create(&kernel, &attr, &sem).err().map(|e| e.raw());
            assert_eq!(kr, mr, "map type {map_type}, key: {what}");
            if kr.is_none() {
                accepted += 1;
            } else {
                refused += 1;
            }
        }
    }
    assert_eq!(
        accepted + refused,
        map_types.len() * cases.len(),
        "every key compared"
    );
    assert_eq!((accepted, refused), (14, 10), "the kernel's verdicts");
}

fn kernel(sem: Semantics) -> std::sync::Arc<kernel_core::btf::KernelBtfs> {
    let (k, _) = load_kernel_btfs(None, false, sem).expect("kernel BTF");
    std::sync::Arc::new(k)
}

/// The record of the one struct `build` adds after `bpf_spin_lock` and `bpf_refcount`,
/// or the errno of the BTF load (struct metas parse the same fields).
fn record_of(
    sem: Semantics,
    k: &kernel_core::btf::KernelBtfs,
    build: impl Fn(&mut BtfBuilder, u32, u32) -> u32,
) -> Result<usize, kernel_core::Errno> {
    let mut b = BtfBuilder::new();
    let int = b.int("int", 4, BTF_INT_SIGNED, 32);
    let lock = b.struct_("bpf_spin_lock", 4, &[("v", int, 0)]);
    let rc = b.struct_("bpf_refcount", 4, &[("v", int, 0)]);
    let id = build(&mut b, lock, rc);
    let (btf, _) = bpf_btf_load(k, &b.build(), 0, &sem).map_err(|e| e.errno)?;
    btf_parse_fields(&btf, k, id, F::SPIN_LOCK.or(F::REFCOUNT), 8, &sem)
        .map(|r| r.map_or(0, |r| r.fields.len()))
}

#[test]
fn unique_fields_are_unique_per_struct_and_bpf_refcount_is_not_unique() {
    for sem in [Semantics::V6_4, Semantics::V6_18] {
        let k = kernel(sem);
        // Two locks in one struct: -E2BIG in every profile.
        let flat = record_of(sem, &k, |b, lock, _| {
            b.struct_("flat", 8, &[("a", lock, 0), ("b", lock, 32)])
        });
        assert_eq!(flat, Err(kernel_core::Errno::E2BIG), "{}", sem.name);
        // Two bpf_refcount: found; the kernel WARNs in btf_parse_fields and keeps
        // the second offset.
        let warns = kernel_core::sync::warn::warn_count();
        let rcs = record_of(sem, &k, |b, _, rc| {
            b.struct_("rcs", 8, &[("a", rc, 0), ("b", rc, 32)])
        });
        assert_eq!(rcs, Ok(2), "{}", sem.name);
        assert!(
            kernel_core::sync::warn::warn_count() > warns,
            "{}",
            sem.name
        );
        // A lock in a nested struct: the nested struct has its own seen_mask (v6.10+
        // walks nested structs; before, the nested lock is not seen at all).
        let nested = record_of(sem, &k, |b, lock, _| {
            let inner = b.struct_("inner", 4, &[("l", lock, 0)]);
            b.struct_("nested", 8, &[("l", lock, 0), ("n", inner, 32)])
        });
        let expect = if sem.nested_fields { 2 } else { 1 };
        assert_eq!(nested, Ok(expect), "{}", sem.name);
    }
}
