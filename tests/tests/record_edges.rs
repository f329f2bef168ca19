//! `btf_parse_fields` and what it calls, at the rules' edges, without the kernel: the
//! offsets a record caches, the lock rules (a `bpf_res_spin_lock` alone, a graph root
//! with only one, a `bpf_refcount` beside both node kinds at offset 0 and further on),
//! `btf_parse_graph_root`'s member checks, `btf_check_and_fixup_fields`' uptr and
//! ownership rules in both profile directions, `btf_parse_kptr` without local kptrs,
//! and `btf_record_equal` on records of different lengths. The mutation run (README,
//! "Mutation testing") found each of these checked only by the kernel comparisons.
//! Layouts the kernel WARNs on are judged here by the model alone; none of them is sent
//! to the kernel (tests/README.md, "Layouts never sent").

use kernel_core::btf::builder::BtfBuilder;
use kernel_core::btf::uapi::BTF_INT_SIGNED;
use kernel_core::btf::{BtfRef, KernelBtfs};
use kernel_core::map::create::map_value_mask;
use kernel_core::record::{
    BtfFieldType as F, BtfRecord, btf_check_and_fixup_record, btf_parse_fields, btf_record_equal,
    find_meta,
};
use kernel_core::sync::Arc;
use kernel_core::syscall::bpf_btf_load;
use kernel_core::{Errno, KResult, Semantics};

fn kernel(sem: Semantics) -> Arc<KernelBtfs> {
    kptr_tests::kernel_with_dtors(&sem)
}

/// The types every layout below uses.
struct Base {
    b: BtfBuilder,
    int: u32,
    long: u32,
}

fn base() -> Base {
    let mut b = BtfBuilder::new();
    let int = b.int("int", 4, BTF_INT_SIGNED, 32);
    let long = b.int("long", 8, BTF_INT_SIGNED, 64);
    Base { b, int, long }
}

impl Base {
    /// A special struct of `size` bytes made of longs (ints when 4).
    fn special(&mut self, name: &str, size: u32) -> u32 {
        if size == 4 {
            return self.b.struct_(name, 4, &[("v", self.int, 0)]);
        }
        let names = ["a", "b", "c", "d"];
        let m: Vec<(&str, u32, u32)> = (0..size / 8)
            .map(|i| (names[i as usize], self.long, i * 64))
            .collect();
        self.b.struct_(name, size, &m)
    }

    /// `struct task_struct __kptr *` (the kernel has the type and its destructor).
    fn task_kptr(&mut self) -> u32 {
        let task = self.b.struct_("task_struct", 8, &[("pid", self.int, 0)]);
        let tag = self.b.type_tag("kptr", task);
        self.b.ptr(tag)
    }

    fn load(&self, k: &KernelBtfs, sem: &Semantics) -> BtfRef {
        bpf_btf_load(k, &self.b.build(), 0, sem)
            .expect("program BTF loads")
            .0
    }

    /// `BPF_BTF_LOAD`, whose struct-meta pass runs `btf_parse_fields` on every struct
    /// with a lock, graph root, node or refcount member: its errno and the WARNs raised.
    fn try_load(
        &self,
        k: &KernelBtfs,
        sem: &Semantics,
    ) -> (Result<BtfRef, Errno>, Vec<&'static str>) {
        shim_std::warns::during(|| {
            bpf_btf_load(k, &self.b.build(), 0, sem)
                .map(|(b, _)| b)
                .map_err(|e| e.errno)
        })
    }
}

/// `btf_parse_fields` of `id` as a map value (the mask `map_check_btf` uses), with the
/// WARNs it raised.
fn parse_value(
    k: &KernelBtfs,
    btf: &BtfRef,
    id: u32,
    sem: &Semantics,
) -> (KResult<Option<BtfRecord>>, Vec<&'static str>) {
    let size = btf.data().type_by_id(id).expect("type").size();
    shim_std::warns::during(|| btf_parse_fields(btf, k, id, map_value_mask(sem), size, sem))
}

#[test]
fn a_record_caches_minus_einval_for_every_field_it_lacks() {
    let sem = Semantics::V6_18;
    let k = kernel(sem);
    let mut s = base();
    let p = s.task_kptr();
    let v = s.b.struct_("v", 8, &[("k", p, 0)]);
    let btf = s.load(&k, &sem);
    let (r, warns) = parse_value(&k, &btf, v, &sem);
    let rec = r.expect("parses").expect("a record");
    assert!(warns.is_empty(), "{warns:?}");
    assert_eq!(
        (
            rec.spin_lock_off,
            rec.res_spin_lock_off,
            rec.timer_off,
            rec.wq_off,
            rec.refcount_off,
            rec.task_work_off
        ),
        (-22, -22, -22, -22, -22, -22)
    );
}

