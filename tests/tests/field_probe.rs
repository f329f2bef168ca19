//! `shim_std::field_probe` against the running kernel: maps of every type the probe can
//! reach, built with the BTF builder (fields past 4 KiB and past the 16-bit instruction
//! offset, global-data arrays, local storages, map-in-map) and a handful of fixtures, each
//! judged field by field; deliberately wrong field lists must be judged DIFFERS.
//!
//! Kernel safety: no value here holds both lock kinds, a graph root guarded only by a
//! `bpf_res_spin_lock`, or two `bpf_refcount`s.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use kernel_core::Semantics;
use kernel_core::btf::builder::BtfBuilder;
use kernel_core::btf::uapi::BTF_INT_SIGNED;
use kernel_core::btf::{BtfRef, btf_parse};
use kernel_core::map::map_type_name;
use shim_std::check::{FieldReport, check_object};
use shim_std::elf::read_bpf_object;
use shim_std::field_probe::{
    FieldJudgement, InnerMap, ProbeTarget, Status, Verdict, judge_fields, kernel_fields,
    takes_new_object,
};
use shim_std::kernel_btf::load_kernel_btfs;
use shim_std::oracle::{self, MapCreate};

const HASH: u32 = 1;
const ARRAY: u32 = 2;
const PERCPU_HASH: u32 = 5;
const PERCPU_ARRAY: u32 = 6;
const LRU_HASH: u32 = 9;
const LRU_PERCPU_HASH: u32 = 10;
const LPM_TRIE: u32 = 11;
const ARRAY_OF_MAPS: u32 = 12;
const HASH_OF_MAPS: u32 = 13;
const CGROUP_STORAGE: u32 = 19;
const PERCPU_CGROUP_STORAGE: u32 = 21;
const QUEUE: u32 = 22;
const SK_STORAGE: u32 = 24;
const INODE_STORAGE: u32 = 28;
const TASK_STORAGE: u32 = 29;
const CGRP_STORAGE: u32 = 32;

const BPF_F_NO_PREALLOC: u32 = 1;
const BPF_F_RDONLY_PROG: u32 = 1 << 7;
const BPF_F_MMAPABLE: u32 = 1 << 10;

/// A model field as `kptr-model check` reports it under v6.18 (offset, type, pointee; a
/// kptr's pointee here is a kernel type, `plainobj` excepted: the per-CPU kptr's local
/// object; a referenced kernel kptr has a destructor).
fn fr(offset: u32, ty: &'static str, pointee: Option<&str>) -> FieldReport {
    let kptr = matches!(ty, "kptr_ref" | "kptr_unref" | "percpu_kptr");
    let local = pointee == Some("plainobj");
    FieldReport {
        offset,
        ty,
        pointee: pointee.map(String::from),
        local: kptr.then_some(local),
        dtor: (ty == "kptr_ref" && !local).then(|| String::from("bpf_task_release_dtor")),
        holds: Vec::new(),
        contains: None,
    }
}

/// Every value layout of these tests, in one BTF.
struct Types {
    blob: Vec<u8>,
    int: u32,
    u64_: u32,
    /// `{timer@8, kptr_ref task@24, kptr_unref task@32, percpu_kptr plainobj@40, wq@48,
    /// spin_lock@64}`, 72 bytes.
    full: u32,
    /// `full` without the spin lock (LRU_HASH refuses locks), 64 bytes.
    nolock: u32,
    /// `{kptr_ref task@0, kptr_unref task@8, percpu_kptr plainobj@16}`, 32 bytes.
    kptrs: u32,
    /// `{spin_lock@0, kptr_ref task@8, kptr_unref cgroup@16}`, 24 bytes.
    storage: u32,
    /// `{spin_lock@0, kptr_ref task@8, uptr udata@16, uptr small@24}`, 32 bytes.
    task: u32,
    /// `{long; spin_lock@8}`, 16 bytes.
    lock_only: u32,
    /// `{long, long}`, 16 bytes.
    plain: u32,
    /// LPM_TRIE key `{int prefixlen, int addr}`, 8 bytes.
    lpm_key: u32,
    /// 40,008 bytes: timer@4104, kptr_ref task@4120, kptr_unref task@33000,
    /// spin_lock@40000.
    big: u32,
    /// DATASEC `.bss` (32 bytes): `long cnt@0`, kptr_ref task `k@8`, timer `t@16`.
    bss: u32,
    /// DATASEC `.data.big` (5,016 bytes): `char pad[5000]@0`, spin_lock `l@5000`,
    /// kptr_unref task `u@5008`.
    data_big: u32,
    /// DATASEC `.rodata` (16 bytes): two longs.
    rodata: u32,
}

