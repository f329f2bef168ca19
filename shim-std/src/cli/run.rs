//! `kptr-model run`: a run-time scenario on the model and, with `--kernel`, on the
//! running kernel, one observation per step side by side.

use std::fmt::Write;
use std::path::Path;

use kernel_core::Semantics;

use super::{LoadError, Output};

/// `kptr-model run`: the scenario on the model (and the kernel); status 0 when every
/// step agrees and gives what the scenario expects, 1 when one does not or the
/// kernel could not be asked.
pub fn cmd_run(path: &Path, sem: Semantics, kernel: bool) -> Result<Output, LoadError> {
    let mut out = String::new();
    let sc = crate::run::load(path)?;
    let warns = kernel_core::sync::warn::warn_count();
    let model = crate::run::model::run_model(&sc, sem)?;
    let warned = kernel_core::sync::warn::warn_count() != warns || !model.close.warnings.is_empty();
    let kern: Option<Result<Vec<String>, String>> = kernel.then(|| {
        if warned {
            Err("the model raised a kernel WARN for this scenario; the running kernel would WARN and taint".into())
        } else if !super::is_running_kernel(&sem) {
            Err(format!("the running kernel is v6.18, not {}", sem.name))
        } else {
            crate::run::kernel::run_kernel(&sc, &model.def)
        }
    });
    let kres = kern.as_ref().and_then(|k| k.as_ref().ok());
    let steps: Vec<crate::run::Observed> = sc
        .lines
        .iter()
        .enumerate()
        .map(|(i, l)| crate::run::Observed {
            line: l.clone(),
            model: model.results.get(i).cloned().unwrap_or_default(),
            kernel: kres.and_then(|k| k.get(i).cloned()),
        })
        .collect();
    let c = &model.close;
    let clean =
        c.leaks == sc.leaks && c.double_frees == 0 && c.use_after_free == 0 && c.null_derefs == 0;
    let agree = clean && steps.iter().all(|o| o.same() && o.as_expected());
    let v = serde_json::json!({
        "scenario": path.display().to_string(),
        "object": sc.object.display().to_string(),
        "map": sc.map,
        "profile": sem.name,
        "kernel": match &kern {
            None => serde_json::json!({"asked": false, "reason": null}),
            Some(Ok(_)) => serde_json::json!({"asked": true, "reason": null}),
            Some(Err(r)) => serde_json::json!({"asked": false, "reason": r}),
        },
        "steps": steps.iter().map(|o| serde_json::json!({
            "line": o.line.no, "step": o.line.text, "model": o.model, "kernel": o.kernel,
            "same": o.same(), "expect": o.line.expect, "as_expected": o.as_expected(),
        })).collect::<Vec<_>>(),
        "model_close": {
            "allocs": c.allocs, "frees": c.frees, "leaks": c.leaks,
            "double_frees": c.double_frees, "use_after_free": c.use_after_free,
            "null_derefs": c.null_derefs, "warnings": c.warnings,
            "expected_leaks": sc.leaks,
        },
        "agree": agree && (!kernel || matches!(kern, Some(Ok(_)))),
    });
    let _ = writeln!(
        out,
        "scenario {} (object {}, map {}, profile {})",
        path.display(),
        sc.object.display(),
        sc.map,
        sem.name
    );
    for o in &steps {
        let mut l = format!(
            "{:>4}  {:<22} model: {:<14}",
            o.line.no, o.line.text, o.model
        );
        if let Some(k) = &o.kernel {
            l += &format!(
                " kernel: {:<14} {}",
                k,
                if o.same() { "same" } else { "DIFFERS" }
            );
        }
        if !o.as_expected() {
            l += &format!(
                "  EXPECTED {}",
                o.line.expect.as_deref().unwrap_or_default()
            );
        }
        let _ = writeln!(out, "{}", l.trim_end());
    }
    let _ = writeln!(
        out,
        "model: map closed: {} objects allocated, {} freed; leaks: {}, double frees: {}, use after free: {}, NULL dereferences: {}",
        c.allocs, c.frees, c.leaks, c.double_frees, c.use_after_free, c.null_derefs
    );
    if c.leaks != sc.leaks {
        let _ = writeln!(
            out,
            "model: EXPECTED {} objects left after the close (`leaks` line), found {}",
            sc.leaks, c.leaks
        );
    }
    for w in &c.warnings {
        let _ = writeln!(out, "model: WARN: {w}");
    }
    match &kern {
        None => {}
        Some(Ok(_)) => {
            let differ = steps.iter().filter(|o| !o.same()).count();
            let _ = writeln!(
                out,
                "kernel: {} steps, {} the same, {differ} differ; frees are not observable from a program here: the close is the model's alone",
                steps.len(),
                steps.len() - differ
            );
        }
        Some(Err(r)) => {
            let _ = writeln!(out, "kernel: not asked: {r}");
        }
    }
    let ok = agree && (!kernel || matches!(kern, Some(Ok(_))));
    Ok(Output {
        text: out,
        json: v,
        status: u8::from(!ok),
    })
}