#[test]
fn each_cached_offset_is_its_fields_offset() {
    let sem = Semantics::V6_18;
    let k = kernel(sem);
    let mut s = base();
    let lock = s.special("bpf_spin_lock", 4);
    let timer = s.special("bpf_timer", 16);
    let wq = s.special("bpf_wq", 16);
    let tw = s.special("bpf_task_work", 8);
    let v = s.b.struct_(
        "v",
        56,
        &[
            ("x", s.int, 0),
            ("l", lock, 32),
            ("t", timer, 64),
            ("w", wq, 192),
            ("tw", tw, 320),
            ("y", s.long, 384),
        ],
    );
    let btf = s.load(&k, &sem);
    let rec = parse_value(&k, &btf, v, &sem)
        .0
        .expect("parses")
        .expect("rec");
    assert_eq!(
        (
            rec.spin_lock_off,
            rec.res_spin_lock_off,
            rec.timer_off,
            rec.wq_off,
            rec.task_work_off
        ),
        (4, -22, 8, 24, 40)
    );
}

/// `v { bpf_res_spin_lock l @at; ... }`, 16 bytes.
fn res_spin_lock_alone(at: u32) -> (Base, u32) {
    let mut s = base();
    let rl = s.special("bpf_res_spin_lock", 4);
    let m = if at == 0 {
        [("l", rl, 0), ("pad", s.int, 32)]
    } else {
        [("pad", s.long, 0), ("l", rl, 64)]
    };
    let v = s.b.struct_("v", 16, &m);
    (s, v)
}

#[test]
fn a_res_spin_lock_alone_is_cached_without_a_warn_and_only_where_the_profile_has_it() {
    for (sem, has) in [(Semantics::V6_18, true), (Semantics::V6_12, false)] {
        let k = kernel(sem);
        for at in [0u32, 8] {
            let (s, v) = res_spin_lock_alone(at);
            let btf = s.load(&k, &sem);
            let (r, warns) = parse_value(&k, &btf, v, &sem);
            assert!(warns.is_empty(), "{} at {at}: {warns:?}", sem.name);
            let rec = r.expect("parses");
            if has {
                let rec = rec.expect("a record");
                assert_eq!(
                    (rec.res_spin_lock_off, rec.spin_lock_off),
                    (at as i32, -22),
                    "{} at {at}",
                    sem.name
                );
                assert_eq!(rec.fields.len(), 1);
            } else {
                assert!(rec.is_none(), "{}: not a special type there", sem.name);
            }
        }
    }
}

#[test]
fn a_spin_lock_then_a_res_spin_lock_warns_and_is_refused() {
    // A layout the kernel WARNs on (btf_parse_fields caches an offset twice): model only.
    let sem = Semantics::V6_18;
    let k = kernel(sem);
    let mut s = base();
    let lock = s.special("bpf_spin_lock", 4);
    let rl = s.special("bpf_res_spin_lock", 4);
    let _v = s.b.struct_("v", 8, &[("l", lock, 0), ("r", rl, 32)]);
    let (r, warns) = s.try_load(&k, &sem);
    assert_eq!(r.err(), Some(Errno::EINVAL));
    assert_eq!(warns, ["btf_parse_fields: spin lock and res spin lock"]);
}

/// `value { <lock at lock_at, if any>; struct bpf_list_head h @16 (contains node:n) }`,
/// `node { long key; struct bpf_list_node n @8 }`.
fn graph_root_layout(sem: &Semantics, lock: Option<(&str, u32)>) -> (Base, u32) {
    let mut s = base();
    let head = s.special("bpf_list_head", 16);
    let ln = s.special("bpf_list_node", F::LIST_NODE.size(sem));
    let _node =
        s.b.struct_("node", 32, &[("key", s.long, 0), ("n", ln, 64)]);
    let mut m = vec![("h", head, 128)];
    if let Some((name, at)) = lock {
        let l = s.special(name, 4);
        m.push(("l", l, at * 8));
    } else {
        m.push(("x", s.int, 0));
    }
    m.sort_by_key(|x| x.2);
    let v = s.b.struct_("v", 32, &m);
    s.b.decl_tag(
        "contains:node:n",
        v,
        m.iter().position(|x| x.0 == "h").expect("h") as i32,
    );
    (s, v)
}

