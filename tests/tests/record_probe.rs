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

/// Map types whose values a probe program on any 6.18 machine reaches (the rest need a
/// program type the machine may refuse, or have no route at all).
fn must_judge(map_type: u32) -> bool {
    matches!(
        map_type,
        1 | 2 | 5 | 6 | 9 | 10 | 11 | 19 | 21 | 24 | 29 | 32
    )
}

#[test]
fn recorded_fields_match_the_verifier() {
    if kptr_tests::kernel_skip("verifier probes of the recorded fields") {
        return;
    }
    let sem = Semantics::V6_18;
    let (kernel, _) = load_kernel_btfs(None, false, sem).expect("kernel BTF");
    let mut failures = Vec::new();
    let (mut maps, mut fields, mut programs) = (0u32, 0usize, 0u32);
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
                ..ProbeTarget::from_def(mfd.as_fd(), &mr.def)
            };
            let j = judge_fields(&target, &mr.fields);
            programs += j.programs;
            match &j.status {
                Status::Judged => {
                    maps += 1;
                    fields += j.fields.len() + j.kernel_only.len();
                    for d in j.differences() {
                        failures.push(format!("{what}: {d}"));
                    }
                }
                Status::NotJudged(r) if !must_judge(mr.def.map_type) => {
                    not_judged.push(format!("{what}: {r}"));
                }
                Status::NotJudged(r) | Status::ProbeError(r) => {
                    failures.push(format!("{what}: not judged: {r}"));
                }
            }
        }
    }
    eprintln!(
        "{maps} maps judged, {fields} fields judged by the verifier ({programs} probe \
         programs); {} maps not judged:",
        not_judged.len()
    );
    for n in &not_judged {
        eprintln!("  {n}");
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        maps > 150 && fields > 190,
        "only {maps} maps and {fields} fields judged"
    );
}