fn types() -> Types {
    let mut b = BtfBuilder::new();
    let int = b.int("int", 4, BTF_INT_SIGNED, 32);
    let long = b.int("long", 8, BTF_INT_SIGNED, 64);
    let u64_ = b.int("unsigned long long", 8, 0, 64);
    let ch = b.int("char", 1, BTF_INT_SIGNED, 8);
    let two = b.array(u64_, int, 2);
    let lock = b.struct_("bpf_spin_lock", 4, &[("val", int, 0)]);
    let timer = b.struct_("bpf_timer", 16, &[("x", two, 0)]);
    let wq = b.struct_("bpf_wq", 16, &[("x", two, 0)]);
    let task = b.struct_("task_struct", 8, &[("x", long, 0)]);
    let cgroup = b.struct_("cgroup", 8, &[("x", long, 0)]);
    let plainobj = b.struct_("plainobj", 16, &[("a", long, 0), ("b", long, 64)]);
    let udata = b.struct_(
        "udata",
        24,
        &[("a", long, 0), ("b", long, 64), ("c", long, 128)],
    );
    let small = b.struct_("small", 8, &[("a", long, 0)]);
    let tag_ptr = |b: &mut BtfBuilder, tag: &str, t: u32| {
        let tt = b.type_tag(tag, t);
        b.ptr(tt)
    };
    let k_task = tag_ptr(&mut b, "kptr", task);
    let u_task = tag_ptr(&mut b, "kptr_untrusted", task);
    let u_cgroup = tag_ptr(&mut b, "kptr_untrusted", cgroup);
    let pc_plain = tag_ptr(&mut b, "percpu_kptr", plainobj);
    let up_udata = tag_ptr(&mut b, "uptr", udata);
    let up_small = tag_ptr(&mut b, "uptr", small);
    let full = b.struct_(
        "v_full",
        72,
        &[
            ("a", long, 0),
            ("t", timer, 64),
            ("k", k_task, 192),
            ("u", u_task, 256),
            ("p", pc_plain, 320),
            ("w", wq, 384),
            ("l", lock, 512),
        ],
    );
    let nolock = b.struct_(
        "v_nolock",
        64,
        &[
            ("a", long, 0),
            ("t", timer, 64),
            ("k", k_task, 192),
            ("u", u_task, 256),
            ("p", pc_plain, 320),
            ("w", wq, 384),
        ],
    );
    let kptrs = b.struct_(
        "v_kptrs",
        32,
        &[
            ("k", k_task, 0),
            ("u", u_task, 64),
            ("p", pc_plain, 128),
            ("z", long, 192),
        ],
    );
    let storage = b.struct_(
        "v_storage",
        24,
        &[("l", lock, 0), ("k", k_task, 64), ("c", u_cgroup, 128)],
    );
    let task_v = b.struct_(
        "v_task",
        32,
        &[
            ("l", lock, 0),
            ("k", k_task, 64),
            ("ud", up_udata, 128),
            ("us", up_small, 192),
        ],
    );
    let lock_only = b.struct_("v_lock", 16, &[("a", long, 0), ("l", lock, 64)]);
    let plain = b.struct_("v_plain", 16, &[("a", long, 0), ("b", long, 64)]);
    let lpm_key = b.struct_("lpm_key", 8, &[("prefixlen", int, 0), ("addr", int, 32)]);
    let pad1 = b.array(ch, int, 4104);
    let pad2 = b.array(ch, int, 33000 - 4128);
    let pad3 = b.array(ch, int, 40000 - 33008);
    let big = b.struct_(
        "v_big",
        40008,
        &[
            ("pad1", pad1, 0),
            ("t", timer, 4104 * 8),
            ("k", k_task, 4120 * 8),
            ("pad2", pad2, 4128 * 8),
            ("u", u_task, 33000 * 8),
            ("pad3", pad3, 33008 * 8),
            ("l", lock, 40000 * 8),
        ],
    );
    let v_cnt = b.var("cnt", long, 1);
    let v_k = b.var("k", k_task, 1);
    let v_t = b.var("t", timer, 1);
    let bss = b.datasec(".bss", 32, &[(v_cnt, 0, 8), (v_k, 8, 8), (v_t, 16, 16)]);
    let pad5000 = b.array(ch, int, 5000);
    let v_pad = b.var("pad", pad5000, 1);
    let v_l = b.var("l", lock, 1);
    let v_u = b.var("u", u_task, 1);
    let data_big = b.datasec(
        ".data.big",
        5016,
        &[(v_pad, 0, 5000), (v_l, 5000, 4), (v_u, 5008, 8)],
    );
    let v_r1 = b.var("r1", long, 1);
    let v_r2 = b.var("r2", long, 1);
    let rodata = b.datasec(".rodata", 16, &[(v_r1, 0, 8), (v_r2, 8, 8)]);
    Types {
        blob: b.build(),
        int,
        u64_,
        full,
        nolock,
        kptrs,
        storage,
        task: task_v,
        lock_only,
        plain,
        lpm_key,
        big,
        bss,
        data_big,
        rodata,
    }
}

