//! The kfunc helpers and teardown at their edges, on the run-time model:
//! `bpf_refcount_acquire_impl` and `__bpf_obj_drop_impl` on a refcount at 1, 0,
//! saturated and `INT_MAX` (lib/refcount.c's saturation), `bpf_percpu_obj_drop_impl`, a
//! drop to the wrong allocator, `bpf_spin_lock` on a lock word in the upper half of its
//! 8-byte word (`struct { int x; struct bpf_spin_lock l; }`), and `bpf_obj_free_fields`
//! on a graph root guarded by a `bpf_res_spin_lock` alone. The mutation run (README,
//! "Mutation testing") found each of these untested.

use kernel_core::Semantics;
use kernel_core::btf::BtfRef;
use kernel_core::btf::builder::BtfBuilder;
use kernel_core::btf::uapi::BTF_INT_SIGNED;
use kernel_core::obj::*;
use kernel_core::sync::Arc;
use kernel_core::syscall::bpf_btf_load;
use std::sync::atomic::{AtomicBool, Ordering};

/// `REFCOUNT_SATURATED` (include/linux/refcount.h): `INT_MIN / 2`.
const SATURATED: u32 = 0xc000_0000;

struct Prog {
    btf: BtfRef,
    /// `struct rnode { long key; struct bpf_refcount r; int pad; }`: refcount at +8.
    rnode: u32,
    /// `struct pcpu { long c; }`.
    pcpu: u32,
}

fn prog(k: &kernel_core::btf::KernelBtfs, sem: &Semantics) -> Prog {
    let mut b = BtfBuilder::new();
    let int = b.int("int", 4, BTF_INT_SIGNED, 32);
    let long = b.int("long", 8, BTF_INT_SIGNED, 64);
    let rc = b.struct_("bpf_refcount", 4, &[("v", int, 0)]);
    let rnode = b.struct_(
        "rnode",
        16,
        &[("key", long, 0), ("r", rc, 64), ("pad", int, 96)],
    );
    let pcpu = b.struct_("pcpu", 8, &[("c", long, 0)]);
    let (btf, _) = bpf_btf_load(k, &b.build(), 0, sem).expect("program BTF loads");
    Prog { btf, rnode, pcpu }
}

/// A refcounted object, its record and the refcount's offset.
fn refcounted(rt: &BpfRuntime, p: &Prog) -> (u64, MetaRec, u32) {
    let n = bpf_obj_new_impl(rt, &p.btf, p.rnode).expect("rnode");
    let meta = find_meta(&p.btf, p.rnode).expect("rnode has a struct meta");
    let off = meta.rec().expect("record").refcount_off;
    assert_eq!(off, 8, "the refcount's offset");
    (n, meta, off as u32)
}

fn drop_obj(rt: &BpfRuntime, n: u64, meta: &MetaRec) {
    rt.migrate_disable();
    __bpf_obj_drop_impl(rt, n, meta.rec(), false);
    rt.migrate_enable();
}

/// The refcount events (`Event::Ref`: what, count after) this thread traced.
static REFS: std::sync::Mutex<Vec<(std::thread::ThreadId, String, i32)>> =
    std::sync::Mutex::new(Vec::new());

fn record(ev: &kernel_core::trace::Event<'_>) {
    if let kernel_core::trace::Event::Ref { what, now, .. } = *ev
        && let Ok(mut g) = REFS.lock()
    {
        g.push((std::thread::current().id(), what.to_string(), now));
    }
}

fn traced_refs(f: impl FnOnce()) -> Vec<(String, i32)> {
    kernel_core::trace::set_trace_hook(Some(record));
    f();
    let me = std::thread::current().id();
    let mut g = REFS.lock().expect("refs");
    let mine = g
        .iter()
        .filter(|(t, ..)| *t == me)
        .map(|(_, w, n)| (w.clone(), *n))
        .collect();
    g.retain(|(t, ..)| *t != me);
    mine
}

#[test]
fn refcount_acquire_and_drop_trace_the_count_after() {
    let sem = Semantics::V6_18;
    let (k, rt, _) = kptr_tests::runtime(sem);
    let p = prog(&k, &sem);
    let (n, meta, _) = refcounted(&rt, &p);
    let refs = traced_refs(|| {
        assert_eq!(bpf_refcount_acquire_impl(&rt, n, meta.rec()), Some(n));
        assert_eq!(bpf_refcount_acquire_impl(&rt, n, meta.rec()), Some(n));
        drop_obj(&rt, n, &meta);
        drop_obj(&rt, n, &meta);
        drop_obj(&rt, n, &meta);
    });
    let counts: Vec<i32> = refs.iter().map(|(_, c)| *c).collect();
    assert_eq!(counts, [2, 3, 2, 1, 0], "{refs:?}");
    assert!(refs.iter().all(|(w, _)| w == "refcount rnode"), "{refs:?}");
    rt.rcu.rcu_barrier();
    assert!(!rt.mem.is_live(n));
}

