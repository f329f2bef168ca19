//! Unit tests of maps of maps (`map_in_map`) and of the map types' key checks
//! (`check_btf`), on BTF written with the builder. The running kernel's answers for the
//! same layouts (6.18, probed with `BPF_MAP_CREATE` and `BPF_MAP_UPDATE_ELEM`) are the
//! expected values.

use super::*;
use crate::btf::builder::BtfBuilder;
use crate::btf::object::btf_put_leaked_reference;
use crate::btf::uapi::BTF_INT_SIGNED;
use crate::btf::{BtfIdr, BtfRef, KernelBtfs, btf_parse_module, btf_parse_vmlinux};
use crate::errno::{Errno, KResult};
use crate::module::{Module, ModuleState};
use crate::profile::Semantics;
use crate::sync::{Arc, Rcu};
use crate::syscall::{bpf_btf_load, map_create};

/// A kernel: vmlinux with `task_struct` and its destructor, and a live module `testmod`
/// whose BTF has `mod_obj` and its destructor.
struct Kernel {
    k: KernelBtfs,
    m: Arc<Module>,
    mbtf: BtfRef,
}

fn kernel(sem: &Semantics) -> Kernel {
    let mut b = BtfBuilder::new();
    let long = b.int("long", 8, BTF_INT_SIGNED, 64);
    b.struct_("task_struct", 8, &[("x", long, 0)]);
    let p = b.ptr(0);
    let proto = b.func_proto(0, &[("p", p)]);
    b.func("bpf_task_release_dtor", proto, 1);
    let vm = btf_parse_vmlinux(&b.build(), true, *sem).expect("vmlinux");
    let k = KernelBtfs::new(BtfIdr::new(Arc::new(Rcu::new())), Some(vm)).expect("kernel");
    let vm = k.vmlinux().expect("vmlinux");
    k.register_btf_id_dtor_kfuncs(vm, &[("task_struct", "bpf_task_release_dtor")])
        .expect("dtor");
    let mut b = BtfBuilder::new_split(vm.data().nr_types(), vm.data().header().str_len);
    b.struct_("mod_obj", 8, &[("x", 1, 0)]);
    let p = b.ptr(0);
    let proto = b.func_proto(0, &[("p", p)]);
    b.func("mod_obj_release_dtor", proto, 1);
    let mb = btf_parse_module("testmod", &b.build(), vm, true, *sem).expect("module BTF");
    let m = Module::new("testmod");
    k.add_module(mb, Arc::clone(&m)).expect("add");
    k.module_live("testmod").expect("live");
    let mbtf = k.modules().pop().expect("module btf");
    k.register_btf_id_dtor_kfuncs(&mbtf, &[("mod_obj", "mod_obj_release_dtor")])
        .expect("dtor");
    Kernel { k, m, mbtf }
}

/// The value types of a program BTF.
struct Values {
    int: u32,
    none: u32,
    timer: u32,
    kptr: u32,
    kptr8: u32,
    local: u32,
    all: u32,
    big: u32,
}

/// A program BTF with the value types of [`Values`].
fn program() -> (alloc::vec::Vec<u8>, Values) {
    let mut b = BtfBuilder::new();
    let int = b.int("int", 4, BTF_INT_SIGNED, 32);
    let long = b.int("long", 8, BTF_INT_SIGNED, 64);
    let timer = b.struct_("bpf_timer", 16, &[("a", long, 0), ("b", long, 64)]);
    let kptr_to = |b: &mut BtfBuilder, name: &str| {
        let s = b.struct_(name, 8, &[("x", long, 0)]);
        let t = b.type_tag("kptr", s);
        b.ptr(t)
    };
    let ts = kptr_to(&mut b, "task_struct");
    let mo = kptr_to(&mut b, "mod_obj");
    let node = kptr_to(&mut b, "node");
    let v = Values {
        int,
        none: b.struct_("v_none", 16, &[("a", long, 0), ("b", long, 64)]),
        timer: b.struct_("v_timer", 16, &[("t", timer, 0)]),
        kptr: b.struct_("v_kptr", 16, &[("k", ts, 0), ("b", long, 64)]),
        kptr8: b.struct_("v_kptr8", 16, &[("b", long, 0), ("k", ts, 64)]),
        local: b.struct_("v_local", 16, &[("n", node, 0), ("b", long, 64)]),
        all: b.struct_(
            "v_all",
            40,
            &[
                ("t", timer, 0),
                ("k", ts, 128),
                ("m", mo, 192),
                ("n", node, 256),
            ],
        ),
        big: b.struct_(
            "v_big",
            24,
            &[("a", long, 0), ("b", long, 64), ("c", long, 128)],
        ),
    };
    (b.build(), v)
}