fn full_fields() -> Vec<FieldReport> {
    vec![
        fr(8, "timer", None),
        fr(24, "kptr_ref", Some("task_struct")),
        fr(32, "kptr_unref", Some("task_struct")),
        fr(40, "percpu_kptr", Some("plainobj")),
        fr(48, "wq", None),
        fr(64, "spin_lock", None),
    ]
}

fn kptr_fields() -> Vec<FieldReport> {
    vec![
        fr(0, "kptr_ref", Some("task_struct")),
        fr(8, "kptr_unref", Some("task_struct")),
        fr(16, "percpu_kptr", Some("plainobj")),
    ]
}

fn storage_fields() -> Vec<FieldReport> {
    vec![
        fr(0, "spin_lock", None),
        fr(8, "kptr_ref", Some("task_struct")),
        fr(16, "kptr_unref", Some("cgroup")),
    ]
}

fn task_fields() -> Vec<FieldReport> {
    vec![
        fr(0, "spin_lock", None),
        fr(8, "kptr_ref", Some("task_struct")),
        fr(16, "uptr", Some("udata")),
        fr(24, "uptr", Some("small")),
    ]
}

/// One map to create: `(map_type, key_size, value_size, max_entries, flags, key id, value
/// id)`.
#[derive(Clone, Copy)]
struct Req {
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    flags: u32,
    key_id: u32,
    value_id: u32,
}

impl Req {
    fn create(&self, btf: BorrowedFd<'_>, name: &str, inner: Option<BorrowedFd<'_>>) -> OwnedFd {
        let has_btf = self.key_id != 0 || self.value_id != 0;
        let req = MapCreate {
            map_type: self.map_type,
            key_size: self.key_size,
            value_size: self.value_size,
            max_entries: self.max_entries,
            map_flags: self.flags,
            btf_fd: has_btf.then_some(btf),
            btf_key_type_id: self.key_id,
            btf_value_type_id: self.value_id,
            name,
        };
        oracle::map_create_with_inner(&req, inner).unwrap_or_else(|e| {
            panic!(
                "{name} ({}): BPF_MAP_CREATE refused: errno {e}",
                map_type_name(self.map_type)
            )
        })
    }

    fn target<'a>(&self, fd: BorrowedFd<'a>, btf: &'a BtfRef) -> ProbeTarget<'a> {
        ProbeTarget {
            map_fd: fd,
            map_type: self.map_type,
            key_size: self.key_size,
            value_size: self.value_size,
            map_flags: self.flags,
            inner: None,
            prog_btf: Some(btf.data()),
            // The builder's BTF has no FUNC for a probe's func info: no bpf_obj_new probes.
            btf_fd: None,
        }
    }
}

