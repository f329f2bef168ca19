//! The running kernel as judge of the BTF verifier: every blob of the corpus goes to
//! `BPF_BTF_LOAD`; the model must give the same errno and the same verifier log
//! (log_level 1), byte for byte.

use kernel_core::Semantics;
use kernel_core::btf::btf_parse_with_log;
use kptr_tests::btf_corpus::blobs;
use shim_std::oracle;

#[test]
fn corpus_is_large_enough() {
    let blobs = blobs();
    assert!(blobs.len() >= 95, "only {} blobs", blobs.len());
    let valid = blobs.iter().filter(|b| b.name.starts_with("valid")).count();
    assert!(
        valid >= 8 && blobs.len() - valid >= 85,
        "{valid} valid of {}",
        blobs.len()
    );
}

#[test]
fn model_matches_kernel_on_every_blob() {
    if kptr_tests::kernel_skip("BPF_BTF_LOAD corpus") {
        return;
    }
    let mut mismatches = Vec::new();
    let blobs = blobs();
    for b in &blobs {
        let k = oracle::btf_load(&b.bytes);
        let (m_errno, m_log) = match btf_parse_with_log(&b.bytes, 1, Semantics::V6_18) {
            Ok((_, log)) => (None, log),
            Err(e) => (Some(e.errno.raw()), e.log),
        };
        if k.errno != m_errno || k.log != m_log {
            mismatches.push(format!(
                "{}:\n  kernel errno {:?}, model errno {:?}\n  kernel log tail: {:?}\n  model  log tail: {:?}",
                b.name,
                k.errno,
                m_errno,
                tail(&k.log),
                tail(&m_log)
            ));
        }
    }
    eprintln!("{} blobs compared with the kernel", blobs.len());
    assert!(
        mismatches.is_empty(),
        "{} mismatches:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}

fn tail(s: &str) -> &str {
    let n = s.len();
    let mut i = n.saturating_sub(300);
    while !s.is_char_boundary(i) {
        i += 1;
    }
    &s[i..]
}
