//! `__uptr` pinning in task storage (profile flag `uptr`, v6.13+), as modelled from the
//! upstream series "bpf: Support __uptr type tag in task local storage" (Martin KaFai
//! Lau, v6.13; not read from a local tree, the offline one is v6.12): a user-space
//! update pins the page of each non-NULL uptr (`bpf_obj_pin_uptrs`), the new element
//! takes the kernel addresses (`bpf_obj_swap_uptrs`), the element's free unpins them
//! (`bpf_obj_free_fields` -> `unpin_uptr_kaddr`), and a failed update leaves nothing
//! pinned. Every test ends with no page pinned, no live object, no WARN.

use kernel_core::Semantics;
use kernel_core::btf::builder::BtfBuilder;
use kernel_core::btf::uapi::BTF_INT_SIGNED;
use kernel_core::btf::{BtfRef, KernelBtfs};
use kernel_core::map::local_storage::{
    BpfLocalStorageElem, OwnerKind, StorageOwner, bpf_local_storage_lookup_elem,
    bpf_local_storage_owner_free, rcu_barrier_tasks_trace_and_rcu,
};
use kernel_core::map::runtime::MapRt;
use kernel_core::map::{BPF_F_NO_PREALLOC, BPF_MAP_TYPE_TASK_STORAGE, MapAttr};
use kernel_core::obj::BpfRuntime;
use kernel_core::obj::uptr::PAGE_SIZE;
use kernel_core::sync::{Arc, Ordering};
use kernel_core::syscall::map_create;
use kernel_core::{Errno, record::BtfFieldType};

use kptr_tests::runtime;

/// `BPF_ANY`, `BPF_NOEXIST`, `BPF_EXIST`, `BPF_F_LOCK` (include/uapi/linux/bpf.h).
const BPF_ANY: u64 = 0;
const BPF_NOEXIST: u64 = 1;
const BPF_EXIST: u64 = 2;
const BPF_F_LOCK: u64 = 4;

/// The offsets of the two uptrs in `struct uval`.
const U: usize = 8;
const V: usize = 16;

/// A program BTF: `struct udata { long a; long b; }` (16 bytes, the pointee),
/// `struct uval { long seen; struct udata __uptr *u; struct udata __uptr *v; }` (24
/// bytes) and `struct lval { struct bpf_spin_lock l; int pad; struct udata __uptr *u; }`.
struct UptrBtf {
    btf: BtfRef,
    int: u32,
    uval: u32,
    lval: u32,
}

fn uptr_btf(k: &KernelBtfs, sem: &Semantics) -> UptrBtf {
    let (blob, int, uval, lval) = uptr_blob(true);
    let (btf, _) = kernel_core::syscall::bpf_btf_load(k, &blob, 0, sem).expect("program BTF loads");
    UptrBtf {
        btf,
        int,
        uval,
        lval,
    }
}

/// The raw BTF of [`UptrBtf`] (`with_lval`: with `struct lval`, whose
/// `bpf_spin_lock` makes it a struct meta candidate) and its type ids.
fn uptr_blob(with_lval: bool) -> (Vec<u8>, u32, u32, u32) {
    let mut b = BtfBuilder::new();
    let int = b.int("int", 4, BTF_INT_SIGNED, 32);
    let long = b.int("long", 8, BTF_INT_SIGNED, 64);
    let lock = b.struct_("bpf_spin_lock", 4, &[("v", int, 0)]);
    let udata = b.struct_("udata", 16, &[("a", long, 0), ("b", long, 64)]);
    let t = b.type_tag("uptr", udata);
    let p = b.ptr(t);
    let uval = b.struct_(
        "uval",
        24,
        &[("seen", long, 0), ("u", p, 64), ("v", p, 128)],
    );
    let lval = if with_lval {
        b.struct_(
            "lval",
            16,
            &[("l", lock, 0), ("pad", int, 32), ("u", p, 64)],
        )
    } else {
        0
    };
    (b.build(), int, uval, lval)
}