struct Setup {
    t: Types,
    btf_fd: OwnedFd,
    model_btf: BtfRef,
}

fn setup() -> Setup {
    let t = types();
    let btf_fd = oracle::btf_load_fd(&t.blob)
        .unwrap_or_else(|e| panic!("BPF_BTF_LOAD of the test BTF refused: errno {e}"));
    let model_btf = btf_parse(&t.blob, 0, Semantics::V6_18)
        .unwrap_or_else(|e| panic!("the model refuses the test BTF: {}", e.message()));
    Setup {
        t,
        btf_fd,
        model_btf,
    }
}

fn print(what: &str, j: &FieldJudgement) {
    eprintln!("{what}: {} ({} programs)", j.route, j.programs);
    for l in j.lines() {
        eprintln!("  {l}");
    }
}

fn assert_same(what: &str, j: &FieldJudgement, n: usize) {
    print(what, j);
    assert_eq!(j.status, Status::Judged, "{what}: not judged");
    assert!(j.all_same(), "{what}: {:?}", j.differences());
    assert_eq!(j.fields.len(), n, "{what}: field count");
}

#[test]
fn fields_past_4096_and_past_the_16_bit_offset() {
    if kptr_tests::kernel_skip("field probe of a 40,008-byte value") {
        return;
    }
    let s = setup();
    let req = Req {
        map_type: ARRAY,
        key_size: 4,
        value_size: 40008,
        max_entries: 1,
        flags: 0,
        key_id: s.t.int,
        value_id: s.t.big,
    };
    let fd = req.create(s.btf_fd.as_fd(), "big", None);
    let target = req.target(fd.as_fd(), &s.model_btf);
    let model = vec![
        fr(4104, "timer", None),
        fr(4120, "kptr_ref", Some("task_struct")),
        fr(33000, "kptr_unref", Some("task_struct")),
        fr(40000, "spin_lock", None),
    ];
    let j = judge_fields(&target, &model);
    assert_same("big ARRAY", &j, 4);
    assert!(j.kernel_only.is_empty());
    // Without the model's offsets the fields are found by bisection, still in a few
    // programs per field rather than one per 4 bytes.
    let (found, _, programs) = kernel_fields(&target, &[]);
    let found = found.unwrap_or_else(|e| panic!("no hints: {e:?}"));
    eprintln!("without hints: {programs} programs");
    let offs: Vec<(u32, &str)> = found.iter().map(|f| (f.offset, f.ty)).collect();
    assert_eq!(
        offs,
        vec![
            (4104, "timer"),
            (4120, "kptr_ref"),
            (33000, "kptr_unref"),
            (40000, "spin_lock")
        ]
    );
    assert!(programs < 120, "{programs} programs");
    // A model that misses the far fields, or misplaces one by 4 bytes, differs.
    let j = judge_fields(&target, &model[..2]);
    print("big ARRAY, two fields missing", &j);
    assert_eq!(j.kernel_only.len(), 2);
    assert!(!j.all_same());
    let mut shifted = model.clone();
    shifted[3].offset = 40004;
    let j = judge_fields(&target, &shifted);
    print("big ARRAY, lock 4 bytes off", &j);
    assert_eq!(
        j.fields[3].verdict,
        Verdict::Differs(String::from("no field at +40004"))
    );
    assert_eq!(j.kernel_only.len(), 1);
    assert_eq!(j.kernel_only[0].offset, 40000);
}

