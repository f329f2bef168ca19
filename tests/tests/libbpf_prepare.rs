//! The model prepares objects exactly as libbpf does: for every kernel-safe fixture and
//! corpus object, the installed libbpf (`tests/libbpf/prepare.c`, built here against
//! libbpf-dev) opens and loads the object with every program's autoload off, and the
//! kernel reports the BTF bytes it received and every map it created. The model's
//! prepared `.BTF` must equal those bytes, and its maps must carry the kernel's names
//! (libbpf's internal map names: what `bpftool map list` shows) and attributes, in
//! libbpf's order. Objects libbpf refuses must be refused by the model with libbpf's
//! errno.
//!
//! An object the model sees raise a kernel WARN is never given to libbpf.

use std::path::{Path, PathBuf};
use std::process::Command;

use kernel_core::Semantics;
use serde_json::Value;
use shim_std::check::check_object_named;
use shim_std::elf::read_bpf_object_named;
use shim_std::kernel_btf::load_kernel_btfs;
use shim_std::libbpf::object_name;

/// `BPF_F_RDONLY`, `BPF_F_WRONLY`.
const BPF_F_RDONLY: u32 = 1 << 3;
const BPF_F_WRONLY: u32 = 1 << 4;

/// Builds `tests/libbpf/prepare.c` (cc and pkg-config's libbpf flags).
fn build_prepare() -> Result<PathBuf, String> {
    let src = kptr_tests::fixtures_dir().join("../libbpf/prepare.c");
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("libbpf-prepare");
    let flags = Command::new("pkg-config")
        .args(["--cflags", "--libs", "libbpf"])
        .output()
        .map_err(|e| format!("pkg-config: {e}"))?;
    if !flags.status.success() {
        return Err("pkg-config knows no libbpf (apt-get install libbpf-dev)".into());
    }
    let flags = String::from_utf8_lossy(&flags.stdout).to_string();
    let st = Command::new("cc")
        .arg("-O1")
        .arg("-o")
        .arg(&out)
        .arg(&src)
        .args(flags.split_whitespace())
        .status()
        .map_err(|e| format!("cc: {e}"))?;
    if !st.success() {
        return Err(format!("cc failed on {}", src.display()));
    }
    Ok(out)
}

fn libbpf_verdict(prep: &Path, obj: &Path) -> Value {
    // Only objects the model has checked for kernel WARNs get here.
    let out = Command::new(prep)
        .env("KPTR_PREPARE_CHECKED", "1")
        .arg(obj)
        .output()
        .expect("run prepare");
    assert!(out.status.success(), "prepare {}: {:?}", obj.display(), out);
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("prepare {}: {e}: {:?}", obj.display(), out.stdout))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Whether the model raises a kernel WARN for `obj` (then it is not sent).
fn model_warns(obj: &[u8], name: &str) -> bool {
    let (kernel, _) = load_kernel_btfs(None, false, Semantics::V6_18).expect("kernel btf");
    let before = kernel_core::sync::warn::warn_count();
    let _ = check_object_named(&kernel, obj, name, &Semantics::V6_18);
    kernel_core::sync::warn::warn_count() != before
}