fn attr<'a>(b: &'a UptrBtf, value: u32, value_size: u32) -> MapAttr<'a> {
    MapAttr {
        inner_map: None,
        map_type: BPF_MAP_TYPE_TASK_STORAGE,
        key_size: 4,
        value_size,
        max_entries: 0,
        map_flags: BPF_F_NO_PREALLOC,
        btf: Some(&b.btf),
        btf_key_type_id: b.int,
        btf_value_type_id: value,
        name: "udata_map",
    }
}

/// A TASK_STORAGE map of `struct uval` under a profile with `uptr`.
fn uval_map(k: &KernelBtfs, b: &UptrBtf, sem: &Semantics) -> Arc<MapRt> {
    let m = map_create(k, &attr(b, b.uval, 24), sem).expect("map");
    let uptrs = m
        .record
        .as_ref()
        .map(|r| {
            r.fields
                .iter()
                .filter(|f| f.ty == BtfFieldType::UPTR)
                .map(|f| f.offset)
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    assert_eq!(uptrs, [U as u32, V as u32], "{}: two uptrs", sem.name);
    MapRt::new(m, sem).expect("a run-time model of task storage")
}

/// The value user space writes: `seen` and the two user addresses.
fn value(seen: u64, u: u64, v: u64) -> [u8; 24] {
    let mut b = [0u8; 24];
    b[..8].copy_from_slice(&seen.to_le_bytes());
    b[U..U + 8].copy_from_slice(&u.to_le_bytes());
    b[V..V + 8].copy_from_slice(&v.to_le_bytes());
    b
}

fn elem(rt: &BpfRuntime, m: &MapRt, owner: &StorageOwner) -> Option<Arc<BpfLocalStorageElem>> {
    bpf_local_storage_lookup_elem(rt, m.local_storage()?, owner).ok()
}

fn slot(e: &BpfLocalStorageElem, off: usize) -> u64 {
    e.data()
        .slot(off as u32)
        .map_or(u64::MAX, |s| s.load(Ordering::SeqCst))
}

fn close(rt: &Arc<BpfRuntime>, m: Arc<MapRt>) {
    if let Some(f) = MapRt::bpf_map_put_with_uref(m, rt) {
        f.schedule(rt);
    }
    rcu_barrier_tasks_trace_and_rcu(rt);
}

/// No page pinned, nothing live, no fault, no WARN.
fn assert_clean(rt: &BpfRuntime, what: &str) {
    assert!(
        rt.user_pages.pinned().is_empty(),
        "{what}: pinned {:?}",
        rt.user_pages.pinned()
    );
    assert!(rt.mem.live().is_empty(), "{what}: left {:?}", rt.mem.live());
    assert!(rt.mem.faults().is_empty(), "{what}: {:?}", rt.mem.faults());
    assert!(rt.warnings().is_empty(), "{what}: {:?}", rt.warnings());
}

/// An update pins the page of a uptr and stores the kernel address in the element (a
/// lookup from user space copies no kernel pointer out); a NULL uptr pins nothing.
/// The delete unpins, after the grace periods where v6.13+ postpones a task storage
/// element's fields (`selem_free_fields_postponed`).
#[test]
fn an_update_pins_the_uptrs_page_and_the_delete_unpins_it() {
    let sem = Semantics::V6_18;
    let (k, rt, _) = runtime(sem);
    let b = uptr_btf(&k, &sem);
    let m = uval_map(&k, &b, &sem);
    let owner = StorageOwner::new(OwnerKind::Task);
    let base = rt.user_pages.mmap(1);
    m.update_owner(&rt, &owner, &value(7, base + 64, 0), BPF_ANY)
        .expect("update");
    assert_eq!(rt.user_pages.pinned(), [(base, 1)], "one pin");
    let e = elem(&rt, &m, &owner).expect("the element");
    let kaddr = slot(&e, U);
    assert_ne!(kaddr, base + 64, "a kernel address, not the user's");
    assert_eq!(rt.user_pages.user_addr_of(kaddr), Some(base + 64));
    assert_eq!(slot(&e, V), 0, "NULL stays NULL");
    assert_eq!(e.data().byte(0), 7);
    let out = m.lookup_owner(&rt, &owner, 0).expect("lookup");
    assert_eq!(out[U..], [0u8; 16], "no kernel pointer to user space");
    m.delete_owner(&rt, &owner).expect("delete");
    assert_eq!(
        rt.user_pages.pin_count(base),
        1,
        "v6.18: the fields go in the RCU callback"
    );
    rcu_barrier_tasks_trace_and_rcu(&rt);
    assert_eq!(rt.user_pages.pin_count(base), 0, "unpinned");
    assert_eq!(slot(&e, U), 0);
    drop(e);
    close(&rt, m);
    assert_clean(&rt, "delete");
}

/// An update of an existing element makes a new one holding the new pages and frees
/// the old one, which unpins the old pages; a page both values name is pinned twice,
/// then once. The owner's end unpins the rest.
#[test]
fn a_second_update_pins_the_new_pages_and_unpins_the_old() {
    let sem = Semantics::V6_18;
    let (k, rt, _) = runtime(sem);
    let b = uptr_btf(&k, &sem);
    let m = uval_map(&k, &b, &sem);
    let owner = StorageOwner::new(OwnerKind::Task);
    let pa = rt.user_pages.mmap(1);
    let pb = rt.user_pages.mmap(1);
    let pc = rt.user_pages.mmap(1);
    m.update_owner(&rt, &owner, &value(1, pa, pc + 32), BPF_ANY)
        .expect("first");
    let old = elem(&rt, &m, &owner).expect("first element");
    m.update_owner(&rt, &owner, &value(2, pb + 16, pc + 64), BPF_EXIST)
        .expect("second");
    let new = elem(&rt, &m, &owner).expect("second element");
    assert!(!Arc::ptr_eq(&old, &new), "a new element");
    assert_eq!(
        rt.user_pages.user_addr_of(slot(&new, U)),
        Some(pb + 16),
        "the new page swapped in"
    );
    assert_eq!(rt.user_pages.user_addr_of(slot(&new, V)), Some(pc + 64));
    // v6.18: the old element's fields go after the grace periods.
    assert_eq!(rt.user_pages.pinned(), [(pa, 1), (pb, 1), (pc, 2)]);
    rcu_barrier_tasks_trace_and_rcu(&rt);
    assert_eq!(
        rt.user_pages.pinned(),
        [(pb, 1), (pc, 1)],
        "the old unpinned"
    );
    drop((old, new));
    bpf_local_storage_owner_free(&rt, &owner);
    assert!(rt.user_pages.pinned().is_empty(), "the owner's end unpins");
    close(&rt, m);
    assert_clean(&rt, "second update");
}

/// The map's free unpins every element's pages, of every owner.
#[test]
fn the_maps_free_unpins_every_element() {
    let sem = Semantics::V6_18;
    let (k, rt, _) = runtime(sem);
    let b = uptr_btf(&k, &sem);
    let m = uval_map(&k, &b, &sem);
    let owners: Vec<_> = (0..3).map(|_| StorageOwner::new(OwnerKind::Task)).collect();
    let base = rt.user_pages.mmap(3);
    for (i, o) in owners.iter().enumerate() {
        let page = base + i as u64 * PAGE_SIZE;
        m.update_owner(&rt, o, &value(0, page, page + 2048), BPF_NOEXIST)
            .expect("update");
    }
    assert_eq!(rt.user_pages.pinned().len(), 3);
    assert!(rt.user_pages.pinned().iter().all(|&(_, n)| n == 2));
    close(&rt, m);
    assert!(owners.iter().all(|o| o.storage().is_none()));
    assert_clean(&rt, "map free");
}

/// A uptr whose pointee would cross a page boundary is -EOPNOTSUPP, an unmapped page
/// or an end past the address space -EFAULT; what was pinned before the bad uptr is
/// unpinned, no element is made, and an existing element keeps its pages.
#[test]
fn a_bad_uptr_fails_the_update_with_nothing_left_pinned() {
    let sem = Semantics::V6_18;
    let (k, rt, _) = runtime(sem);
    let b = uptr_btf(&k, &sem);
    let m = uval_map(&k, &b, &sem);
    let owner = StorageOwner::new(OwnerKind::Task);
    let base = rt.user_pages.mmap(2);
    let unmapped = base + 64 * PAGE_SIZE;
    let cases = [
        (value(0, base + PAGE_SIZE - 8, 0), Errno::EOPNOTSUPP),
        (value(0, base, base + PAGE_SIZE - 15), Errno::EOPNOTSUPP),
        (value(0, base + 8, unmapped), Errno::EFAULT),
        (value(0, base, u64::MAX - 4), Errno::EFAULT),
    ];
    for (v, want) in &cases {
        assert_eq!(m.update_owner(&rt, &owner, v, BPF_ANY), Err(*want));
        assert!(
            rt.user_pages.pinned().is_empty(),
            "{want:?}: nothing pinned"
        );
        assert!(elem(&rt, &m, &owner).is_none(), "{want:?}: no element");
    }
    // The last byte of the page still fits a 16-byte pointee at PAGE_SIZE - 16.
    m.update_owner(&rt, &owner, &value(0, base + PAGE_SIZE - 16, 0), BPF_ANY)
        .expect("fits");
    for (v, want) in &cases {
        assert_eq!(m.update_owner(&rt, &owner, v, BPF_EXIST), Err(*want));
        assert_eq!(
            rt.user_pages.pinned(),
            [(base, 1)],
            "{want:?}: the element's"
        );
    }
    close(&rt, m);
    assert_clean(&rt, "bad uptr");
}

/// NULL uptrs are fine: the update succeeds and pins nothing.
#[test]
fn null_uptrs_pin_nothing() {
    let sem = Semantics::V6_18;
    let (k, rt, _) = runtime(sem);
    let b = uptr_btf(&k, &sem);
    let m = uval_map(&k, &b, &sem);
    let owner = StorageOwner::new(OwnerKind::Task);
    m.update_owner(&rt, &owner, &value(3, 0, 0), BPF_ANY)
        .expect("update");
    let e = elem(&rt, &m, &owner).expect("element");
    assert_eq!((slot(&e, U), slot(&e, V)), (0, 0));
    assert!(rt.user_pages.pinned().is_empty());
    drop(e);
    m.delete_owner(&rt, &owner).expect("delete");
    close(&rt, m);
    assert_clean(&rt, "NULL");
}

/// An update that fails after the pin unpins: before the new element takes the pages
/// (`BPF_EXIST` without an element, -ENOENT; an exited task, -ENOENT; `BPF_F_LOCK` on a
/// value with a uptr, -EOPNOTSUPP) from the kernel's copy of the value, after it
/// (`BPF_NOEXIST` over an element, -EEXIST) by the new element's free.
#[test]
fn a_failed_update_unpins_what_it_pinned() {
    let sem = Semantics::V6_18;
    let (k, rt, _) = runtime(sem);
    let b = uptr_btf(&k, &sem);
    let m = uval_map(&k, &b, &sem);
    let owner = StorageOwner::new(OwnerKind::Task);
    let pa = rt.user_pages.mmap(1);
    let pb = rt.user_pages.mmap(1);
    assert_eq!(
        m.update_owner(&rt, &owner, &value(0, pa, pb), BPF_EXIST),
        Err(Errno::ENOENT)
    );
    assert!(rt.user_pages.pinned().is_empty(), "ENOENT");
    m.update_owner(&rt, &owner, &value(0, pa, 0), BPF_NOEXIST)
        .expect("created");
    assert_eq!(
        m.update_owner(&rt, &owner, &value(0, pb, pb + 8), BPF_NOEXIST),
        Err(Errno::EEXIST)
    );
    assert_eq!(
        rt.user_pages.pinned(),
        [(pa, 1)],
        "EEXIST: the new pages unpinned"
    );
    let dead = StorageOwner::new(OwnerKind::Task);
    bpf_local_storage_owner_free(&rt, &dead);
    assert_eq!(
        m.update_owner(&rt, &dead, &value(0, pb, 0), BPF_ANY),
        Err(Errno::ENOENT)
    );
    assert_eq!(rt.user_pages.pinned(), [(pa, 1)], "exited task");
    close(&rt, m);
    assert_clean(&rt, "failed updates");

    let l = map_create(&k, &attr(&b, b.lval, 16), &sem).expect("lval map");
    let l = MapRt::new(l, &sem).expect("task storage");
    let mut v = [0u8; 16];
    v[8..].copy_from_slice(&pb.to_le_bytes());
    assert_eq!(
        l.update_owner(&rt, &owner, &v, BPF_F_LOCK),
        Err(Errno::EOPNOTSUPP)
    );
    assert!(rt.user_pages.pinned().is_empty(), "BPF_F_LOCK");
    l.update_owner(&rt, &owner, &v, BPF_ANY).expect("update");
    assert_eq!(rt.user_pages.pinned(), [(pb, 1)]);
    close(&rt, l);
    drop(owner);
    assert_clean(&rt, "BPF_F_LOCK");
}

/// Without `uptr` (v6.12 and before) the `uptr` tag is no kptr tag of the profile
/// (`btf_find_kptr`: -EINVAL). What the model does with it today: `map_check_btf`
/// keeps `btf_parse_fields`' error as the record, so the TASK_STORAGE map is created
/// without one; the field is plain data: an update stores the user's address as it
/// is and pins nothing. On v6.12 a struct with a `bpf_spin_lock` is a struct-meta
/// candidate, and the same tag in it fails the program BTF's load
/// (`btf_parse_struct_metas`, -EINVAL).
#[test]
fn without_the_flag_a_uptr_is_plain_data() {
    for sem in [Semantics::V6_4, Semantics::V6_12] {
        assert!(!sem.uptr);
        let (k, rt, _) = runtime(sem);
        if sem == Semantics::V6_12 {
            let (blob, ..) = uptr_blob(true);
            let r = kernel_core::syscall::bpf_btf_load(&k, &blob, 0, &sem);
            assert_eq!(
                r.err().map(|e| e.errno),
                Some(Errno::EINVAL),
                "{}",
                sem.name
            );
        }
        let (blob, int, uval, _) = uptr_blob(false);
        let (btf, _) = kernel_core::syscall::bpf_btf_load(&k, &blob, 0, &sem).expect("loads");
        let b = UptrBtf {
            btf,
            int,
            uval,
            lval: 0,
        };
        let m = map_create(&k, &attr(&b, b.uval, 24), &sem).expect("map");
        assert!(m.record.is_none(), "{}: no record, so no uptr", sem.name);
        let m = MapRt::new(m, &sem).expect("task storage");
        let owner = StorageOwner::new(OwnerKind::Task);
        let base = rt.user_pages.mmap(1);
        m.update_owner(
            &rt,
            &owner,
            &value(0, base + 8, base + PAGE_SIZE - 8),
            BPF_ANY,
        )
        .expect("update");
        let e = elem(&rt, &m, &owner).expect("element");
        assert_eq!(
            slot(&e, U),
            base + 8,
            "{}: the user's address as data",
            sem.name
        );
        assert_eq!(
            slot(&e, V),
            base + PAGE_SIZE - 8,
            "{}: no page check",
            sem.name
        );
        assert!(rt.user_pages.pinned().is_empty(), "{}", sem.name);
        drop(e);
        bpf_local_storage_owner_free(&rt, &owner);
        close(&rt, m);
        assert_clean(&rt, sem.name);
    }
}