#[test]
fn refcount_acquire_takes_one_reference_and_each_owner_drops_one() {
    for sem in [Semantics::V6_4, Semantics::V6_18] {
        let (k, rt, _) = kptr_tests::runtime(sem);
        let p = prog(&k, &sem);
        let (n, meta, off) = refcounted(&rt, &p);
        let obj = rt.mem.get(n).expect("live");
        assert_eq!(
            obj.mem.load_u32(off),
            1,
            "{}: bpf_obj_init sets 1",
            sem.name
        );
        assert_eq!(bpf_refcount_acquire_impl(&rt, n, meta.rec()), Some(n));
        assert_eq!(obj.mem.load_u32(off), 2, "{}", sem.name);
        // The refcount's neighbours in its word are untouched.
        assert_eq!(obj.mem.load_u32(12), 0, "{}", sem.name);
        drop_obj(&rt, n, &meta);
        rt.rcu.rcu_barrier();
        assert!(rt.mem.is_live(n), "{}: one owner left", sem.name);
        assert_eq!(obj.mem.load_u32(off), 1, "{}", sem.name);
        drop_obj(&rt, n, &meta);
        rt.rcu.rcu_barrier();
        assert!(!rt.mem.is_live(n), "{}: the last owner frees", sem.name);
        assert_eq!(rt.mem.counts(), (1, 1), "{}", sem.name);
        assert!(rt.mem.faults().is_empty(), "{}", sem.name);
        assert!(
            rt.warnings().is_empty(),
            "{}: {:?}",
            sem.name,
            rt.warnings()
        );
    }
}

#[test]
fn refcount_acquire_of_a_saturated_or_int_max_count_warns_and_saturates() {
    // refcount_inc (v6.4) and refcount_inc_not_zero (v6.6+) both end in
    // refcount_warn_saturate(REFCOUNT_ADD_OVF / REFCOUNT_ADD_NOT_ZERO_OVF) when the old
    // count is negative or the new one overflows; the caller still gets the object.
    for sem in [Semantics::V6_4, Semantics::V6_18] {
        for start in [SATURATED, 0x8000_0000, u32::MAX, i32::MAX as u32] {
            let (k, rt, _) = kptr_tests::runtime(sem);
            let p = prog(&k, &sem);
            let (n, meta, off) = refcounted(&rt, &p);
            let obj = rt.mem.get(n).expect("live");
            assert_eq!(obj.mem.cas_u32(off, 1, start), Ok(1));
            assert_eq!(
                bpf_refcount_acquire_impl(&rt, n, meta.rec()),
                Some(n),
                "{} from {start:#x}",
                sem.name
            );
            assert_eq!(
                rt.warnings(),
                ["refcount_t: saturated; leaking memory."],
                "{} from {start:#x}",
                sem.name
            );
            assert_eq!(
                obj.mem.load_u32(off),
                SATURATED,
                "{} from {start:#x}",
                sem.name
            );
            // A saturated count stays saturated: __refcount_sub_and_test sees a
            // negative old count, WARNs and saturates again; nothing is freed.
            drop_obj(&rt, n, &meta);
            rt.rcu.rcu_barrier();
            assert!(rt.mem.is_live(n), "{} from {start:#x}", sem.name);
            assert_eq!(obj.mem.load_u32(off), SATURATED, "{}", sem.name);
            assert_eq!(
                rt.warnings()[1..],
                ["refcount_t: underflow; use-after-free."],
                "{}",
                sem.name
            );
            rt.mem
                .acknowledge(&["rnode"], &[])
                .expect("the kernel leaks a saturated object");
        }
    }
}

