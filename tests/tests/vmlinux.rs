//! This machine's vmlinux BTF: loads and verifies fully, has the type count bpftool
//! reports, and every named struct resolves through `bpf_find_btf_id` to the id the
//! kernel's linear scan would return (the first id bpftool lists for the name).

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use kernel_core::Semantics;
use kernel_core::btf::btf_find_by_name_kind;
use kernel_core::btf::uapi::BtfKind;
use shim_std::kernel_btf::{SYS_VMLINUX, load_kernel_btfs};

fn have_vmlinux() -> bool {
    if Path::new(SYS_VMLINUX).exists() {
        return true;
    }
    eprintln!("NOT RUN: {SYS_VMLINUX} is absent on this machine");
    assert!(
        std::env::var("KPTR_REQUIRE_KERNEL").as_deref() != Ok("1"),
        "vmlinux BTF required but absent"
    );
    false
}

#[test]
fn vmlinux_verifies_and_every_struct_resolves() {
    if !have_vmlinux() {
        return;
    }
    let (k, _) = load_kernel_btfs(None, true, Semantics::V6_18).expect("vmlinux BTF verifies");
    let vm = k.vmlinux().expect("vmlinux");
    let data = vm.data();
    assert!(data.is_resolved());
    let ntypes = data.nr_types() - 1;

    // Same count as bpftool, where bpftool is installed; and the first id of each
    // named STRUCT as bpftool (libbpf's own parse of the file) lists them, the answer of
    // the kernel's linear scan (btf_find_by_name_kind).
    let mut first: HashMap<Vec<u8>, u32> = HashMap::new();
    match Command::new("bpftool")
        .args(["btf", "dump", "file", SYS_VMLINUX])
        .output()
    {
        Ok(o) => {
            assert!(
                o.status.success(),
                "bpftool failed: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            let text = String::from_utf8_lossy(&o.stdout);
            let n = text.lines().filter(|l| l.starts_with('[')).count() as u32;
            assert_eq!(ntypes, n, "type count differs from bpftool's");
            for l in text.lines() {
                // [123] STRUCT 'task_struct' size=... vlen=...
                let Some((id, rest)) = l.strip_prefix('[').and_then(|r| r.split_once("] STRUCT '"))
                else {
                    continue;
                };
                let (Ok(id), Some((name, _))) = (id.parse::<u32>(), rest.split_once('\'')) else {
                    continue;
                };
                // bpftool prints an anonymous struct as `(anon)`.
                if name != "(anon)" {
                    first.entry(name.as_bytes().to_vec()).or_insert(id);
                }
            }
        }
        Err(e) => {
            eprintln!("BPFTOOL COMPARISON NOT RUN: {e}: type count and ids not cross-checked");
            assert!(
                !shim_std::oracle::kernel_required(),
                "bpftool is required where the kernel comparisons are (KPTR_REQUIRE_KERNEL=1)"
            );
            for t in data.local_types() {
                if t.kind() == BtfKind::Struct {
                    let n = data.type_name(&t);
                    if !n.is_empty() {
                        first.entry(n.to_vec()).or_insert(t.id());
                    }
                }
            }
        }
    }
    eprintln!("vmlinux: {ntypes} types");
    // Every named STRUCT of the model's own walk is among them.
    let structs = data
        .local_types()
        .filter(|t| t.kind() == BtfKind::Struct && !data.type_name(t).is_empty())
        .map(|t| data.type_name(&t).to_vec())
        .collect::<std::collections::HashSet<_>>();
    assert_eq!(structs.len(), first.len(), "named STRUCTs");
    for (name, id) in &first {
        let name = std::str::from_utf8(name).expect("utf8 name");
        let (got, btf) = k
            .bpf_find_btf_id(name, BtfKind::Struct as u8)
            .unwrap_or_else(|e| panic!("struct {name} not found: {e}"));
        assert_eq!(got, *id, "struct {name}");
        assert!(btf.is_vmlinux());
        assert_eq!(
            btf_find_by_name_kind(vm, name, BtfKind::Struct as u8),
            Ok(*id)
        );
    }
    eprintln!("{} struct names resolved", first.len());
    // Unknown names and wrong kinds are -ENOENT.
    assert_eq!(
        k.bpf_find_btf_id("no_such_struct_xyz", BtfKind::Struct as u8)
            .err(),
        Some(kernel_core::Errno::ENOENT)
    );
    assert_eq!(
        k.bpf_find_btf_id("task_struct", BtfKind::Union as u8).err(),
        Some(kernel_core::Errno::ENOENT)
    );
    // Every lookup above returned its reference: only the registry's remains.
    assert_eq!(vm.refcount(), 1);
}

#[test]
fn kernel_accepts_vmlinux_blob_as_user_btf_like_the_model() {
    if !have_vmlinux() || kptr_tests::kernel_skip("BPF_BTF_LOAD of vmlinux") {
        return;
    }
    let data = std::fs::read(SYS_VMLINUX).expect("read vmlinux");
    let fd = shim_std::oracle::btf_load_fd(&data);
    let model = kernel_core::btf::btf_parse(&data, 0, Semantics::V6_18);
    assert_eq!(fd.is_ok(), model.is_ok(), "kernel {:?}", fd.err());
}
