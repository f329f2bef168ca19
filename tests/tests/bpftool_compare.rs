//! The project's BPF objects (compiled by clang-19) load, and the model reads their
//! `.BTF` exactly as `bpftool btf dump file X.o` does, type for type.

use std::process::Command;

use kernel_core::Semantics;
use kernel_core::btf::{ParseOpts, btf_verify};
use shim_std::dump::types_json;
use shim_std::elf::read_bpf_object;

fn bpftool_json(path: &std::path::Path) -> Option<serde_json::Value> {
    let o = Command::new("bpftool")
        .args(["-j", "btf", "dump", "file"])
        .arg(path)
        .output()
        .ok()?;
    if !o.status.success() {
        return None;
    }
    serde_json::from_slice(&o.stdout).ok()
}

/// The model's `types` array of the object's finalised `.BTF` (as `types_json` prints it).
fn model_types(p: &std::path::Path) -> serde_json::Value {
    let data = std::fs::read(p).expect("read object");
    let obj = read_bpf_object(&data).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let opts = ParseOpts {
        log_level: 0,
        resolve: false,
        sem: Semantics::V6_18,
    };
    let (raw, _) = btf_verify(obj.btf.into_boxed_slice(), None, &opts)
        .unwrap_or_else(|e| panic!("{}: finalised .BTF: {e}", p.display()));
    types_json(&raw)["types"].clone()
}

#[test]
fn fixtures_match_bpftool_type_for_type() {
    let objs = kptr_tests::fixture_objects();
    assert!(
        !objs.is_empty(),
        "no compiled fixtures under tests/fixtures/obj"
    );
    // The objects on disk and their types, as the model reads them (bpftool's count is
    // held equal to it object by object below).
    let want_types: usize = objs
        .iter()
        .map(|p| model_types(p).as_array().map_or(0, Vec::len))
        .sum();
    kptr_tests::readme::states(&format!(
        "`tests/tests/bpftool_compare.rs` ({} objects, {} types)",
        kptr_tests::readme::n(objs.len()),
        kptr_tests::readme::n(want_types)
    ));
    if Command::new("bpftool").arg("version").output().is_err() {
        eprintln!("NOT RUN: bpftool is not installed");
        assert!(
            std::env::var("KPTR_REQUIRE_KERNEL").as_deref() != Ok("1"),
            "bpftool required"
        );
        return;
    }
    let mut types = 0;
    let mut verdicts = Vec::new();
    for p in &objs {
        let data = std::fs::read(p).expect("read object");
        let obj = read_bpf_object(&data).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        // bpftool prints the .BTF as clang wrote it, DATASEC sizes and VAR offsets still
        // 0; the model reads the finalised copy (the kernel refuses a 0-size DATASEC),
        // so those two fields are compared with the ELF instead.
        let opts = ParseOpts {
            log_level: 0,
            resolve: false,
            sem: Semantics::V6_18,
        };
        let (raw, _) = btf_verify(obj.btf.clone().into_boxed_slice(), None, &opts)
            .unwrap_or_else(|e| panic!("{}: finalised .BTF: {e}", p.display()));
        let mut ours = types_json(&raw);
        for t in ours["types"].as_array_mut().into_iter().flatten() {
            if t["kind"] == "DATASEC" {
                let sec = t["name"].as_str().unwrap_or_default().to_string();
                assert_eq!(
                    t["size"].as_u64(),
                    obj.section_sizes.get(&sec).copied(),
                    "{}: DATASEC {sec} size",
                    p.display()
                );
                t["size"] = 0.into();
                for v in t["vars"].as_array_mut().into_iter().flatten() {
                    v["offset"] = 0.into();
                }
            }
        }
        let theirs = bpftool_json(p).unwrap_or_else(|| panic!("bpftool failed on {}", p.display()));
        let (a, b) = (&ours["types"], &theirs["types"]);
        assert_eq!(
            a.as_array().map(Vec::len),
            b.as_array().map(Vec::len),
            "{}: type count",
            p.display()
        );
        for (x, y) in a
            .as_array()
            .into_iter()
            .flatten()
            .zip(b.as_array().into_iter().flatten())
        {
            assert_eq!(x, y, "{}", p.display());
            types += 1;
        }
        verdicts.push((p.clone(), obj.btf));
    }
    eprintln!(
        "{} objects, {types} types identical to bpftool's",
        objs.len()
    );
    assert_eq!(types, want_types, "every type compared");
    if kptr_tests::kernel_skip("BPF_BTF_LOAD of the fixture objects") {
        return;
    }
    // The finalised BTF is what BPF_BTF_LOAD receives. Where the verifier passes
    // (header, metas, resolve, type tags) fail, the model's errno and log must be the
    // kernel's; a kernel refusal the verifier does not explain comes from struct metas.
    let mut same = 0;
    let mut metas = Vec::new();
    let mut kept_out = Vec::new();
    for (p, btf) in verdicts {
        if !kptr_tests::kernel_safe(&p) {
            kept_out.push(p.display().to_string());
            continue;
        }
        let k = shim_std::oracle::btf_load(&btf);
        match kernel_core::btf::btf_parse_with_log(&btf, 1, Semantics::V6_18) {
            Ok((_, log)) if k.errno.is_none() => {
                assert_eq!(log, k.log, "{}", p.display());
                same += 1;
            }
            Ok(_) => metas.push(format!("{} ({:?})", p.display(), k.errno)),
            Err(e) => {
                assert_eq!(Some(e.errno.raw()), k.errno, "{}", p.display());
                assert_eq!(e.log, k.log, "{}", p.display());
                same += 1;
            }
        }
    }
    eprintln!("{same} objects: same BTF-load verdict and log as the kernel");
    eprintln!("kept out of the kernel (KERNEL_SAFE: no): {kept_out:?}");
    let mut names: Vec<String> = kept_out
        .iter()
        .filter_map(|p| {
            std::path::Path::new(p)
                .file_stem()?
                .to_str()
                .map(str::to_string)
        })
        .collect();
    names.sort();
    assert_eq!(
        names,
        kptr_tests::KERNEL_UNSAFE_FIXTURES,
        "kept out of the kernel"
    );
    assert_eq!(
        same + metas.len() + kept_out.len(),
        kptr_tests::fixture_objects().len(),
        "every fixture: compared, refused by struct metas, or kept out"
    );
    eprintln!(
        "{} refused by the kernel's struct-meta pass: {metas:?}",
        metas.len()
    );
}
