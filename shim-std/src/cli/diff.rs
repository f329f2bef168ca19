//! `kptr-model diff`: what changes between two profiles, the BTF-load verdict first,
//! then per map (by name) and per field (by offset), each map's header as context.

use std::collections::BTreeSet;
use std::path::Path;

use kernel_core::Semantics;
use serde_json::{Value, json};

use super::{LoadError, Output, object_bytes};
use crate::check::{
    CheckReport, MapReport, close_warning, field_text, map_header, map_json, map_verdict_text,
    record_text,
};

/// One changed item of a map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// `map`, `record`, `field`, `warning`, `slot`.
    pub what: &'static str,
    /// The field's offset or the slot's index.
    pub at: Option<u32>,
    /// Before (None: added).
    pub from: Option<String>,
    /// After (None: removed).
    pub to: Option<String>,
}

/// One map's changes (with its inner map's, under `inner`).
#[derive(Debug, Clone)]
pub struct MapDiff {
    /// The map's name.
    pub name: String,
    /// The map in each report (None: absent there).
    pub from: Option<MapReport>,
    /// After.
    pub to: Option<MapReport>,
    /// What changed.
    pub changes: Vec<Change>,
    /// The inner map's changes.
    pub inner: Option<Box<MapDiff>>,
}

impl MapDiff {
    fn count(&self) -> usize {
        self.changes.len() + self.inner.as_ref().map_or(0, |i| i.count())
    }
}

fn line_of(m: &MapReport) -> String {
    format!("{}: {}", map_header(m), map_verdict_text(m))
}

fn warnings_of(m: &MapReport) -> Vec<String> {
    m.warnings
        .iter()
        .copied()
        .chain(close_warning(m))
        .map(String::from)
        .collect()
}

fn change(what: &'static str, at: Option<u32>, a: Option<String>, b: Option<String>) -> Change {
    Change {
        what,
        at,
        from: a,
        to: b,
    }
}

/// The changes between two reports of one map.
pub fn diff_map(name: &str, a: Option<&MapReport>, b: Option<&MapReport>) -> MapDiff {
    let mut changes = Vec::new();
    let (la, lb) = (a.map(line_of), b.map(line_of));
    if la != lb {
        changes.push(change("map", None, la, lb));
    }
    let (ra, rb) = (a.and_then(record_text), b.and_then(record_text));
    if ra != rb && (a.is_some() && b.is_some()) {
        changes.push(change("record", None, ra, rb));
    }
    let offsets: BTreeSet<u32> = a
        .iter()
        .chain(b.iter())
        .flat_map(|m| m.fields.iter().map(|f| f.offset))
        .collect();
    if a.is_some() && b.is_some() {
        for off in offsets {
            let fa = a.and_then(|m| m.fields.iter().find(|f| f.offset == off).map(field_text));
            let fb = b.and_then(|m| m.fields.iter().find(|f| f.offset == off).map(field_text));
            if fa != fb {
                changes.push(change("field", Some(off), fa, fb));
            }
        }
        let (wa, wb) = (a.map(warnings_of), b.map(warnings_of));
        for w in wa.iter().flatten() {
            if !wb.iter().flatten().any(|x| x == w) {
                changes.push(change("warning", None, Some(w.clone()), None));
            }
        }
        for w in wb.iter().flatten() {
            if !wa.iter().flatten().any(|x| x == w) {
                changes.push(change("warning", None, None, Some(w.clone())));
            }
        }
        let slot = |m: Option<&MapReport>, i: u32| {
            m.and_then(|m| m.slots.iter().find(|s| s.0 == i))
                .map(|(_, n, e)| match e {
                    None => format!("slot [{i}] = map {n}: stored"),
                    Some(e) => format!("slot [{i}] = map {n}: {e}"),
                })
        };
        let idx: BTreeSet<u32> = a
            .iter()
            .chain(b.iter())
            .flat_map(|m| m.slots.iter().map(|s| s.0))
            .collect();
        for i in idx {
            let (sa, sb) = (slot(a, i), slot(b, i));
            if sa != sb {
                changes.push(change("slot", Some(i), sa, sb));
            }
        }
    }
    let (ia, ib) = (
        a.and_then(|m| m.inner.as_deref()),
        b.and_then(|m| m.inner.as_deref()),
    );
    let inner = (ia.is_some() || ib.is_some())
        .then(|| Box::new(diff_map(&format!("{name}.inner"), ia, ib)))
        .filter(|d| d.count() > 0);
    MapDiff {
        name: name.to_string(),
        from: a.cloned(),
        to: b.cloned(),
        changes,
        inner,
    }
}

