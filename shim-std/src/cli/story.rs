//! `kptr-model` without a verb: the c8e18754 story on its own example, in one screen:
//! what v6.3 refused, what the commit made possible, what v6.18 does instead, and how
//! each tears the value down; each row names the verb that shows more.

use kernel_core::Semantics;
use serde_json::{Value, json};

use super::{LoadError, Output, semantics};

struct Column {
    profile: &'static str,
    cells: Vec<String>,
    json: Value,
}

fn column(sem: Semantics) -> Result<Column, LoadError> {
    let (kernel, _) = crate::kernel_btf::load_kernel_btfs(None, false, sem)?;
    let c = super::check::check_one(&kernel, None, sem, false)?;
    let r = &c.report;
    let btf = r.btf_errno.map_or("ok".to_string(), |e| e.to_string());
    let map = r.maps.iter().find(|m| !m.def.internal);
    let created = map.map_or("-".into(), |m| {
        m.errno.map_or("created".to_string(), |e| e.to_string())
    });
    let field = map.and_then(|m| m.fields.iter().find(|f| f.pointee.is_some()));
    let (kptr, dtor, holds) = match (map, field) {
        (_, Some(f)) => (
            format!(
                "{} -> {}{}",
                f.ty,
                f.pointee.as_deref().unwrap_or("?"),
                if f.local == Some(true) {
                    " (local)"
                } else {
                    ""
                }
            ),
            f.dtor.clone().unwrap_or_else(|| "NULL".into()),
            if f.holds.is_empty() {
                "nothing".to_string()
            } else {
                f.holds.join(", ").replace("btf program", "btf#program")
            },
        ),
        (Some(m), None) => (
            m.record_error
                .map_or("no kptr".into(), |e| format!("refused ({e})")),
            "-".into(),
            "-".into(),
        ),
        (None, None) => ("-".into(), "-".into(), "-".into()),
    };
    let t = super::trace::trace(None, None, sem)?;
    let o = &t.outcome;
    let after_free: Vec<&super::trace::TraceLine> = t
        .lines
        .iter()
        .skip_while(|l| l.text != "map      map_free" && !l.text.contains("bpf_map_free"))
        .collect();
    let dropped = after_free.iter().any(|l| l.kind == "obj_drop");
    let site = after_free
        .iter()
        .find(|l| l.kind == "migrate" && l.text.contains("migrate_disable in"))
        .and_then(|l| l.text.split(" in ").nth(1))
        .map(String::from);
    let teardown = match (dropped, &site) {
        (false, _) => "nothing stashed".to_string(),
        (true, Some(s)) => format!("dropped, migrate off in {s}"),
        (true, None) => "dropped, migration on".to_string(),
    };
    let warns = if o.warnings.is_empty() {
        "none".to_string()
    } else {
        o.warnings.join("; ")
    };
    let objects = format!("{} alloc, {} freed, {} leaked", o.allocs, o.frees, o.leaks);
    Ok(Column {
        profile: sem.name,
        json: json!({
            "profile": sem.name, "object": c.name, "btf_load": btf, "map": created,
            "kptr": kptr, "dtor": dtor, "holds": holds,
            "teardown": {
                "dropped": dropped, "migrate_disable_in": site, "warnings": o.warnings,
                "allocated": o.allocs, "freed": o.frees, "leaks": o.leaks,
                "double_frees": o.double_frees, "use_after_free": o.use_after_free,
            },
        }),
        cells: vec![btf, created, kptr, dtor, holds, teardown, warns, objects],
    })
}

const ROWS: [&str; 8] = [
    "BTF load",
    "map some_stashed",
    "  its __kptr field",
    "  destructor",
    "  holds",
    "teardown",
    "  kernel WARNs",
    "  objects",
];

const MORE: [(&str, &str); 4] = [
    (
        "kptr-model check --profile P",
        "each verdict and record in full",
    ),
    (
        "kptr-model diff --from v6.3 --to c8e18754",
        "what the commit changes, map by map",
    ),
    (
        "kptr-model trace --profile c8e18754",
        "every event of the teardown",
    ),
    (
        "kptr-model profiles",
        "the behaviour flags behind each profile",
    ),
];

/// The story: v6.3, c8e18754 and v6.18 side by side (`--set` changes the last).
pub fn cmd_story(set: &[String]) -> Result<Output, LoadError> {
    let cols = [
        column(Semantics::V6_3)?,
        column(Semantics::C8E18754)?,
        column(semantics("v6.18", set)?)?,
    ];
    let mut text = String::from(
        "c8e18754 \"bpf: Support __kptr to local kptrs\" (v6.4) on its own example: a struct\n\
         node_data from bpf_obj_new, stashed with bpf_kptr_xchg into an ARRAY map's __kptr\n\
         field, then the map closed.\n\n",
    );
    let w0 = ROWS.iter().map(|r| r.len()).max().unwrap_or(0);
    let widths: Vec<usize> = cols
        .iter()
        .map(|c| {
            c.cells
                .iter()
                .map(|x| x.chars().count())
                .chain([c.profile.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut line = format!("{:<w0$}", "");
    for (c, w) in cols.iter().zip(&widths) {
        line.push_str(&format!("  {:<w$}", c.profile));
    }
    text.push_str(line.trim_end());
    text.push('\n');
    for (i, r) in ROWS.iter().enumerate() {
        let mut line = format!("{r:<w0$}");
        for (c, w) in cols.iter().zip(&widths) {
            line.push_str(&format!(
                "  {:<w$}",
                c.cells.get(i).map_or("", String::as_str)
            ));
        }
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text.push_str("\nmore:\n");
    for (cmd, what) in MORE {
        text.push_str(&format!("  {cmd:<42} {what}\n"));
    }
    Ok(Output {
        text,
        json: json!({
            "story": "c8e18754",
            "profiles": cols.iter().map(|c| c.json.clone()).collect::<Vec<_>>(),
            "more": MORE.iter().map(|(c, w)| json!({"command": c, "shows": w})).collect::<Vec<_>>(),
        }),
        status: 0,
    })
}
