//! `kptr-model check` of 100 objects in one process, as `check A.o B.o ...` runs it:
//! the kernel BTF loaded once (outside the timed section, as the CLI loads it once),
//! then each object read, prepared as libbpf prepares it, BTF-loaded and its maps
//! created. The objects are the fixture and corpus objects, cycled to 100. The
//! target (issue 17): 100 objects in at most 1 s on this machine.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Duration;

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use kernel_core::Semantics;

fn objects() -> Vec<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures");
    let mut v: Vec<PathBuf> = ["obj", "corpus/obj"]
        .iter()
        .filter_map(|d| std::fs::read_dir(root.join(d)).ok())
        .flat_map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "o"))
        .collect();
    v.sort();
    v.into_iter().cycle().take(100).collect()
}

fn check_100(c: &mut Criterion) {
    let objs = objects();
    if objs.is_empty() {
        eprintln!("no fixture objects: check_100 skipped");
        return;
    }
    let sem = Semantics::V6_18;
    let Ok((kernel, _)) = shim_std::kernel_btf::load_kernel_btfs(None, false, sem) else {
        eprintln!("no kernel BTF: check_100 skipped");
        return;
    };
    let mut g = c.benchmark_group("check");
    g.sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .measurement_time(Duration::from_secs(10))
        .throughput(Throughput::Elements(objs.len() as u64));
    g.bench_function("check 100 objects (kernel BTF loaded once)", |b| {
        b.iter(|| black_box(shim_std::cli::check::check_many(&kernel, &objs, sem, false)))
    });
    g.finish();
}

criterion_group!(benches, check_100);
criterion_main!(benches);
