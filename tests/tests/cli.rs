//! The command line in process: the default check, trace's names and counts, the
//! structured diff, refusals naming their culprit, WARNs in plain `check`, many
//! objects in one table, and `check --kernel` (the running kernel beside the model,
//! refusing objects the model sees fire a kernel WARN). The binary itself (exit
//! statuses, JSON against the schema, README examples) is tested in
//! `shim-std/tests/cli.rs`.

use std::path::{Path, PathBuf};

use kernel_core::Semantics;
use shim_std::cli::{self, Output};

fn fixture(name: &str) -> PathBuf {
    kptr_tests::fixtures_dir().join("obj").join(name)
}

fn check(objs: &[PathBuf], sem: Semantics) -> Output {
    cli::check::cmd_check(objs, None, sem, false).expect("check")
}

#[test]
fn default_check_shows_the_local_kptr() {
    let o = check(&[], Semantics::V6_18);
    assert!(o.text.contains("BTF load (v6.18): ok"), "{}", o.text);
    assert!(
        o.text.contains("kptr_ref -> struct node_data (local)"),
        "{}",
        o.text
    );
    assert_eq!(o.status, 0);
}

/// The trace names objects, not addresses: two runs give the same bytes, and the
/// summary's counts are the alloc and free lines' counts.
#[test]
fn trace_names_objects_and_counts_its_lines() {
    let run = || cli::trace::cmd_trace(None, None, None, Semantics::V6_18).expect("trace");
    let (a, b) = (run(), run());
    assert_eq!(a.text, b.text);
    assert!(a.text.contains("alloc    obj#1 node_data"), "{}", a.text);
    assert!(
        a.text.contains("btf      btf#program refcount"),
        "{}",
        a.text
    );
    assert!(!a.text.contains("@0x"), "{}", a.text);
    let allocs = a.text.lines().filter(|l| l.starts_with("  alloc ")).count();
    let frees = a.text.lines().filter(|l| l.starts_with("  free ")).count();
    assert!(
        a.text.contains(&format!(
            "objects: {allocs} allocated, {frees} freed; leaks: 0"
        )),
        "{}",
        a.text
    );
    assert_eq!(a.status, 0);
    // c8e18754 drops the node with migration enabled: a kernel WARN, status 1.
    let c = cli::trace::cmd_trace(None, None, None, Semantics::C8E18754).expect("trace");
    assert!(
        c.text
            .contains("kernel WARN: bpf_mem_free without migrate_disable"),
        "{}",
        c.text
    );
    assert_eq!(c.status, 1);
}

/// `--map` picks the map; a hash map's value is inserted first.
#[test]
fn trace_picks_the_map() {
    let obj = fixture("matrix_kptr_local.o");
    let o = cli::trace::cmd_trace(Some(&obj), Some("hash"), None, Semantics::V6_18)
        .expect("trace --map hash");
    assert!(o.text.contains("(map hash)"), "{}", o.text);
    assert!(
        o.text.contains("obj_drop __bpf_obj_drop_impl(obj#1)"),
        "{}",
        o.text
    );
    let e = cli::trace::cmd_trace(Some(&obj), Some("nope"), None, Semantics::V6_18)
        .expect_err("no such map");
    assert!(e.reason.contains("no map \"nope\""), "{}", e.reason);
}

