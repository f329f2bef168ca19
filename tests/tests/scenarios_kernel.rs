//! Run-time scenarios (`tests/scenarios/*.scn`) judged by the running kernel: every
//! scenario runs on the model and on the kernel (`kptr-model run --kernel`: program
//! steps through `BPF_PROG_TEST_RUN`, map commands through `bpf(2)`), and every step
//! must give the same observation on both, and what the scenario expects. The model's
//! close must leave exactly the objects the scenario says the kernel leaks. Also:
//! scenario files with mistakes get the file, the line and the reason.

use std::path::Path;

use kernel_core::Semantics;
use shim_std::run::{self, kernel::run_kernel, model::run_model};

#[test]
fn every_scenario_agrees_with_the_kernel() {
    use kptr_tests::readme::{n, states};
    let want = kptr_tests::counts::scenario_steps();
    states(&format!(
        "`tests/tests/scenarios_kernel.rs`: {} scenarios, {} steps, {} program runs",
        n(want.0),
        n(want.1),
        n(want.2)
    ));
    states(&format!("{} scenarios live there", n(want.0)));
    if kptr_tests::kernel_skip("run-time scenarios") {
        return;
    }
    let all = kptr_tests::counts::scenarios();
    let mut failures = Vec::new();
    let (mut steps, mut program_steps) = (0, 0);
    let mut types = std::collections::BTreeSet::new();
    for p in &all {
        let sc = run::load(p).unwrap_or_else(|e| panic!("{e}"));
        let model = match run_model(&sc, Semantics::V6_18) {
            Ok(m) => m,
            Err(e) => {
                failures.push(format!("{}: model: {e}", p.display()));
                continue;
            }
        };
        types.insert(kernel_core::map::map_type_name(model.def.map_type));
        let kernel = match run_kernel(&sc, &model.def) {
            Ok(k) => k,
            Err(e) => {
                failures.push(format!("{}: kernel: {e}", p.display()));
                continue;
            }
        };
        if model.close.leaks != sc.leaks
            || model.close.double_frees + model.close.use_after_free + model.close.null_derefs != 0
        {
            failures.push(format!(
                "{}: model close {:?}, expected {} leaks",
                p.display(),
                model.close,
                sc.leaks
            ));
        }
        for ((l, m), k) in sc.lines.iter().zip(&model.results).zip(&kernel) {
            steps += 1;
            program_steps += usize::from(l.step.is_program());
            if m != k {
                failures.push(format!(
                    "{}:{}: {}: model {m}, kernel {k}",
                    p.display(),
                    l.no,
                    l.text
                ));
            }
            if let Some(e) = &l.expect
                && (e != m || e != k)
            {
                failures.push(format!(
                    "{}:{}: {}: expected {e}, model {m}, kernel {k}",
                    p.display(),
                    l.no,
                    l.text
                ));
            }
        }
    }
    eprintln!(
        "scenarios: {} agree with the kernel ({steps} steps, {program_steps} program runs); map types: {types:?}",
        all.len() - failures.len().min(all.len())
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(
        (all.len(), steps, program_steps),
        want,
        "scenarios, steps and program runs compared, against the scenario files"
    );
    for t in [
        "ARRAY",
        "PERCPU_ARRAY",
        "HASH",
        "PERCPU_HASH",
        "LRU_HASH",
        "LRU_PERCPU_HASH",
        "TASK_STORAGE",
        "CGRP_STORAGE",
        "SK_STORAGE",
    ] {
        assert!(types.contains(t), "no scenario on {t}: {types:?}");
    }
}

#[test]
fn scenario_mistakes_name_the_file_and_line() {
    let p = Path::new("/x/bad.scn");
    for (text, want) in [
        ("stash 0 1\n", "bad.scn:1: a step before the `object` line"),
        (
            "object a.o\nstash zero 1\n",
            "bad.scn:2: key \"zero\" is not a number",
        ),
        (
            "object a.o\n\nfrobnicate 1\n",
            "bad.scn:3: unknown step \"frobnicate\"",
        ),
        (
            "object a.o\nupdate 1 maybe\n",
            "bad.scn:2: unknown update flag \"maybe\"",
        ),
        ("object a.o\ntake 1 2\n", "bad.scn:2: unexpected \"2\""),
        ("# nothing\n", "bad.scn:0: no `object` line"),
        ("object a.o\nstash 1\n", "bad.scn:2: missing object id"),
        (
            "object a.o\nupdate 1 any data x\n",
            "bad.scn:2: data \"x\" is not a number",
        ),
        (
            "object a.o\nupdate 1 any 5\n",
            "bad.scn:2: unexpected \"5\" (data N[,N...])",
        ),
        (
            "object a.o\nupdate 1 any+sometimes\n",
            "bad.scn:2: unknown update flag \"any+sometimes\"",
        ),
        (
            "object a.o\nouter-delete self\n",
            "bad.scn:2: key \"self\" is not a number",
        ),
    ] {
        let e = run::parse(p, text).expect_err(text);
        assert_eq!(e.errno, kernel_core::Errno::EINVAL);
        assert!(e.reason.contains(want), "{text:?}: {}", e.reason);
    }
    let ok = run::parse(
        p,
        "object a.o # the object\nmap m\nleaks 2\nstash 1 7 -> old none\n",
    )
    .expect("parses");
    assert_eq!((ok.map.as_str(), ok.leaks, ok.lines.len()), ("m", 2, 1));
    assert_eq!(ok.lines[0].step, run::Step::Stash(1, 7));
    assert_eq!(ok.lines[0].expect.as_deref(), Some("old none"));
    assert_eq!(ok.object, Path::new("/x/a.o"));
}

/// A scenario whose map is not in the object, or whose object is missing, is an
/// error naming them (exit 2 from the CLI), not a panic.
#[test]
fn scenario_on_a_missing_map_or_object_is_an_error() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let sc = run::parse(
        &dir.join("x.scn"),
        "object bpf/obj/sc_array.o\nmap nosuch\npeek 0\n",
    )
    .expect("parses");
    let e = run_model(&sc, Semantics::V6_18).expect_err("no such map");
    assert!(e.reason.contains("no map \"nosuch\""), "{}", e.reason);
    let sc = run::parse(&dir.join("x.scn"), "object bpf/obj/nosuch.o\npeek 0\n").expect("parses");
    let e = run_model(&sc, Semantics::V6_18).expect_err("no object");
    assert!(e.reason.contains("nosuch.o"), "{}", e.reason);
}