fn attr<'a>(
    map_type: u32,
    (key_size, value_size, max_entries, map_flags): (u32, u32, u32, u32),
    btf: Option<&'a BtfRef>,
    (key, value): (u32, u32),
    inner_map: Option<&'a BpfMap>,
) -> MapAttr<'a> {
    MapAttr {
        map_type,
        key_size,
        value_size,
        max_entries,
        map_flags,
        btf,
        btf_key_type_id: key,
        btf_value_type_id: value,
        name: "m",
        inner_map,
    }
}

/// An ARRAY (or `map_type`) of one `value` per entry, with BTF.
fn array(
    k: &Kernel,
    btf: &BtfRef,
    v: &Values,
    value: u32,
    (map_type, max_entries, flags): (u32, u32, u32),
    sem: &Semantics,
) -> BpfMap {
    let size = btf.data().type_id_size(value).map_or(0, |x| x.2);
    let a = attr(
        map_type,
        (4, size, max_entries, flags),
        Some(btf),
        (v.int, value),
        None,
    );
    map_create(&k.k, &a, sem).expect("inner map")
}

/// A map without BTF.
fn plain(k: &Kernel, map_type: u32, sizes: (u32, u32, u32, u32), sem: &Semantics) -> BpfMap {
    map_create(&k.k, &attr(map_type, sizes, None, (0, 0), None), sem).expect("map")
}

fn outer(
    k: &Kernel,
    map_type: u32,
    inner: Option<&BpfMap>,
    (value_size, flags): (u32, u32),
    sem: &Semantics,
) -> KResult<BpfMap> {
    let a = attr(map_type, (4, value_size, 4, flags), None, (0, 0), inner);
    map_create(&k.k, &a, sem)
}

/// (vmlinux BTF, module BTF, module, program BTF) reference counts.
fn counts(k: &Kernel, btf: &BtfRef) -> (i32, i32, i32, i32) {
    (
        k.k.vmlinux().expect("vmlinux").refcount(),
        k.mbtf.refcount(),
        k.m.refcount(),
        btf.refcount(),
    )
}

#[test]
fn meta_alloc_takes_every_reference_and_meta_free_returns_them() {
    for sem in [Semantics::V6_4, Semantics::V6_18] {
        let k = kernel(&sem);
        let (blob, v) = program();
        let (btf, _) = bpf_btf_load(&k.k, &blob, 0, &sem).expect("BTF loads");
        let inner = array(&k, &btf, &v, v.all, (BPF_MAP_TYPE_ARRAY, 1, 0), &sem);
        let rec = inner.record.as_ref().expect("record");
        assert_eq!(
            rec.fields.len(),
            4,
            "{}: timer, two kernel kptrs, a local one",
            sem.name
        );
        let before = counts(&k, &btf);
        let meta = bpf_map_meta_alloc(Some(&inner)).expect("template");
        // The record's kernel kptrs (vmlinux, module BTF and module), the map's BTF, and
        // in v6.4 the local kptr's program-BTF reference.
        let prog = if sem.local_kptr_holds_btf { 2 } else { 1 };
        assert_eq!(
            counts(&k, &btf),
            (before.0 + 1, before.1 + 1, before.2 + 1, before.3 + prog),
            "{}",
            sem.name
        );
        assert!(meta.btf.as_ref().is_some_and(|b| BtfRef::ptr_eq(b, &btf)));
        assert!(
            bpf_map_meta_equal(&meta, &inner),
            "{}: a template equals its map",
            sem.name
        );
        bpf_map_meta_free(meta);
        assert_eq!(counts(&k, &btf), before, "{}: all returned", sem.name);
        // Through map_create and the outer map's free.
        let o = outer(&k, BPF_MAP_TYPE_HASH_OF_MAPS, Some(&inner), (4, 0), &sem).expect("outer");
        assert!(o.modelled && o.inner_map_meta.is_some());
        assert_eq!(counts(&k, &btf).3, before.3 + prog, "{}", sem.name);
        assert_eq!(bpf_map_fd_get_ptr(&o, Some(&inner), &sem), Ok(()));
        drop(o);
        assert_eq!(counts(&k, &btf), before, "{}: outer map freed", sem.name);
    }
}