/// [`graph_root_layout`] loaded, and its value parsed.
fn graph_root_value(
    sem: &Semantics,
    lock: Option<(&str, u32)>,
) -> (KResult<Option<BtfRecord>>, Vec<&'static str>) {
    let k = kernel(*sem);
    let (s, v) = graph_root_layout(sem, lock);
    match s.try_load(&k, sem) {
        (Ok(btf), mut warns) => {
            let (r, more) = parse_value(&k, &btf, v, sem);
            warns.extend(more);
            (r, warns)
        }
        (Err(e), warns) => (Err(e), warns),
    }
}

#[test]
fn a_graph_root_needs_a_lock_and_either_kind_at_any_offset_will_do() {
    let sem = Semantics::V6_18;
    assert_eq!(graph_root_value(&sem, None).0.err(), Some(Errno::EINVAL));
    for (lock, at) in [
        ("bpf_spin_lock", 0),
        ("bpf_spin_lock", 8),
        ("bpf_res_spin_lock", 0),
        ("bpf_res_spin_lock", 8),
    ] {
        let (r, warns) = graph_root_value(&sem, Some((lock, at)));
        let rec = r
            .unwrap_or_else(|e| panic!("{lock} at {at}: {e:?}"))
            .expect("rec");
        assert!(warns.is_empty(), "{warns:?}");
        assert_eq!(rec.fields.len(), 2, "{lock} at {at}");
        let root = rec
            .fields
            .iter()
            .find(|f| f.ty == F::LIST_HEAD)
            .expect("head");
        assert_eq!(root.offset, 16);
        let g = root.graph_root.as_ref().expect("graph root");
        assert_eq!(g.node_offset, 8, "the node's byte offset in `node`");
    }
}

/// `node { list_node ln @8; rb_node rn @32; bpf_refcount r @rc_at (if any) }`, 72 bytes.
fn both_node_kinds(rc_at: Option<u32>) -> (Base, u32) {
    let mut s = base();
    let ln = s.special("bpf_list_node", 24);
    let rn = s.special("bpf_rb_node", 32);
    let rc = s.special("bpf_refcount", 4);
    let mut m = vec![("ln", ln, 64), ("rn", rn, 256)];
    m.push(match rc_at {
        Some(at) => ("r", rc, at * 8),
        None => ("x", s.int, 0),
    });
    m.sort_by_key(|x| x.2);
    let node = s.b.struct_("node", 72, &m);
    (s, node)
}

#[test]
fn both_node_kinds_need_a_refcount_wherever_it_is() {
    let sem = Semantics::V6_18;
    let k = kernel(sem);
    // rc_at: the refcount's byte offset, None for no refcount.
    for (rc_at, ok) in [(Some(0u32), true), (Some(64), true), (None, false)] {
        let (s, node) = both_node_kinds(rc_at);
        // The struct-meta pass parses `node` at BTF load.
        match (ok, s.try_load(&k, &sem).0) {
            (true, Ok(btf)) => {
                let meta = find_meta(&btf, node).expect("node's struct meta");
                let rec = meta.rec().expect("record");
                assert_eq!(rec.refcount_off, rc_at.unwrap_or(0) as i32);
            }
            (false, Err(e)) => assert_eq!(e, Errno::EINVAL),
            (_, other) => panic!("refcount at {rc_at:?}: {:?}", other.err()),
        }
    }
}

/// `value { spin_lock l; list_head h @8 (contains node:n) }` and `node { bpf_refcount r;
/// node_ty n @bits }` (the struct's kind_flag set when `kflag`).
fn root_member_layout(node_ty: &str, bits: u32, kflag: bool) -> (Base, u32) {
    let mut s = base();
    let lock = s.special("bpf_spin_lock", 4);
    let head = s.special("bpf_list_head", 16);
    let n = match node_ty {
        "int" => s.int,
        name => s.special(name, if name == "bpf_rb_node" { 32 } else { 24 }),
    };
    // The refcount gives `node` a record of its own whatever `n` is (a struct meta
    // with none is -EFAULT at BTF load, before `v`'s graph root is parsed).
    let rc = s.special("bpf_refcount", 4);
    let members = [("r", rc, 0), ("n", n, bits)];
    let _node = if kflag {
        s.b.struct_kflag("node", 64, &members)
    } else {
        s.b.struct_("node", 64, &members)
    };
    let v = s.b.struct_("v", 24, &[("l", lock, 0), ("h", head, 64)]);
    s.b.decl_tag("contains:node:n", v, 1);
    (s, v)
}

