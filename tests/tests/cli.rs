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