#[test]
fn meta_alloc_failing_in_record_dup_holds_nothing_but_the_kernels_leak() {
    let sem = Semantics::V6_18;
    let k = kernel(&sem);
    let (blob, v) = program();
    let (btf, _) = bpf_btf_load(&k.k, &blob, 0, &sem).expect("BTF loads");
    let inner = array(&k, &btf, &v, v.all, (BPF_MAP_TYPE_ARRAY, 1, 0), &sem);
    let before = counts(&k, &btf);
    k.m.set_state(ModuleState::Going);
    let e = outer(&k, BPF_MAP_TYPE_ARRAY_OF_MAPS, Some(&inner), (4, 0), &sem).err();
    assert_eq!(e, Some(Errno::ENXIO));
    // The task_struct kptr's vmlinux reference is put again, the map's BTF was never
    // taken; btf_record_dup's reference on the module BTF of the failing field is
    // leaked, as in the kernel.
    assert_eq!(
        counts(&k, &btf),
        (before.0, before.1 + 1, before.2, before.3)
    );
    btf_put_leaked_reference(&k.mbtf);
    k.m.set_state(ModuleState::Live);
}

#[test]
fn meta_equal_compares_type_sizes_flags_and_record() {
    let sem = Semantics::V6_18;
    let k = kernel(&sem);
    let (blob, v) = program();
    let (btf, _) = bpf_btf_load(&k.k, &blob, 0, &sem).expect("BTF loads");
    let (btf2, _) = bpf_btf_load(&k.k, &blob, 0, &sem).expect("BTF loads again");
    let a = |btf: &BtfRef, value: u32| array(&k, btf, &v, value, (BPF_MAP_TYPE_ARRAY, 1, 0), &sem);
    let meta_of = |m: &BpfMap| bpf_map_meta_alloc(Some(m)).expect("template");
    let (none, timer, kptr, kptr8) = (
        a(&btf, v.none),
        a(&btf, v.timer),
        a(&btf, v.kptr),
        a(&btf, v.kptr8),
    );
    let local = a(&btf, v.local);
    let meta = meta_of(&none);
    assert!(
        bpf_map_meta_equal(&meta, &a(&btf2, v.none)),
        "no record, other BTF"
    );
    assert!(!bpf_map_meta_equal(&meta, &timer), "a timer vs none");
    assert!(
        !bpf_map_meta_equal(&meta_of(&timer), &none),
        "none vs a timer"
    );
    assert!(bpf_map_meta_equal(&meta_of(&timer), &a(&btf2, v.timer)));
    assert!(!bpf_map_meta_equal(&meta, &a(&btf, v.big)), "value_size");
    let kmeta = meta_of(&kptr);
    assert!(
        !bpf_map_meta_equal(&kmeta, &kptr8),
        "the kptr at another offset"
    );
    assert!(
        bpf_map_meta_equal(&kmeta, &a(&btf2, v.kptr)),
        "kernel kptr: same vmlinux"
    );
    let lmeta = meta_of(&local);
    assert!(bpf_map_meta_equal(&lmeta, &local));
    assert!(
        !bpf_map_meta_equal(&lmeta, &a(&btf2, v.local)),
        "local kptr: other BTF"
    );
    // map_flags: BPF_F_RDONLY belongs to the fd (not kept), BPF_F_RDONLY_PROG counts.
    let flagged = |f: u32| array(&k, &btf, &v, v.none, (BPF_MAP_TYPE_ARRAY, 1, f), &sem);
    assert!(bpf_map_meta_equal(&meta, &flagged(BPF_F_RDONLY)));
    assert!(!bpf_map_meta_equal(&meta, &flagged(BPF_F_RDONLY_PROG)));
    // The type.
    let h = plain(&k, BPF_MAP_TYPE_HASH, (4, 16, 1, 0), &sem);
    assert!(!bpf_map_meta_equal(&meta, &h));
    for m in [meta, kmeta, lmeta] {
        bpf_map_meta_free(m);
    }
}

