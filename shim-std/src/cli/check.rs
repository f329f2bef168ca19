//! `kptr-model check`: one object in detail, or many as one table (vmlinux loaded
//! once), with the running kernel's verdicts beside the model's under `--kernel`.

use std::path::{Path, PathBuf};

use kernel_core::Semantics;
use kernel_core::btf::KernelBtfs;
use serde_json::{Value, json};

use super::{LoadError, Output, error_text, is_running_kernel, kernel_btf_name, object_bytes};
use crate::check::{CheckReport, MapReport, errno_json, field_json};
use crate::compare::{KernelComparison, Verdict};
use crate::field_probe::Status;

/// One object checked.
#[derive(Debug)]
pub struct ObjectCheck {
    /// What to call it (the path, or the embedded example's name).
    pub name: String,
    /// The model's report.
    pub report: CheckReport,
    /// The running kernel's verdicts, when asked for.
    pub kernel: Option<KernelComparison>,
}

impl ObjectCheck {
    /// Exit status 1: something refused or WARNs, or the kernel differs or was not
    /// asked.
    pub fn differs(&self) -> bool {
        !self.report.accepted()
            || self
                .kernel
                .as_ref()
                .is_some_and(|k| k.not_asked.is_some() || k.differences() > 0)
    }
}

fn not_asked(reason: String) -> KernelComparison {
    KernelComparison {
        not_asked: Some(reason),
        btf: (None, None),
        maps: Vec::new(),
    }
}

/// Checks one object (OBJ, or the embedded example) against `kernel`; with
/// `ask_kernel`, also the running kernel.
pub fn check_one(
    kernel: &KernelBtfs,
    obj: Option<&Path>,
    sem: Semantics,
    ask_kernel: bool,
) -> Result<ObjectCheck, LoadError> {
    let (name, oname, bytes) = object_bytes(obj, &sem)?;
    let report = crate::check::check_object_named(kernel, &bytes, &oname, &sem)?;
    let kernel = if !ask_kernel {
        None
    } else if !is_running_kernel(&sem) {
        Some(not_asked(format!(
            "the running kernel is v6.18 and the model ran {}: compare with --profile v6.18 and no --set",
            sem.name
        )))
    } else {
        Some(crate::compare::compare_with_kernel(kernel, &bytes, &oname)?)
    };
    Ok(ObjectCheck {
        name,
        report,
        kernel,
    })
}

/// Checks every object against one kernel BTF (each result on its own: one object's
/// error does not stop the others).
pub fn check_many(
    kernel: &KernelBtfs,
    objs: &[PathBuf],
    sem: Semantics,
    ask_kernel: bool,
) -> Vec<(PathBuf, Result<ObjectCheck, LoadError>)> {
    objs.iter()
        .map(|p| (p.clone(), check_one(kernel, Some(p), sem, ask_kernel)))
        .collect()
}

