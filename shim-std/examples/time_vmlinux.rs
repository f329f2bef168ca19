//! Times meta+resolve verification of this machine's vmlinux BTF (a quick check; the
//! criterion benchmarks in `bench/` are the measurement).
use kernel_core::Semantics;
use kernel_core::btf::{ParseOpts, btf_verify};

fn main() {
    let data = std::fs::read("/sys/kernel/btf/vmlinux").expect("vmlinux BTF");
    let opts = ParseOpts {
        log_level: 0,
        resolve: true,
        sem: Semantics::V6_18,
    };
    let n = 30;
    let t = std::time::Instant::now();
    for _ in 0..n {
        let r = btf_verify(data.clone().into_boxed_slice(), None, &opts);
        assert!(r.is_ok());
    }
    println!("verify: {:?} per run", t.elapsed() / n);
    let t = std::time::Instant::now();
    for _ in 0..n {
        let r = btf_verify(
            data.clone().into_boxed_slice(),
            None,
            &ParseOpts {
                resolve: false,
                ..opts
            },
        );
        assert!(r.is_ok());
    }
    println!("meta only: {:?} per run", t.elapsed() / n);
}
