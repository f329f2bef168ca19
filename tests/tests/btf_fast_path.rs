//! The verifier's two log modes against each other. There is one engine
//! (`kernel_core::btf::verifier`), monomorphised over its log: `NoLog` at log level 0
//! (every log call compiles to nothing: the fast mode) and `VerifierLog` at level 1.
//! For every input both modes give the same verdict; when they accept, the same type
//! offsets, resolved ids and resolved sizes; when they refuse, the same errno, reason
//! and stage. Level 0 keeps no log; level 1 always has one (the header dump at least)
//! and, on a refusal in the type section, ends in the failing check's line.
//!
//! Inputs: the kernel-judged corpus, every kind, the fixtures' BTF, this machine's
//! vmlinux and the embedded one, names at the limits (Latin-1 letters, 512 bytes),
//! unaligned type sections, 100,000 mutations (count from `KPTR_MUTATIONS`), each under
//! v6.12 and v6.18 and with and without the resolve pass, split BTF on a base and its
//! mutations, and 100 mutations of vmlinux itself (`KPTR_VMLINUX_MUTATIONS`).

use kernel_core::Semantics;
use kernel_core::btf::builder::BtfBuilder;
use kernel_core::btf::uapi::BTF_INT_SIGNED;
use kernel_core::btf::{BtfData, BtfRef, BtfStage, ParseOpts, btf_parse_vmlinux, btf_verify};
use kptr_tests::btf_corpus::{Rng, all_kinds, blobs, mutate};

fn opts(sem: Semantics, resolve: bool, log_level: u32) -> ParseOpts {
    ParseOpts {
        log_level,
        resolve,
        sem,
    }
}

/// Every type record (header words and position in its blob) and every resolved id
/// and size.
fn same_data(a: &BtfData, b: &BtfData, what: &str) {
    assert_eq!(a.nr_types(), b.nr_types(), "{what}: type count");
    assert_eq!(a.is_resolved(), b.is_resolved(), "{what}: resolved");
    for id in 0..a.nr_types() {
        let rec = |d: &BtfData| {
            d.type_by_id(id).map(|t| {
                let at = t.trailing().as_ptr() as usize;
                // void is no record of the blob, and a base type is in the base's
                let pos = if t.is_void() || id < d.start_id() {
                    0
                } else {
                    at.wrapping_sub(d.raw().as_ptr() as usize)
                };
                (t.name_off(), t.info(), t.size_or_type(), pos, t.is_void())
            })
        };
        assert_eq!(rec(a), rec(b), "{what}: type {id}");
        assert_eq!(
            (a.resolved_type_id(id), a.resolved_type_size(id)),
            (b.resolved_type_id(id), b.resolved_type_size(id)),
            "{what}: resolved id/size of {id}"
        );
    }
}

/// Runs `input` (on `base`, if any) with the log off and on; returns whether it was
/// accepted.
fn check_on(
    input: &[u8],
    base: Option<&BtfRef>,
    sem: Semantics,
    resolve: bool,
    what: &str,
) -> bool {
    let quiet = btf_verify(
        Box::from(input),
        base.map(|b| b.data()),
        &opts(sem, resolve, 0),
    );
    let logged = btf_verify(
        Box::from(input),
        base.map(|b| b.data()),
        &opts(sem, resolve, 1),
    );
    match (&quiet, &logged) {
        (Ok((q, ql)), Ok((l, ll))) => {
            same_data(q, l, what);
            assert!(ql.as_bytes().is_empty(), "{what}: log kept at level 0");
            assert!(!ll.as_bytes().is_empty(), "{what}: no log at level 1");
            true
        }
        (Err(q), Err(l)) => {
            assert_eq!(
                (q.errno, q.reason, q.stage),
                (l.errno, l.reason, l.stage),
                "{what}: the log modes refuse differently"
            );
            assert!(q.log.is_empty(), "{what}: log kept at level 0");
            if l.stage != BtfStage::Parse {
                assert!(!l.log.is_empty(), "{what}: no log at level 1");
            }
            if matches!(l.stage, BtfStage::CheckAllMetas | BtfStage::CheckAllTypes) && l.logged {
                // The failing check's message ends the log (its template's first
                // word at least: the numbers are filled in).
                let head = l
                    .reason
                    .trim_start_matches("[%u] ")
                    .split(['%', ':'])
                    .next();
                let last = l.message();
                assert!(
                    head.is_some_and(|h| last.contains(h.trim())),
                    "{what}: last line {last:?} is not {:?}",
                    l.reason
                );
            }
            false
        }
        (q, l) => panic!(
            "{what}: log off {:?}, log on {:?}",
            q.as_ref().err(),
            l.as_ref().err()
        ),
    }
}

