//! Shared pieces of the integration tests: a corpus of BTF blobs (valid and
//! malformed, written with the builder), and the fixture paths.

pub mod btf_corpus;

use std::path::PathBuf;

/// `tests/fixtures`.
pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// Compiled BPF objects, sorted by name.
pub fn fixture_objects() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(fixtures_dir().join("obj"))
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "o"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Says loudly that a kernel comparison did not run; fails when the kernel is
/// required (`KPTR_REQUIRE_KERNEL=1`). Returns true when the caller must skip.
pub fn kernel_skip(what: &str) -> bool {
    match shim_std::oracle::unavailable_reason() {
        None => false,
        Some(r) => {
            eprintln!("KERNEL ORACLE NOT RUN ({what}): {r}");
            if shim_std::oracle::kernel_required() {
                panic!(
                    "the kernel comparison '{what}' is required (KPTR_REQUIRE_KERNEL=1) but cannot run: {r}"
                );
            }
            true
        }
    }
}
