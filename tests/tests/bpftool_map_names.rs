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

fn loads(obj: &Path) -> bool {
    let src = obj.parent().and_then(|d| d.parent()).map(|d| {
        d.join("src")
            .join(obj.file_stem().unwrap_or_default())
            .with_extension("c")
    });
    src.and_then(|s| std::fs::read_to_string(s).ok())
        .is_some_and(|s| s.contains("LOADS: yes"))
}

#[test]
fn internal_map_names_equal_bpftools() {
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
    let (kernel, _) = load_kernel_btfs(None, false, Semantics::V6_18).expect("kernel btf");
    let mut failures = Vec::new();
    let (mut objects, mut maps, mut internal) = (0, 0, 0);
    for (i, p) in kptr_tests::corpus_objects().iter().enumerate() {
        if !loads(p) {
            continue;
        }
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
    let loading = kptr_tests::corpus_objects()
        .iter()
        .filter(|p| loads(p))
        .count();
    assert_eq!(
        objects, loading,
        "every corpus object whose header says LOADS: yes"
    );
}
