//! Shared pieces of the integration tests: a corpus of BTF blobs (valid and
//! malformed, written with the builder), and the fixture paths.

pub mod btf_corpus;
pub mod counts;
pub mod readme;

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

/// The fixtures kept out of every kernel run, by name: their layouts fire a kernel
/// WARN (and taint the kernel). The one place that lists them (with the other
/// exclusions below: [`CORPUS_NOT_LOADING`], [`UNREACHABLE_MAP_TYPES`]; and two of the
/// machine, each printed as `KERNEL ORACLE NOT RUN`: ARENA requests where
/// [`arena_refused`], the LRU eviction order where the machine has other than 2
/// possible CPUs, the model's count, in `htab_updates.rs`);
/// `tests/tests/fixture_manifest.rs` holds it equal to the sources' `KERNEL_SAFE: no`
/// headers and to the manifest.
pub const KERNEL_UNSAFE_FIXTURES: &[&str] = &[
    "list_head_res_spin_lock",
    "nested_two_spin_locks",
    "rb_root_res_spin_lock",
    "res_spin_lock_and_spin_lock",
    "spin_lock_and_res_spin_lock",
    "two_refcounts",
];

/// The corpus objects bpftool does not load (`bpftool prog loadall` fails: their source
/// headers say `LOADS: no` and why): a `__ksym` typed variable this kernel lacks, a map of
/// maps without `values`, three preset slots the kernel refuses by design, and inode
/// storage (LSM programs are refused here). Kept out of `bpftool_map_names.rs` only;
/// `tests/tests/fixture_manifest.rs` holds it equal to the headers.
pub const CORPUS_NOT_LOADING: &[&str] = &[
    "ksym_typed_var",
    "mim_no_values",
    "mim_slot_max_entries",
    "mim_slot_record_differs",
    "mim_slot_timer_vs_none",
    "stash_inode_storage",
];

/// Map types no probe program on this machine reaches: INODE_STORAGE
/// (`bpf_inode_storage_get` is for LSM programs, which this kernel refuses with EPERM).
/// Their maps are created and compared, their fields not judged
/// ([`counts::unreachable_map`]).
pub const UNREACHABLE_MAP_TYPES: &[u32] = &[kernel_core::map::BPF_MAP_TYPE_INODE_STORAGE];

/// Whether a fixture object may be given to the running kernel: it is not one of
/// [`KERNEL_UNSAFE_FIXTURES`]. Objects outside the fixtures (the corpus, scenario
/// objects) are written kernel-safe; their tests ask the model for WARNs first.
pub fn kernel_safe(obj: &std::path::Path) -> bool {
    obj.file_stem()
        .and_then(|s| s.to_str())
        .is_some_and(|n| !KERNEL_UNSAFE_FIXTURES.contains(&n))
}

/// One fixture as `fixtures/manifest.json` records it (from the source's header).
pub struct ManifestEntry {
    /// The fixture's name.
    pub name: String,
    /// `KERNEL_SAFE: yes`.
    pub kernel_safe: bool,
    /// The maps the header lists (datasec maps by section).
    pub maps: Vec<String>,
}

/// `fixtures/manifest.json`.
pub fn manifest() -> Vec<ManifestEntry> {
    let p = fixtures_dir().join("manifest.json");
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let v: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|e| ManifestEntry {
                    name: e["name"].as_str().unwrap_or_default().to_string(),
                    kernel_safe: e["kernel_safe"].as_bool().unwrap_or(false),
                    maps: e["expect"]["maps"]
                        .as_object()
                        .map(|m| m.keys().cloned().collect())
                        .unwrap_or_default(),
                })
                .collect()
        })
        .unwrap_or_default()
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
/// pointee is) and `value { struct node __kptr *n; }` (the fixture the loom models and
/// benches share, [`kernel_core::testing::kptr_prog`]).
pub fn local_kptr_btf() -> kernel_core::testing::KptrProg {
    kernel_core::testing::kptr_prog(kernel_core::testing::NodeField::SpinLock)
}

