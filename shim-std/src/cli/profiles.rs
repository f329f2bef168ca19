//! `kptr-model profiles`: every behaviour flag, its value in each profile and the
//! change that introduced it.

use kernel_core::Semantics;
use kernel_core::profile::FLAGS;
use serde_json::{Map, Value, json};

use super::Output;

/// `kptr-model profiles`; `changed` (a profile with `--set` applied) adds a column.
pub fn cmd_profiles(changed: Option<Semantics>) -> Output {
    let mut cols: Vec<Semantics> = Semantics::ALL.to_vec();
    cols.extend(changed);
    let width = FLAGS.iter().map(|f| f.name.len()).max().unwrap_or(0);
    let mut text = format!("{:<width$}", "flag");
    for c in &cols {
        text.push_str(&format!("  {:>8}", short(c.name)));
    }
    text.push('\n');
    let mut flags = Vec::new();
    for f in FLAGS {
        text.push_str(&format!("{:<width$}", f.name));
        let mut values = Map::new();
        for c in &cols {
            let v = (f.get)(c);
            text.push_str(&format!("  {:>8}", if v { "yes" } else { "-" }));
            values.insert(c.name.to_string(), json!(v));
        }
        text.push_str(&format!("\n{:<width$}  {}; {}\n", "", f.summary, f.commit));
        flags.push(json!({
            "name": f.name, "summary": f.summary, "commit": f.commit,
            "values": Value::Object(values),
        }));
    }
    text.push_str(&format!(
        "{} flags; change one with --set FLAG=true|false on any verb\n",
        FLAGS.len()
    ));
    Output {
        text,
        json: json!({
            "profiles": cols.iter().map(|c| c.name).collect::<Vec<_>>(),
            "flags": flags,
        }),
        status: 0,
    }
}

/// A profile's name cut to its column: a changed profile is `P+` (its full name, with
/// the changes, is in the JSON).
fn short(name: &str) -> String {
    match name.split_once('+') {
        Some((base, _)) => format!("{base}+"),
        None => name.to_string(),
    }
}