/// Per map and per field, with the map's header as context; each profile's build.
#[test]
fn diff_is_per_map_and_field() {
    let o = cli::diff::cmd_diff(None, None, Semantics::V6_3, Semantics::C8E18754).expect("diff");
    assert!(o.text.contains("  map some_stashed (ARRAY"), "{}", o.text);
    assert!(o.text.contains("-   record: ENOENT"), "{}", o.text);
    assert!(
        o.text
            .contains("+   +0    kptr_ref -> struct node_data (local) dtor __bpf_obj_drop_impl"),
        "{}",
        o.text
    );
    assert_eq!(o.status, 1);
    // v6.18 gets the v6.4-layout build: its BTF loads.
    let o = cli::diff::cmd_diff(None, None, Semantics::V6_3, Semantics::V6_18).expect("diff");
    assert!(o.text.contains("  BTF load: ok"), "{}", o.text);
    assert!(!o.text.contains("EFAULT"), "{}", o.text);
    let same = cli::diff::cmd_diff(None, None, Semantics::V6_18, Semantics::V6_18).expect("diff");
    assert_eq!(same.status, 0, "{}", same.text);
    // The same line in three maps is three changes, each under its map.
    let o = cli::diff::cmd_diff(
        Some(&fixture("matrix_task_work.o")),
        None,
        Semantics::V6_12,
        Semantics::V6_18,
    )
    .expect("diff");
    let n = o.text.matches("task_work").count();
    let maps = o.text.lines().filter(|l| l.contains("  map ")).count();
    assert!(n >= 3 && maps >= 3, "{}", o.text);
}

/// The record errors and refusals the issue named, each with its struct, member,
/// offset and rule.
#[test]
fn refusals_name_the_culprit() {
    let cases = [
        (
            "pointee_fwd_kernel.o",
            "member task (+0): the kptr's pointee `task_struct` is only a forward declaration",
        ),
        (
            "list_head_no_lock.o",
            "a list_head at +8 needs a bpf_spin_lock (or bpf_res_spin_lock) in the same value",
        ),
        (
            "matrix_timer.o",
            "a timer field (+8) is not allowed in map type PERCPU_ARRAY; map_check_btf allows it in HASH, ARRAY, LRU_HASH",
        ),
        (
            "kptr_ref_kernel_no_dtor.o",
            "member f (+8): a referenced kptr to kernel type `file` needs a destructor kfunc",
        ),
        ("two_timers.o", "member b (+16): a second `bpf_timer`"),
    ];
    for (obj, want) in cases {
        let o = check(&[fixture(obj)], Semantics::V6_18);
        assert!(o.text.contains(want), "{obj}: {}", o.text);
        assert_eq!(o.status, 1, "{obj}");
        let json = o.json.to_string();
        assert!(json.contains("\"rule\""), "{obj}: {json}");
    }
}

/// A field past the value's end (a value size smaller than its struct): the rule
/// names the field, its offset and the value's size, and the kernel WARNs.
#[test]
fn field_past_the_value_end_is_named() {
    use kernel_core::btf::builder::BtfBuilder;
    use kernel_core::btf::uapi::BTF_INT_SIGNED;
    use kernel_core::record::{BtfFieldType as F, btf_parse_fields};
    use kernel_core::syscall::bpf_btf_load;
    let sem = Semantics::V6_18;
    let (k, _) = shim_std::kernel_btf::load_kernel_btfs(None, false, sem).expect("kernel");
    let mut b = BtfBuilder::new();
    let int = b.int("int", 4, BTF_INT_SIGNED, 32);
    let timer = b.struct_("bpf_timer", 16, &[("v", int, 0)]);
    let val = b.struct_("val", 24, &[("a", int, 0), ("t", timer, 64)]);
    let (btf, _) = bpf_btf_load(&k, &b.build(), 0, &sem).expect("load");
    let ((r, why), warns) = shim_std::warns::during(|| {
        shim_std::why::collect(|| btf_parse_fields(&btf, &k, val, F::TIMER, 16, &sem).map(|_| ()))
    });
    assert_eq!(r, Err(kernel_core::Errno::EFAULT));
    assert!(
        warns.contains(&"verifier bug: field beyond the value"),
        "{warns:?}"
    );
    let c = why
        .last
        .and_then(|c| c.culprit(btf.data()))
        .expect("culprit");
    assert_eq!(
        c.to_string(),
        "struct val, member t (+8): the timer at +8 (16 bytes) runs past the value's end (16 bytes); the kernel WARNs (\"verifier bug\") [btf_parse_fields]"
    );
}

