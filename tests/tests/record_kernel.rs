//! The running kernel as judge of records: for every kernel-safe fixture object, the
//! BTF-load errno and each map's create errno equal the model's `v6.18` answer.

use std::os::fd::AsFd;

use kernel_core::Semantics;
use shim_std::check::check_object;
use shim_std::elf::read_bpf_object;
use shim_std::kernel_btf::load_kernel_btfs;
use shim_std::oracle;

#[test]
fn btf_load_and_map_create_match_the_kernel() {
    use kptr_tests::readme::{n, states};
    let want = kptr_tests::counts::expected(&kptr_tests::counts::kernel_safe_fixtures());
    states(&format!(
        "`tests/tests/record_kernel.rs`: {} kernel-safe objects, {} maps",
        n(want.objects),
        n(want.maps)
    ));
    if kptr_tests::kernel_skip("BTF load and map create of the fixtures") {
        return;
    }
    let sem = Semantics::V6_18;
    let (kernel, _) = load_kernel_btfs(None, false, sem).expect("kernel BTF");
    let mut mismatches = Vec::new();
    let (mut objs, mut maps, mut unmodelled) = (0, 0, 0);
    let manifest = kptr_tests::manifest();
    // What the counts must be, from the files and the manifest: every kernel-safe
    // fixture, and every map its header lists wherever the kernel loads its BTF.
    let mut want_maps = 0;
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
        objs += 1;
        let k = oracle::btf_load(&obj.btf);
        let m = rep.btf_errno.map(|e| e.raw());
        if k.errno != m {
            mismatches.push(format!(
                "{name}: BTF load kernel {:?} model {:?}",
                k.errno, m
            ));
            continue;
        }
        if k.errno.is_some() {
            continue;
        }
        want_maps += manifest
            .iter()
            .find(|e| e.name == name)
            .map_or(0, |e| e.maps.len());
        let fd = oracle::btf_load_fd(&obj.btf).expect("BTF loads");
        for mr in &rep.maps {
            let kname = mr.def.kernel_name();
            let req = mr.def.oracle_request(fd.as_fd(), &kname);
            let kr = oracle::map_create(&req).err();
            let mr_e = mr.errno.map(|e| e.raw());
            maps += 1;
            if kr != mr_e {
                if mr.modelled {
                    mismatches.push(format!(
                        "{name}/{}: map create kernel {kr:?} model {mr_e:?}",
                        mr.def.name
                    ));
                } else {
                    unmodelled += 1;
                    eprintln!(
                        "(unmodelled map type) {name}/{}: kernel {kr:?} model {mr_e:?}",
                        mr.def.name
                    );
                }
            }
        }
    }
    eprintln!(
        "{objs} objects, {maps} maps compared; {unmodelled} differences on unmodelled map types"
    );
    let want_objs = kptr_tests::fixture_objects().len() - kptr_tests::KERNEL_UNSAFE_FIXTURES.len();
    assert_eq!(
        (objs, maps),
        (want_objs, want_maps),
        "objects and maps compared, against the fixtures on disk and the manifest"
    );
    assert_eq!(
        (objs, maps),
        (want.objects, want.maps),
        "objects and maps compared, against the model's preparation of the fixtures"
    );
    assert!(
        mismatches.is_empty(),
        "{} mismatches:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}
