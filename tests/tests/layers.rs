//! kernel-core's layers go one way: base (errno, profile, sync, trace, why, tally,
//! module) -> BTF format (btf::uapi, builder, names, log) -> verified BTF (btf) ->
//! records -> objects -> maps -> syscall entry points -> test support. Read from the
//! `crate::` and `super::` paths of every source file: no module names one of a higher
//! layer, and the only cycles between modules are the ones README.md's "Module graph"
//! names. Also: every per-task state is declared through `sync::task::task_local!`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn src_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../kernel-core/src")
}

fn rs_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("source directory")
        .map(|e| e.expect("entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rs_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// Module path of a file (`btf::object`; `btf` for btf/mod.rs; "" for lib.rs).
fn module_of(root: &Path, p: &Path) -> Vec<String> {
    let rel = p.strip_prefix(root).expect("under src");
    let mut parts: Vec<String> = rel
        .with_extension("")
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
        parts.pop();
    }
    parts
}

/// Source without `//` comments (doc comments name modules freely).
fn code(src: &str) -> String {
    src.lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

fn ident(s: &str) -> String {
    s.chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

/// Every module path `m` names: `crate::a::b`, `super::a`, and the items of
/// `use crate::{a, b::c}` / `use super::{a, b}` groups.
fn named_paths(m: &[String], src: &str) -> Vec<Vec<String>> {
    let parent: Vec<String> = m[..m.len().saturating_sub(1)].to_vec();
    let mut out = Vec::new();
    for (kw, base) in [("crate::", Vec::new()), ("super::", parent)] {
        let mut rest = src;
        while let Some(i) = rest.find(kw) {
            let before = rest[..i].chars().last();
            rest = &rest[i + kw.len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            if let Some(group) = rest.strip_prefix('{') {
                let end = group.find('}').unwrap_or(group.len());
                for item in group[..end].split(',') {
                    let mut p = base.clone();
                    p.extend(
                        item.trim()
                            .split("::")
                            .map(ident)
                            .take_while(|s| !s.is_empty()),
                    );
                    out.push(p);
                }
                continue;
            }
            let mut p = base.clone();
            let mut r = rest;
            loop {
                let id = ident(r);
                if id.is_empty() {
                    break;
                }
                r = &r[id.len()..];
                p.push(id);
                match r.strip_prefix("::") {
                    Some(n) => r = n,
                    None => break,
                }
            }
            out.push(p);
        }
    }
    out
}

/// The module graph: module -> the modules it names (the longest module prefix of each
/// path; a module's own ancestors do not count). `#[cfg(test)]` unit-test modules
/// (`tests.rs`) are left out: they may call the layers above what they test.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let root = src_root();
    let mut files = Vec::new();
    rs_files(&root, &mut files);
    let mods: BTreeMap<Vec<String>, String> = files
        .iter()
        .filter(|p| p.file_name().is_some_and(|n| n != "tests.rs"))
        .map(|p| {
            (
                module_of(&root, p),
                code(&std::fs::read_to_string(p).expect("read")),
            )
        })
        .collect();
    let mut g = BTreeMap::new();
    for (m, src) in &mods {
        if m.is_empty() {
            continue;
        }
        let mut to = BTreeSet::new();
        for p in named_paths(m, src) {
            let Some(t) = (1..=p.len())
                .rev()
                .map(|i| p[..i].to_vec())
                .find(|c| mods.contains_key(c))
            else {
                continue;
            };
            if t != *m && !m.starts_with(&t) {
                to.insert(t.join("::"));
            }
        }
        g.insert(m.join("::"), to);
    }
    g
}

/// The layer of a module, lowest first.
fn layer(m: &str) -> usize {
    let top = m.split("::").next().unwrap_or("");
    match top {
        "errno" | "profile" | "sync" | "trace" | "why" | "tally" | "module" => 0,
        "btf" => match m {
            "btf::uapi" | "btf::builder" | "btf::names" | "btf::log" => 1,
            _ => 2,
        },
        "record" => 3,
        "obj" => 4,
        "map" => 5,
        "syscall" => 6,
        "testing" => 7,
        _ => panic!("module {m} has no layer: add it to tests/tests/layers.rs and README.md"),
    }
}

#[test]
fn no_module_names_a_higher_layer() {
    let g = graph();
    let up: Vec<String> = g
        .iter()
        .flat_map(|(m, to)| {
            to.iter()
                .filter(|t| layer(t) > layer(m))
                .map(move |t| format!("{m} -> {t}"))
        })
        .collect();
    assert_eq!(up, Vec::<String>::new(), "edges going up a layer");
}

/// Strongly connected components with more than one module (Tarjan).
fn cycles(g: &BTreeMap<String, BTreeSet<String>>) -> BTreeSet<BTreeSet<String>> {
    struct T<'a> {
        g: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on: BTreeSet<&'a str>,
        out: BTreeSet<BTreeSet<String>>,
    }
    fn visit<'a>(t: &mut T<'a>, v: &'a str) {
        let i = t.index.len();
        t.index.insert(v, i);
        t.low.insert(v, i);
        t.stack.push(v);
        t.on.insert(v);
        let g = t.g;
        for w in g.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !t.index.contains_key(w) {
                visit(t, w);
                let l = t.low[v].min(t.low[w]);
                t.low.insert(v, l);
            } else if t.on.contains(w) {
                let l = t.low[v].min(t.index[w]);
                t.low.insert(v, l);
            }
        }
        if t.low[v] == t.index[v] {
            let mut c = BTreeSet::new();
            while let Some(w) = t.stack.pop() {
                t.on.remove(w);
                c.insert(w.to_string());
                if w == v {
                    break;
                }
            }
            if c.len() > 1 {
                t.out.insert(c);
            }
        }
    }
    let mut t = T {
        g,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        out: BTreeSet::new(),
    };
    for v in g.keys() {
        if !t.index.contains_key(v.as_str()) {
            visit(&mut t, v);
        }
    }
    t.out
}

