//! Which fields the kernel recorded, read from the verifier's refusals: for every map
//! of the kernel-safe fixtures that a SCHED_CLS program can look up, a probe program
//! touches each 4-byte offset of the value; the refusals name the special fields (and,
//! for kptrs, whether they are referenced or per-CPU, and the pointee's name). The result
//! must equal the model's `v6.18` record.

use std::os::fd::{AsFd, BorrowedFd};

use kernel_core::Semantics;
use shim_std::check::check_object;
use shim_std::elf::read_bpf_object;
use shim_std::kernel_btf::load_kernel_btfs;
use shim_std::oracle::{self, ProbeAccess, probe_value_access};

const PROBE_LIMIT: u32 = 512;

fn last_msg(log: &str) -> String {
    log.lines()
        .rfind(|l| !l.is_empty() && !l.starts_with("processed"))
        .unwrap_or("")
        .to_string()
}

/// (offset, type name, pointee) as the kernel's verifier shows them. Whether a pointee
/// is program-local does not show in the register type; it follows from the name
/// lookup that `tests/vmlinux.rs` checks.
fn kernel_fields(fd: BorrowedFd<'_>, value_size: u32) -> Vec<(u32, String, Option<String>)> {
    let mut out: Vec<(u32, String, Option<String>)> = Vec::new();
    let sizes = |t: &str| match t {
        "spin_lock" | "res_spin_lock" | "refcount" => 4,
        "timer" | "wq" | "list_head" | "rb_root" => 16,
        "task_work" => 8,
        "list_node" => 24,
        "rb_node" => 32,
        _ => 8,
    };
    let mut off = 0;
    while off < value_size.min(PROBE_LIMIT) {
        let (ok, log) = probe_value_access(fd, off as i16, ProbeAccess::Store1Byte, 1);
        let msg = last_msg(&log);
        if ok {
            off += 4;
            continue;
        }
        let ty = if msg.starts_with("kptr access size must be BPF_DW") {
            let (_, l2) = probe_value_access(fd, off as i16, ProbeAccess::StoreImm8(1), 1);
            if last_msg(&l2).contains("store to referenced kptr disallowed") {
                "kptr_ref"
            } else {
                "kptr_unref"
            }
        } else if msg.starts_with("percpu_kptr access size must be BPF_DW") {
            "percpu_kptr"
        } else if let Some(name) = msg.strip_suffix(" cannot be accessed directly by load/store") {
            match name.strip_prefix("bpf_") {
                Some("spin_lock") => "spin_lock",
                Some("res_spin_lock") => "res_spin_lock",
                Some("timer") => "timer",
                Some("wq") => "wq",
                Some("task_work") => "task_work",
                Some("list_head") => "list_head",
                Some("list_node") => "list_node",
                Some("rb_root") => "rb_root",
                Some("rb_node") => "rb_node",
                Some("refcount") => "refcount",
                _ => panic!("unexpected refusal {msg:?} at {off}"),
            }
        } else if msg.contains("misaligned") || msg.contains("invalid access to map value") {
            off += 4;
            continue;
        } else {
            panic!("unexpected refusal {msg:?} at {off}");
        };
        let mut pointee = None;
        if ty.contains("kptr") {
            let (_, l) = probe_value_access(fd, off as i16, ProbeAccess::Load8, 2);
            let line = l
                .lines()
                .rfind(|x| x.contains(" R1="))
                .unwrap_or("")
                .to_string();
            if let Some(r1) = line.split(" R1=").nth(1) {
                let mut t = r1.split('(').next().unwrap_or("");
                for pfx in ["percpu_", "rcu_", "untrusted_", "ptr_or_null_"] {
                    t = t.strip_prefix(pfx).unwrap_or(t);
                }
                pointee = Some(t.to_string());
            }
        }
        out.push((off, ty.to_string(), pointee));
        off += sizes(ty);
    }
    out
}

#[test]
fn recorded_fields_match_the_verifier() {
    if kptr_tests::kernel_skip("verifier probes of the recorded fields") {
        return;
    }
    let sem = Semantics::V6_18;
    let (kernel, _) = load_kernel_btfs(None, false, sem).expect("kernel BTF");
    let mut mismatches = Vec::new();
    let (mut maps, mut fields) = (0, 0);
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
        if rep.btf_errno.is_some() {
            continue;
        }
        let obj = read_bpf_object(&bytes).expect("object");
        let Ok(btf_fd) = oracle::btf_load_fd(&obj.btf) else {
            continue;
        };
        for mr in &rep.maps {
            if mr.errno.is_some()
                || mr.def.key_size != 4
                || mr.def.map_flags & (1 << 7) != 0
                || ![1, 2, 5, 6, 9, 10].contains(&mr.def.map_type)
            {
                continue;
            }
            let kname = mr.def.kernel_name();
            let req = mr.def.oracle_request(btf_fd.as_fd(), &kname);
            let Ok(mfd) = oracle::map_create(&req) else {
                continue;
            };
            let k = kernel_fields(mfd.as_fd(), mr.def.value_size);
            let m: Vec<(u32, String, Option<String>)> = mr
                .fields
                .iter()
                .filter(|f| f.offset < PROBE_LIMIT && f.ty != "uptr")
                .map(|f| (f.offset, f.ty.to_string(), f.pointee.clone()))
                .collect();
            maps += 1;
            fields += k.len();
            if k != m {
                mismatches.push(format!(
                    "{name}/{}:\n  kernel {k:?}\n  model  {m:?}",
                    mr.def.name
                ));
            }
        }
    }
    eprintln!("{maps} maps probed, {fields} fields read from the verifier");
    assert!(maps > 50 && fields > 50);
    assert!(
        mismatches.is_empty(),
        "{} mismatches:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}