/// A struct with a special member of another kernel's size records nothing: the
/// struct meta is refused with its name (c8e18754's own example on v6.18).
#[test]
fn empty_struct_meta_is_named() {
    let o = check(&[fixture("c8e18754_example_v63.o")], Semantics::V6_18);
    assert!(o.text.contains("struct node_data: "), "{}", o.text);
    assert!(o.text.contains("EFAULT"), "{}", o.text);
}

/// Plain `check` shows the WARNs the model knows the kernel raises.
#[test]
fn plain_check_shows_kernel_warns() {
    let o = check(
        &[fixture("spin_lock_and_res_spin_lock.o")],
        Semantics::V6_18,
    );
    assert!(
        o.text
            .contains("kernel WARN: btf_parse_fields: spin lock and res spin lock"),
        "{}",
        o.text
    );
    let o = check(&[fixture("rb_root_res_spin_lock.o")], Semantics::V6_18);
    assert!(
        o.text.contains(
            "kernel WARN: closing the map WARNs: a graph root guarded only by a bpf_res_spin_lock"
        ),
        "{}",
        o.text
    );
    assert_eq!(o.status, 1);
    assert!(
        o.text
            .contains("rb_root contains struct kp_rrl_elem (node at +0)"),
        "{}",
        o.text
    );
}

/// Many objects: one table, one row per map, errors in their row.
#[test]
fn many_objects_print_one_table() {
    let objs = [
        fixture("field_timer.o"),
        fixture("two_timers.o"),
        PathBuf::from("/nonexistent.o"),
    ];
    let o = check(&objs, Semantics::V6_18);
    assert!(o.text.starts_with("OBJECT"), "{}", o.text);
    assert!(o.text.contains("timer@"), "{}", o.text);
    assert!(o.text.contains("created, record E2BIG"), "{}", o.text);
    assert!(o.text.contains("/nonexistent.o"), "{}", o.text);
    assert!(
        o.text.contains("3 objects") && o.text.contains("1 errors"),
        "{}",
        o.text
    );
    assert_eq!(o.status, 2);
}

#[test]
fn check_kernel_agrees_and_refuses_warning_layouts() {
    if kptr_tests::kernel_skip("check --kernel") {
        return;
    }
    let o = cli::check::cmd_check(&[], None, Semantics::V6_18, true).expect("check --kernel");
    assert!(
        o.text.contains("kernel: BTF load ok (same as the model)"),
        "{}",
        o.text
    );
    assert!(!o.text.contains("DIFFERS"), "{}", o.text);
    assert_eq!(o.status, 0);
    assert_eq!(o.json["kernel"]["asked"], true);
    let o = cli::check::cmd_check(
        &[fixture("spin_lock_and_res_spin_lock.o")],
        None,
        Semantics::V6_18,
        true,
    )
    .expect("check");
    assert!(
        o.text.contains("not asked: the model raised a kernel WARN"),
        "{}",
        o.text
    );
    // Another profile is not compared with the running kernel behind its back.
    let o = cli::check::cmd_check(&[], None, Semantics::V6_3, true).expect("check");
    assert!(
        o.text
            .contains("not asked: the running kernel is v6.18 and the model ran v6.3"),
        "{}",
        o.text
    );
    assert_eq!(o.status, 1);
}

#[test]
fn btf_refusals_are_status_1_once() {
    let o = cli::btf::cmd_btf(
        Some(Path::new("/etc/hostname")),
        None,
        Semantics::V6_18,
        false,
    )
    .expect("btf");
    assert_eq!(o.status, 1);
    assert_eq!(o.json["errno"], "EINVAL");
    let empty = std::env::temp_dir().join(format!("kptr-empty-{}", std::process::id()));
    std::fs::write(&empty, b"").expect("write");
    let o = cli::btf::cmd_btf(Some(&empty), None, Semantics::V6_18, false).expect("btf");
    let _ = std::fs::remove_file(&empty);
    assert_eq!(o.text.matches("hdr_len not found").count(), 1, "{}", o.text);
}

