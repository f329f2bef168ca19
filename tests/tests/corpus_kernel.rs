//! The corpus of real-shaped programs (`tests/fixtures/corpus`, written as kernel
//! developers write them: `__ksym` kfuncs, `__kconfig`, map-in-map, private sections,
//! every map type that holds special fields) judged by the running kernel, as
//! `check --kernel` judges it: BTF load as libbpf prepares it, every map as libbpf
//! creates it, every field by verifier probes. All must agree. A map the probes
//! cannot reach on this machine (INODE_STORAGE: LSM programs are refused here) is
//! counted apart with its reason, and only such maps may go unjudged.

use kernel_core::Semantics;
use shim_std::compare::{Verdict, compare_with_kernel};
use shim_std::field_probe::Status;
use shim_std::kernel_btf::load_kernel_btfs;
use shim_std::libbpf::object_name;

/// What a map the probes cannot reach here is called.
const INODE_STORAGE: &str = "inode";
/// Maps of the committed corpus (inner templates counted), those judged field by
/// field, and their fields.
const CORPUS_MAPS: usize = 154;
const CORPUS_JUDGED_MAPS: usize = 138;
const CORPUS_FIELDS: usize = 149;
/// Initial slots of maps of maps stored by libbpf's updates, and those the kernel
/// refuses (`bpf_map_meta_equal`).
const CORPUS_SLOTS: (usize, usize) = (11, 3);

#[test]
fn every_corpus_object_agrees_with_the_kernel() {
    if kptr_tests::kernel_skip("corpus against the kernel") {
        return;
    }
    let objs = kptr_tests::corpus_objects();
    assert!(objs.len() >= 60, "only {} corpus objects", objs.len());
    let (kernel, _) = load_kernel_btfs(None, false, Semantics::V6_18).expect("kernel BTF");
    let mut failures = Vec::new();
    let (mut compared, mut maps, mut judged_maps, mut fields) = (0, 0, 0, 0);
    let mut unjudged = Vec::new();
    let mut slots = (0, 0);
    for p in &objs {
        let bytes = std::fs::read(p).expect("object");
        let name = object_name(&p.display().to_string());
        let cmp = match compare_with_kernel(&kernel, &bytes, &name) {
            Ok(c) => c,
            Err(e) => {
                failures.push(format!("{}: {e}", p.display()));
                continue;
            }
        };
        if let Some(r) = &cmp.not_asked {
            failures.push(format!("{}: not asked: {r}", p.display()));
            continue;
        }
        compared += 1;
        if cmp.differences() != 0 {
            failures.push(format!("{}:\n  {}", p.display(), cmp.lines().join("\n  ")));
        }
        for m in &cmp.maps {
            maps += 1;
            if matches!(m.verdict, Verdict::NotSent(_) | Verdict::NotCompared(_)) {
                failures.push(format!("{}: map {} {:?}", p.display(), m.name, m.verdict));
            }
            match m.fields.as_ref().map(|j| &j.status) {
                Some(Status::Judged) => judged_maps += 1,
                Some(Status::NotJudged(r)) => {
                    unjudged.push(format!("{} {}: {r}", p.display(), m.name))
                }
                _ => {}
            }
        }
        fields += cmp.fields_judged();
        for (_, _, _, ke) in cmp.maps.iter().flat_map(|m| &m.slots) {
            slots.0 += 1;
            slots.1 += usize::from(ke.is_some());
        }
    }
    eprintln!(
        "corpus: {compared} objects agree with the kernel: BTF load, {maps} maps, {judged_maps} maps judged field by field, {fields} fields, {} initial map-in-map slots ({} refused by both); not judged here: {unjudged:#?}",
        slots.0, slots.1
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(compared, objs.len(), "every corpus object compared");
    for u in &unjudged {
        assert!(
            u.contains(INODE_STORAGE) || u.contains("no program a pointer"),
            "a map left unjudged for a reason of the object: {u}"
        );
    }
    // The corpus as committed: a change of the corpus changes these on purpose.
    assert_eq!(
        (maps, judged_maps, fields, unjudged.len()),
        (CORPUS_MAPS, CORPUS_JUDGED_MAPS, CORPUS_FIELDS, 1),
        "maps, maps judged, fields judged, maps not judged"
    );
    assert_eq!(slots, CORPUS_SLOTS, "initial slots, refused");
}