/// The kernel comparison as JSON.
pub fn kernel_json(k: &KernelComparison) -> Value {
    if let Some(r) = &k.not_asked {
        return json!({"asked": false, "reason": r, "btf_load": null, "maps": [],
                      "fields_judged": 0, "differences": 0});
    }
    let e = |x: Option<i32>| errno_json(x.map(kernel_core::Errno::from_raw));
    let maps: Vec<Value> = k
        .maps
        .iter()
        .map(|m| {
            let (verdict, reason) = match &m.verdict {
                Verdict::Same => ("same", None),
                Verdict::Differs => ("differs", None),
                Verdict::NotCompared(r) => ("not compared", Some(r.clone())),
                Verdict::NotSent(r) => ("not sent", Some(r.clone())),
            };
            let fields = m.fields.as_ref().map(|j| {
                let (status, why) = match &j.status {
                    Status::Judged => ("judged", None),
                    Status::NotJudged(r) => ("not judged", Some(r.clone())),
                    Status::ProbeError(r) => ("probe error", Some(r.clone())),
                };
                json!({
                    "status": status, "reason": why, "route": j.route,
                    "fields": j.fields.iter().map(|v| {
                        let mut f = field_json(&v.model);
                        f["same"] = json!(v.verdict == crate::field_probe::Verdict::Same);
                        f["kernel"] = json!(v.kernel.as_ref().map(|k| k.to_string()));
                        f
                    }).collect::<Vec<_>>(),
                    "kernel_only": j.kernel_only.iter().map(|k| k.to_string()).collect::<Vec<_>>(),
                })
            });
            json!({
                "name": m.name, "inner": m.inner,
                "model": errno_json(m.model), "kernel": e(m.kernel),
                "verdict": verdict, "reason": reason, "fields": fields,
                "slots": m.slots.iter().map(|(i, n, me, ke)| json!({
                    "index": i, "map": n, "model": errno_json(*me), "kernel": e(*ke),
                    "same": *ke == me.map(|x| x.raw()),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "asked": true, "reason": null,
        "btf_load": {"model": errno_json(k.btf.0), "kernel": e(k.btf.1), "same": k.btf_same()},
        "maps": maps,
        "fields_judged": k.fields_judged(),
        "differences": k.differences(),
    })
}

/// One object's JSON document.
pub fn object_json(c: &ObjectCheck, kernel_btf: &str) -> Value {
    let mut v = c.report.to_json();
    v["object"] = json!(c.name);
    v["kernel_btf"] = json!(kernel_btf);
    v["kernel"] = c.kernel.as_ref().map_or(Value::Null, kernel_json);
    v
}

/// `kptr-model check`: one object in detail, several as one table.
pub fn cmd_check(
    objs: &[PathBuf],
    vmlinux: Option<&Path>,
    sem: Semantics,
    ask_kernel: bool,
) -> Result<Output, LoadError> {
    let (kernel, src) = crate::kernel_btf::load_kernel_btfs(vmlinux, false, sem)?;
    if objs.len() <= 1 {
        let c = check_one(&kernel, objs.first().map(PathBuf::as_path), sem, ask_kernel)?;
        let mut text = format!(
            "{} (kernel BTF: {})\n",
            c.name,
            kernel_btf_name(&src, false)
        );
        text.push_str(&c.report.to_text());
        if let Some(k) = &c.kernel {
            for l in k.lines() {
                text.push_str(&l);
                text.push('\n');
            }
        }
        return Ok(Output {
            json: object_json(&c, &kernel_btf_name(&src, true)),
            status: u8::from(c.differs()),
            text,
        });
    }
    let all = check_many(&kernel, objs, sem, ask_kernel);
    Ok(table(&all, &kernel_btf_name(&src, true), sem, ask_kernel))
}

/// The fields of a map in one cell: `kptr_ref@0, spin_lock@8`.
fn fields_cell(m: &MapReport) -> String {
    let fields = if m.def.inner.is_some() {
        m.inner.as_deref().map_or(&[][..], |i| i.fields.as_slice())
    } else {
        &m.fields
    };
    if fields.is_empty() {
        return "-".into();
    }
    fields
        .iter()
        .map(|f| format!("{}@{}", f.ty, f.offset))
        .collect::<Vec<_>>()
        .join(", ")
}

fn verdict_cell(m: &MapReport) -> String {
    let mut v = match m.errno {
        None => "created".to_string(),
        Some(e) => e.to_string(),
    };
    if let Some(e) = m.record_error {
        v.push_str(&format!(", record {e}"));
    }
    if let Some(i) = m.inner.as_deref().filter(|i| i.refused()) {
        v.push_str(&format!(
            ", inner {}",
            i.errno
                .or(i.record_error)
                .map_or("refused".into(), |e| e.to_string())
        ));
    }
    if let Some((i, _, Some(e))) = m.slots.iter().find(|s| s.2.is_some()) {
        v.push_str(&format!(", slot [{i}] {e}"));
    }
    if !m.all_warnings().is_empty() {
        v.push_str(", WARN");
    }
    v
}

fn kernel_cell(k: Option<&KernelComparison>, map: Option<&str>) -> String {
    let Some(k) = k else {
        return String::new();
    };
    if k.not_asked.is_some() {
        return "not asked".into();
    }
    let Some(name) = map else {
        return if k.btf_same() { "same" } else { "DIFFERS" }.into();
    };
    let ms: Vec<_> = k.maps.iter().filter(|m| m.name == name).collect();
    if ms.is_empty() {
        return "-".into();
    }
    let mut differs = false;
    let mut not = None;
    for m in ms {
        match &m.verdict {
            Verdict::Same => {}
            Verdict::Differs => differs = true,
            Verdict::NotCompared(_) => not = Some("not compared"),
            Verdict::NotSent(_) => not = Some("not sent"),
        }
        if let Some(j) = &m.fields {
            differs |= !j.differences().is_empty() || matches!(j.status, Status::ProbeError(_));
        }
        differs |= m
            .slots
            .iter()
            .any(|(_, _, me, ke)| *ke != me.map(|e| e.raw()));
    }
    if differs {
        "DIFFERS".into()
    } else {
        not.unwrap_or("same").into()
    }
}

/// Many objects as one table: object, map, verdict, fields, kernel agreement.
pub fn table(
    all: &[(PathBuf, Result<ObjectCheck, LoadError>)],
    kernel_btf: &str,
    sem: Semantics,
    ask_kernel: bool,
) -> Output {
    let mut rows: Vec<[String; 5]> = vec![[
        "OBJECT".into(),
        "MAP".into(),
        "VERDICT".into(),
        "FIELDS".into(),
        if ask_kernel { "KERNEL" } else { "" }.into(),
    ]];
    let (mut accepted, mut refused, mut errors, mut maps) = (0, 0, 0, 0);
    let mut docs = Vec::new();
    for (p, r) in all {
        let obj = p.display().to_string();
        match r {
            Err(e) => {
                errors += 1;
                rows.push([
                    obj.clone(),
                    "-".into(),
                    format!("error: {}", error_text(e)),
                    "-".into(),
                    String::new(),
                ]);
                docs.push(json!({"object": obj, "error": error_text(e)}));
            }
            Ok(c) => {
                if c.differs() {
                    refused += 1;
                } else {
                    accepted += 1;
                }
                let btf = match c.report.btf_errno {
                    None => "ok".to_string(),
                    Some(e) => e.to_string(),
                };
                let btf_warn = if c.report.btf_warnings.is_empty() {
                    ""
                } else {
                    ", WARN"
                };
                rows.push([
                    obj.clone(),
                    "(BTF load)".into(),
                    format!("{btf}{btf_warn}"),
                    "-".into(),
                    kernel_cell(c.kernel.as_ref(), None),
                ]);
                for m in &c.report.maps {
                    maps += 1;
                    rows.push([
                        obj.clone(),
                        m.def.kname.clone(),
                        verdict_cell(m),
                        fields_cell(m),
                        kernel_cell(c.kernel.as_ref(), Some(&m.def.kname)),
                    ]);
                }
                docs.push(object_json(c, kernel_btf));
            }
        }
    }
    let mut w = [0usize; 5];
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let mut text = String::new();
    for r in &rows {
        let line = format!(
            "{:<a$}  {:<b$}  {:<c$}  {:<d$}  {}",
            r[0],
            r[1],
            r[2],
            r[3],
            r[4],
            a = w[0],
            b = w[1],
            c = w[2],
            d = w[3]
        );
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text.push_str(&format!(
        "{} objects, {maps} maps ({}, kernel BTF {kernel_btf}): {accepted} accepted, {refused} refused or differing, {errors} errors\n",
        all.len(),
        sem.name
    ));
    Output {
        text,
        json: json!({
            "profile": sem.name, "kernel_btf": kernel_btf, "objects": docs,
            "summary": {"objects": all.len(), "maps": maps, "accepted": accepted,
                        "refused": refused, "errors": errors},
        }),
        status: if errors > 0 { 2 } else { u8::from(refused > 0) },
    }
}