#[test]
fn every_map_type() {
    if kptr_tests::kernel_skip("field probe of every map type") {
        return;
    }
    let s = setup();
    let t = &s.t;
    let kv = |map_type, key_size, value_size, max_entries, flags, key_id, value_id| Req {
        map_type,
        key_size,
        value_size,
        max_entries,
        flags,
        key_id,
        value_id,
    };
    let storage = |map_type, value_size, value_id| {
        kv(
            map_type,
            4,
            value_size,
            0,
            BPF_F_NO_PREALLOC,
            t.int,
            value_id,
        )
    };
    let cases: Vec<(&str, Req, Vec<FieldReport>)> = vec![
        (
            "array",
            kv(ARRAY, 4, 72, 2, 0, t.int, t.full),
            full_fields(),
        ),
        ("hash", kv(HASH, 4, 72, 4, 0, t.int, t.full), full_fields()),
        (
            "hash_nopre",
            kv(HASH, 4, 72, 4, BPF_F_NO_PREALLOC, t.int, t.full),
            full_fields(),
        ),
        (
            "hash_key8",
            kv(HASH, 8, 72, 4, 0, t.u64_, t.full),
            full_fields(),
        ),
        (
            "lru_hash",
            kv(LRU_HASH, 4, 64, 4, 0, t.int, t.nolock),
            full_fields()[..5].to_vec(),
        ),
        (
            "pcpu_array",
            kv(PERCPU_ARRAY, 4, 32, 1, 0, t.int, t.kptrs),
            kptr_fields(),
        ),
        (
            "pcpu_hash",
            kv(PERCPU_HASH, 4, 32, 4, 0, t.int, t.kptrs),
            kptr_fields(),
        ),
        (
            "lru_pcpu_hash",
            kv(LRU_PERCPU_HASH, 4, 32, 4, 0, t.int, t.kptrs),
            kptr_fields(),
        ),
        (
            // No special field is allowed in an LPM trie; the probe confirms there is none.
            "lpm",
            kv(LPM_TRIE, 8, 16, 4, BPF_F_NO_PREALLOC, t.lpm_key, t.plain),
            Vec::new(),
        ),
        (
            ".bss",
            kv(ARRAY, 4, 32, 1, BPF_F_MMAPABLE, 0, t.bss),
            vec![
                fr(8, "kptr_ref", Some("task_struct")),
                fr(16, "timer", None),
            ],
        ),
        (
            ".data.big",
            kv(ARRAY, 4, 5016, 1, BPF_F_MMAPABLE, 0, t.data_big),
            vec![
                fr(5000, "spin_lock", None),
                fr(5008, "kptr_unref", Some("task_struct")),
            ],
        ),
        (
            ".rodata",
            kv(
                ARRAY,
                4,
                16,
                1,
                BPF_F_RDONLY_PROG | BPF_F_MMAPABLE,
                0,
                t.rodata,
            ),
            Vec::new(),
        ),
        (
            "sk_stg",
            storage(SK_STORAGE, 24, t.storage),
            storage_fields(),
        ),
        (
            "cgrp_stg",
            storage(CGRP_STORAGE, 24, t.storage),
            storage_fields(),
        ),
        ("task_stg", storage(TASK_STORAGE, 32, t.task), task_fields()),
        (
            "inode_stg",
            storage(INODE_STORAGE, 24, t.storage),
            storage_fields(),
        ),
        (
            "cgroup_stg",
            kv(CGROUP_STORAGE, 8, 16, 0, 0, t.u64_, t.lock_only),
            vec![fr(8, "spin_lock", None)],
        ),
        (
            "pcpu_cg_stg",
            kv(PERCPU_CGROUP_STORAGE, 8, 16, 0, 0, t.u64_, t.plain),
            Vec::new(),
        ),
        // No program looks into a QUEUE's values; it takes no special field, so its
        // creation judges it.
        ("queue", kv(QUEUE, 0, 16, 4, 0, 0, 0), Vec::new()),
    ];
    // Every case is judged but INODE_STORAGE where this machine refuses LSM programs,
    // and the two maps of maps below.
    let inode_cases = cases
        .iter()
        .filter(|(_, r, _)| r.map_type == INODE_STORAGE)
        .count();
    let mut want_fields: usize = cases.iter().map(|(_, _, m)| m.len()).sum();
    let mut skipped_inode = 0;
    let (mut judged, mut fields) = (0, 0);
    for (name, req, model) in &cases {
        let fd = req.create(s.btf_fd.as_fd(), name, None);
        let j = judge_fields(&req.target(fd.as_fd(), &s.model_btf), model);
        let what = format!("{name} ({})", map_type_name(req.map_type));
        if req.map_type == INODE_STORAGE && j.status != Status::Judged {
            // Only LSM and tracing programs may call bpf_inode_storage_get; a machine that
            // refuses to load those cannot judge this map.
            print(&what, &j);
            assert!(
                matches!(&j.status, Status::NotJudged(r) if r.contains("LSM")),
                "{what}: {:?}",
                j.status
            );
            if let Status::NotJudged(r) = &j.status {
                eprintln!("KERNEL ORACLE NOT RUN ({what}): {r}");
            }
            skipped_inode += 1;
            want_fields -= model.len();
            continue;
        }
        assert_same(&what, &j, model.len());
        judged += 1;
        fields += j.fields.len();
    }
    // Map-in-map: the inner template's record, through two lookups.
    for (outer_type, inner_type, name) in
        [(ARRAY_OF_MAPS, ARRAY, "aom"), (HASH_OF_MAPS, HASH, "hom")]
    {
        let inner = kv(inner_type, 4, 72, 4, 0, t.int, t.full);
        let ifd = inner.create(s.btf_fd.as_fd(), "inner", None);
        let outer = kv(outer_type, 4, 4, 2, 0, 0, 0);
        let ofd = outer.create(s.btf_fd.as_fd(), name, Some(ifd.as_fd()));
        // The inner template may be closed: the outer map keeps its meta.
        drop(ifd);
        let target = ProbeTarget {
            inner: Some(InnerMap {
                map_type: inner_type,
                key_size: 4,
                value_size: 72,
                map_flags: 0,
            }),
            ..outer.target(ofd.as_fd(), &s.model_btf)
        };
        let j = judge_fields(&target, &full_fields());
        assert_same(name, &j, 6);
        judged += 1;
        fields += j.fields.len();
        let j = judge_fields(
            &ProbeTarget {
                inner: None,
                ..target
            },
            &full_fields(),
        );
        assert!(matches!(j.status, Status::NotJudged(_)), "{:?}", j.status);
    }
    eprintln!("{judged} maps judged, {fields} fields the same on both sides");
    let want_judged = cases.len() - skipped_inode + 2;
    want_fields += 2 * full_fields().len();
    assert!(skipped_inode <= inode_cases);
    assert_eq!(
        (judged, fields),
        (want_judged, want_fields),
        "maps and fields judged: every case but an INODE_STORAGE this machine cannot reach"
    );
    // A phantom field in the QUEUE differs: the kernel created it, so it has none.
    let q = kv(QUEUE, 0, 16, 4, 0, 0, 0);
    let fd = q.create(s.btf_fd.as_fd(), "queue", None);
    let j = judge_fields(
        &q.target(fd.as_fd(), &s.model_btf),
        &[fr(0, "spin_lock", None)],
    );
    assert_eq!(
        j.differences(),
        vec![String::from(
            "+0 spin_lock: DIFFERS (kernel: no field at +0)"
        )]
    );
}

