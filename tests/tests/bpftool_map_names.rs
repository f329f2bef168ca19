//! Internal map names as users see them: every corpus object whose header says
//! `LOADS: yes` is loaded with `bpftool prog loadall OBJ DIR pinmaps MAPDIR` (libbpf, as
//! users load objects), and the kernel's name of every pinned map (`bpftool -j map
//! show pinned`) must be one the model gives that object's maps. Pins are removed at
//! once; nothing stays loaded.

use std::path::Path;
use std::process::Command;

use kernel_core::Semantics;
use shim_std::check::check_object_named;
use shim_std::kernel_btf::load_kernel_btfs;
use shim_std::libbpf::object_name;

const BPFFS: &str = "/sys/fs/bpf";

fn bpffs_mounted() -> bool {
    std::fs::read_to_string("/proc/mounts").is_ok_and(|m| {
        m.lines()
            .any(|l| l.split(' ').nth(1) == Some(BPFFS) && l.contains(" bpf "))
    })
}

/// The kernel names of the maps bpftool pins for `obj`, or why it could not load it.
fn bpftool_names(obj: &Path, tag: &str) -> Result<Vec<String>, String> {
    let progs = format!("{BPFFS}/kptr_model_{tag}");
    let maps = format!("{BPFFS}/kptr_model_{tag}_maps");
    let _ = std::fs::remove_dir_all(&progs);
    let _ = std::fs::remove_dir_all(&maps);
    let out = Command::new("bpftool")
        .args(["prog", "loadall"])
        .arg(obj)
        .args([&progs, "pinmaps", &maps])
        .output()
        .map_err(|e| format!("bpftool: {e}"))?;
    let mut names = Vec::new();
    let res = if out.status.success() {
        let mut err = None;
        for e in std::fs::read_dir(&maps)
            .map_err(|e| format!("{maps}: {e}"))?
            .flatten()
        {
            let show = Command::new("bpftool")
                .args(["-j", "map", "show", "pinned"])
                .arg(e.path())
                .output()
                .map_err(|e| format!("bpftool: {e}"))?;
            let v: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap_or_default();
            match v["name"].as_str() {
                Some(n) => names.push(n.to_string()),
                None => err = Some(format!("map show {}: {v}", e.path().display())),
            }
        }
        err.map_or(Ok(()), Err)
    } else {
        Err(format!(
            "loadall failed: {}",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .take(3)
                .collect::<Vec<_>>()
                .join(" / ")
        ))
    };
    let _ = std::fs::remove_dir_all(&progs);
    let _ = std::fs::remove_dir_all(&maps);
    res.map(|()| {
        names.sort();
        names
    })
}

#[test]
fn internal_map_names_equal_bpftools() {
    use kptr_tests::readme::{n, states};
    // The objects bpftool must load (their headers say so), and their maps and internal
    // maps as the model prepares them.
    let loading = kptr_tests::counts::corpus_loading();
    let (kernel, _) = load_kernel_btfs(None, false, Semantics::V6_18).expect("kernel btf");
    let (mut want_maps, mut want_internal) = (0, 0);
    for p in &loading {
        let bytes = std::fs::read(p).expect("object");
        let name = object_name(&p.display().to_string());
        let rep = check_object_named(&kernel, &bytes, &name, &Semantics::V6_18).expect("check");
        want_maps += rep.maps.len();
        want_internal += rep.maps.iter().filter(|m| m.def.internal).count();
    }
    states(&format!(
        "`tests/tests/bpftool_map_names.rs`: the {} corpus objects that load, {} maps ({} internal)",
        n(loading.len()),
        n(want_maps),
        n(want_internal)
    ));
    if kptr_tests::kernel_skip("bpftool map names") {
        return;
    }
    if !bpffs_mounted() {
        let st = Command::new("mount")
            .args(["-t", "bpf", "bpf", BPFFS])
            .status();
        if !st.is_ok_and(|s| s.success()) {
            eprintln!("KERNEL ORACLE NOT RUN (bpftool map names): no bpffs at {BPFFS}");
            assert!(
                !shim_std::oracle::kernel_required(),
                "bpffs needed at {BPFFS}"
            );
            return;
        }
    }
    let mut failures = Vec::new();
    let (mut objects, mut maps, mut internal) = (0, 0, 0);
    for (i, p) in loading.iter().enumerate() {
        let bytes = std::fs::read(p).expect("object");
        let name = object_name(&p.display().to_string());
        let before = kernel_core::sync::warn::warn_count();
        let rep = check_object_named(&kernel, &bytes, &name, &Semantics::V6_18).expect("check");
        if kernel_core::sync::warn::warn_count() != before {
            continue;
        }
        let tag = format!("{}_{i}", std::process::id());
        let got = match bpftool_names(p, &tag) {
            Ok(n) => n,
            Err(e) => {
                failures.push(format!("{}: {e}", p.display()));
                continue;
            }
        };
        let mut want: Vec<String> = rep.maps.iter().map(|m| m.def.kernel_name()).collect();
        want.sort();
        objects += 1;
        maps += want.len();
        internal += rep.maps.iter().filter(|m| m.def.internal).count();
        if got != want {
            failures.push(format!("{}: bpftool {got:?}, model {want:?}", p.display()));
        }
    }
    eprintln!("bpftool map names: {objects} objects, {maps} maps ({internal} internal)");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(
        (objects, maps, internal),
        (loading.len(), want_maps, want_internal),
        "every corpus object whose header says LOADS: yes, its maps, its internal maps"
    );
}