#[test]
fn stored_maps_are_checked_by_the_templates_map_meta_equal() {
    for sem in [Semantics::V6_12, Semantics::V6_18] {
        let k = kernel(&sem);
        let get = |t: u32, (ks, vs, f): (u32, u32, u32), me0: u32, me1: u32| {
            let inner0 = plain(&k, t, (ks, vs, me0, f), &sem);
            let inner1 = plain(&k, t, (ks, vs, me1, f), &sem);
            let o =
                outer(&k, BPF_MAP_TYPE_ARRAY_OF_MAPS, Some(&inner0), (4, 0), &sem).expect("outer");
            bpf_map_fd_get_ptr(&o, Some(&inner1), &sem)
        };
        let name = sem.name;
        // array_map_meta_equal: max_entries counts unless the template is BPF_F_INNER_MAP.
        assert_eq!(get(BPF_MAP_TYPE_ARRAY, (4, 4, 0), 1, 1), Ok(()), "{name}");
        assert_eq!(
            get(BPF_MAP_TYPE_ARRAY, (4, 4, 0), 1, 2),
            Err(Errno::EINVAL),
            "{name}"
        );
        assert_eq!(
            get(BPF_MAP_TYPE_ARRAY, (4, 4, BPF_F_INNER_MAP), 1, 7),
            Ok(()),
            "{name}"
        );
        // bpf_map_meta_equal: no max_entries.
        assert_eq!(get(BPF_MAP_TYPE_HASH, (4, 4, 0), 1, 5), Ok(()), "{name}");
        assert_eq!(get(BPF_MAP_TYPE_QUEUE, (0, 4, 0), 1, 5), Ok(()), "{name}");
        // xsk_map_meta_equal: always.
        assert_eq!(
            get(BPF_MAP_TYPE_XSKMAP, (4, 4, 0), 1, 2),
            Err(Errno::EINVAL),
            "{name}"
        );
        // Per-CPU arrays: by profile.
        let percpu = get(BPF_MAP_TYPE_PERCPU_ARRAY, (4, 4, 0), 1, 9);
        let expect = if sem.inner_percpu_array_max_entries {
            Err(Errno::EINVAL)
        } else {
            Ok(())
        };
        assert_eq!(percpu, expect, "{name}");
        assert_eq!(
            get(BPF_MAP_TYPE_PERCPU_ARRAY, (4, 4, 0), 9, 9),
            Ok(()),
            "{name}"
        );
    }
    // Only the running kernel's profile compares a per-CPU array's max_entries.
    const {
        assert!(
            !Semantics::V6_3.inner_percpu_array_max_entries
                && !Semantics::C8E18754.inner_percpu_array_max_entries
                && !Semantics::V6_4.inner_percpu_array_max_entries
                && !Semantics::V6_12.inner_percpu_array_max_entries
                && Semantics::V6_18.inner_percpu_array_max_entries
        )
    };
}

