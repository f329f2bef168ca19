//! The command line: the default check, trace's counts line, diff, errors as errno
//! names, and `check --kernel` (the running kernel beside the model, refusing objects the
//! model sees fire a kernel WARN).

use std::path::Path;

use kernel_core::Semantics;
use shim_std::cli::{cmd_check, cmd_check_kernel, cmd_diff, cmd_trace};

fn text(f: impl FnOnce(&mut Vec<u8>)) -> String {
    let mut out = Vec::new();
    f(&mut out);
    String::from_utf8(out).expect("utf8")
}

#[test]
fn default_check_shows_the_local_kptr() {
    let t = text(|o| cmd_check(None, None, Semantics::V6_18, false, o).expect("check"));
    assert!(t.contains("BTF load (v6.18): ok"), "{t}");
    assert!(t.contains("kptr_ref -> struct node_data (local)"), "{t}");
}

#[test]
fn trace_ends_with_the_counts() {
    let t = text(|o| cmd_trace(None, None, Semantics::V6_18, o).expect("trace"));
    assert!(
        t.trim_end()
            .ends_with("leaks: 0, double frees: 0, use after free: 0"),
        "{t}"
    );
    assert!(t.contains("obj_drop"), "{t}");
}

#[test]
fn diff_shows_what_c8e18754_changes() {
    let t = text(|o| cmd_diff(None, None, Semantics::V6_3, Semantics::C8E18754, o).expect("diff"));
    assert!(t.contains("- ") && t.contains("record: ENOENT"), "{t}");
    assert!(t.contains("+ ") && t.contains("__bpf_obj_drop_impl"), "{t}");
}

#[test]
fn check_kernel_agrees_and_refuses_warning_layouts() {
    if kptr_tests::kernel_skip("check --kernel") {
        return;
    }
    let t = text(|o| cmd_check_kernel(None, Semantics::V6_18, o).expect("check --kernel"));
    assert!(t.contains("kernel: BTF load ok (same as the model)"), "{t}");
    assert!(!t.contains("DIFFERS"), "{t}");
    let unsafe_obj = kptr_tests::fixtures_dir().join("obj/spin_lock_and_res_spin_lock.o");
    let t = text(|o| {
        cmd_check_kernel(Some(Path::new(&unsafe_obj)), Semantics::V6_18, o).expect("check")
    });
    assert!(
        t.contains("not asked: the model raised a kernel WARN"),
        "{t}"
    );
}

#[test]
fn errors_are_errno_names() {
    let r = shim_std::cli::cmd_btf(
        Some(Path::new("/etc/hostname")),
        None,
        Semantics::V6_18,
        true,
        &mut Vec::new(),
    );
    let Err(e) = r else {
        panic!("/etc/hostname accepted as BTF");
    };
    assert_eq!(e.errno.name(), Some("EINVAL"));
    assert!(!e.reason.is_empty());
}

/// `btf` on a program object runs what `BPF_BTF_LOAD` runs: the struct-meta pass
/// refuses what `btf_parse` alone accepts, and the summary says which checks ran.
#[test]
fn btf_runs_the_struct_meta_pass_on_program_btf() {
    let obj = kptr_tests::fixtures_dir().join("obj/contains_two_tags.o");
    let r = shim_std::cli::cmd_btf(Some(&obj), None, Semantics::V6_18, true, &mut Vec::new());
    let Err(e) = r else {
        panic!("contains_two_tags.o accepted");
    };
    assert_eq!(e.errno.name(), Some("EINVAL"));
    assert!(e.reason.contains("struct-meta pass"), "{}", e.reason);
    let ok = kptr_tests::fixtures_dir().join("obj/field_timer.o");
    let t =
        text(|o| shim_std::cli::cmd_btf(Some(&ok), None, Semantics::V6_18, true, o).expect("btf"));
    assert!(
        t.contains("(BPF_BTF_LOAD: btf_parse and the struct-meta pass)"),
        "{t}"
    );
}

/// A program calling kfuncs through `__ksym` externs and reading `__kconfig` values
/// loads: the model works on the BTF libbpf prepares (FUNC linkage, `.ksyms`,
/// `.kconfig` fixed up), and its internal maps carry libbpf's names.
#[test]
fn objects_with_externs_reach_map_creation() {
    let obj = kptr_tests::fixtures_dir().join("corpus/obj/kconfig_ext.o");
    let t = text(|o| cmd_check(Some(&obj), None, Semantics::V6_18, false, o).expect("check"));
    assert!(t.contains("BTF load (v6.18): ok"), "{t}");
    assert!(!t.contains("linkage"), "{t}");
    assert!(t.contains("map kconfig.kconfig [.kconfig]"), "{t}");
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
    let t = text(|o| cmd_check_kernel(Some(&obj), Semantics::V6_18, o).expect("check"));
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