/// [`root_member_layout`] loaded (`v` is a struct meta: its graph root is parsed at BTF
/// load), and its value parsed.
fn root_member(
    sem: &Semantics,
    node_ty: &str,
    bits: u32,
    kflag: bool,
) -> KResult<Option<BtfRecord>> {
    let k = kernel(*sem);
    let (s, v) = root_member_layout(node_ty, bits, kflag);
    let btf = s.try_load(&k, sem).0?;
    parse_value(&k, &btf, v, sem).0
}

#[test]
fn btf_parse_graph_root_checks_the_node_members_type_and_alignment() {
    let sem = Semantics::V6_18;
    let node_off = |r: KResult<Option<BtfRecord>>| {
        r.ok().flatten().and_then(|rec| {
            rec.fields
                .iter()
                .find_map(|f| f.graph_root.as_ref().map(|g| g.node_offset))
        })
    };
    assert_eq!(
        node_off(root_member(&sem, "bpf_list_node", 128, false)),
        Some(16)
    );
    assert_eq!(
        node_off(root_member(&sem, "bpf_list_node", 64, false)),
        Some(8)
    );
    for (ty, bits, kflag) in [
        ("int", 128, false),
        ("bpf_rb_node", 128, false),
        ("bpf_list_node", 96, false),
        ("bpf_list_node", 132, true),
    ] {
        assert_eq!(
            root_member(&sem, ty, bits, kflag).err(),
            Some(Errno::EINVAL),
            "member n: {ty} at bit {bits}"
        );
    }
}

/// `struct v { T __uptr *u; }`, `T` a program struct of `pointee` bytes or (`None`) a
/// struct named `task_struct`, which resolves to the kernel's; and `v`'s id.
fn uptr_layout(pointee: Option<u32>) -> (Base, u32) {
    let mut s = base();
    let target = match pointee {
        Some(size) => {
            let words = size / 4;
            let arr = s.b.array(s.int, s.int, words);
            s.b.struct_("user_data", size, &[("d", arr, 0)])
        }
        None => s.b.struct_("task_struct", 8, &[("pid", s.int, 0)]),
    };
    let tag = s.b.type_tag("uptr", target);
    let p = s.b.ptr(tag);
    let v = s.b.struct_("v", 8, &[("u", p, 0)]);
    (s, v)
}

/// The pointees [`a_uptrs_pointee_is_a_program_type_of_at_most_a_page`] tries.
const UPTR_POINTEES: [Option<u32>; 5] = [Some(8), Some(4096), Some(4100), Some(0), None];

/// `btf_parse_fields` and `btf_check_and_fixup_record` of `struct v { T __uptr *u; }`.
fn uptr_to(sem: &Semantics, pointee: Option<u32>) -> KResult<()> {
    let k = kernel(*sem);
    let (s, v) = uptr_layout(pointee);
    let btf = s.load(&k, sem);
    let mut rec = parse_value(&k, &btf, v, sem).0?.expect("a record");
    assert_eq!(rec.fields[0].ty, F::UPTR);
    btf_check_and_fixup_record(&btf, &mut rec, sem)
}

#[test]
fn a_uptrs_pointee_is_a_program_type_of_at_most_a_page() {
    let sem = Semantics::V6_18;
    let got: Vec<KResult<()>> = UPTR_POINTEES.iter().map(|&p| uptr_to(&sem, p)).collect();
    assert_eq!(
        got,
        [
            Ok(()),
            Ok(()),
            Err(Errno::E2BIG),
            Err(Errno::EINVAL),
            Err(Errno::EINVAL)
        ],
        "8 bytes, a page, past a page, 0 bytes, task_struct (a kernel type)"
    );
}