#[test]
fn stored_map_refusals() {
    let sem = Semantics::V6_18;
    let k = kernel(&sem);
    let a1 = plain(&k, BPF_MAP_TYPE_ARRAY, (4, 4, 1, 0), &sem);
    let h1 = plain(&k, BPF_MAP_TYPE_HASH, (4, 4, 1, 0), &sem);
    let o = outer(&k, BPF_MAP_TYPE_ARRAY_OF_MAPS, Some(&a1), (4, 0), &sem).expect("outer");
    assert_eq!(bpf_map_fd_get_ptr(&o, None, &sem), Err(Errno::EBADF));
    assert_eq!(bpf_map_fd_get_ptr(&o, Some(&o), &sem), Err(Errno::EINVAL));
    assert_eq!(bpf_map_fd_get_ptr(&o, Some(&h1), &sem), Err(Errno::EINVAL));
    assert_eq!(bpf_map_fd_get_ptr(&a1, Some(&a1), &sem), Err(Errno::EINVAL));
}

#[test]
fn inner_map_types_refused() {
    let sem = Semantics::V6_18;
    let k = kernel(&sem);
    let a1 = plain(&k, BPF_MAP_TYPE_ARRAY, (4, 4, 1, 0), &sem);
    let o = outer(&k, BPF_MAP_TYPE_ARRAY_OF_MAPS, Some(&a1), (4, 0), &sem).expect("outer");
    let prog = plain(&k, BPF_MAP_TYPE_PROG_ARRAY, (4, 4, 1, 0), &sem);
    let cg = plain(&k, BPF_MAP_TYPE_CGROUP_STORAGE, (16, 8, 0, 0), &sem);
    let pcg = plain(&k, BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE, (8, 8, 0, 0), &sem);
    for t in [BPF_MAP_TYPE_ARRAY_OF_MAPS, BPF_MAP_TYPE_HASH_OF_MAPS] {
        let r = |inner: Option<&BpfMap>| outer(&k, t, inner, (4, 0), &sem).err();
        assert_eq!(r(None), Some(Errno::EBADF), "no inner map");
        assert_eq!(r(Some(&o)), Some(Errno::EINVAL), "a map of maps");
        assert_eq!(r(Some(&prog)), Some(Errno::ENOTSUPP), "no map_meta_equal");
        assert_eq!(r(Some(&cg)), Some(Errno::ENOTSUPP));
        assert_eq!(r(Some(&pcg)), Some(Errno::ENOTSUPP));
    }
}

#[test]
fn outer_map_checks() {
    let sem = Semantics::V6_18;
    let k = kernel(&sem);
    let a1 = plain(&k, BPF_MAP_TYPE_ARRAY, (4, 4, 1, 0), &sem);
    let aom = BPF_MAP_TYPE_ARRAY_OF_MAPS;
    let hom = BPF_MAP_TYPE_HASH_OF_MAPS;
    let r = |t: u32, inner: Option<&BpfMap>, vs_flags: (u32, u32)| {
        outer(&k, t, inner, vs_flags, &sem).err()
    };
    // fd_array_map_alloc_check / fd_htab_map_alloc_check come before the inner map.
    assert_eq!(r(aom, None, (8, 0)), Some(Errno::EINVAL));
    assert_eq!(r(hom, None, (8, 0)), Some(Errno::EINVAL));
    assert_eq!(r(aom, Some(&a1), (8, 0)), Some(Errno::EINVAL));
    assert_eq!(
        r(aom, Some(&a1), (4, BPF_F_RDONLY_PROG)),
        Some(Errno::EINVAL)
    );
    assert_eq!(r(hom, Some(&a1), (4, BPF_F_RDONLY_PROG)), None);
    assert_eq!(r(aom, Some(&a1), (4, BPF_F_INNER_MAP)), Some(Errno::EINVAL));
    assert_eq!(r(hom, Some(&a1), (4, BPF_F_NO_PREALLOC)), None);
    let keyed = |t: u32, ks: u32| {
        let a = attr(t, (ks, 4, 1, 0), None, (0, 0), Some(&a1));
        map_create(&k.k, &a, &sem).err()
    };
    assert_eq!(keyed(aom, 8), Some(Errno::EINVAL));
    assert_eq!(keyed(hom, 0), Some(Errno::EINVAL));
    // The inner map before the name, the name before the BTF.
    let named = |name: &'static str, inner: Option<&BpfMap>| {
        let a = MapAttr {
            name,
            ..attr(aom, (4, 4, 1, 0), None, (0, 0), inner)
        };
        map_create(&k.k, &a, &sem).err()
    };
    assert_eq!(named("bad-name", None), Some(Errno::EBADF));
    assert_eq!(named("bad-name", Some(&a1)), Some(Errno::EINVAL));
    let (blob, v) = program();
    let (btf, _) = bpf_btf_load(&k.k, &blob, 0, &sem).expect("BTF loads");
    let with_btf = |inner: Option<&BpfMap>| {
        let a = attr(aom, (4, 4, 1, 0), Some(&btf), (v.int, v.int), inner);
        map_create(&k.k, &a, &sem).err()
    };
    assert_eq!(with_btf(None), Some(Errno::EBADF));
    assert_eq!(
        with_btf(Some(&a1)),
        Some(Errno::ENOTSUPP),
        "map_check_no_btf"
    );
}

