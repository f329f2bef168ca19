//! Bad input never panics and never allocates beyond a small multiple of its size:
//! at least 100,000 mutated BTF blobs per run (seed from `KPTR_MUTATION_SEED`, count
//! from `KPTR_MUTATIONS`), each answered with an errno and a message, or accepted.

use std::panic::{AssertUnwindSafe, catch_unwind};

use kernel_core::Semantics;
use kernel_core::btf::{btf_parse, btf_parse_vmlinux};
use kptr_tests::btf_corpus::{Rng, mutate};
use shim_std::alloc_account::{CountingAlloc, largest_alloc, live_bytes, peak_bytes, reset_peak};

#[global_allocator]
static A: CountingAlloc = CountingAlloc;

/// Mutated blobs per run unless `KPTR_MUTATIONS` says otherwise.
const DEFAULT_COUNT: usize = 100_000;
/// The README's bound on a bad input's peak allocation, as a multiple of its size (an
/// input under 64 bytes counted as 64).
const PEAK_RATIO: f64 = 6.2;
/// The README's bound on vmlinux's peak allocation (the verifier reserves its per-type
/// arrays for one type per 12 bytes).
const VMLINUX_PEAK_RATIO: f64 = 1.9;

/// Peak allocation of a full verification of this machine's vmlinux (the embedded one
/// where it is absent), as a multiple of its size.
fn vmlinux_peak_ratio() -> f64 {
    let data = std::fs::read(shim_std::kernel_btf::SYS_VMLINUX)
        .unwrap_or_else(|_| shim_std::kernel_btf::embedded_vmlinux());
    let base = reset_peak();
    let vm = btf_parse_vmlinux(&data, true, Semantics::V6_18).expect("vmlinux verifies");
    let peak = (peak_bytes() - base).max(0) as f64;
    drop(vm);
    peak / data.len() as f64
}

