//! The c8e18754 example end to end under each profile: the node is dropped exactly once
//! by the map teardown, the program BTF's refcount returns to its starting value, no
//! leak, no double free, no use after free.

use kernel_core::Semantics;
use shim_std::cli::embedded_example;
use shim_std::kernel_btf::load_kernel_btfs;
use shim_std::scenario::c8e18754_example;

fn run(sem: Semantics) -> shim_std::scenario::Outcome {
    let (kernel, _) = load_kernel_btfs(None, false, sem).expect("kernel BTF");
    let (_, obj) = embedded_example(&sem);
    c8e18754_example(kernel, obj, sem).expect("scenario")
}

#[test]
fn v6_3_refuses_the_program() {
    let o = run(Semantics::V6_3);
    assert!(
        o.refused
            .as_deref()
            .is_some_and(|r| r.contains("no valid kptr")),
        "{o:?}"
    );
    assert_eq!((o.allocs, o.leaks), (0, 0));
}

#[test]
fn every_later_profile_drops_the_node_once() {
    for sem in [
        Semantics::C8E18754,
        Semantics::V6_4,
        Semantics::V6_12,
        Semantics::V6_18,
    ] {
        let warns = kernel_core::sync::warn::warn_count();
        let o = run(sem);
        assert_eq!(o.refused, None, "{}", sem.name);
        assert_eq!(
            (o.allocs, o.frees),
            (1, 1),
            "{}: one node, freed once",
            sem.name
        );
        assert_eq!(
            (o.leaks, o.double_frees, o.use_after_free),
            (0, 0, 0),
            "{}",
            sem.name
        );
        assert_eq!(
            o.prog_btf_refs.0, o.prog_btf_refs.1,
            "{}: program BTF refcount restored",
            sem.name
        );
        // c8e18754's teardown drops the node with migration enabled (fixed by
        // 9e36a204bd43 in v6.4): bpf_mem_free WARNs there and only there, and that WARN
        // reaches the WARN sink too.
        let migrate_warn = o.warnings.iter().any(|w| w.contains("migrate_disable"));
        assert_eq!(
            kernel_core::sync::warn::warn_count() != warns,
            !o.warnings.is_empty(),
            "{}: the WARN sink saw the run's WARNs",
            sem.name
        );
        assert_eq!(
            migrate_warn,
            sem == Semantics::C8E18754,
            "{}: {:?}",
            sem.name,
            o.warnings
        );
    }
}