#[test]
fn refcount_acquire_one_below_int_max_is_a_plain_increment() {
    let sem = Semantics::V6_18;
    let (k, rt, _) = kptr_tests::runtime(sem);
    let p = prog(&k, &sem);
    let (n, meta, off) = refcounted(&rt, &p);
    let obj = rt.mem.get(n).expect("live");
    let start = i32::MAX as u32 - 1;
    assert_eq!(obj.mem.cas_u32(off, 1, start), Ok(1));
    assert_eq!(bpf_refcount_acquire_impl(&rt, n, meta.rec()), Some(n));
    assert_eq!(obj.mem.load_u32(off), i32::MAX as u32);
    assert!(rt.warnings().is_empty(), "{:?}", rt.warnings());
    rt.mem
        .acknowledge(&["rnode"], &[])
        .expect("two billion owners never drop it");
}

#[test]
fn dropping_an_object_whose_count_is_zero_warns_underflow_and_keeps_it() {
    // refcount_dec_and_test from 0: __refcount_sub_and_test sees old <= 0 and
    // saturates (REFCOUNT_SUB_UAF); the count is not zero afterwards, so the object is
    // not freed.
    for sem in [Semantics::V6_4, Semantics::V6_18] {
        let (k, rt, _) = kptr_tests::runtime(sem);
        let p = prog(&k, &sem);
        let (n, meta, off) = refcounted(&rt, &p);
        let obj = rt.mem.get(n).expect("live");
        assert_eq!(obj.mem.cas_u32(off, 1, 0), Ok(1));
        drop_obj(&rt, n, &meta);
        rt.rcu.rcu_barrier();
        assert!(rt.mem.is_live(n), "{}", sem.name);
        assert_eq!(obj.mem.load_u32(off), SATURATED, "{}", sem.name);
        assert_eq!(
            rt.warnings(),
            ["refcount_t: underflow; use-after-free."],
            "{}",
            sem.name
        );
        assert!(rt.mem.faults().is_empty(), "{}", sem.name);
        rt.mem
            .acknowledge(&["rnode"], &[])
            .expect("the kernel leaks it");
    }
}

#[test]
fn percpu_obj_drop_frees_the_object() {
    let sem = Semantics::V6_18;
    let (k, rt, _) = kptr_tests::runtime(sem);
    let p = prog(&k, &sem);
    let a = bpf_percpu_obj_new_impl(&rt, &p.btf, p.pcpu).expect("percpu obj");
    assert!(rt.mem.info(a).expect("info").percpu);
    rt.migrate_disable();
    bpf_percpu_obj_drop_impl(&rt, a);
    rt.migrate_enable();
    rt.rcu.rcu_barrier();
    assert!(!rt.mem.is_live(a));
    assert_eq!(rt.mem.counts(), (1, 1));
    assert!(rt.mem.faults().is_empty() && rt.warnings().is_empty());
}