#[test]
fn mutated_blobs_get_an_errno_never_a_panic() {
    // Both memory bounds as the README states them.
    kptr_tests::readme::states(&format!(
        "peak allocation at most {PEAK_RATIO:.1}x the input (inputs under 64 bytes counted as 64; {VMLINUX_PEAK_RATIO:.1}x for vmlinux,"
    ));
    kptr_tests::readme::states(&format!(
        "{} mutated blobs per run",
        kptr_tests::readme::n(DEFAULT_COUNT)
    ));
    kptr_tests::readme::states(&format!(
        "the fixed {}-byte `struct btf`",
        std::mem::size_of::<kernel_core::btf::Btf>()
    ));
    // Measured first: the tally of allocations is the whole process's.
    let vr = vmlinux_peak_ratio();
    eprintln!("vmlinux: peak allocation {vr:.2}x its size");
    assert!(vr <= VMLINUX_PEAK_RATIO, "vmlinux: peak {vr:.2}x its size");
    let seed: u64 = std::env::var("KPTR_MUTATION_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x6b70_7472);
    let count: usize = std::env::var("KPTR_MUTATIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_COUNT);
    let seeds = kptr_tests::mutation_seeds();
    let sem = Semantics::V6_18;
    let new_kernel = || {
        let vm = kernel_core::btf::btf_parse_vmlinux(
            &shim_std::kernel_btf::embedded_vmlinux(),
            true,
            sem,
        )
        .expect("embedded vmlinux");
        let k = kernel_core::btf::KernelBtfs::new(
            kernel_core::btf::BtfIdr::new(kernel_core::sync::Arc::new(
                kernel_core::sync::Rcu::new(),
            )),
            Some(vm),
        )
        .expect("kernel");
        kernel_core::btf::dtors::register_kernel_dtors(&k, &sem);
        k
    };
    let mut kernel = new_kernel();
    let mut rng = Rng(seed | 1);
    let (mut ok, mut rejected) = (0usize, 0usize);
    let mut max_ratio = 0f64;
    let mut max_single = 0f64;
    let mut over: Vec<(usize, usize)> = Vec::new();
    for i in 0..count {
        let s = &seeds[rng.below(seeds.len())];
        let input = mutate(&mut rng, s);
        let base = reset_peak();
        let r = catch_unwind(AssertUnwindSafe(|| {
            let summary = |e: kernel_core::btf::BtfParseError| (e.errno, e.reason);
            (
                btf_parse(&input, (i % 7 == 0) as u32, Semantics::V6_18)
                    .map(|_| ())
                    .map_err(summary),
                btf_parse_vmlinux(&input, i % 2 == 0, Semantics::V6_12)
                    .map(|_| ())
                    .map_err(summary),
            )
        }));
        let peak = (peak_bytes() - base).max(0) as f64;
        let largest = largest_alloc();
        assert_eq!(live_bytes(), base, "case {i}: memory left behind");
        // The whole BPF_BTF_LOAD (struct metas, records) and map creation: the loaded
        // BTFs go to the kernel's IDR (and its quarantine once freed), so they are
        // checked for panics only; a fresh kernel every 1,000 cases bounds that memory.
        if i % 1000 == 999 {
            kernel.idr().rcu().rcu_barrier();
            kernel = new_kernel();
        }
        let loaded = catch_unwind(AssertUnwindSafe(|| {
            // The whole BPF_BTF_LOAD (struct metas, records), and a map over every
            // struct the blob has, as map_create would parse it.
            if let Ok((btf, _)) = kernel_core::syscall::bpf_btf_load(&kernel, &input, 0, &sem) {
                let n = btf.data().nr_types().min(64);
                let key = (1..n)
                    .find(|&k| btf.data().type_id_size(k).is_some_and(|x| x.2 == 4))
                    .unwrap_or(0);
                for id in 1..n {
                    let Some(t) = btf.data().type_by_id(id) else {
                        continue;
                    };
                    if t.kind() != kernel_core::btf::BtfKind::Struct {
                        continue;
                    }
                    let attr = kernel_core::map::MapAttr {
                        inner_map: None,
                        map_type: 2,
                        key_size: 4,
                        value_size: t.size(),
                        max_entries: 1,
                        map_flags: 0,
                        btf: Some(&btf),
                        btf_key_type_id: key,
                        btf_value_type_id: id,
                        name: "fuzz",
                    };
                    let _ = kernel_core::syscall::map_create(&kernel, &attr, &sem);
                    let _ = kernel_core::record::btf_parse_fields(
                        &btf,
                        &kernel,
                        id,
                        kernel_core::map::create::map_value_mask(&sem),
                        t.size(),
                        &Semantics::V6_4,
                    );
                }
            }
        }));
        assert!(
            loaded.is_ok(),
            "case {i} (seed {seed}): BPF_BTF_LOAD/map_create panicked on {input:02x?}"
        );
        let (user, kernel) = match r {
            Ok(x) => x,
            Err(_) => panic!("case {i} (seed {seed}) panicked on input {input:02x?}"),
        };
        for res in [user, kernel] {
            match res {
                Ok(()) => ok += 1,
                Err((errno, reason)) => {
                    rejected += 1;
                    assert!(errno.name().is_some(), "case {i}: unnamed errno {errno:?}");
                    assert!(!reason.is_empty(), "case {i}: no reason");
                }
            }
        }
        // The logged parse (1 in 7) also writes text; the rest must stay within a
        // small multiple of the input.
        if i % 7 != 0 {
            let ratio = peak / (input.len().max(64) as f64);
            max_ratio = max_ratio.max(ratio);
            if largest > input.len() {
                over.push((input.len(), largest));
            }
            // No allocation beyond the input's size, but for the fixed-size `struct
            // btf` itself (the kernel's kzalloc of it does not depend on the input).
            let fixed = std::mem::size_of::<kernel_core::btf::Btf>();
            assert!(
                largest <= input.len().max(fixed),
                "case {i}: a {largest}-byte allocation for a {}-byte input",
                input.len()
            );
            max_single = max_single.max(largest as f64 / input.len().max(1) as f64);
            assert!(
                ratio <= PEAK_RATIO,
                "case {i}: peak {peak} bytes for a {}-byte input",
                input.len()
            );
        }
    }
    over.sort_by_key(|&(n, l)| core::cmp::Reverse(l.saturating_sub(n)));
    eprintln!(
        "{count} mutated blobs: {ok} accepted, {rejected} rejected, peak allocation up to {max_ratio:.1}x the input, largest single allocation up to {max_single:.2}x; {} cases with one allocation larger than the input, e.g. {:?}",
        over.len(),
        &over[..over.len().min(8)]
    );
    assert!(ok > 0 && rejected > count / 2);
}
