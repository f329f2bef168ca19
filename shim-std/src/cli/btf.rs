//! `kptr-model btf`: BTF validated as the kernel validates it, with the kernel's log.

use std::path::{Path, PathBuf};

use kernel_core::Semantics;
use kernel_core::btf::{BtfRef, ParseOpts, btf_verify};
use serde_json::json;

use super::{LoadError, Output, check_bpf_elf, error, read_file};
use crate::elf::{is_elf, read_bpf_object};
use crate::kernel_btf::{KernelBtfSource, SYS_VMLINUX, embedded_vmlinux};

/// `kptr-model btf`: the verifier log and a summary line; refused BTF is exit status
/// 1 (its errno and the kernel's message in the summary), an unreadable file 2.
pub fn cmd_btf(
    file: Option<&Path>,
    base: Option<&Path>,
    sem: Semantics,
    quiet: bool,
) -> Result<Output, LoadError> {
    let (what, data) = match file {
        Some(p) => (
            KernelBtfSource::File(p.display().to_string()),
            read_file(p)?,
        ),
        None if Path::new(SYS_VMLINUX).exists() => (
            KernelBtfSource::File(SYS_VMLINUX.into()),
            read_file(Path::new(SYS_VMLINUX))?,
        ),
        None => (KernelBtfSource::Embedded, embedded_vmlinux()),
    };
    let src = match &what {
        KernelBtfSource::File(f) => f.clone(),
        KernelBtfSource::Embedded => "embedded kernel BTF".into(),
    };
    let data = if is_elf(&data) {
        check_bpf_elf(&src, &data)?;
        read_bpf_object(&data)?.btf
    } else {
        data
    };
    let base_path = match (base, file) {
        (Some(b), _) => Some(b.to_path_buf()),
        (None, Some(f))
            if f.parent() == Some(Path::new("/sys/kernel/btf")) && f != Path::new(SYS_VMLINUX) =>
        {
            Some(PathBuf::from(SYS_VMLINUX))
        }
        _ => None,
    };
    let opts = ParseOpts {
        log_level: 1,
        resolve: true,
        sem,
    };
    let base_ref: Option<BtfRef> = match &base_path {
        Some(bp) => {
            let bd = read_file(bp)?;
            let b = btf_verify(
                bd.into_boxed_slice(),
                None,
                &ParseOpts {
                    log_level: 0,
                    ..opts
                },
            )
            .map_err(|e| {
                error(
                    e.errno,
                    format!("base BTF {}: {}", bp.display(), e.message()),
                )
            })?;
            Some(kernel_core::btf::Btf::new(
                b.0,
                "vmlinux",
                kernel_core::btf::BtfOrigin::Kernel,
            ))
        }
        None => None,
    };
    let kernel_btf = matches!(what, KernelBtfSource::Embedded)
        || base_path.is_some()
        || file.is_some_and(|f| f.starts_with("/sys/kernel/btf"));
    let verified = btf_verify(
        data.clone().into_boxed_slice(),
        base_ref.as_ref().map(|b| b.data()),
        &opts,
    );
    let mut text = String::new();
    let (btf, log) = match verified {
        Ok(x) => x,
        Err(e) => {
            let msg = e.message().to_string();
            let log = String::from_utf8_lossy(&e.log).into_owned();
            if !quiet {
                // The log's last line is the kernel's message, which the summary
                // line repeats: print it once.
                let mut lines: Vec<&str> = log.lines().collect();
                if lines.last().is_some_and(|l| l.trim() == msg.trim()) {
                    lines.pop();
                }
                for l in lines {
                    text.push_str(l);
                    text.push('\n');
                }
            }
            text.push_str(&format!(
                "{src}: refused ({}): {}: {msg} (btf_parse)\n",
                sem.name, e.errno
            ));
            return Ok(Output {
                text,
                json: json!({
                    "file": src, "profile": sem.name, "ok": false,
                    "errno": crate::check::errno_json(Some(e.errno)),
                    "message": msg, "stage": "btf_parse", "kernel_btf": kernel_btf,
                    "types": null, "strings_bytes": null, "log": log,
                }),
                status: 1,
            });
        }
    };
    let log = String::from_utf8_lossy(log.as_bytes()).into_owned();
    if !quiet {
        text.push_str(&log);
    }
    // Kernel BTF (vmlinux, modules: a file under /sys/kernel/btf, the embedded one, or
    // split BTF given a base) is parsed by btf_parse_vmlinux/btf_parse_module, which
    // run no struct-meta pass; anything else is program BTF, which BPF_BTF_LOAD also
    // gives to btf_parse_struct_metas and its fix-ups.
    let types = btf.nr_types_local() - u32::from(btf.base_data().is_none());
    let strings = btf.header().str_len;
    let (checked, refused) = if kernel_btf {
        ("btf_parse; kernel BTF has no struct-meta pass", None)
    } else {
        let (kernel, _) = crate::kernel_btf::load_kernel_btfs(None, false, sem)?;
        let (r, why) = crate::why::collect(|| {
            kernel_core::syscall::bpf_btf_load(&kernel, &data, 0, &sem).map(|_| ())
        });
        let refused = r.err().map(|e| {
            let culprit = why.last.and_then(|c| c.culprit(&btf));
            (e.errno, e.reason, culprit)
        });
        ("BPF_BTF_LOAD: btf_parse and the struct-meta pass", refused)
    };
    let json_common = json!({
        "file": src, "profile": sem.name, "kernel_btf": kernel_btf,
        "types": types, "strings_bytes": strings, "log": log,
    });
    let mut doc = json_common;
    let Some((errno, stage, culprit)) = refused else {
        text.push_str(&format!(
            "{src}: ok ({}): types: {types}, strings: {strings} bytes ({checked})\n",
            sem.name
        ));
        doc["ok"] = json!(true);
        doc["errno"] = json!(null);
        doc["message"] = json!(null);
        doc["stage"] = json!(if kernel_btf {
            "btf_parse"
        } else {
            "BPF_BTF_LOAD"
        });
        return Ok(Output {
            text,
            json: doc,
            status: 0,
        });
    };
    let why = culprit
        .as_ref()
        .map(|c| format!(": {c}"))
        .unwrap_or_default();
    let msg = format!(
        "btf_parse accepts the BTF, then BPF_BTF_LOAD's struct-meta pass refuses it in {stage} (the kernel logs no message of its own){why}"
    );
    text.push_str(&format!("{src}: refused ({}): {errno}: {msg}\n", sem.name));
    doc["ok"] = json!(false);
    doc["errno"] = crate::check::errno_json(Some(errno));
    doc["message"] = json!(msg);
    doc["stage"] = json!(stage);
    doc["why"] = crate::check::why_json(culprit.as_ref());
    Ok(Output {
        text,
        json: doc,
        status: 1,
    })
}
