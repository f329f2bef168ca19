//! The verifier's fast accepting path against its exact path: for every input, the fast
//! path accepts exactly what the exact path accepts (base BTF), with the same type
//! offsets, resolved ids and resolved sizes; `btf_verify` (fast, then exact) gives the
//! exact path's errno and reason on every rejection.
//!
//! Inputs: the kernel-judged corpus, every kind, the fixtures' BTF, this machine's
//! vmlinux and the embedded one, hand-made names at the limits, and 100,000 mutations
//! (count from `KPTR_MUTATIONS`), each under v6.12 and v6.18 and with and without the
//! resolve pass.

use kernel_core::Semantics;
use kernel_core::btf::builder::BtfBuilder;
use kernel_core::btf::uapi::BTF_INT_SIGNED;
use kernel_core::btf::{BtfData, ParseOpts, btf_verify, btf_verify_exact, btf_verify_fast};
use kptr_tests::btf_corpus::{Rng, all_kinds, blobs, mutate};

fn opts(sem: Semantics, resolve: bool) -> ParseOpts {
    ParseOpts {
        log_level: 0,
        resolve,
        sem,
    }
}

/// Every type record (header words and position in the blob) and every resolved id
/// and size.
fn same_data(a: &BtfData, b: &BtfData, what: &str) {
    assert_eq!(a.nr_types(), b.nr_types(), "{what}: type count");
    assert_eq!(a.is_resolved(), b.is_resolved(), "{what}: resolved");
    for id in 0..a.nr_types() {
        let (ta, tb) = (a.type_by_id(id), b.type_by_id(id));
        let rec = |d: &BtfData, t: Option<kernel_core::btf::TypeRef<'_>>| {
            t.map(|t| {
                let at = t.trailing().as_ptr() as usize;
                // void is no record of the blob
                let pos = if t.is_void() {
                    0
                } else {
                    at.wrapping_sub(d.raw().as_ptr() as usize)
                };
                (t.name_off(), t.info(), t.size_or_type(), pos, t.is_void())
            })
        };
        assert_eq!(rec(a, ta), rec(b, tb), "{what}: type {id}");
        assert_eq!(
            (a.resolved_type_id(id), a.resolved_type_size(id)),
            (b.resolved_type_id(id), b.resolved_type_size(id)),
            "{what}: resolved id/size of {id}"
        );
    }
}

/// Compares the paths on one input; returns whether it was accepted.
fn check(input: &[u8], o: &ParseOpts, what: &str) -> bool {
    let exact = btf_verify_exact(Box::from(input), None, o);
    let fast = btf_verify_fast(Box::from(input), o);
    let both = btf_verify(Box::from(input), None, o);
    match (&exact, &both) {
        (Ok((e, _)), Ok((b, _))) => same_data(e, b, what),
        (Err(e), Err(b)) => assert_eq!(
            (e.errno, e.reason),
            (b.errno, b.reason),
            "{what}: btf_verify and the exact path refuse differently"
        ),
        (e, b) => panic!(
            "{what}: exact {:?}, btf_verify {:?}",
            e.as_ref().err(),
            b.as_ref().err()
        ),
    }
    match (&exact, &fast) {
        (Ok((e, _)), Some(f)) => {
            same_data(e, f, what);
            true
        }
        (Err(_), None) => false,
        (Ok(_), None) => panic!("{what}: the exact path accepts, the fast path gives up"),
        (Err(e), Some(_)) => {
            panic!("{what}: the fast path accepts what the exact path refuses: {e}")
        }
    }
}

fn check_all_modes(input: &[u8], what: &str) -> usize {
    let mut accepted = 0;
    for sem in [Semantics::V6_12, Semantics::V6_18] {
        for resolve in [true, false] {
            let w = format!("{what} ({}, resolve {resolve})", sem.name);
            accepted += check(input, &opts(sem, resolve), &w) as usize;
        }
    }
    accepted
}

#[test]
fn corpus_fixtures_and_vmlinux_agree() {
    let mut n = 0;
    let mut accepted = 0;
    for b in blobs() {
        accepted += check_all_modes(&b.bytes, b.name);
        n += 1;
    }
    accepted += check_all_modes(&all_kinds(), "all kinds");
    for p in kptr_tests::fixture_objects() {
        let Ok(d) = std::fs::read(&p) else { continue };
        let Ok(o) = shim_std::elf::read_bpf_object(&d) else {
            continue;
        };
        accepted += check_all_modes(&o.btf, &p.display().to_string());
        n += 1;
    }
    accepted += check_all_modes(
        &shim_std::kernel_btf::embedded_vmlinux(),
        "embedded vmlinux",
    );
    match std::fs::read("/sys/kernel/btf/vmlinux") {
        Ok(d) => {
            // v6.12 refuses this kernel's kind_flag decl/type tags; v6.18 accepts.
            assert_eq!(
                check_all_modes(&d, "vmlinux"),
                2,
                "vmlinux accepted under v6.18"
            );
        }
        Err(e) => eprintln!("NOT RUN: /sys/kernel/btf/vmlinux: {e}; the embedded BTF stands in"),
    }
    assert!(n > 150, "{n} inputs");
    assert!(accepted > 400, "only {accepted} accepted");
}