/// `btf` on a program object runs what `BPF_BTF_LOAD` runs: the struct-meta pass
/// refuses what `btf_parse` alone accepts, and the summary says which checks ran.
#[test]
fn btf_runs_the_struct_meta_pass_on_program_btf() {
    let o = cli::btf::cmd_btf(
        Some(&fixture("contains_two_tags.o")),
        None,
        Semantics::V6_18,
        true,
    )
    .expect("btf");
    assert_eq!(o.status, 1);
    assert!(o.text.contains("struct-meta pass"), "{}", o.text);
    assert!(o.text.contains("two `contains:` decl tags"), "{}", o.text);
    let o = cli::btf::cmd_btf(
        Some(&fixture("field_timer.o")),
        None,
        Semantics::V6_18,
        true,
    )
    .expect("btf");
    assert!(
        o.text
            .contains("(BPF_BTF_LOAD: btf_parse and the struct-meta pass)"),
        "{}",
        o.text
    );
    assert_eq!(o.status, 0);
}

/// A program calling kfuncs through `__ksym` externs and reading `__kconfig` values
/// loads: the model works on the BTF libbpf prepares (FUNC linkage, `.ksyms`,
/// `.kconfig` fixed up), and its internal maps carry libbpf's names.
#[test]
fn objects_with_externs_reach_map_creation() {
    let obj = kptr_tests::fixtures_dir().join("corpus/obj/kconfig_ext.o");
    let o = check(&[obj], Semantics::V6_18);
    assert!(o.text.contains("BTF load (v6.18): ok"), "{}", o.text);
    assert!(!o.text.contains("linkage"), "{}", o.text);
    assert!(
        o.text.contains("map kconfig.kconfig [.kconfig]"),
        "{}",
        o.text
    );
}

/// `--set` changes one flag; `profiles` lists every flag.
#[test]
fn set_changes_one_flag() {
    let sem = cli::semantics("v6.18", &["local_kptr=false".into()]).expect("set");
    assert!(!sem.local_kptr);
    assert_eq!(sem.name, "v6.18+local_kptr=false");
    let o = check(&[], sem);
    assert!(o.text.contains("no local kptrs"), "{}", o.text);
    assert_eq!(o.status, 1);
    assert!(cli::semantics("v6.18", &["nope=true".into()]).is_err());
    assert!(cli::semantics("v6.18", &["local_kptr=maybe".into()]).is_err());
    let p = cli::profiles::cmd_profiles(None);
    for f in kernel_core::profile::FLAGS {
        assert!(p.text.contains(f.name), "{}", f.name);
    }
}

/// `check --kernel` on a map of maps holding a local kptr taken with `bpf_obj_new`
/// through `__ksym`: the inner template, the outer map with its fd, every field and
/// every preset slot judged by the kernel, all the same.
#[test]
fn check_kernel_judges_map_in_map_fields() {
    if kptr_tests::kernel_skip("check --kernel on map-in-map") {
        return;
    }
    let obj = kptr_tests::fixtures_dir().join("corpus/obj/mim_array_of_array.o");
    let o = cli::check::cmd_check(&[obj], None, Semantics::V6_18, true).expect("check");
    let t = &o.text;
    assert!(
        t.contains("kernel: inner map queues.inner created (same as the model)"),
        "{t}"
    );
    assert!(t.contains("kernel:   +32 kptr_ref -> qbatch: same"), "{t}");
    assert!(
        t.contains("kernel:   slot [1] = map queue_tbl1: ok (same as the model)"),
        "{t}"
    );
    assert!(!t.contains("DIFFERS"), "{t}");
    assert!(t.contains("0 differences"), "{t}");
}