#[test]
fn the_only_cycles_are_the_named_ones() {
    let named: BTreeSet<BTreeSet<String>> = [
        // The kernel's recursion: bpf_obj_free_fields -> __bpf_obj_drop_impl ->
        // bpf_obj_free_fields.
        &["obj::free_fields", "obj::helpers"][..],
        // btf_put unpublishes the object from the IDR that lists it (btf_free_id;
        // both in kernel/bpf/btf.c): a published Btf points at its IDR.
        &["btf::object", "btf::registry"][..],
    ]
    .iter()
    .map(|c| c.iter().map(|s| s.to_string()).collect())
    .collect();
    assert_eq!(cycles(&graph()), named);
}

#[test]
fn every_per_task_state_uses_the_one_facade() {
    let ws = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    for d in [
        "kernel-core/src",
        "shim-std/src",
        "tests",
        "loom-tests",
        "bench",
    ] {
        rs_files(&ws.join(d), &mut files);
    }
    let canon = |p: &Path| std::fs::canonicalize(p).expect("canonical path");
    let facade = canon(&ws.join("kernel-core/src/sync/task.rs"));
    let this = canon(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/layers.rs"));
    // The loom harness's own bookkeeping (executions and WARNs per test thread) is
    // state of the OS thread that runs `loom::model`, not of a modelled task: under
    // loom the facade would give each model thread its own copy.
    let harness = canon(&ws.join("loom-tests/src/lib.rs"));
    let direct: Vec<String> = files
        .iter()
        .filter(|p| canon(p) != facade && canon(p) != this && canon(p) != harness)
        .filter(|p| code(&std::fs::read_to_string(p).expect("read")).contains("thread_local!"))
        .map(|p| p.display().to_string())
        .collect();
    // The scan sees the facade's own use (it would see any other).
    assert!(code(&std::fs::read_to_string(&facade).expect("read")).contains("thread_local"));
    assert_eq!(
        direct,
        Vec::<String>::new(),
        "thread_local! outside sync::task"
    );
}