/// The program BTF the run-time tests share, over a kernel whose BTF is the embedded
/// vmlinux: `struct hnode { long key; struct bpf_spin_lock l; }` (a struct meta of its
/// own: v6.4 WARNs at the drop of a pointee without one) and three map values holding
/// a referenced kptr to it at +8.
pub struct RtProg {
    /// The loaded program BTF.
    pub btf: kernel_core::btf::BtfRef,
    /// `struct hnode`.
    pub node: u32,
    /// `struct plain { long pad; struct hnode __kptr *n; }` (16 bytes).
    pub plain: u32,
    /// `struct locked { struct bpf_spin_lock l; int data; struct hnode __kptr *n; }`.
    pub locked: u32,
    /// `struct timed { long pad; struct hnode __kptr *n; struct bpf_timer t; }` (32
    /// bytes, timer at 16; no lock: an LRU map takes none).
    pub timed: u32,
}

/// The embedded vmlinux as the kernel's BTF, with the kernel's kptr destructors
/// registered (a referenced kptr to a kernel type needs one).
pub fn kernel_with_dtors(
    sem: &kernel_core::Semantics,
) -> kernel_core::sync::Arc<kernel_core::btf::KernelBtfs> {
    use kernel_core::btf::{BtfIdr, KernelBtfs, btf_parse_vmlinux};
    use kernel_core::sync::{Arc, Rcu};
    let vm =
        btf_parse_vmlinux(&shim_std::kernel_btf::embedded_vmlinux(), true, *sem).expect("vmlinux");
    let k = KernelBtfs::new(BtfIdr::new(Arc::new(Rcu::new())), Some(vm)).expect("kernel BTFs");
    kernel_core::btf::dtors::register_kernel_dtors(&k, sem);
    Arc::new(k)
}

/// The kernel, a run-time (with the suite's allocation tally installed) and
/// [`RtProg`] under `sem`.
pub fn runtime(
    sem: kernel_core::Semantics,
) -> (
    kernel_core::sync::Arc<kernel_core::btf::KernelBtfs>,
    kernel_core::sync::Arc<kernel_core::obj::BpfRuntime>,
    RtProg,
) {
    use kernel_core::btf::builder::BtfBuilder;
    use kernel_core::btf::uapi::BTF_INT_SIGNED;
    use kernel_core::btf::{BtfIdr, KernelBtfs, btf_parse_vmlinux};
    use kernel_core::sync::{Arc, Rcu};
    shim_std::tally::install();
    let vm =
        btf_parse_vmlinux(&shim_std::kernel_btf::embedded_vmlinux(), true, sem).expect("vmlinux");
    let k = Arc::new(
        KernelBtfs::new(BtfIdr::new(Arc::new(Rcu::new())), Some(vm)).expect("kernel BTFs"),
    );
    let rt = kernel_core::obj::BpfRuntime::new(sem, Arc::clone(&k), Arc::clone(k.idr().rcu_arc()));
    let mut b = BtfBuilder::new();
    let int = b.int("int", 4, BTF_INT_SIGNED, 32);
    let long = b.int("long", 8, BTF_INT_SIGNED, 64);
    let lock = b.struct_("bpf_spin_lock", 4, &[("v", int, 0)]);
    let timer = b.struct_("bpf_timer", 16, &[("a", long, 0), ("b", long, 64)]);
    let node = b.struct_("hnode", 16, &[("key", long, 0), ("l", lock, 64)]);
    let t = b.type_tag("kptr", node);
    let p = b.ptr(t);
    let plain = b.struct_("plain", 16, &[("pad", long, 0), ("n", p, 64)]);
    let locked = b.struct_(
        "locked",
        16,
        &[("l", lock, 0), ("data", int, 32), ("n", p, 64)],
    );
    let timed = b.struct_(
        "timed",
        32,
        &[("pad", long, 0), ("n", p, 64), ("t", timer, 128)],
    );
    let (btf, _) =
        kernel_core::syscall::bpf_btf_load(&k, &b.build(), 0, &sem).expect("program BTF loads");
    let prog = RtProg {
        btf,
        node,
        plain,
        locked,
        timed,
    };
    (k, rt, prog)
}
