//! Bad objects never panic: at least 100,000 BPF ELF objects per run (count from
//! `KPTR_ELF_MUTATIONS`, seed from `KPTR_MUTATION_SEED`), each a fixture or corpus
//! object (those with `__ksym`/`__kconfig` externs, map-in-map and data sections among
//! them) with one to four words changed inside `.BTF`, `.symtab`, `.strtab`, `.maps`
//! or anywhere. libbpf's preparation (externs, DATASEC fix-ups, map definitions) must
//! answer with a named errno and a reason, or accept; one case in ten also runs the
//! whole `check` (BTF load, every map). Peak memory stays within a small multiple of
//! the object.

use std::panic::{AssertUnwindSafe, catch_unwind};

use kernel_core::Semantics;
use kptr_tests::btf_corpus::Rng;
use object::{Object, ObjectSection};
use shim_std::alloc_account::{CountingAlloc, live_bytes, peak_bytes, reset_peak};
use shim_std::check::check_object_named;
use shim_std::elf::read_bpf_object_named;

#[global_allocator]
static A: CountingAlloc = CountingAlloc;

/// An object's bytes and the byte ranges of the sections worth aiming at.
type Seed = (Vec<u8>, Vec<(usize, usize)>);

fn seeds() -> Vec<Seed> {
    let mut objs = kptr_tests::fixture_objects();
    objs.extend(kptr_tests::corpus_objects());
    objs.iter()
        .map(|p| {
            let data = std::fs::read(p).expect("object");
            let mut ranges = vec![(0, data.len())];
            if let Ok(f) = object::File::parse(&*data) {
                for s in f.sections() {
                    let name = s.name().unwrap_or("");
                    if let (true, Some((off, len))) = (
                        matches!(name, ".BTF" | ".symtab" | ".strtab" | ".maps"),
                        s.file_range(),
                    ) && len >= 4
                    {
                        ranges.push((off as usize, len as usize));
                    }
                }
            }
            (data, ranges)
        })
        .collect()
}

fn mutate(rng: &mut Rng, data: &[u8], ranges: &[(usize, usize)]) -> Vec<u8> {
    let mut v = data.to_vec();
    let (off, len) = ranges[rng.below(ranges.len())];
    for _ in 0..1 + rng.below(4) {
        let at = off + rng.below(len.saturating_sub(3).max(1));
        let word: u32 = match rng.below(6) {
            0 => 0,
            1 => u32::MAX,
            2 => rng.next_u64() as u32 & 0xff,
            3 => 1 << rng.below(32),
            4 => (rng.next_u64() as u32) & 0xffff,
            _ => rng.next_u64() as u32,
        };
        let n = (v.len() - at.min(v.len())).min(4);
        if let Some(dst) = v.get_mut(at..at + n) {
            dst.copy_from_slice(&word.to_ne_bytes()[..n]);
        }
    }
    v
}

/// Mutated objects per run unless `KPTR_ELF_MUTATIONS` says otherwise.
const DEFAULT_COUNT: usize = 100_000;

#[test]
fn mutated_objects_get_an_errno_never_a_panic() {
    let seed: u64 = std::env::var("KPTR_MUTATION_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x0065_6c66);
    let count: usize = std::env::var("KPTR_ELF_MUTATIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_COUNT);
    let seeds = seeds();
    let extern_seeds = seeds
        .iter()
        .filter(|(d, _)| read_bpf_object_named(d, "seed").is_ok_and(|o| !o.externs.is_empty()))
        .count();
    // The seeds are every fixture and corpus object on disk.
    assert_eq!(
        seeds.len(),
        kptr_tests::fixture_objects().len() + kptr_tests::corpus_objects().len()
    );
    kptr_tests::readme::states(&format!(
        "`tests/tests/elf_mutations.rs`: {} mutations of the {} fixture and corpus objects ({} with externs)",
        kptr_tests::readme::n(DEFAULT_COUNT),
        kptr_tests::readme::n(seeds.len()),
        kptr_tests::readme::n(extern_seeds)
    ));
    let sem = Semantics::V6_18;
    let new_kernel = || {
        shim_std::kernel_btf::load_kernel_btfs(None, false, sem)
            .expect("kernel BTF")
            .0
    };
    let mut kernel = new_kernel();
    let mut rng = Rng(seed | 1);
    let (mut ok, mut rejected, mut checked) = (0usize, 0usize, 0usize);
    let mut max_ratio = 0f64;
    let mut live_after_warmup = None;
    for i in 0..count {
        if i == 1000 {
            kernel.idr().rcu().rcu_barrier();
            live_after_warmup = Some(live_bytes());
        }
        let (data, ranges) = &seeds[rng.below(seeds.len())];
        let input = mutate(&mut rng, data, ranges);
        let base = reset_peak();
        let r = catch_unwind(AssertUnwindSafe(|| {
            read_bpf_object_named(&input, "mutant").map(|_| ())
        }));
        let peak = (peak_bytes() - base).max(0) as f64;
        match r {
            Err(_) => panic!("case {i} (seed {seed}): the libbpf preparation panicked"),
            Ok(Ok(())) => ok += 1,
            Ok(Err(e)) => {
                rejected += 1;
                assert!(
                    e.errno.name().is_some(),
                    "case {i}: unnamed errno {:?}",
                    e.errno
                );
                assert!(!e.reason.is_empty(), "case {i}: no reason");
            }
        }
        let ratio = peak / input.len().max(1) as f64;
        max_ratio = max_ratio.max(ratio);
        assert!(
            peak <= 16.0 * input.len() as f64 + 65536.0,
            "case {i}: peak {peak} bytes for a {}-byte object",
            input.len()
        );
        if i % 10 == 0 {
            let c = catch_unwind(AssertUnwindSafe(|| {
                check_object_named(&kernel, &input, "mutant", &sem).map(|_| ())
            }));
            match c {
                Err(_) => panic!("case {i} (seed {seed}): check panicked"),
                Ok(Err(e)) => assert!(e.errno.name().is_some() && !e.reason.is_empty()),
                Ok(Ok(())) => {}
            }
            checked += 1;
            if i % 10_000 == 0 {
                // The loaded program BTFs stay in the kernel's IDR: start afresh.
                kernel.idr().rcu().rcu_barrier();
                kernel = new_kernel();
            }
        }
    }
    // Nothing accumulates: lazily built statics settle in the first cases, and the
    // program BTFs the whole checks loaded go with their kernel.
    kernel.idr().rcu().rcu_barrier();
    drop(kernel);
    if let Some(l) = live_after_warmup {
        let grown = live_bytes() - l;
        assert!(grown < 1 << 16, "{grown} bytes left behind");
    }
    eprintln!(
        "{count} mutated objects from {} seeds ({extern_seeds} with externs): {ok} prepared, {rejected} refused, {checked} checked whole; peak memory up to {max_ratio:.1}x the object",
        seeds.len()
    );
    assert!(ok > 0 && rejected > 0);
}