#[test]
fn wrong_models_differ() {
    if kptr_tests::kernel_skip("field probe of wrong models") {
        return;
    }
    let s = setup();
    let t = &s.t;
    let arr = Req {
        map_type: ARRAY,
        key_size: 4,
        value_size: 72,
        max_entries: 1,
        flags: 0,
        key_id: t.int,
        value_id: t.full,
    };
    let fd = arr.create(s.btf_fd.as_fd(), "wrong", None);
    let target = arr.target(fd.as_fd(), &s.model_btf);
    let right = full_fields();
    assert!(judge_fields(&target, &right).all_same());
    type Edit = fn(&mut Vec<FieldReport>);
    let edits: [(&str, Edit, &str); 10] = [
        (
            "timer moved to +16",
            |m| m[0].offset = 16,
            "+16 timer: DIFFERS (kernel: no field at +16)",
        ),
        (
            "timer called wq",
            |m| m[0].ty = "wq",
            "+8 wq: DIFFERS (kernel: +8 timer)",
        ),
        (
            "referenced kptr called unreferenced",
            |m| m[1].ty = "kptr_unref",
            "+24 kptr_unref -> task_struct (kernel) with a destructor: DIFFERS (kernel: +24 kptr_ref -> task_struct (kernel) with a destructor)",
        ),
        (
            "wrong pointee",
            |m| m[2].pointee = Some(String::from("cgroup")),
            "+32 kptr_unref -> cgroup (kernel): DIFFERS (kernel: +32 kptr_unref -> task_struct)",
        ),
        (
            "per-CPU kptr called referenced",
            |m| m[3].ty = "kptr_ref",
            "+40 kptr_ref -> plainobj (local): DIFFERS (kernel: +40 percpu_kptr -> plainobj (local))",
        ),
        (
            "kernel kptr called local",
            |m| {
                m[1].local = Some(true);
                m[1].dtor = None;
            },
            "+24 kptr_ref -> task_struct (local): DIFFERS (kernel: +24 kptr_ref -> task_struct (kernel) with a destructor)",
        ),
        (
            "referenced kernel kptr without a destructor",
            |m| m[1].dtor = None,
            "+24 kptr_ref -> task_struct (kernel): DIFFERS (kernel: +24 kptr_ref -> task_struct (kernel) with a destructor)",
        ),
        (
            "per-CPU kptr called kernel",
            |m| m[3].local = Some(false),
            "+40 percpu_kptr -> plainobj (kernel): DIFFERS (kernel: +40 percpu_kptr -> plainobj (local))",
        ),
        (
            "wq missing",
            |m| {
                m.remove(4);
            },
            "+48 wq: DIFFERS (kernel has it, the model does not)",
        ),
        (
            "phantom lock at +0",
            |m| m.insert(0, fr(0, "spin_lock", None)),
            "+0 spin_lock: DIFFERS (kernel: no field at +0)",
        ),
    ];
    kptr_tests::readme::states(&format!(
        "and {} wrong models that must each be told apart",
        edits.len()
    ));
    for (what, edit, expect) in edits {
        let mut m = right.clone();
        edit(&mut m);
        let j = judge_fields(&target, &m);
        print(what, &j);
        assert!(j.is_judged() && !j.all_same(), "{what}: judged the same");
        let d = j.differences();
        assert!(d.iter().any(|l| l == expect), "{what}: {d:?}");
    }
    // The read helper (used for BPF_F_RDONLY_PROG maps) finds the same fields: told the
    // map is read-only, the probe reads ranges instead of writing them.
    let read = ProbeTarget {
        map_flags: BPF_F_RDONLY_PROG,
        ..target
    };
    let j = judge_fields(&read, &right);
    assert_same("array probed with the read helper", &j, 6);
    let mut m = right.clone();
    m.remove(0);
    let j = judge_fields(&read, &m);
    assert_eq!(
        j.differences(),
        vec![String::from(
            "+8 timer: DIFFERS (kernel has it, the model does not)"
        )]
    );
    // A read-only global-data map (no stores: judged by a helper that reads) with a
    // field the kernel does not have.
    let ro = Req {
        map_type: ARRAY,
        key_size: 4,
        value_size: 16,
        max_entries: 1,
        flags: BPF_F_RDONLY_PROG | BPF_F_MMAPABLE,
        key_id: 0,
        value_id: t.rodata,
    };
    let fd = ro.create(s.btf_fd.as_fd(), ".rodata", None);
    let j = judge_fields(
        &ro.target(fd.as_fd(), &s.model_btf),
        &[fr(8, "kptr_ref", Some("task_struct"))],
    );
    print(".rodata with a phantom kptr", &j);
    assert_eq!(
        j.differences(),
        vec![String::from(
            "+8 kptr_ref -> task_struct: DIFFERS (kernel: no field at +8)"
        )]
    );
    // A uptr whose pointee has another size than the kernel's.
    let ts = Req {
        map_type: TASK_STORAGE,
        key_size: 4,
        value_size: 32,
        max_entries: 0,
        flags: BPF_F_NO_PREALLOC,
        key_id: t.int,
        value_id: t.task,
    };
    let fd = ts.create(s.btf_fd.as_fd(), "task_wrong", None);
    let mut m = task_fields();
    m[2].pointee = Some(String::from("small"));
    let j = judge_fields(&ts.target(fd.as_fd(), &s.model_btf), &m);
    print("uptr pointee of the wrong size", &j);
    assert_eq!(
        j.differences(),
        vec![String::from(
            "+16 uptr -> small: DIFFERS (kernel: +16 uptr -> 24-byte pointee)"
        )]
    );
}