fn check(input: &[u8], sem: Semantics, resolve: bool, what: &str) -> bool {
    check_on(input, None, sem, resolve, what)
}

fn check_all_modes(input: &[u8], what: &str) -> usize {
    let mut accepted = 0;
    for sem in [Semantics::V6_12, Semantics::V6_18] {
        for resolve in [true, false] {
            let w = format!("{what} ({}, resolve {resolve})", sem.name);
            accepted += check(input, sem, resolve, &w) as usize;
        }
    }
    accepted
}

/// Mutations per run unless `KPTR_MUTATIONS` says otherwise.
const DEFAULT_MUTATIONS: usize = 100_000;
/// Mutations of the split blobs, per base (resolved and not).
const SPLIT_MUTATIONS_PER_BASE: usize = 10_000;
/// Mutations of vmlinux per run unless `KPTR_VMLINUX_MUTATIONS` says otherwise.
const DEFAULT_VMLINUX_MUTATIONS: usize = 100;

/// The README's figures for these inputs.
#[test]
fn readme_counts_the_inputs() {
    use kptr_tests::readme::{n, states};
    states(&format!(
        "{} mutations under two profiles with and without the resolve pass, split BTF on a base and {} of its mutations, {} blobs where a walk reaches an early-resolved type before its turn (chains at the depth limit) and their mutations, and {} mutations of vmlinux itself",
        n(DEFAULT_MUTATIONS),
        n(2 * SPLIT_MUTATIONS_PER_BASE),
        n(turn_blobs().len()),
        n(DEFAULT_VMLINUX_MUTATIONS)
    ));
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
        let d = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        let o =
            shim_std::elf::read_bpf_object(&d).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
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
    assert_eq!(
        n,
        blobs().len() + kptr_tests::fixture_objects().len(),
        "every blob of the corpus and every fixture"
    );
    assert!(accepted > 400, "only {accepted} accepted");
}

/// Names where the string section's classification changes the identifier check's
/// path: Latin-1 letters (the kernel's `isalpha` takes 0xc0..=0xff but 0xd7 and 0xf7),
/// non-identifier bytes next to names, and lengths around the 512-byte limit with and
/// without a long non-identifier string in the section.
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
        let n = check_all_modes(bytes, what);
        accepted += n;
        // The builder writes UTF-8; the kernel's ctype is Latin-1, so also try the
        // single bytes 0xe9 (a letter) and 0xd7 (not one) in place of the two-byte
        // UTF-8 form.
        if what.starts_with("latin1") {
            for c in [0xe9u8, 0xd7] {
                let mut v = bytes.clone();
                if let Some(p) = v.windows(2).position(|w| w == [0xc3, 0xa9]) {
                    v.splice(p..p + 2, [c, b'_']);
                    latin1_raw.push((c, v, n));
                }
            }
        }
    }
    for (c, v, utf8) in &latin1_raw {
        let n = check_all_modes(v, &format!("latin1 raw {c:#x}"));
        // 0xe9 is a letter; 0xd7 is not, nor is 0xa9, the second byte of the UTF-8
        // form.
        assert_eq!(*utf8, 0, "latin1 as UTF-8");
        assert_eq!(n > 0, *c == 0xe9, "latin1 raw {c:#x}");
        accepted += n;
    }
    assert!(accepted >= 40, "only {accepted} accepted");
}

