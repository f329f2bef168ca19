//! The fixtures' bookkeeping is exact: `manifest.json` is what `gen_manifest.py` makes of
//! the sources' headers (every source has an entry), and the one list of fixtures kept
//! out of kernel runs (`kptr_tests::KERNEL_UNSAFE_FIXTURES`) is exactly the sources
//! whose header says `KERNEL_SAFE: no`, and the manifest's unsafe entries.

use std::collections::BTreeSet;

#[test]
fn exclusions_are_the_headers_and_the_manifest() {
    let dir = kptr_tests::fixtures_dir().join("bpf");
    let mut headers = BTreeSet::new();
    let mut sources = BTreeSet::new();
    for e in std::fs::read_dir(&dir).expect("bpf/").flatten() {
        let p = e.path();
        if p.extension().is_none_or(|x| x != "c") {
            continue;
        }
        let name = p
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_string();
        let text = std::fs::read_to_string(&p).expect("source");
        if text.contains("KERNEL_SAFE: no") {
            headers.insert(name.clone());
        }
        sources.insert(name);
    }
    let listed: BTreeSet<String> = kptr_tests::KERNEL_UNSAFE_FIXTURES
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(
        listed, headers,
        "KERNEL_UNSAFE_FIXTURES against the headers"
    );
    let m = kptr_tests::manifest();
    let in_manifest: BTreeSet<String> = m.iter().map(|e| e.name.clone()).collect();
    assert_eq!(
        in_manifest, sources,
        "every source has a manifest entry, and only they"
    );
    let unsafe_in_manifest: BTreeSet<String> = m
        .iter()
        .filter(|e| !e.kernel_safe)
        .map(|e| e.name.clone())
        .collect();
    assert_eq!(unsafe_in_manifest, listed, "the manifest's unsafe entries");
}

/// The manifest is regenerated from the headers and compared, when python3 is there.
#[test]
fn manifest_is_what_the_headers_say() {
    let script = kptr_tests::fixtures_dir().join("gen_manifest.py");
    let committed = std::fs::read_to_string(kptr_tests::fixtures_dir().join("manifest.json"))
        .expect("manifest");
    let tmp = std::env::temp_dir().join(format!("kptr-manifest-{}", std::process::id()));
    std::fs::create_dir_all(tmp.join("bpf")).expect("temporary directory");
    for e in std::fs::read_dir(kptr_tests::fixtures_dir().join("bpf"))
        .expect("bpf/")
        .flatten()
    {
        let _ = std::fs::copy(e.path(), tmp.join("bpf").join(e.file_name()));
    }
    let _ = std::fs::copy(&script, tmp.join("gen_manifest.py"));
    let out = std::process::Command::new("python3")
        .arg(tmp.join("gen_manifest.py"))
        .output();
    let Ok(out) = out else {
        eprintln!("NOT RUN: python3 is missing; the manifest was not regenerated");
        let _ = std::fs::remove_dir_all(&tmp);
        return;
    };
    assert!(
        out.status.success(),
        "gen_manifest.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let made = std::fs::read_to_string(tmp.join("manifest.json")).expect("regenerated");
    let _ = std::fs::remove_dir_all(&tmp);
    assert!(
        made == committed,
        "manifest.json is stale: run python3 tests/fixtures/gen_manifest.py"
    );
}

/// The corpus objects kept out of bpftool's loads are exactly those whose header says
/// they do not load.
#[test]
fn corpus_exclusions_are_the_headers() {
    let objs = kptr_tests::corpus_objects();
    assert!(!objs.is_empty(), "no corpus objects");
    let not_loading: BTreeSet<String> = objs
        .iter()
        .filter(|p| !kptr_tests::counts::header_says_loads(p))
        .filter_map(|p| p.file_stem()?.to_str().map(str::to_string))
        .collect();
    let listed: BTreeSet<String> = kptr_tests::CORPUS_NOT_LOADING
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(
        listed, not_loading,
        "CORPUS_NOT_LOADING against the headers"
    );
}
