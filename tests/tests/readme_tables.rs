//! The README's loom tables list what is on disk: a row for every loom model file
//! (`loom-tests/tests/mNN_*.rs`) and none for a model that is gone, and a row for every
//! seeded fault of `loom-tests/seeds/faults.json`, in its order; and every seeded fault
//! still applies to the code.

use std::collections::BTreeSet;
use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The first cell of every row of the README table whose header row starts with `head`.
fn first_cells(head: &str) -> Vec<String> {
    let text = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    let mut lines = text.lines().skip_while(|l| !l.starts_with(head));
    assert!(lines.next().is_some(), "no README table headed {head:?}");
    lines
        .skip(1)
        .take_while(|l| l.starts_with('|'))
        .filter_map(|l| l.split('|').nth(1).map(|c| c.trim().to_string()))
        .collect()
}

#[test]
fn loom_table_lists_every_model() {
    let on_disk: BTreeSet<String> = std::fs::read_dir(root().join("loom-tests/tests"))
        .expect("loom-tests/tests")
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|n| n.starts_with('m') && n.ends_with(".rs"))
        .filter_map(|n| n.split('_').next().map(str::to_string))
        .collect();
    let in_readme: BTreeSet<String> = first_cells("| model | scenario |")
        .iter()
        .filter_map(|c| c.split_whitespace().next().map(str::to_string))
        .collect();
    assert!(!on_disk.is_empty(), "no loom models");
    assert_eq!(
        in_readme, on_disk,
        "the README's loom models against loom-tests/tests"
    );
}

/// `loom-tests/seeds/faults.json`.
fn faults_json() -> serde_json::Value {
    let p = root().join("loom-tests/seeds/faults.json");
    serde_json::from_str(
        &std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())),
    )
    .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn fault_table_lists_every_seeded_fault() {
    let v = faults_json();
    let ids: Vec<String> = v
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f["id"].as_str().map(str::to_string))
        .collect();
    assert!(!ids.is_empty(), "no seeded faults");
    assert_eq!(
        first_cells("| id | the fault |"),
        ids,
        "the README's seeded faults against faults.json"
    );
}

/// Every seeded fault still applies: its original text is in its file exactly once
/// (`seed.py` reports a fault whose code moved as "NOT APPLIED"; five had, unnoticed).
#[test]
fn every_seeded_fault_applies_to_todays_code() {
    let v = faults_json();
    let faults = v.as_array().cloned().unwrap_or_default();
    assert!(!faults.is_empty(), "no seeded faults");
    let stale: Vec<String> = faults
        .iter()
        .filter_map(|f| {
            let (id, file, old) = (f["id"].as_str()?, f["file"].as_str()?, f["old"].as_str()?);
            let src = std::fs::read_to_string(root().join(file)).unwrap_or_default();
            (src.matches(old).count() != 1).then(|| format!("{id} ({file})"))
        })
        .collect();
    assert!(
        stale.is_empty(),
        "seeded faults whose text is not in their file once: {stale:?}"
    );
}