#[test]
fn mutations_agree() {
    let count: usize = std::env::var("KPTR_MUTATIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_MUTATIONS);
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
        accepted += check(&input, sem, i % 3 != 0, &format!("mutation {i}")) as usize;
    }
    eprintln!("{count} mutations, {accepted} accepted in both log modes");
    assert!(accepted > count / 20, "only {accepted} of {count} accepted");
}

/// A header longer than `struct btf_header` (its tail zero, as the kernel allows) puts
/// the type section at an odd address: the engine reads a copy of its words, in both
/// log modes.
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

/// A base with a type of every role a module's types refer to (modifiers, a type tag
/// chain, a FUNC_PROTO with an unnamed typed parameter, a VAR and a DATASEC).
fn split_base() -> Vec<u8> {
    let mut b = BtfBuilder::new();
    let int = b.int("int", 4, BTF_INT_SIGNED, 32); // 1
    b.int("bf", 4, 0, 3); // 2
    let s = b.struct_("task_struct", 8, &[("pid", int, 0), ("tgid", int, 32)]); // 3
    let p = b.ptr(s); // 4
    b.typedef("pid_t", int); // 5
    b.const_(p); // 6
    b.array(int, int, 4); // 7
    b.func_proto(0, &[("", int)]); // 8: a parameter with a type but no name
    let ok = b.func_proto(int, &[("a", p), ("b", 5)]); // 9
    b.func("f_ok", ok, 1); // 10
    b.fwd("fw", false); // 11
    b.enum_("e", 4, false, &[("A", 1)]); // 12
    b.float("fl", 8); // 13
    let vol = b.volatile(p); // 14
    b.type_tag("tg", vol); // 15
    let v = b.var("gv", int, 1); // 16
    b.datasec(".data", 4, &[(v, 0, 4)]); // 17
    b.build()
}

/// Module BTF on [`split_base`], each variant adding types that refer to the base in
/// another way.
fn split_blobs(base: &BtfData) -> Vec<Vec<u8>> {
    let n = base.nr_types();
    let mut out = Vec::new();
    for variant in 0..6u32 {
        let mut b = BtfBuilder::new_split(n, base.header().str_len);
        let s = b.struct_(
            "m",
            24,
            &[("a", 1, 0), ("b", 5, 32), ("c", 7, 64), ("d", 2, 160)],
        );
        let p = b.ptr(s);
        b.struct_("holder", 16, &[("p", p, 0), ("q", 6, 64)]);
        b.typedef("tdm", 14);
        b.const_(5);
        b.ptr(11);
        b.array(3, 1, 2);
        b.array(5, 5, 2);
        let proto = b.func_proto(5, &[("x", 4), ("y", 15)]);
        b.func("mf", proto, 0);
        b.func("uses_base_proto", 9, 0);
        match variant {
            1 => {
                b.func("bad_base_proto", 8, 0);
            }
            2 => {
                b.decl_tag("dt", 10, 0);
                b.decl_tag("dt2", 3, 1);
                b.decl_tag("dt3", 16, -1);
            }
            3 => {
                b.struct_kflag("k", 8, &[("a", 1, 3 << 24), ("b", 12, 3 << 24 | 8)]);
                b.var("mv", 5, 0);
            }
            4 => {
                b.typedef("past_the_end", n + 1000);
                b.ptr(0);
            }
            5 => {
                let v = b.var("mv2", 7, 0);
                b.datasec(".bss", 16, &[(v, 0, 16), (16, 0, 4)]);
            }
            _ => {}
        }
        out.push(b.build());
    }
    out
}

