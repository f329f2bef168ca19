//! The counts the kernel comparisons must reach, derived through the model from the
//! files they count (the fixtures, the corpus, the scenarios): a comparison asserts it
//! compared exactly these, so a fixture added changes the expectation and a comparison
//! skipped fails.

use std::path::{Path, PathBuf};

use kernel_core::Semantics;
use shim_std::check::{FieldReport, MapReport, check_object_named};
use shim_std::kernel_btf::load_kernel_btfs;
use shim_std::libbpf::object_name;

/// The kernel-safe fixture objects (every fixture but [`crate::KERNEL_UNSAFE_FIXTURES`]).
pub fn kernel_safe_fixtures() -> Vec<PathBuf> {
    crate::fixture_objects()
        .into_iter()
        .filter(|p| crate::kernel_safe(p))
        .collect()
}

/// Whether no probe program on this machine reaches a map of this type
/// ([`crate::UNREACHABLE_MAP_TYPES`]).
pub fn unreachable_map(map_type: u32) -> bool {
    crate::UNREACHABLE_MAP_TYPES.contains(&map_type)
}

/// What the kernel comparisons of a set of objects must cover, as the model prepares
/// and checks them (`v6.18`).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Expected {
    /// Objects.
    pub objects: usize,
    /// Objects whose BTF the model loads.
    pub btf_loaded: usize,
    /// Their maps, in libbpf's order (a map of maps' inner template not counted).
    pub maps: usize,
    /// Maps of maps' inner templates.
    pub inner_templates: usize,
    /// Maps the model creates that a probe reaches (every created map but
    /// [`unreachable_map`]s): each judged field by field.
    pub probed_maps: usize,
    /// Their fields (a map of maps': its inner template's).
    pub probed_fields: usize,
    /// Of those, kptrs: all, the referenced ones with a local pointee, and those with a
    /// destructor.
    pub kptrs: (usize, usize, usize),
    /// Created maps no probe reaches, by `object/map`.
    pub unreachable: Vec<String>,
    /// Initial map-in-map slots, and those refused.
    pub slots: (usize, usize),
    /// libbpf externs of the objects the model opens.
    pub externs: usize,
}

fn stem(p: &Path) -> String {
    p.file_stem()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned()
}

fn fields_of(m: &MapReport) -> &[FieldReport] {
    match (&m.def.inner, &m.inner) {
        (Some(_), Some(i)) => &i.fields,
        _ => &m.fields,
    }
}

/// [`Expected`] for `objs`.
pub fn expected(objs: &[PathBuf]) -> Expected {
    let sem = Semantics::V6_18;
    let (kernel, _) = load_kernel_btfs(None, false, sem).expect("kernel BTF");
    let mut e = Expected {
        objects: objs.len(),
        ..Expected::default()
    };
    for p in objs {
        let bytes = std::fs::read(p).unwrap_or_else(|err| panic!("{}: {err}", p.display()));
        let name = object_name(&p.display().to_string());
        if let Ok(o) = shim_std::elf::read_bpf_object_named(&bytes, &name) {
            e.externs += o.externs.len();
        }
        let Ok(rep) = check_object_named(&kernel, &bytes, &name, &sem) else {
            continue;
        };
        if rep.btf_errno.is_some() {
            continue;
        }
        e.btf_loaded += 1;
        for m in &rep.maps {
            e.maps += 1;
            e.inner_templates += usize::from(m.inner.is_some());
            e.slots.0 += m.slots.len();
            e.slots.1 += m.slots.iter().filter(|s| s.2.is_some()).count();
            if m.errno.is_some() {
                continue;
            }
            if unreachable_map(m.def.map_type) {
                e.unreachable.push(format!("{}/{}", stem(p), m.def.name));
                continue;
            }
            e.probed_maps += 1;
            let f = fields_of(m);
            e.probed_fields += f.len();
            for k in f.iter().filter(|f| f.ty.contains("kptr")) {
                e.kptrs.0 += 1;
                // The kernel shows local only for a referenced kptr.
                e.kptrs.1 += usize::from(k.local == Some(true) && k.ty != "kptr_unref");
                e.kptrs.2 += usize::from(k.dtor.is_some());
            }
        }
    }
    e
}

/// The scenarios (`tests/scenarios/*.scn`), sorted.
pub fn scenarios() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "scn"))
        .collect();
    v.sort();
    v
}

/// Scenarios, their steps and their program steps, as the scenario files say.
pub fn scenario_steps() -> (usize, usize, usize) {
    let all = scenarios();
    let (mut steps, mut programs) = (0, 0);
    for p in &all {
        let sc = shim_std::run::load(p).unwrap_or_else(|e| panic!("{e}"));
        steps += sc.lines.len();
        programs += sc.lines.iter().filter(|l| l.step.is_program()).count();
    }
    (all.len(), steps, programs)
}

/// Whether the corpus object's source header says `LOADS: yes`.
pub fn header_says_loads(obj: &Path) -> bool {
    let src = obj.parent().and_then(|d| d.parent()).map(|d| {
        d.join("src")
            .join(obj.file_stem().unwrap_or_default())
            .with_extension("c")
    });
    src.and_then(|s| std::fs::read_to_string(s).ok())
        .is_some_and(|s| s.contains("LOADS: yes"))
}

/// The corpus objects bpftool loads: every one but [`crate::CORPUS_NOT_LOADING`].
pub fn corpus_loading() -> Vec<PathBuf> {
    crate::corpus_objects()
        .into_iter()
        .filter(|obj| !crate::CORPUS_NOT_LOADING.contains(&stem(obj).as_str()))
        .collect()
}
