//! Shared pieces of the integration tests: a corpus of BTF blobs (valid and
//! malformed, written with the builder), and the fixture paths.

pub mod btf_corpus;

use std::path::PathBuf;

/// `tests/fixtures`.
pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// Compiled BPF objects, sorted by name; a missing or empty `obj/` fails the test.
pub fn fixture_objects() -> Vec<PathBuf> {
    let dir = fixtures_dir().join("obj");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "o"))
        .collect();
    assert!(!v.is_empty(), "no fixture objects in {}", dir.display());
    v.sort();
    v
}

/// The corpus of real-shaped programs (`fixtures/corpus/obj/*.o`), sorted by name;
/// empty when the directory is absent.
pub fn corpus_objects() -> Vec<PathBuf> {
    let dir = fixtures_dir().join("corpus").join("obj");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
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

/// Why the running kernel refuses every `BPF_MAP_TYPE_ARENA` map, if it does
/// ([`shim_std::oracle::arena_refused`]).
pub fn arena_refused() -> Option<String> {
    shim_std::oracle::arena_refused()
}

/// Whether an object may be given to the running kernel: its source's header says
/// `KERNEL_SAFE: no` for layouts that fire a kernel WARN (and taint the kernel).
/// An object whose source cannot be read is treated as unsafe.
pub fn kernel_safe(obj: &std::path::Path) -> bool {
    let Some(stem) = obj.file_stem() else {
        return false;
    };
    let src = fixtures_dir().join("bpf").join(stem).with_extension("c");
    match std::fs::read_to_string(src) {
        Ok(s) => !s.contains("KERNEL_SAFE: no"),
        Err(_) => false,
    }
}

/// The mutation tests' starting points: the kernel-judged corpus, every kind, and the
/// BTF of every fixture object.
pub fn mutation_seeds() -> Vec<Vec<u8>> {
    let mut seeds: Vec<Vec<u8>> = btf_corpus::blobs().into_iter().map(|b| b.bytes).collect();
    seeds.push(btf_corpus::all_kinds());
    for p in fixture_objects() {
        if let Ok(o) = std::fs::read(&p)
            .map_err(|_| ())
            .and_then(|d| shim_std::elf::read_bpf_object(&d).map_err(|_| ()))
        {
            seeds.push(o.btf);
        }
    }
    seeds
}

/// A program BTF whose map value holds one local kptr: `node { long key; struct
/// bpf_spin_lock l; }` (the spin lock makes it a struct meta, as a local kptr's
/// pointee is) and `value { struct node __kptr *n; }`.
pub struct LocalKptrBtf {
    /// The raw BTF.
    pub blob: Vec<u8>,
    /// `int`, for an array map's key.
    pub int: u32,
    /// `struct node`.
    pub node: u32,
    /// `struct value` (8 bytes, the kptr at 0).
    pub value: u32,
}

/// Builds [`LocalKptrBtf`].
pub fn local_kptr_btf() -> LocalKptrBtf {
    use kernel_core::btf::builder::BtfBuilder;
    use kernel_core::btf::uapi::BTF_INT_SIGNED;
    let mut b = BtfBuilder::new();
    let int = b.int("int", 4, BTF_INT_SIGNED, 32);
    let long = b.int("long", 8, BTF_INT_SIGNED, 64);
    let lock = b.struct_("bpf_spin_lock", 4, &[("v", int, 0)]);
    let node = b.struct_("node", 16, &[("key", long, 0), ("l", lock, 64)]);
    let t = b.type_tag("kptr", node);
    let p = b.ptr(t);
    let value = b.struct_("value", 8, &[("n", p, 0)]);
    LocalKptrBtf {
        blob: b.build(),
        int,
        node,
        value,
    }
}