#[test]
fn model_prepares_objects_as_libbpf_does() {
    use kptr_tests::readme::{n, states};
    let mut on_disk = kptr_tests::counts::kernel_safe_fixtures();
    on_disk.extend(kptr_tests::corpus_objects());
    let want_all = kptr_tests::counts::expected(&on_disk);
    states(&format!(
        "on {} objects (every kernel-safe fixture and the corpus; {} externs)",
        n(want_all.objects),
        n(want_all.externs)
    ));
    if kptr_tests::kernel_skip("libbpf preparation") {
        return;
    }
    let prep = match build_prepare() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("KERNEL ORACLE NOT RUN (libbpf preparation): {e}");
            assert!(!shim_std::oracle::kernel_required(), "{e}");
            return;
        }
    };
    let mut objs: Vec<PathBuf> = kptr_tests::fixture_objects()
        .into_iter()
        .filter(|p| kptr_tests::kernel_safe(p))
        .collect();
    objs.extend(kptr_tests::corpus_objects());
    // More objects to compare, for people checking their own (colon-separated).
    if let Ok(extra) = std::env::var("KPTR_LIBBPF_OBJS") {
        objs.extend(
            extra
                .split(':')
                .filter(|s| !s.is_empty())
                .map(PathBuf::from),
        );
    }
    let (mut compared, mut maps, mut refused, mut externs) = (0, 0, 0, 0);
    let mut failures = Vec::new();
    for p in &objs {
        let bytes = std::fs::read(p).expect("object");
        let name = object_name(&p.display().to_string());
        if model_warns(&bytes, &name) {
            // The fixtures that WARN are left out above, and the corpus is WARN-free:
            // an object reaching here that WARNs is a new one to look at.
            failures.push(format!("{}: the model raises a kernel WARN", p.display()));
            continue;
        }
        let lb = libbpf_verdict(&prep, p);
        let model = read_bpf_object_named(&bytes, &name);
        if let Some(e) = lb.get("open_error").and_then(Value::as_i64) {
            match &model {
                Err(m) if i64::from(m.errno.raw()) == e => refused += 1,
                other => failures.push(format!(
                    "{}: libbpf refuses it (errno {e}), the model: {other:?}",
                    p.display()
                )),
            }
            continue;
        }
        let o = match model {
            Ok(o) => o,
            Err(e) => {
                failures.push(format!("{}: libbpf opens it, the model: {e}", p.display()));
                continue;
            }
        };
        externs += o.externs.len();
        compared += 1;
        if let Some(kb) = lb.get("btf").and_then(Value::as_str)
            && kb != hex(&o.btf)
        {
            failures.push(format!(
                "{}: prepared BTF differs from what libbpf sent the kernel",
                p.display()
            ));
        }
        let (kernel, _) = load_kernel_btfs(None, false, Semantics::V6_18).expect("kernel btf");
        let rep = match check_object_named(&kernel, &bytes, &name, &Semantics::V6_18) {
            Ok(r) => r,
            Err(e) => {
                failures.push(format!("{}: check: {e}", p.display()));
                continue;
            }
        };
        let lmaps = lb["maps"].as_array().cloned().unwrap_or_default();
        if rep.btf_errno.is_some() {
            continue;
        }
        let lerr = lb["load_error"].as_i64().unwrap_or(-1);
        let merr = rep.libbpf_load_errno().map_or(0, |e| i64::from(e.raw()));
        if lerr != merr {
            failures.push(format!(
                "{}: libbpf's load ends with errno {lerr}, the model predicts {merr}",
                p.display()
            ));
        }
        let names: Vec<String> = rep
            .maps
            .iter()
            .map(|m| m.def.libbpf_name().to_string())
            .collect();
        let lnames: Vec<String> = lmaps
            .iter()
            .map(|m| m["libbpf_name"].as_str().unwrap_or("").to_string())
            .collect();
        if names != lnames {
            failures.push(format!(
                "{}: maps {names:?}, libbpf {lnames:?}",
                p.display()
            ));
            continue;
        }
        for (m, l) in rep.maps.iter().zip(&lmaps) {
            if l["created"] != Value::Bool(true) {
                continue;
            }
            maps += 1;
            let d = &m.def;
            // libbpf retries a map the kernel refuses with BTF without it
            // (bpf_object__create_map); the kernel keeps only the permanent flags
            // (bpf_map_flags_retain_permanent drops BPF_F_RDONLY and BPF_F_WRONLY).
            let with_btf =
                m.errno.is_none() && (d.btf_key_type_id != 0 || d.btf_value_type_id != 0);
            if l["has_btf"] != Value::Bool(with_btf) {
                failures.push(format!(
                    "{}: map {}: the model {} it with BTF, libbpf's map has BTF: {}",
                    p.display(),
                    d.kname,
                    if m.errno.is_none() {
                        "creates"
                    } else {
                        "refuses"
                    },
                    l["has_btf"]
                ));
            }
            let ids = |id: u32| if with_btf { id } else { 0 };
            let got = [
                ("name", Value::from(m.def.kernel_name())),
                ("type", Value::from(d.map_type)),
                ("key_size", Value::from(d.key_size)),
                ("value_size", Value::from(d.value_size)),
                ("max_entries", Value::from(d.max_entries)),
                (
                    "map_flags",
                    Value::from(d.map_flags & !(BPF_F_RDONLY | BPF_F_WRONLY)),
                ),
                ("btf_key_type_id", Value::from(ids(d.btf_key_type_id))),
                ("btf_value_type_id", Value::from(ids(d.btf_value_type_id))),
            ];
            for (k, v) in got {
                if l[k] != v {
                    failures.push(format!(
                        "{}: map {}: {k} model {v}, kernel {}",
                        p.display(),
                        d.kname,
                        l[k]
                    ));
                }
            }
        }
    }
    eprintln!(
        "libbpf preparation: {compared} objects compared ({externs} externs), {maps} maps, {refused} refused alike"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Every kernel-safe fixture and every corpus object on disk: opened alike, or
    // refused alike.
    let want = kptr_tests::fixture_objects().len() - kptr_tests::KERNEL_UNSAFE_FIXTURES.len()
        + kptr_tests::corpus_objects().len();
    if std::env::var_os("KPTR_LIBBPF_OBJS").is_none() {
        assert_eq!(compared + refused, want, "objects compared");
        assert_eq!(
            (compared + refused, externs),
            (want_all.objects, want_all.externs),
            "objects and externs, against the model's preparation of the objects on disk"
        );
    }
}
