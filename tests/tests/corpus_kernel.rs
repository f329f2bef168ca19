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

#[test]
fn every_corpus_object_agrees_with_the_kernel() {
    use kptr_tests::readme::{n, states};
    let objs = kptr_tests::corpus_objects();
    assert!(!objs.is_empty(), "no corpus objects");
    // What the comparison must cover, from the corpus on disk through the model.
    let want = kptr_tests::counts::expected(&objs);
    states(&format!(
        "`tests/tests/corpus_kernel.rs`: {} objects, {} maps, {} fields ({} kptrs; {} referenced ones local, {} with a destructor), {} preset slots ({} refused",
        n(want.objects),
        n(want.maps + want.inner_templates),
        n(want.probed_fields),
        n(want.kptrs.0),
        n(want.kptrs.1),
        n(want.kptrs.2),
        n(want.slots.0),
        n(want.slots.1)
    ));
    if kptr_tests::kernel_skip("corpus against the kernel") {
        return;
    }
    let (kernel, _) = load_kernel_btfs(None, false, Semantics::V6_18).expect("kernel BTF");
    let mut failures = Vec::new();
    let (mut compared, mut maps, mut judged_maps, mut fields) = (0, 0, 0, 0);
    let mut unjudged = Vec::new();
    let mut slots = (0, 0);
    let mut kptrs = (0, 0, 0);
    // Referenced local kptrs taking a bpf_obj_new object of their pointee, and not.
    let mut new_objects = (0, 0);
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
                    eprintln!("not judged: {} {}: {r}", p.display(), m.name);
                    unjudged.push(m.name.clone());
                }
                _ => {}
            }
        }
        fields += cmp.fields_judged();
        for k in cmp
            .maps
            .iter()
            .filter_map(|m| m.fields.as_ref())
            .flat_map(|j| &j.fields)
            .filter_map(|v| v.kernel.as_ref()?.kptr)
        {
            kptrs.0 += 1;
            kptrs.1 += usize::from(k.local == Some(true));
            kptrs.2 += usize::from(k.has_dtor());
            if k.local == Some(true) {
                new_objects.0 += usize::from(k.takes_new_object == Some(true));
                new_objects.1 += usize::from(k.takes_new_object != Some(true));
            }
        }
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
    let unreachable: Vec<String> = want
        .unreachable
        .iter()
        .map(|u| u.rsplit('/').next().unwrap_or_default().to_string())
        .collect();
    assert_eq!(unjudged, unreachable, "the maps no probe reaches here");
    assert_eq!(
        (maps, judged_maps, fields, slots, kptrs),
        (
            want.maps + want.inner_templates,
            want.probed_maps,
            want.probed_fields,
            want.slots,
            want.kptrs
        ),
        "maps (inner templates too), maps judged, fields judged, preset slots (all, refused), kptrs (all, referenced local, with a destructor), against the model's records of the corpus"
    );
    assert_eq!(
        new_objects,
        (want.kptrs.1, 0),
        "every referenced local kptr takes a bpf_obj_new object of its pointee"
    );
}