/// Split BTF: base types are read from the base (resolved or not), in both log modes.
#[test]
fn split_btf_agrees() {
    let mut accepted = 0;
    let mut total = 0;
    for full in [true, false] {
        let base = btf_parse_vmlinux(&split_base(), full, Semantics::V6_18).expect("base");
        let blobs = split_blobs(base.data());
        let mut rng = Rng(0x5370_6c74 | 1);
        for (i, b) in blobs.iter().enumerate() {
            let what = format!("split {i}, base resolved {full}");
            let ok = check_on(b, Some(&base), Semantics::V6_18, full, &what);
            // Without the resolve pass nothing checks a FUNC's prototype (variant 1).
            assert_eq!(ok, matches!(i, 0 | 2 | 3) || (i == 1 && !full), "{what}");
            accepted += ok as usize;
            total += 1;
        }
        for i in 0..SPLIT_MUTATIONS_PER_BASE {
            let seed = &blobs[rng.below(blobs.len())];
            let m = mutate(&mut rng, seed);
            let what = format!("split mutation {i}, base resolved {full}");
            accepted +=
                check_on(&m, Some(&base), Semantics::V6_18, full && i % 2 == 0, &what) as usize;
            total += 1;
        }
    }
    eprintln!("{total} split blobs, {accepted} accepted in both log modes");
    assert!(accepted > 500, "only {accepted} of {total} accepted");
}

/// This machine's vmlinux, mutated: one aligned word of the type section set to an
/// edge value or random bits, or one byte of the string section changed. Each blob
/// (100 by default, `KPTR_VMLINUX_MUTATIONS` for more) goes through both log modes
/// under v6.18 with the resolve pass.
#[test]
fn vmlinux_mutations_agree() {
    let Ok(base) = std::fs::read("/sys/kernel/btf/vmlinux") else {
        eprintln!("NOT RUN: /sys/kernel/btf/vmlinux unreadable; no vmlinux mutations");
        return;
    };
    let count: usize = std::env::var("KPTR_VMLINUX_MUTATIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_VMLINUX_MUTATIONS);
    let rd = |o: usize| u32::from_ne_bytes([base[o], base[o + 1], base[o + 2], base[o + 3]]);
    let hdr_len = rd(4) as usize;
    let (type_off, type_len) = (rd(8) as usize, rd(12) as usize);
    let (str_off, str_len) = (rd(16) as usize, rd(20) as usize);
    let types = hdr_len + type_off..hdr_len + type_off + type_len;
    let strs = hdr_len + str_off..hdr_len + str_off + str_len;
    const EDGES: [u32; 8] = [0, 1, 2, 0xff, 0xffff, 0x000f_ffff, 0x8000_0000, 0xffff_ffff];
    let mut rng = Rng(0x766d_6c78 | 1);
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
        accepted += check(&v, Semantics::V6_18, true, &format!("vmlinux mutation {i}")) as usize;
    }
    eprintln!("{count} vmlinux mutations, {accepted} accepted in both log modes");
    assert!(
        accepted > 0 && accepted < count,
        "{accepted} of {count} accepted"
    );
}