#[test]
fn fixtures_agree_with_the_model() {
    if kptr_tests::kernel_skip("field probe of fixtures") {
        return;
    }
    let sem = Semantics::V6_18;
    let (kernel, _) = load_kernel_btfs(None, false, sem).expect("kernel BTF");
    // Every map the model creates is judged (but INODE_STORAGE, which no program on this
    // machine reaches), and every field of it.
    let picks = [
        "c8e18754_example",
        "kptr_mixed_kinds",
        "datasec_bss_kptr",
        "datasec_struct_var",
        "field_list_head",
        "list_and_rb_node_refcount",
        "timer_wq_task_work",
        "field_uptr",
        "matrix_kptr_ref",
        "matrix_kptr_local",
        "matrix_percpu_kptr",
        "local_kptr_untrusted",
    ];
    let dir = kptr_tests::fixtures_dir().join("obj");
    for name in picks {
        let path = dir.join(format!("{name}.o"));
        assert!(kptr_tests::kernel_safe(&path), "{name} is not kernel-safe");
        let bytes = std::fs::read(&path).expect("read fixture");
        let rep = check_object(&kernel, &bytes, &sem).expect("object");
        let obj = read_bpf_object(&bytes).expect("object");
        assert_eq!(rep.btf_errno, None, "{name}: the model refuses its BTF");
        let btf_fd = oracle::btf_load_fd(&obj.btf)
            .unwrap_or_else(|e| panic!("{name}: BPF_BTF_LOAD refused: errno {e}"));
        let model_btf = kernel_core::syscall::bpf_btf_load(&kernel, &obj.btf, 0, &sem)
            .map(|(b, _)| b)
            .unwrap_or_else(|e| panic!("{name}: {}", e.message()));
        let (mut maps, mut fields) = (0, 0);
        let (mut want_maps, mut want_fields) = (0, 0);
        for mr in rep.maps.iter().filter(|m| m.errno.is_none()) {
            if mr.def.map_type != INODE_STORAGE {
                want_maps += 1;
                want_fields += mr.fields.len();
            }
            let kname = mr.def.kernel_name();
            let req = mr.def.oracle_request(btf_fd.as_fd(), &kname);
            let what = format!("{name}/{}", mr.def.name);
            let fd = oracle::map_create(&req)
                .unwrap_or_else(|e| panic!("{what}: the kernel refuses the map: errno {e}"));
            let target = ProbeTarget {
                prog_btf: Some(model_btf.data()),
                btf_fd: Some(btf_fd.as_fd()),
                ..ProbeTarget::from_def(fd.as_fd(), &mr.def)
            };
            let j = judge_fields(&target, &mr.fields);
            print(&what, &j);
            // A local kptr takes a new object of its own pointee and no other struct's.
            if name == "c8e18754_example" {
                let f = &mr.fields[0];
                assert_eq!(
                    takes_new_object(&target, f.offset, false, f.pointee.as_deref().unwrap_or("")),
                    Ok(Some(true)),
                    "{what}: a new node_data"
                );
                assert_eq!(
                    takes_new_object(&target, f.offset, false, "map_value"),
                    Ok(Some(false)),
                    "{what}: a new map_value"
                );
            }
            match &j.status {
                Status::Judged => {
                    assert!(j.all_same(), "{what}: {:?}", j.differences());
                    maps += 1;
                    fields += j.fields.len();
                }
                // No route into the values on this machine (INODE_STORAGE).
                Status::NotJudged(_) if mr.def.map_type == INODE_STORAGE => {}
                s => panic!("{what}: {s:?}"),
            }
        }
        assert_eq!(
            (maps, fields),
            (want_maps, want_fields),
            "{name}: maps and fields judged"
        );
    }
}