/// A TASK_STORAGE map whose value is a uptr's [`uptr_layout`]: `map_create`'s errno,
/// the model's and the running kernel's (the uptr rules are map creation's: the value's
/// `btf_parse_fields` runs in `map_check_btf`). The kernel refuses each bad pointee the
/// way the model does.
#[test]
fn uptr_pointee_rules_are_the_running_kernels() {
    use kernel_core::map::{BPF_F_NO_PREALLOC, BPF_MAP_TYPE_TASK_STORAGE, MapAttr};
    use std::os::fd::AsFd;
    if kptr_tests::kernel_skip("record_edges: uptr pointees through BPF_MAP_CREATE") {
        return;
    }
    let sem = Semantics::V6_18;
    let k = kernel(sem);
    let (mut differ, mut seen) = (Vec::new(), Vec::new());
    for pointee in UPTR_POINTEES {
        let (s, v) = uptr_layout(pointee);
        let (btf, warns) = s.try_load(&k, &sem);
        assert!(warns.is_empty(), "{pointee:?}: {warns:?}");
        let btf = btf.expect("the layout's BTF loads");
        let attr = MapAttr {
            inner_map: None,
            map_type: BPF_MAP_TYPE_TASK_STORAGE,
            key_size: 4,
            value_size: 8,
            max_entries: 0,
            map_flags: BPF_F_NO_PREALLOC,
            btf: Some(&btf),
            btf_key_type_id: s.int,
            btf_value_type_id: v,
            name: "uptrs",
        };
        let (model, warns) =
            shim_std::warns::during(|| kernel_core::syscall::map_create(&k, &attr, &sem));
        assert!(
            warns.is_empty(),
            "{pointee:?}: a map the model WARNs on is not sent: {warns:?}"
        );
        let model = model.err().map(|e| e.raw());
        let fd = shim_std::oracle::btf_load_fd(&s.b.build()).expect("the kernel loads the BTF");
        let kernel = shim_std::oracle::map_create(&shim_std::oracle::MapCreate {
            map_type: BPF_MAP_TYPE_TASK_STORAGE,
            key_size: 4,
            value_size: 8,
            max_entries: 0,
            map_flags: BPF_F_NO_PREALLOC,
            btf_fd: Some(fd.as_fd()),
            btf_key_type_id: s.int,
            btf_value_type_id: v,
            name: "uptrs",
        })
        .err();
        if model != kernel {
            differ.push(format!(
                "pointee {pointee:?}: kernel {kernel:?}, model {model:?}"
            ));
        }
        seen.push(kernel);
    }
    assert!(differ.is_empty(), "{differ:#?}");
    eprintln!("record_edges: uptr pointees {UPTR_POINTEES:?}, the kernel's errnos {seen:?}");
}

/// `a { lock; list_head h (contains b:n); list_node n }`,
/// `b { lock; list_head h (contains c:n); list_node n }`, `c { list_node n }`: `a` is
/// both owned and an owner, and it owns `b`, which has a graph root of its own.
fn owned_owner_of_owner_layout() -> Base {
    let mut s = base();
    let lock = s.special("bpf_spin_lock", 4);
    let head = s.special("bpf_list_head", 16);
    let ln = s.special("bpf_list_node", 24);
    let m = [("l", lock, 0), ("h", head, 64), ("n", ln, 192)];
    let a = s.b.struct_("a", 48, &m);
    let b = s.b.struct_("b", 48, &m);
    let _c = s.b.struct_("c", 24, &[("n", ln, 0)]);
    s.b.decl_tag("contains:b:n", a, 1);
    s.b.decl_tag("contains:c:n", b, 1);
    s
}

fn owned_owner_of_owner(sem: &Semantics) -> KResult<()> {
    owned_owner_of_owner_layout()
        .try_load(&kernel(*sem), sem)
        .0
        .map(|_| ())
}

#[test]
fn an_owned_owner_may_own_roots_only_under_ownership_depth() {
    let old_rule = Semantics::V6_18;
    assert!(!old_rule.ownership_depth);
    assert_eq!(owned_owner_of_owner(&old_rule), Err(Errno::ELOOP));
    let depth = Semantics {
        ownership_depth: true,
        ..Semantics::V6_18
    };
    assert_eq!(owned_owner_of_owner(&depth), Ok(()));
}

/// `struct v { struct node __kptr *n; }` with `node` a program type.
fn local_kptr_value(sem: &Semantics) -> (KResult<Option<BtfRecord>>, Option<String>) {
    let k = kernel(*sem);
    let mut s = base();
    let node = s.b.struct_("node", 8, &[("key", s.long, 0)]);
    let tag = s.b.type_tag("kptr", node);
    let p = s.b.ptr(tag);
    let v = s.b.struct_("v", 8, &[("n", p, 0)]);
    let btf = s.load(&k, sem);
    let (r, why) = shim_std::why::collect(|| parse_value(&k, &btf, v, sem).0);
    let rule = why.last.and_then(|c| c.culprit(btf.data())).map(|c| c.rule);
    (r, rule)
}