/// `struct bpf_cgroup_storage_key` variants for a CGROUP_STORAGE key, with the
/// kernel's verdicts.
#[test]
fn cgroup_storage_keys_resolve_members_as_the_kernel_does() {
    let sem = Semantics::V6_18;
    let k = kernel(&sem);
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
    let cases: [(&str, u32, u32, Option<Errno>); 14] = [
        (
            "vmlinux.h's typedefs",
            b.struct_("bpf_cgroup_storage_key", 16, &m(u64t, u32t)),
            16,
            None,
        ),
        (
            "plain ints",
            b.struct_("k_plain", 16, &m(ull, ui)),
            16,
            None,
        ),
        (
            "const and volatile",
            b.struct_("k_mod", 16, &m(cu64, vu32)),
            16,
            None,
        ),
        (
            "kind_flag, no bitfields",
            b.struct_kflag("k_kf0", 16, &m(u64t, u32t)),
            16,
            None,
        ),
        (
            "kind_flag bitfields",
            b.struct_kflag(
                "k_bf",
                16,
                &[("a", ull, 64 << 24), ("b", ui, 32 << 24 | 64)],
            ),
            16,
            Some(Errno::EINVAL),
        ),
        (
            "swapped",
            b.struct_("k_swap", 16, &[("b", ui, 0), ("a", ull, 64)]),
            16,
            Some(Errno::EINVAL),
        ),
        (
            "two u64",
            b.struct_("k_uu", 16, &m(ull, ull)),
            16,
            Some(Errno::EINVAL),
        ),
        (
            "an enum",
            b.struct_("k_enum", 16, &m(ull, e)),
            16,
            Some(Errno::EINVAL),
        ),
        (
            "three members",
            b.struct_(
                "k_three",
                16,
                &[("a", ull, 0), ("b", ui, 64), ("c", ui, 96)],
            ),
            16,
            Some(Errno::EINVAL),
        ),
        (
            "a union",
            b.union_("k_union", 16, &[("a", ull, 0), ("b", ui, 0)]),
            16,
            Some(Errno::EINVAL),
        ),
        ("u64 typedef, 8 bytes", u64t, 8, None),
        ("const u64, 8 bytes", cu64, 8, None),
        ("u32, 8 bytes", u32t, 8, Some(Errno::EINVAL)),
        ("u64 as 16 bytes", u64t, 16, Some(Errno::EINVAL)),
    ];
    let td_key = b.typedef("key_t", cases[0].1);
    let (btf, _) = bpf_btf_load(&k.k, &b.build(), 0, &sem).expect("BTF loads");
    let cases = cases
        .iter()
        .copied()
        .chain([("typedef of the key struct", td_key, 16, None)]);
    for (what, key, key_size, expect) in cases {
        for t in [
            BPF_MAP_TYPE_CGROUP_STORAGE,
            BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE,
        ] {
            let a = attr(t, (key_size, 4, 0, 0), Some(&btf), (key, val), None);
            assert_eq!(
                map_create(&k.k, &a, &sem).err(),
                expect,
                "{what} (type {t})"
            );
        }
    }
}
