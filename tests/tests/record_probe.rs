//! Which fields the kernel recorded, read from the verifier's refusals
//! (`shim_std::field_probe`): for every map of the kernel-safe fixtures, every field of
//! the value, at any offset, is judged against the model's `v6.18` record (type, offset,
//! and for kptrs the pointee's name, for uptrs its size). A BTF load or map creation that
//! one side refuses and the other accepts is a failure; a map whose values no program on
//! this machine can reach is reported with the reason.

use std::os::fd::AsFd;

use kernel_core::Semantics;
use kernel_core::map::map_type_name;
use kernel_core::syscall::bpf_btf_load;
use shim_std::check::check_object;
use shim_std::elf::read_bpf_object;
use shim_std::field_probe::{ProbeTarget, Status, judge_fields};
use shim_std::kernel_btf::load_kernel_btfs;
use shim_std::oracle;

#[test]
fn recorded_fields_match_the_verifier() {
    use kptr_tests::readme::{n, states};
    // What the probes must judge, from the fixtures through the model: every map it
    // creates but those no probe reaches here, every field of them.
    let want = kptr_tests::counts::expected(&kptr_tests::counts::kernel_safe_fixtures());
    states(&format!(
        "`tests/tests/record_probe.rs`: verifier probes of {} maps, {} fields ({} kptrs; {} referenced ones local, {} with a destructor)",
        n(want.probed_maps),
        n(want.probed_fields),
        n(want.kptrs.0),
        n(want.kptrs.1),
        n(want.kptrs.2)
    ));
    states(&format!(
        "every map the model creates but the {} INODE_STORAGE maps",
        n(want.unreachable.len())
    ));
    if kptr_tests::kernel_skip("verifier probes of the recorded fields") {
        return;
    }
    let sem = Semantics::V6_18;
    let (kernel, _) = load_kernel_btfs(None, false, sem).expect("kernel BTF");
    let mut failures = Vec::new();
    let (mut maps, mut fields, mut programs) = (0usize, 0usize, 0u32);
    let mut kptrs = (0usize, 0usize, 0usize);
    // Local kptrs: a new object of the pointee taken, refused, not asked.
    let mut new_objects = (0usize, 0usize, 0usize);
    let mut not_judged = Vec::new();
    for p in kptr_tests::fixture_objects() {
        if !kptr_tests::kernel_safe(&p) {
            continue;
        }
        let bytes = std::fs::read(&p).expect("read");
        let name = p
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let rep = check_object(&kernel, &bytes, &sem).expect("object");
        let obj = read_bpf_object(&bytes).expect("object");
        let btf_fd = match (rep.btf_errno, oracle::btf_load_fd(&obj.btf)) {
            (None, Ok(fd)) => fd,
            (Some(_), Err(_)) => continue,
            (m, k) => {
                failures.push(format!(
                    "{name}: BTF load: model {m:?}, kernel {:?}",
                    k.err()
                ));
                continue;
            }
        };
        let model_btf = bpf_btf_load(&kernel, &obj.btf, 0, &sem)
            .map(|(b, _)| b)
            .expect("the model loaded this BTF once already");
        for mr in &rep.maps {
            let kname = mr.def.kernel_name();
            let req = mr.def.oracle_request(btf_fd.as_fd(), &kname);
            let what = format!(
                "{name}/{} ({})",
                mr.def.name,
                map_type_name(mr.def.map_type)
            );
            let mfd = match (mr.errno, oracle::map_create(&req)) {
                (None, Ok(fd)) => fd,
                (Some(_), Err(_)) => continue,
                (m, k) => {
                    failures.push(format!(
                        "{what}: map create: model {:?}, kernel {:?}",
                        m.map(|e| e.raw()),
                        k.err()
                    ));
                    continue;
                }
            };
            let target = ProbeTarget {
                prog_btf: Some(model_btf.data()),
                btf_fd: Some(btf_fd.as_fd()),
                ..ProbeTarget::from_def(mfd.as_fd(), &mr.def)
            };
            let j = judge_fields(&target, &mr.fields);
            programs += j.programs;
            match &j.status {
                Status::Judged => {
                    maps += 1;
                    fields += j.fields.len() + j.kernel_only.len();
                    for k in j.fields.iter().filter_map(|v| v.kernel.as_ref()?.kptr) {
                        kptrs.0 += 1;
                        kptrs.1 += usize::from(k.local == Some(true));
                        kptrs.2 += usize::from(k.has_dtor());
                        if k.local == Some(true) {
                            match k.takes_new_object {
                                Some(true) => new_objects.0 += 1,
                                Some(false) => new_objects.1 += 1,
                                None => new_objects.2 += 1,
                            }
                        }
                    }
                    for d in j.differences() {
                        failures.push(format!("{what}: {d}"));
                    }
                }
                Status::NotJudged(r) if kptr_tests::counts::unreachable_map(mr.def.map_type) => {
                    eprintln!("not judged: {what}: {r}");
                    not_judged.push(format!("{name}/{}", mr.def.name));
                }
                Status::NotJudged(r) | Status::ProbeError(r) => {
                    failures.push(format!("{what}: not judged: {r}"));
                }
            }
        }
    }
    eprintln!(
        "{maps} maps judged, {fields} fields judged by the verifier ({programs} probe \
         programs; kptrs: {kptrs:?}; local kptrs taking a new object, refusing it, not asked: {new_objects:?}); {} maps not judged",
        not_judged.len()
    );
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(
        (maps, fields, kptrs),
        (want.probed_maps, want.probed_fields, want.kptrs),
        "maps, fields and kptrs (all, local, with a destructor) judged, against the model's records of the fixtures"
    );
    assert_eq!(
        not_judged, want.unreachable,
        "the maps no probe reaches here"
    );
    assert_eq!(
        new_objects,
        (want.kptrs.1, 0, 0),
        "every referenced local kptr takes a bpf_obj_new object of its pointee"
    );
}
