//! The `kptr-model` binary as a user runs it: every verb's exit status and its JSON
//! against `docs/kptr-model.schema.json` (the table in `docs/cli-verbs.md` is this
//! test's output), the defects issue 17 listed, and the README's examples, which are
//! regenerated from the binary's real output (`KPTR_BLESS=1` rewrites the README and
//! the table; otherwise any difference fails).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

struct Ran {
    status: i32,
    stdout: String,
    stderr: String,
}

/// Runs the binary in the workspace root.
fn kptr(args: &[&str]) -> Ran {
    let o = Command::new(env!("CARGO_BIN_EXE_kptr-model"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("run kptr-model");
    Ran {
        status: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

fn schema() -> Value {
    let s = std::fs::read_to_string(root().join("docs/kptr-model.schema.json")).expect("schema");
    serde_json::from_str(&s).expect("schema is JSON")
}

/// Validates a document against `$defs/<def>` and the whole schema.
fn validate(schema: &Value, def: &str, doc: &Value) -> Vec<String> {
    let mut errs = Vec::new();
    let sub = serde_json::json!({"$ref": format!("#/$defs/{def}")});
    common::schema::validate(schema, &sub, doc, "$", &mut errs);
    common::schema::validate(schema, schema, doc, "$", &mut errs);
    errs
}

fn fixture(name: &str) -> String {
    format!("tests/fixtures/obj/{name}")
}

/// (verb, what the case shows, arguments, exit status, the schema's definition).
fn cases() -> Vec<(&'static str, &'static str, Vec<String>, i32, &'static str)> {
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    vec![
        ("(none)", "the c8e18754 story", s(&[]), 0, "story"),
        ("check", "accepted", s(&["check"]), 0, "check"),
        (
            "check",
            "a record refused",
            s(&["check", &fixture("pointee_fwd_kernel.o")]),
            1,
            "check",
        ),
        (
            "check",
            "BTF load refused",
            s(&["check", &fixture("list_head_no_lock.o")]),
            1,
            "check",
        ),
        (
            "check",
            "a kernel WARN",
            s(&["check", &fixture("rb_root_res_spin_lock.o")]),
            1,
            "check",
        ),
        (
            "check",
            "many objects",
            s(&["check", &fixture("field_timer.o"), &fixture("field_wq.o")]),
            0,
            "check",
        ),
        (
            "check",
            "many, one refused",
            s(&["check", &fixture("field_timer.o"), &fixture("two_timers.o")]),
            1,
            "check",
        ),
        (
            "check",
            "--kernel with another profile",
            s(&["check", "--kernel", "--profile", "v6.3"]),
            1,
            "check",
        ),
        ("check", "a directory", s(&["check", "tests"]), 2, "error"),
        (
            "check",
            "not a BPF object",
            s(&["check", "/bin/ls"]),
            2,
            "error",
        ),
        (
            "diff",
            "no difference",
            s(&["diff", "--from", "v6.18", "--to", "v6.18"]),
            0,
            "diff",
        ),
        (
            "diff",
            "differences",
            s(&["diff", "--from", "v6.3", "--to", "c8e18754"]),
            1,
            "diff",
        ),
        (
            "diff",
            "a proposed change (--set)",
            s(&["diff", "--set", "local_kptr_holds_btf=true"]),
            1,
            "diff",
        ),
        (
            "diff",
            "an unknown flag",
            s(&["diff", "--set", "nope=true"]),
            2,
            "error",
        ),
        (
            "btf",
            "accepted",
            s(&["btf", "-q", &fixture("field_timer.o")]),
            0,
            "btf",
        ),
        (
            "btf",
            "refused",
            s(&["btf", "-q", &fixture("contains_two_tags.o")]),
            1,
            "btf",
        ),
        ("btf", "not BTF", s(&["btf", "-q", "README.md"]), 1, "btf"),
        (
            "btf",
            "a missing file",
            s(&["btf", "/nonexistent"]),
            2,
            "error",
        ),
        ("trace", "clean", s(&["trace"]), 0, "trace"),
        (
            "trace",
            "a kernel WARN",
            s(&["trace", "--profile", "c8e18754"]),
            1,
            "trace",
        ),
        (
            "trace",
            "refused (v6.3)",
            s(&["trace", "--profile", "v6.3"]),
            1,
            "trace",
        ),
        (
            "trace",
            "--map of a hash map",
            s(&["trace", &fixture("matrix_kptr_local.o"), "--map", "hash"]),
            0,
            "trace",
        ),
        (
            "trace",
            "an unknown map",
            s(&["trace", "--map", "nope"]),
            2,
            "error",
        ),
        (
            "run",
            "a scenario (model)",
            s(&["run", "tests/scenarios/array_stash_cycle.scn"]),
            0,
            "run",
        ),
        (
            "run",
            "a missing scenario",
            s(&["run", "/nonexistent.scn"]),
            2,
            "error",
        ),
        ("profiles", "every flag", s(&["profiles"]), 0, "profiles"),
        (
            "profiles",
            "with a changed column",
            s(&["profiles", "--set", "refcount=false"]),
            0,
            "profiles",
        ),
    ]
}

/// Every verb's exit status, and its JSON (-j and -p) against the schema; writes the
/// table `docs/cli-verbs.md` holds.
#[test]
fn every_verb_exits_as_documented_and_its_json_validates() {
    let schema = schema();
    let mut table = String::from(
        "# kptr-model: verbs, exit statuses, JSON\n\n\
         Written by `shim-std/tests/cli.rs` (`KPTR_BLESS=1 cargo test -p shim-std --test cli`\n\
         rewrites it; otherwise the test fails when the binary's behaviour differs). Exit\n\
         status as diff(1): 0 accepted or the same, 1 refused or different, 2 an error.\n\
         Every JSON document is checked against `docs/kptr-model.schema.json`.\n\n\
         | verb | case | command | exit | JSON (`-j`, `-p`) |\n|---|---|---|---:|---|\n",
    );
    let mut failures = Vec::new();
    for (verb, what, args, want, def) in cases() {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        if a.first() == Some(&"run") && !root().join(a[1]).exists() && want == 0 {
            failures.push(format!("{a:?}: scenario missing"));
            continue;
        }
        let text = kptr(&a);
        if text.status != want {
            failures.push(format!(
                "{a:?}: exit {} (want {want})\n{}{}",
                text.status, text.stdout, text.stderr
            ));
        }
        let mut json_ok = true;
        for flag in ["-j", "-p"] {
            let mut aj = a.clone();
            aj.push(flag);
            let j = kptr(&aj);
            if j.status != want {
                failures.push(format!("{aj:?}: exit {} (want {want})", j.status));
            }
            match serde_json::from_str::<Value>(&j.stdout) {
                Err(e) => {
                    json_ok = false;
                    failures.push(format!("{aj:?}: not one JSON document: {e}\n{}", j.stdout));
                }
                Ok(doc) => {
                    let errs = validate(&schema, def, &doc);
                    if !errs.is_empty() {
                        json_ok = false;
                        failures.push(format!("{aj:?}: {}", errs.join("\n  ")));
                    }
                }
            }
            if flag == "-j" && j.stdout.trim_end().contains('\n') {
                failures.push(format!("{aj:?}: -j is not one line"));
            }
        }
        table.push_str(&format!(
            "| {verb} | {what} | `{}` | {want} | {} |\n",
            format!("kptr-model {}", a.join(" ")).trim_end(),
            if json_ok {
                format!("valid (`{def}`)")
            } else {
                "INVALID".into()
            }
        ));
    }
    println!("{table}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    compare_or_bless(&root().join("docs/cli-verbs.md"), &table);
}

fn compare_or_bless(path: &Path, want: &str) {
    if std::env::var_os("KPTR_BLESS").is_some() {
        std::fs::write(path, want).expect("bless");
        return;
    }
    let have = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        have == want,
        "{} is out of date: run KPTR_BLESS=1 cargo test -p shim-std --test cli\n--- have\n{have}\n--- want\n{want}",
        path.display()
    );
}

/// The README's examples: each block after `<!-- kptr-model example: ARGS -->` is the
/// binary's output for ARGS.
#[test]
fn readme_examples_are_the_real_output() {
    let path = root().join("README.md");
    let readme = std::fs::read_to_string(&path).expect("README");
    let marker = "<!-- kptr-model example: ";
    let mut out = String::new();
    let mut rest = readme.as_str();
    let mut n = 0;
    while let Some(i) = rest.find(marker) {
        let (head, tail) = rest.split_at(i);
        out.push_str(head);
        let end = tail.find("-->").expect("marker closes");
        let args = tail[marker.len()..end].trim();
        out.push_str(&tail[..end + 3]);
        let after = &tail[end + 3..];
        // The fenced block right after the marker.
        let open = after.find("```").expect("a block follows the marker");
        let body_start = open + after[open..].find('\n').expect("fence line") + 1;
        let close = body_start + after[body_start..].find("```").expect("fence closes");
        let argv: Vec<&str> = args.split_whitespace().collect();
        let r = kptr(&argv);
        let mut block = format!(
            "{}\n{}",
            format!("$ kptr-model {args}").trim_end(),
            r.stdout
        );
        if !block.ends_with('\n') {
            block.push('\n');
        }
        out.push_str(&after[..body_start]);
        out.push_str(&block);
        rest = &after[close..];
        n += 1;
    }
    out.push_str(rest);
    assert!(n >= 5, "only {n} examples in the README");
    compare_or_bless(&path, &out);
}

/// Two runs of a trace print the same bytes; its counts match its lines.
#[test]
fn trace_is_byte_identical_and_counts_its_lines() {
    let (a, b) = (kptr(&["trace"]), kptr(&["trace"]));
    assert_eq!(a.stdout, b.stdout);
    assert!(!a.stdout.contains("0x"), "{}", a.stdout);
    let n = |k: &str| a.stdout.lines().filter(|l| l.starts_with(k)).count();
    let (allocs, frees) = (n("  alloc "), n("  free "));
    assert!(
        a.stdout
            .contains(&format!("objects: {allocs} allocated, {frees} freed;")),
        "{}",
        a.stdout
    );
}

/// The defects issue 17 found by hand, each as a user meets it.
#[test]
fn issue_17_defects() {
    // Exit status 1 when BTF load fails, a map cannot be created, diff differs.
    assert_eq!(kptr(&["check", &fixture("list_head_no_lock.o")]).status, 1);
    assert_eq!(kptr(&["check", &fixture("matrix_timer.o")]).status, 1);
    assert_eq!(
        kptr(&["diff", "--from", "v6.3", "--to", "c8e18754"]).status,
        1
    );
    // check --json --kernel is one JSON document, the kernel's verdicts inside.
    let j = kptr(&["check", "--json", "--kernel"]);
    let doc: Value = serde_json::from_str(&j.stdout).expect("one JSON document");
    assert!(doc["kernel"].is_object(), "{}", j.stdout);
    // diff names the map of each change: task_work gained by three maps, three times.
    let d = kptr(&[
        "diff",
        "--from",
        "v6.12",
        "--to",
        "v6.18",
        &fixture("matrix_task_work.o"),
    ]);
    let gained = d.stdout.lines().filter(|l| l.starts_with("+   +")).count();
    let maps = d.stdout.lines().filter(|l| l.starts_with("  map ")).count();
    assert!(gained >= 3 && maps >= 3, "{}", d.stdout);
    // --kernel with another profile says so instead of comparing v6.18 behind it.
    let k = kptr(&["check", "--kernel", "--profile", "v6.3"]);
    assert!(
        k.stdout
            .contains("the running kernel is v6.18 and the model ran v6.3"),
        "{}",
        k.stdout
    );
    // Errors name the struct, member and rule.
    let f = kptr(&["check", &fixture("pointee_fwd_kernel.o")]);
    assert!(
        f.stdout
            .contains("struct fwd_holder, member task (+0): the kptr's pointee `task_struct` is only a forward declaration"),
        "{}",
        f.stdout
    );
    // A WARN the model knows is shown by plain check.
    let w = kptr(&["check", &fixture("spin_lock_and_res_spin_lock.o")]);
    assert!(w.stdout.contains("kernel WARN:"), "{}", w.stdout);
    // A directory, a non-BPF ELF, a big-endian object.
    let dir = kptr(&["check", "tests"]);
    assert_eq!(dir.status, 2);
    assert!(
        dir.stderr.contains("tests: is a directory"),
        "{}",
        dir.stderr
    );
    let ls = kptr(&["check", "/bin/ls"]);
    assert!(ls.stderr.contains("not a BPF object"), "{}", ls.stderr);
    let mut be = std::fs::read(root().join(fixture("field_timer.o"))).expect("fixture");
    be[5] = 2;
    be[18] = 0;
    be[19] = 247;
    let bep = std::env::temp_dir().join(format!("kptr-bpfeb-{}.o", std::process::id()));
    std::fs::write(&bep, &be).expect("write");
    let b = kptr(&["check", &bep.display().to_string()]);
    let _ = std::fs::remove_file(&bep);
    assert!(b.stderr.contains("big-endian BPF object"), "{}", b.stderr);
    // btf EMPTY prints its error once.
    let empty = std::env::temp_dir().join(format!("kptr-empty-{}", std::process::id()));
    std::fs::write(&empty, b"").expect("write");
    let e = kptr(&["btf", &empty.display().to_string()]);
    let _ = std::fs::remove_file(&empty);
    let all = format!("{}{}", e.stdout, e.stderr);
    assert_eq!(all.matches("hdr_len not found").count(), 1, "{all}");
    assert_eq!(e.status, 1);
    // --dot into a missing directory names the path.
    let d = kptr(&["trace", "--dot", "/nonexistent/dir/x.dot"]);
    assert_eq!(d.status, 2);
    assert!(d.stderr.contains("/nonexistent/dir/x.dot"), "{}", d.stderr);
    // --help lists the profiles and the exit statuses.
    let h = kptr(&["--help"]);
    assert!(
        h.stdout.contains("v6.3")
            && h.stdout.contains("c8e18754")
            && h.stdout.contains("Exit status"),
        "{}",
        h.stdout
    );
    // Graph roots say what they contain; the JSON has sizes and flags.
    let g = kptr(&["check", &fixture("field_list_head.o"), "-j"]);
    let doc: Value = serde_json::from_str(&g.stdout).expect("JSON");
    let field = &doc["maps"][0]["fields"][1];
    assert_eq!(field["contains"]["struct"], "kp_elem", "{}", g.stdout);
    assert!(field["contains"]["node_offset"].is_u64(), "{}", g.stdout);
    assert!(doc["maps"][0]["key_size"].is_u64() && doc["maps"][0]["flags"].is_array());
}
