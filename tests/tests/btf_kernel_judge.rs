//! The running kernel as judge of the BTF verifier: every blob of the corpus goes to
//! `BPF_BTF_LOAD`; the model must give the same errno and the same verifier log
//! (log_level 1), byte for byte.

use kernel_core::Semantics;
use kernel_core::btf::btf_parse_with_log;
use kptr_tests::btf_corpus::blobs;
use shim_std::oracle;

/// The corpus as the README counts it: every blob, those named valid (which the kernel
/// loads) and the rest (each breaking one rule, which it refuses).
#[test]
fn readme_counts_the_corpus() {
    use kptr_tests::readme::{n, states};
    let blobs = blobs();
    let valid = blobs.iter().filter(|b| b.name.starts_with("valid")).count();
    states(&format!(
        "`tests/tests/btf_kernel_judge.rs`: {} blobs ({} valid, which the kernel loads, and {} each breaking one rule, which it refuses;",
        n(blobs.len()),
        n(valid),
        n(blobs.len() - valid)
    ));
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
        // A blob named valid loads; every other one breaks a rule the kernel enforces.
        if b.name.starts_with("valid") != k.errno.is_none() {
            mismatches.push(format!("{}: the kernel answers {:?}", b.name, k.errno));
        }
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

/// The last 300 bytes of a log, for a message.
fn tail(s: &[u8]) -> String {
    String::from_utf8_lossy(&s[s.len().saturating_sub(300)..]).into_owned()
}