/// Blobs where the log-off mode's shortcuts decide (a FUNC found resolvable, or a
/// FUNC_PROTO found to pass, by the meta pass) and a walk comes to such a type
/// before its turn: decl tags, typedefs, PTRs and VARs to FUNCs that come later,
/// chains at the resolve depth limit, and prototypes whose parameters are typedef
/// chains going forward or back, to void, FWD, FUNC_PROTO, a FUNC or a struct.
fn turn_blobs() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    // Referrers first or last, each target kind, chains around MAX_RESOLVE_DEPTH.
    for chain in [1u32, 2, 30, 31, 32, 33] {
        for referrer in [
            "typedef",
            "ptr",
            "var",
            "decl_tag",
            "const_ptr",
            "proto_arg",
            "proto_ret",
        ] {
            for func_first in [false, true] {
                let mut b = BtfBuilder::new();
                let int = b.int("int", 4, BTF_INT_SIGNED, 32);
                let (proto, func);
                if func_first {
                    proto = b.func_proto(int, &[("a", int)]);
                    func = b.func("f", proto, 0);
                } else {
                    // The FUNC's id is known ahead: the chain, then the proto and it.
                    let first = b.next_id();
                    let extra = if referrer == "proto_arg" || referrer == "proto_ret" {
                        1
                    } else {
                        0
                    };
                    proto = first + chain + extra;
                    func = proto + 1;
                }
                let mut t = func;
                let head = first_of_chain(&mut b, chain, &mut t, referrer);
                let _ = head;
                if !func_first {
                    let p = b.func_proto(int, &[("a", int)]);
                    assert_eq!(p, proto);
                    let f = b.func("f", p, 0);
                    assert_eq!(f, func);
                }
                out.push((
                    format!("{referrer} chain {chain} func_first {func_first}"),
                    b.build(),
                ));
            }
        }
    }
    // A prototype, a typedef or a VAR before a chain of PTRs that come later, each
    // PTR to the one before it (the meta pass finds each resolvable from lower ids):
    // the resolve pass reaches the chain from its head before the PTRs' turns.
    for chain in [1u32, 30, 31, 32, 33] {
        for referrer in ["proto", "typedef", "var", "const"] {
            let mut b = BtfBuilder::new();
            let int = b.int("int", 4, BTF_INT_SIGNED, 32);
            let first = b.next_id();
            // referrer (+ a FUNC for the proto), the struct, then the chain.
            let extra = if referrer == "proto" { 2 } else { 1 };
            let head = first + extra + chain;
            match referrer {
                "proto" => {
                    let p = b.func_proto(int, &[("p", head)]);
                    b.func("user", p, 0);
                }
                "typedef" => {
                    b.typedef("t", head);
                }
                "var" => {
                    b.var("v", head, 0);
                }
                _ => {
                    b.const_(head);
                }
            }
            let s = b.struct_("s", 4, &[("m", int, 0)]);
            let mut prev = s;
            for _ in 0..chain {
                prev = b.ptr(prev);
            }
            assert_eq!(prev, head);
            out.push((
                format!("{referrer} before a PTR chain of {chain}"),
                b.build(),
            ));
        }
    }
    // A struct member, an array element, a prototype parameter, a PTR or a VAR
    // before a chain of modifiers that come later, each to the one before it, ending
    // at an int, a struct, void or a FWD: the chain's head is reached before the
    // modifiers' turns.
    for chain in [1u32, 2, 30, 31, 32] {
        for referrer in ["member", "elem", "param", "ptr", "var"] {
            for end in ["int", "struct", "void", "fwd"] {
                let mut b = BtfBuilder::new();
                let int = b.int("int", 4, BTF_INT_SIGNED, 32);
                let first = b.next_id();
                let extra = if referrer == "param" { 2 } else { 1 };
                // referrer (+ a FUNC), the end, then the chain.
                let end_id = first + extra;
                let head = if end == "void" {
                    first + extra + chain - 1
                } else {
                    end_id + chain
                };
                match referrer {
                    "member" => {
                        b.struct_("holder", 8, &[("m", head, 0)]);
                    }
                    "elem" => {
                        b.array(head, int, 2);
                    }
                    "param" => {
                        let p = b.func_proto(int, &[("p", head)]);
                        b.func("user", p, 0);
                    }
                    "ptr" => {
                        b.ptr(head);
                    }
                    _ => {
                        b.var("v", head, 0);
                    }
                }
                let mut prev = match end {
                    "int" => b.typedef("i", int),
                    "struct" => b.struct_("s", 4, &[("x", int, 0)]),
                    "fwd" => b.fwd("f", false),
                    _ => 0,
                };
                for i in 0..chain {
                    prev = if i % 3 == 1 {
                        b.const_(prev)
                    } else {
                        b.typedef(&format!("t{i}"), prev)
                    };
                }
                assert_eq!(prev, head, "{referrer} {end} {chain}");
                out.push((
                    format!("{referrer} before a modifier chain of {chain} to {end}"),
                    b.build(),
                ));
            }
        }
    }
    // Prototypes whose parameters are typedef chains to every kind of end.
    for forward in [false, true] {
        for end in ["int", "void", "fwd", "proto", "struct", "func", "var"] {
            let mut b = BtfBuilder::new();
            let int = b.int("int", 4, BTF_INT_SIGNED, 32);
            let base = b.next_id();
            let (p, td);
            if forward {
                // proto, typedef -> typedef -> end
                p = b.func_proto(int, &[("x", base + 1), ("y", int)]);
                td = b.typedef("t1", base + 2);
                b.typedef("t2", base + 3);
                add_end(&mut b, end, int);
            } else {
                let e = add_end(&mut b, end, int);
                let t2 = b.typedef("t2", e);
                td = b.typedef("t1", t2);
                p = b.func_proto(int, &[("x", td), ("y", int)]);
            }
            let _ = td;
            b.func("g", p, 0);
            // A vararg, named and not, and an unnamed typed parameter.
            let v = b.func_proto(0, &[("a", int), ("", 0)]);
            b.func("h", v, 0);
            out.push((
                format!("proto param chain to {end}, forward {forward}"),
                b.build(),
            ));
            let mut bad = BtfBuilder::new();
            let int = bad.int("int", 4, BTF_INT_SIGNED, 32);
            let pv = bad.func_proto(0, &[("a", int), ("va", 0)]);
            bad.func("h", pv, 0);
            let pu = bad.func_proto(0, &[("", int)]);
            bad.func("u", pu, 0);
            out.push(("named vararg, unnamed parameter".to_string(), bad.build()));
        }
    }
    out
}