#[test]
fn spin_lock_in_the_upper_half_of_a_word_takes_only_its_four_bytes() {
    let buf = WordsBuf::new(16);
    // struct { int x; struct bpf_spin_lock l; long y; }: x at 0, the lock at 4.
    assert_eq!(buf.cas_u32(0, 0, 0x1234_5678), Ok(0));
    let ((), warns) = shim_std::warns::during(|| {
        bpf_spin_lock(&buf, 4);
        assert_eq!(buf.load_u32(4), 1, "locked");
        assert_eq!(buf.load_u32(0), 0x1234_5678, "x kept");
        bpf_spin_unlock(&buf, 4);
        assert_eq!(buf.load_u32(4), 0, "unlocked");
        assert_eq!(buf.load_u32(0), 0x1234_5678, "x kept");
    });
    assert!(warns.is_empty(), "{warns:?}");
    // Unlocking it again WARNs and changes nothing.
    let ((), warns) = shim_std::warns::during(|| bpf_spin_unlock(&buf, 4));
    assert_eq!(warns, ["bpf_spin_unlock of an unlocked lock"]);
    assert_eq!(buf.load_u32(0), 0x1234_5678);
    // A second locker spins until the unlock.
    let buf = Arc::new(buf);
    let got = Arc::new(AtomicBool::new(false));
    bpf_spin_lock(&buf, 4);
    let t = {
        let (buf, got) = (Arc::clone(&buf), Arc::clone(&got));
        std::thread::spawn(move || {
            bpf_spin_lock(&buf, 4);
            got.store(true, Ordering::SeqCst);
            bpf_spin_unlock(&buf, 4);
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(50));
    assert!(
        !got.load(Ordering::SeqCst),
        "the second locker took a held lock"
    );
    bpf_spin_unlock(&buf, 4);
    t.join().expect("locker");
    assert!(got.load(Ordering::SeqCst));
    assert_eq!(buf.load_u32(4), 0, "unlocked");
}

#[test]
fn an_object_dropped_to_the_other_allocator_is_a_wild_free() {
    // __bpf_obj_drop_impl's `percpu` picks bpf_global_percpu_ma or bpf_global_ma; the
    // verifier keeps the two apart, and the model records a drop to the wrong one.
    let sem = Semantics::V6_18;
    let (k, rt, _) = kptr_tests::runtime(sem);
    let p = prog(&k, &sem);
    let a = bpf_percpu_obj_new_impl(&rt, &p.btf, p.pcpu).expect("percpu obj");
    let b = bpf_obj_new_impl(&rt, &p.btf, p.pcpu).expect("obj");
    rt.migrate_disable();
    __bpf_obj_drop_impl(&rt, a, None, false);
    __bpf_obj_drop_impl(&rt, b, None, true);
    rt.migrate_enable();
    rt.rcu.rcu_barrier();
    assert_eq!(
        rt.mem.faults(),
        [MemFault::Wild(a), MemFault::Wild(b)],
        "each a wild free"
    );
    assert!(rt.mem.is_live(a) && rt.mem.is_live(b));
    rt.mem
        .acknowledge(&["pcpu", "pcpu"], &[FaultKind::Wild, FaultKind::Wild])
        .expect("the two objects stay allocated");
}

#[test]
fn freeing_a_graph_root_guarded_by_a_res_spin_lock_alone_warns_and_touches_nothing() {
    // A layout the kernel WARNs on at map teardown (syscall.c, WARN_ON_ONCE(
    // rec->spin_lock_off < 0)): model only.
    let sem = Semantics::V6_18;
    let (k, rt, _) = kptr_tests::runtime(sem);
    let p = kernel_core::testing::list_prog("bpf_res_spin_lock");
    let (btf, _) = bpf_btf_load(&k, &p.blob, 0, &sem).expect("loads");
    let rec = kernel_core::record::btf_parse_fields(
        &btf,
        &k,
        p.value,
        kernel_core::map::create::map_value_mask(&sem),
        24,
        &sem,
    )
    .expect("parses")
    .expect("a record");
    assert!(graph_root_free_warns(&rec));
    let val = WordsBuf::new(24);
    assert_eq!(val.cas_u32(0, 0, 7), Ok(0));
    let ((), warns) = shim_std::warns::during(|| {
        rt.migrate_disable();
        bpf_obj_free_fields(&rt, &rec, &val);
        rt.migrate_enable();
    });
    assert_eq!(
        rt.warnings(),
        ["bpf_obj_free_fields: graph root without spin lock"]
    );
    assert_eq!(warns, ["bpf_obj_free_fields: graph root without spin lock"]);
    assert_eq!(val.load_u32(0), 7, "the lock word untouched");
}

#[test]
fn kernel_objects_have_distinct_direct_map_pages_and_none_is_acquired_once_released() {
    let (_k, rt, _) = kptr_tests::runtime(Semantics::V6_18);
    let a = rt.kernel_obj_new("task_struct");
    let b = rt.kernel_obj_new("task_struct");
    // Direct-map addresses (PAGE_OFFSET 0xffff888000000000), one page apart.
    for x in [a, b] {
        assert!(x >= 0xffff_8880_0000_0000 && x % 0x1000 == 0, "{x:#x}");
    }
    assert_eq!(b - a, 0x1000);
    // bpf_task_acquire is refcount_inc_not_zero: a released object is not acquired.
    assert!(rt.kernel_obj_get(a));
    rt.kernel_dtor("bpf_task_release", a);
    rt.kernel_dtor("bpf_task_release", a);
    assert!(!rt.kernel_obj_get(a), "released");
    assert!(rt.kernel_obj_get(b));
    let counts: Vec<(u64, u32)> = rt
        .kernel_objs()
        .iter()
        .map(|(x, o)| (*x, o.refcnt as u32))
        .collect();
    assert_eq!(counts, [(a, 0), (b, 2)]);
    rt.kernel_dtor("bpf_task_release", b);
    rt.kernel_dtor("bpf_task_release", b);
    assert!(rt.warnings().is_empty(), "{:?}", rt.warnings());
    // A destructor on a released object is a use after free: the model WARNs and the
    // count stays at zero.
    rt.kernel_dtor("bpf_task_release", a);
    assert_eq!(
        rt.warnings(),
        ["kptr destructor on a released kernel object"]
    );
    assert!(rt.kernel_objs().iter().all(|(_, o)| o.refcnt == 0));
}
