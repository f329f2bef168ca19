//! The committed fixture objects are what their sources compile to: every
//! `tests/fixtures/bpf/*.c` and `tests/fixtures/corpus/src/*.c` is rebuilt with the
//! build scripts' exact command (`clang-19 -g -O2 -target bpf -c`, from the source
//! directory) into a temporary directory and compared with the committed object
//! section by section. The build directory is part of the
//! output (DWARF, and the file names of `.BTF.ext`'s line info in `.BTF`'s strings), so
//! the rebuild names the directory the committed object was built in
//! (`-fdebug-compilation-dir`, read back from the object's own `.BTF` strings) and debug
//! sections are left out. Every source has an object and every object a source.
//!
//! Without clang-19 the test says so and counts as not run; where the kernel
//! comparisons are required (`KPTR_REQUIRE_KERNEL`, as CI sets it) a missing clang-19
//! fails instead, since `scripts/setup.sh` installs it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use object::{Object, ObjectSection};

const CLANG: &str = "clang-19";

/// (section name, bytes) of every non-debug section with file contents.
fn sections(path: &Path) -> Result<BTreeMap<String, Vec<u8>>, String> {
    let data = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let file = object::File::parse(&*data).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = BTreeMap::new();
    for s in file.sections() {
        let name = s.name().map_err(|e| format!("{}: {e}", path.display()))?;
        if name.contains("debug") {
            continue;
        }
        let bytes = s
            .data()
            .map_err(|e| format!("{}: {name}: {e}", path.display()))?;
        out.insert(name.to_owned(), bytes.to_vec());
    }
    Ok(out)
}

/// The directory `name.c` was compiled in, from the path `.BTF`'s strings record for
/// it (line info keeps the absolute source path).
fn build_dir(obj: &Path, name: &str) -> Option<String> {
    let secs = sections(obj).ok()?;
    let btf = secs.get(".BTF")?;
    let rd = |o: usize| Some(u32::from_ne_bytes(btf.get(o..o + 4)?.try_into().ok()?) as usize);
    let (hdr_len, str_off, str_len) = (rd(4)?, rd(16)?, rd(20)?);
    let strs = btf.get(hdr_len + str_off..hdr_len + str_off + str_len)?;
    let suffix = format!("/{name}.c");
    strs.split(|&c| c == 0)
        .filter_map(|s| std::str::from_utf8(s).ok())
        .find_map(|s| s.strip_suffix(&suffix).map(str::to_owned))
}

fn names(dir: &Path, ext: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let p = e.path();
            (p.extension()? == ext).then(|| p.file_stem()?.to_str().map(str::to_owned))?
        })
        .collect();
    v.sort();
    v
}

fn clang_missing() -> bool {
    if Command::new(CLANG).arg("--version").output().is_err() {
        assert!(
            !shim_std::oracle::kernel_required(),
            "{CLANG} is missing where the comparisons are required (scripts/setup.sh installs it)"
        );
        eprintln!("NOT RUN: {CLANG} not found; the fixture objects were not rebuilt");
        return true;
    }
    false
}

#[test]
fn fixture_objects_are_what_their_sources_compile_to() {
    if clang_missing() {
        return;
    }
    let dir = kptr_tests::fixtures_dir();
    rebuild_and_compare(
        &dir.join("bpf"),
        &dir.join("obj"),
        100,
        "tests/fixtures/build.sh",
    );
}

#[test]
fn corpus_objects_are_what_their_sources_compile_to() {
    if clang_missing() {
        return;
    }
    let dir = kptr_tests::fixtures_dir().join("corpus");
    rebuild_and_compare(
        &dir.join("src"),
        &dir.join("obj"),
        60,
        "tests/fixtures/corpus/build.sh",
    );
}

#[test]
fn scenario_objects_are_what_their_sources_compile_to() {
    if clang_missing() {
        return;
    }
    let dir = kptr_tests::fixtures_dir().join("../scenarios/bpf");
    rebuild_and_compare(&dir, &dir.join("obj"), 8, "tests/scenarios/build.sh");
}

/// Rebuilds every `src_dir/*.c` as the build script does and compares it with
/// `obj_dir`; at least `min` sources.
fn rebuild_and_compare(src_dir: &Path, obj_dir: &Path, min: usize, script: &str) {
    let (src_dir, obj_dir) = (src_dir.to_path_buf(), obj_dir.to_path_buf());
    let srcs = names(&src_dir, "c");
    let objs = names(&obj_dir, "o");
    assert!(srcs.len() >= min, "{} sources", srcs.len());
    assert_eq!(
        srcs, objs,
        "every source has an object and every object a source"
    );

    let out = std::env::temp_dir().join(format!(
        "kptr-fixtures-{}-{}",
        std::process::id(),
        srcs.len()
    ));
    std::fs::create_dir_all(&out).expect("temporary directory");
    // Two compilers at a time (the machines have two cores).
    let halves: Vec<Vec<String>> = vec![
        srcs.iter().step_by(2).cloned().collect(),
        srcs.iter().skip(1).step_by(2).cloned().collect(),
    ];
    let failures: Vec<String> = std::thread::scope(|sc| {
        let jobs: Vec<_> = halves
            .iter()
            .map(|part| {
                let (src_dir, obj_dir, out) = (&src_dir, &obj_dir, &out);
                sc.spawn(move || {
                    let mut bad = Vec::new();
                    for n in part {
                        let built: PathBuf = out.join(format!("{n}.o"));
                        let committed = obj_dir.join(format!("{n}.o"));
                        let mut cmd = Command::new(CLANG);
                        if let Some(d) = build_dir(&committed, n) {
                            cmd.arg(format!("-fdebug-compilation-dir={d}"));
                        }
                        let st = cmd
                            .current_dir(src_dir)
                            .args(["-g", "-O2", "-target", "bpf", "-c"])
                            .arg(format!("{n}.c"))
                            .arg("-o")
                            .arg(&built)
                            .status();
                        if !st.is_ok_and(|s| s.success()) {
                            bad.push(format!("{n}.c does not compile"));
                            continue;
                        }
                        match (sections(&built), sections(&committed)) {
                            (Ok(a), Ok(b)) if a == b => {}
                            (Ok(a), Ok(b)) => {
                                let differ: std::collections::BTreeSet<&String> = a
                                    .keys()
                                    .chain(b.keys())
                                    .filter(|k| a.get(*k) != b.get(*k))
                                    .collect();
                                bad.push(format!("{n}.o: sections differ: {differ:?}"));
                            }
                            (Err(e), _) | (_, Err(e)) => bad.push(e),
                        }
                    }
                    bad
                })
            })
            .collect();
        jobs.into_iter()
            .flat_map(|j| {
                j.join()
                    .unwrap_or_else(|_| vec!["a compile thread panicked".into()])
            })
            .collect()
    });
    let _ = std::fs::remove_dir_all(&out);
    assert!(
        failures.is_empty(),
        "{} of {} objects differ from their sources (run {script}):\n{}",
        failures.len(),
        srcs.len(),
        failures.join("\n")
    );
    eprintln!(
        "{} objects of {} rebuilt and equal to the committed ones",
        srcs.len(),
        obj_dir.display()
    );
}