/// A chain of `n` links starting at the next id and ending at `*t`, made of the
/// referrer's kind; returns the chain's first id.
fn first_of_chain(b: &mut BtfBuilder, n: u32, t: &mut u32, referrer: &str) -> u32 {
    let int = 1;
    let first = b.next_id();
    for i in 0..n {
        let next = if i + 1 == n { *t } else { first + i + 1 };
        match referrer {
            "typedef" => {
                b.typedef(&format!("t{i}"), next);
            }
            "ptr" => {
                b.ptr(next);
            }
            "var" if i == 0 => {
                b.var("v", next, 0);
            }
            "decl_tag" if i == 0 => {
                b.decl_tag("tag", next, if n == 1 { 0 } else { -1 });
            }
            "const_ptr" => {
                if i % 2 == 0 {
                    b.const_(next);
                } else {
                    b.ptr(next);
                }
            }
            "proto_arg" | "proto_ret" if i == 0 => {
                // The prototype's parameter or return type is the rest of the chain.
                let rest = if n == 1 { *t } else { first + 2 };
                if referrer == "proto_arg" {
                    b.func_proto(int, &[("p", rest)]);
                } else {
                    b.func_proto(rest, &[("p", int)]);
                }
                b.func("user", first, 0);
            }
            _ => {
                b.typedef(&format!("l{i}"), next);
            }
        }
    }
    first
}

fn add_end(b: &mut BtfBuilder, end: &str, int: u32) -> u32 {
    match end {
        "int" => b.typedef("i", int),
        "void" => b.const_(0),
        "fwd" => b.fwd("fw", false),
        "proto" => b.func_proto(0, &[]),
        "struct" => b.struct_("st", 4, &[("m", int, 0)]),
        "func" => {
            let p = b.func_proto(0, &[]);
            b.func("e", p, 0)
        }
        _ => b.var("gv", int, 0),
    }
}

#[test]
fn turns_taken_early_agree() {
    let mut accepted = 0;
    let mut n = 0;
    for (what, blob) in turn_blobs() {
        accepted += check_all_modes(&blob, &what);
        n += 1;
        // And every word mutated once more.
        let mut rng = Rng(n as u64 | 1);
        for i in 0..20 {
            let m = mutate(&mut rng, &blob);
            accepted +=
                check(&m, Semantics::V6_18, true, &format!("{what}, mutation {i}")) as usize;
        }
    }
    eprintln!("{n} blobs, {accepted} accepted in both log modes");
    assert!(accepted > n, "only {accepted} accepted");
}