/// Names where the fast path's string classification changes its answer: Latin-1
/// letters, non-identifier bytes next to names, and lengths around the 512-byte limit
/// with and without a long non-identifier string in the section.
#[test]
fn names_at_the_edges_agree() {
    let long = |n: usize| "a".repeat(n);
    let mut cases: Vec<(String, Vec<u8>)> = Vec::new();
    for (label, member) in [
        ("plain", "x".to_string()),
        ("latin1", "caf\u{e9}".to_string()),
        ("len 495", long(495)),
        ("len 496", long(496)),
        ("len 511", long(511)),
        ("len 512", long(512)),
        ("len 513", long(513)),
        ("space", "a b".to_string()),
        ("dash", "a-b".to_string()),
    ] {
        for extra in [None, Some("has space"), Some(&*"(".repeat(700))] {
            let mut b = BtfBuilder::new();
            let int = b.int("int", 4, BTF_INT_SIGNED, 32);
            if let Some(e) = extra {
                b.decl_tag(e, int, -1);
            }
            b.struct_("s", 8, &[(member.as_str(), int, 0), ("next_one", int, 32)]);
            cases.push((
                format!("{label} member, extra {:?}", extra.map(str::len)),
                b.build(),
            ));
        }
    }
    let mut accepted = 0;
    let mut latin1_raw = Vec::new();
    for (what, bytes) in &cases {
        accepted += check_all_modes(bytes, what);
        // The builder writes UTF-8; the kernel's ctype is Latin-1, so also try the
        // single byte 0xe9 in place of its two-byte UTF-8 form.
        if what.starts_with("latin1") {
            let mut v = bytes.clone();
            if let Some(p) = v.windows(2).position(|w| w == [0xc3, 0xa9]) {
                v.splice(p..p + 2, [0xe9, b'_']);
                latin1_raw.push(v);
            }
        }
    }
    for v in &latin1_raw {
        accepted += check_all_modes(v, "latin1 raw");
    }
    assert!(accepted >= 40, "only {accepted} accepted");
}

#[test]
fn mutations_agree() {
    let count: usize = std::env::var("KPTR_MUTATIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    let seeds = kptr_tests::mutation_seeds();
    let mut rng = Rng(0x6661_7374 | 1);
    let mut accepted = 0;
    for i in 0..count {
        let s = &seeds[rng.below(seeds.len())];
        let input = mutate(&mut rng, s);
        let sem = if i % 2 == 0 {
            Semantics::V6_18
        } else {
            Semantics::V6_12
        };
        accepted += check(&input, &opts(sem, i % 3 != 0), &format!("mutation {i}")) as usize;
    }
    eprintln!("{count} mutations, {accepted} accepted by both paths");
    assert!(accepted > count / 20, "only {accepted} of {count} accepted");
}

/// A header longer than `struct btf_header` (its tail zero, as the kernel allows) puts
/// the type section at an odd address: the fast path reads a copy of its words and
/// still agrees with the exact path.
#[test]
fn unaligned_type_section_agrees() {
    let mut accepted = 0;
    for extra in [1usize, 2, 3, 4] {
        let base = all_kinds();
        let hdr_len = u32::from_ne_bytes([base[4], base[5], base[6], base[7]]) as usize;
        let mut v = base[..hdr_len].to_vec();
        v.extend(std::iter::repeat_n(0u8, extra));
        v.extend_from_slice(&base[hdr_len..]);
        v[4..8].copy_from_slice(&((hdr_len + extra) as u32).to_ne_bytes());
        accepted += check_all_modes(&v, &format!("header + {extra}"));
    }
    assert_eq!(accepted, 16, "every layout accepted in every mode");
}

/// This machine's vmlinux, mutated: one aligned word of the type section set to an
/// edge value or random bits, or one byte of the string section changed. Each blob
/// (100 by default, `KPTR_VMLINUX_MUTATIONS` for more) goes through both paths under
/// v6.18 with the resolve pass.
#[test]
fn vmlinux_mutations_agree() {
    let Ok(base) = std::fs::read("/sys/kernel/btf/vmlinux") else {
        eprintln!("NOT RUN: /sys/kernel/btf/vmlinux unreadable; no vmlinux mutations");
        return;
    };
    let count: usize = std::env::var("KPTR_VMLINUX_MUTATIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100);
    let rd = |o: usize| u32::from_ne_bytes([base[o], base[o + 1], base[o + 2], base[o + 3]]);
    let hdr_len = rd(4) as usize;
    let (type_off, type_len) = (rd(8) as usize, rd(12) as usize);
    let (str_off, str_len) = (rd(16) as usize, rd(20) as usize);
    let types = hdr_len + type_off..hdr_len + type_off + type_len;
    let strs = hdr_len + str_off..hdr_len + str_off + str_len;
    const EDGES: [u32; 8] = [0, 1, 2, 0xff, 0xffff, 0x000f_ffff, 0x8000_0000, 0xffff_ffff];
    let mut rng = Rng(0x766d_6c78 | 1);
    let o = opts(Semantics::V6_18, true);
    let mut accepted = 0;
    for i in 0..count {
        let mut v = base.clone();
        if i % 4 == 3 {
            let at = strs.start + rng.below(strs.len());
            v[at] = rng.next_u64() as u8;
        } else {
            let at = types.start + rng.below(types.len() / 4) * 4;
            let x = if i % 2 == 0 {
                EDGES[rng.below(EDGES.len())]
            } else {
                rng.next_u64() as u32
            };
            v[at..at + 4].copy_from_slice(&x.to_ne_bytes());
        }
        accepted += check(&v, &o, &format!("vmlinux mutation {i}")) as usize;
    }
    eprintln!("{count} vmlinux mutations, {accepted} accepted by both paths");
    assert!(
        accepted > 0 && accepted < count,
        "{accepted} of {count} accepted"
    );
}