#[test]
fn a_kptr_to_a_program_type_is_local_only_from_c8e18754() {
    let (r, rule) = local_kptr_value(&Semantics::V6_3);
    assert_eq!(r.err(), Some(Errno::ENOENT));
    let rule = rule.expect("a rule");
    assert!(
        rule.contains("is not a kernel type") && rule.contains("no local kptrs"),
        "{rule}"
    );
    for sem in [Semantics::C8E18754, Semantics::V6_4, Semantics::V6_18] {
        let (r, _) = local_kptr_value(&sem);
        let rec = r.expect("parses").expect("a record");
        assert!(
            rec.fields[0].kptr.as_ref().expect("kptr").local,
            "{}",
            sem.name
        );
    }
}

#[test]
fn records_of_different_lengths_are_not_equal_even_when_one_is_a_prefix() {
    let sem = Semantics::V6_18;
    let k = kernel(sem);
    let mut s = base();
    let p = s.task_kptr();
    let one = s.b.struct_("one", 16, &[("a", p, 0), ("x", s.long, 64)]);
    let two = s.b.struct_("two", 16, &[("a", p, 0), ("b", p, 64)]);
    let btf = s.load(&k, &sem);
    let r1 = parse_value(&k, &btf, one, &sem)
        .0
        .expect("one")
        .expect("rec");
    let r1b = parse_value(&k, &btf, one, &sem)
        .0
        .expect("one")
        .expect("rec");
    let r2 = parse_value(&k, &btf, two, &sem)
        .0
        .expect("two")
        .expect("rec");
    assert!(btf_record_equal(Some(&r1), Some(&r1b)));
    assert!(!btf_record_equal(Some(&r1), Some(&r2)));
    assert!(!btf_record_equal(Some(&r2), Some(&r1)));
    assert!(!btf_record_equal(Some(&r1), None));
}

/// The layouts above whose verdict is `BPF_BTF_LOAD`'s (the struct-meta pass), less those
/// the kernel WARNs on: a graph root guarded by a `bpf_res_spin_lock` alone (its map's
/// teardown WARNs) and both lock kinds in one struct.
fn kernel_safe_layouts() -> Vec<(String, Base)> {
    let sem = Semantics::V6_18;
    let mut v = Vec::new();
    for at in [0, 8] {
        v.push((
            format!("res spin lock alone at {at}"),
            res_spin_lock_alone(at).0,
        ));
    }
    v.push((
        "graph root without a lock".into(),
        graph_root_layout(&sem, None).0,
    ));
    for at in [0, 8] {
        v.push((
            format!("graph root, spin lock at {at}"),
            graph_root_layout(&sem, Some(("bpf_spin_lock", at))).0,
        ));
    }
    for rc in [Some(0), Some(64), None] {
        v.push((
            format!("list and rb node, refcount at {rc:?}"),
            both_node_kinds(rc).0,
        ));
    }
    for (ty, bits, kflag) in [
        ("bpf_list_node", 128, false),
        ("bpf_list_node", 64, false),
        ("int", 128, false),
        ("bpf_rb_node", 128, false),
        ("bpf_list_node", 96, false),
        ("bpf_list_node", 132, true),
    ] {
        v.push((
            format!("contained node member: {ty} at bit {bits}"),
            root_member_layout(ty, bits, kflag).0,
        ));
    }
    v.push((
        "owned owner of an owner".into(),
        owned_owner_of_owner_layout(),
    ));
    v
}

#[test]
fn btf_load_verdicts_match_the_kernel() {
    if kptr_tests::kernel_skip("record_edges: BPF_BTF_LOAD of the struct-meta layouts") {
        return;
    }
    let sem = Semantics::V6_18;
    let k = kernel(sem);
    let mut differ = Vec::new();
    let layouts = kernel_safe_layouts();
    for (name, s) in &layouts {
        let (model, warns) = s.try_load(&k, &sem);
        assert!(
            warns.is_empty(),
            "{name}: a layout the model WARNs on is not sent"
        );
        let model = model.err().map(|e| e.raw());
        let kernel = shim_std::oracle::btf_load(&s.b.build()).errno;
        if model != kernel {
            differ.push(format!("{name}: kernel {kernel:?}, model {model:?}"));
        }
    }
    assert!(differ.is_empty(), "{differ:#?}");
    eprintln!(
        "record_edges: {} layouts, the kernel's verdict on each",
        layouts.len()
    );
}