/// Keys and steps the map type does not have are scenario mistakes named by file and
/// line: `self` is a local storage map's key only, a storage takes no number, a task
/// storage's owner (the runner's thread) cannot go, a storage is not filled.
#[test]
fn keys_the_map_type_does_not_have_are_mistakes() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    for (text, want) in [
        (
            "object bpf/obj/sc_array.o\npeek 0\npeek self\n",
            "x.scn:3: `self` is the key of a local storage map only",
        ),
        (
            "object bpf/obj/sc_task_storage.o\nstash 0 1\n",
            "x.scn:2: a local storage map's key is its owner: `self`",
        ),
        (
            "object bpf/obj/sc_task_storage.o\nstash self 1\nowner-free\n",
            "x.scn:3: the task storage's owner is the runner's own thread",
        ),
        (
            "object bpf/obj/sc_sk_storage.o\nfill 0\n",
            "x.scn:2: a local storage map cannot be filled",
        ),
        (
            "object bpf/obj/sc_array.o\nowner-free\n",
            "x.scn:2: `owner-free` needs a local storage map",
        ),
    ] {
        let sc = run::parse(&dir.join("x.scn"), text).expect("parses");
        let e = run_model(&sc, Semantics::V6_18).expect_err(text);
        assert_eq!(e.errno, kernel_core::Errno::EINVAL, "{text:?}");
        assert!(e.reason.contains(want), "{text:?}: {}", e.reason);
    }
}
