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

#[test]
fn fixtures_match_bpftool_type_for_type() {
    let objs = kptr_tests::fixture_objects();
    assert!(!objs.is_empty(), "no compiled fixtures under tests/fixtures/obj");
    if Command::new("bpftool").arg("version").output().is_err() {
        eprintln!("NOT RUN: bpftool is not installed");
        assert!(std::env::var("KPTR_REQUIRE_KERNEL").as_deref() != Ok("1"), "bpftool required");
        return;
    }
    let mut types = 0;
    for p in &objs {
        let data = std::fs::read(p).expect("read object");
        let obj = read_bpf_object(&data).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        // bpftool prints the .BTF as clang wrote it, DATASEC sizes and VAR offsets still
        // 0; the model reads the finalised copy (the kernel refuses a 0-size DATASEC),
        // so those two fields are compared with the ELF instead.
        let opts = ParseOpts { log_level: 0, resolve: false, sem: Semantics::V6_18 };
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
        for (x, y) in a.as_array().into_iter().flatten().zip(b.as_array().into_iter().flatten()) {
            assert_eq!(x, y, "{}", p.display());
            types += 1;
        }
        // The finalised BTF is what BPF_BTF_LOAD receives: it passes the verifier's
        // meta, resolve and type-tag passes (struct metas are judged elsewhere).
        kernel_core::btf::btf_parse(&obj.btf, 0, Semantics::V6_18)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    }
    eprintln!("{} objects, {types} types identical to bpftool's", objs.len());
}