/// The whole diff of two reports.
pub fn diff_reports(a: &CheckReport, b: &CheckReport) -> (bool, Vec<MapDiff>) {
    let btf_changed = a.btf_text() != b.btf_text() || a.btf_warnings != b.btf_warnings;
    let mut names: Vec<&str> = Vec::new();
    for m in a.maps.iter().chain(&b.maps) {
        if !names.contains(&m.def.kname.as_str()) {
            names.push(&m.def.kname);
        }
    }
    let maps = names
        .into_iter()
        .map(|n| {
            diff_map(
                n,
                a.maps.iter().find(|m| m.def.kname == n),
                b.maps.iter().find(|m| m.def.kname == n),
            )
        })
        .filter(|d| d.count() > 0)
        .collect();
    (btf_changed, maps)
}

fn map_lines(d: &MapDiff, indent: &str, out: &mut Vec<String>) {
    let head = |m: &Option<MapReport>| m.as_ref().map(line_of);
    let header_changed = d.changes.iter().any(|c| c.what == "map");
    if !header_changed && let Some(h) = head(&d.to).or_else(|| head(&d.from)) {
        out.push(format!("  {indent}{h}"));
    }
    for c in &d.changes {
        let sub = if c.what == "map" { "" } else { "  " };
        if let Some(f) = &c.from {
            out.push(format!("- {indent}{sub}{f}"));
        }
        if let Some(t) = &c.to {
            out.push(format!("+ {indent}{sub}{t}"));
        }
    }
    if let Some(i) = &d.inner {
        map_lines(i, &format!("{indent}  inner "), out);
    }
}

fn change_json(c: &Change) -> Value {
    json!({
        "what": c.what, "at": c.at, "from": c.from, "to": c.to,
        "change": match (&c.from, &c.to) {
            (None, _) => "added",
            (_, None) => "removed",
            _ => "changed",
        },
    })
}

fn map_diff_json(d: &MapDiff) -> Value {
    json!({
        "name": d.name,
        "change": match (&d.from, &d.to) {
            (None, _) => "added",
            (_, None) => "removed",
            _ => "changed",
        },
        "from": d.from.as_ref().map(map_json),
        "to": d.to.as_ref().map(map_json),
        "changes": d.changes.iter().map(change_json).collect::<Vec<_>>(),
        "inner": d.inner.as_deref().map(map_diff_json),
    })
}

/// `kptr-model diff`: each profile's report of the object (the embedded example built
/// for each profile's node layout when no OBJ is given), and what changes.
pub fn cmd_diff(
    obj: Option<&Path>,
    vmlinux: Option<&Path>,
    a: Semantics,
    b: Semantics,
) -> Result<Output, LoadError> {
    let (name_a, oname_a, bytes_a) = object_bytes(obj, &a)?;
    let (name_b, oname_b, bytes_b) = object_bytes(obj, &b)?;
    let (ka, _) = crate::kernel_btf::load_kernel_btfs(vmlinux, false, a)?;
    let (kb, _) = crate::kernel_btf::load_kernel_btfs(vmlinux, false, b)?;
    let ra = crate::check::check_object_named(&ka, &bytes_a, &oname_a, &a)?;
    let rb = crate::check::check_object_named(&kb, &bytes_b, &oname_b, &b)?;
    let (btf_changed, maps) = diff_reports(&ra, &rb);
    let mut lines = Vec::new();
    if name_a == name_b {
        lines.push(format!("{name_a}: {} -> {}", a.name, b.name));
    } else {
        lines.push(format!("{name_a} -> {name_b}: {} -> {}", a.name, b.name));
    }
    if btf_changed {
        lines.push(format!("- BTF load: {}", ra.btf_text()));
        lines.push(format!("+ BTF load: {}", rb.btf_text()));
    } else {
        lines.push(format!("  BTF load: {}", ra.btf_text()));
    }
    for d in &maps {
        map_lines(d, "", &mut lines);
    }
    let changes = usize::from(btf_changed) + maps.iter().map(MapDiff::count).sum::<usize>();
    let total = ra
        .maps
        .iter()
        .chain(&rb.maps)
        .map(|m| &m.def.kname)
        .collect::<BTreeSet<_>>()
        .len();
    lines.push(format!(
        "{changes} change{}; {} of {total} maps changed",
        if changes == 1 { "" } else { "s" },
        maps.len()
    ));
    let mut text = lines.join("\n");
    text.push('\n');
    let verdict = |r: &CheckReport| json!({"ok": r.btf_errno.is_none(), "errno": crate::check::errno_json(r.btf_errno), "text": r.btf_text()});
    Ok(Output {
        text,
        json: json!({
            "from": {"profile": a.name, "object": name_a},
            "to": {"profile": b.name, "object": name_b},
            "btf_load": {"changed": btf_changed, "from": verdict(&ra), "to": verdict(&rb)},
            "maps": maps.iter().map(map_diff_json).collect::<Vec<_>>(),
            "changes": changes,
        }),
        status: u8::from(changes > 0),
    })
}
