//! Prints the Markdown table of the last `cargo bench -p kptr-bench` run: for each
//! group and bench, criterion's mean point estimate, the time per element when the
//! group has an element throughput, and the ratio to the group's baseline bench
//! (libbpf for loading and lookups, plain frees for teardown, a raw atomic swap for
//! `bpf_kptr_xchg`; above 1 = slower than the baseline).
//!
//! Usage: `cargo run -p kptr-bench --bin ratios [CRITERION_DIR]`. The directory
//! defaults to `$CRITERION_HOME`, else `$CARGO_TARGET_DIR/criterion`, else the
//! workspace's `target/criterion`, where criterion writes by default.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde_json::Value;

/// The groups in table order, each with the name prefix of its baseline bench (the
/// peer or plain operation the group's ratios are to).
const GROUPS: [(&str, Option<&str>); 5] = [
    ("load_vmlinux", Some("libbpf")),
    ("lookup", Some("libbpf")),
    ("parse_fields", None),
    ("teardown", Some("plain")),
    ("kptr_xchg", Some("raw")),
];

struct Row {
    bench: String,
    mean_ns: f64,
    /// Elements per iteration, from the throughput recorded in `benchmark.json`.
    elements: Option<u64>,
}

fn criterion_dir() -> PathBuf {
    if let Some(d) = std::env::args_os().nth(1) {
        return d.into();
    }
    if let Some(d) = std::env::var_os("CRITERION_HOME") {
        return d.into();
    }
    if let Some(d) = std::env::var_os("CARGO_TARGET_DIR") {
        return Path::new(&d).join("criterion");
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/criterion")
}

fn read_json(p: &Path) -> Result<Value, String> {
    let s = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
    serde_json::from_str(&s).map_err(|e| format!("{}: {e}", p.display()))
}

fn read_group(dir: &Path) -> Result<Vec<Row>, String> {
    let mut rows = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for e in entries {
        let e = e.map_err(|e| format!("{}: {e}", dir.display()))?;
        let new = e.path().join("new");
        let est = new.join("estimates.json");
        if !est.is_file() {
            continue; // criterion's own `report` directory, or a bench never run
        }
        let mean_ns = read_json(&est)?["mean"]["point_estimate"]
            .as_f64()
            .ok_or_else(|| format!("{}: no mean.point_estimate", est.display()))?;
        let elements = read_json(&new.join("benchmark.json"))
            .ok()
            .and_then(|b| b["throughput"]["Elements"].as_u64());
        rows.push(Row {
            bench: e.file_name().to_string_lossy().into_owned(),
            mean_ns,
            elements,
        });
    }
    rows.sort_by(|a, b| a.bench.cmp(&b.bench));
    Ok(rows)
}

fn fmt_time(ns: f64) -> String {
    let (v, unit) = if ns >= 1e9 {
        (ns / 1e9, "s")
    } else if ns >= 1e6 {
        (ns / 1e6, "ms")
    } else if ns >= 1e3 {
        (ns / 1e3, "µs")
    } else {
        (ns, "ns")
    };
    let digits = if v >= 100.0 {
        1
    } else if v >= 10.0 {
        2
    } else {
        3
    };
    format!("{v:.digits$} {unit}")
}

/// Three significant digits, so that ratios far below 1 stay readable.
fn fmt_ratio(r: f64) -> String {
    if !r.is_finite() || r <= 0.0 {
        return format!("{r}");
    }
    let digits = (2 - r.log10().floor() as i32).max(0) as usize;
    format!("{r:.digits$}×")
}

fn main() -> ExitCode {
    let dir = criterion_dir();
    let mut out = String::new();
    out.push_str("| group | bench | mean | per element | ratio to baseline |\n");
    out.push_str("| --- | --- | ---: | ---: | ---: |\n");
    let mut found = 0;
    for (group, baseline) in GROUPS {
        let gdir = dir.join(group);
        if !gdir.is_dir() {
            eprintln!("ratios: {}: no such group (bench not run?)", gdir.display());
            continue;
        }
        let rows = match read_group(&gdir) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("ratios: {e}");
                return ExitCode::FAILURE;
            }
        };
        let base = baseline.and_then(|b| {
            rows.iter()
                .find(|r| r.bench.starts_with(b))
                .map(|r| r.mean_ns)
        });
        for r in &rows {
            let per = r
                .elements
                .filter(|&n| n > 1)
                .map_or_else(|| "—".to_owned(), |n| fmt_time(r.mean_ns / n as f64));
            let ratio = base.map_or_else(|| "—".to_owned(), |l| fmt_ratio(r.mean_ns / l));
            out.push_str(&format!(
                "| {group} | {} | {} | {per} | {ratio} |\n",
                r.bench,
                fmt_time(r.mean_ns)
            ));
            found += 1;
        }
    }
    if found == 0 {
        eprintln!(
            "ratios: no results under {} (run `cargo bench -p kptr-bench` first)",
            dir.display()
        );
        return ExitCode::FAILURE;
    }
    print!("{out}");
    ExitCode::SUCCESS
}
