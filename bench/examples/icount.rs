//! A loop for instruction counts under `valgrind --tool=callgrind`:
//! `icount verify N` runs `btf_verify` (log off) N times over vmlinux BTF,
//! `icount fields N` runs `btf_parse_fields` over every vmlinux STRUCT N times,
//! `icount libbpf N` the system libbpf's `btf__new` (and `btf__free`) N times.
//! One iteration's count is (count of N=3 minus count of N=1) / 2.
//! `icount minratio N` times `btf_verify`, `btf__new` and a `btf_parse_fields` pass in
//! turn, N times each, and prints the fastest of each and the first two's ratio (the
//! fastest runs are the ones a loaded machine disturbed least).

use std::hint::black_box;

use kernel_core::Semantics;
use kernel_core::btf::{BtfIdr, BtfKind, KernelBtfs, ParseOpts, btf_parse_vmlinux, btf_verify};
use kernel_core::map::create::map_value_mask;
use kernel_core::record::btf_parse_fields;
use kernel_core::sync::{Arc, Rcu};

// The system libbpf, linked by the package's build script.
unsafe extern "C" {
    fn btf__new(data: *const core::ffi::c_void, size: u32) -> *mut core::ffi::c_void;
    fn btf__free(btf: *mut core::ffi::c_void);
}

fn main() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_default();
    let n: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(1);
    let path = std::env::var("KPTR_BENCH_BTF").unwrap_or_else(|_| "/sys/kernel/btf/vmlinux".into());
    let data = std::fs::read(&path).map_err(|e| format!("{path}: {e}"))?;
    let sem = Semantics::V6_18;
    match mode.as_str() {
        "verify" => {
            let opts = ParseOpts {
                log_level: 0,
                resolve: true,
                sem,
            };
            for _ in 0..n {
                let b = btf_verify(Box::from(black_box(&data[..])), None, &opts)
                    .map_err(|e| format!("{e:?}"))?;
                black_box(b);
            }
        }
        "fields" => {
            let (kernel, structs) = vmlinux_structs(&data, sem)?;
            let vm = kernel.vmlinux().ok_or("no vmlinux")?;
            let mask = map_value_mask(&sem);
            let mut total = 0usize;
            for _ in 0..n {
                for &(id, size) in &structs {
                    if let Ok(Some(r)) = btf_parse_fields(vm, &kernel, id, mask, size, &sem) {
                        total += r.fields.len();
                    }
                }
            }
            println!("fields {total}");
        }
        "libbpf" => {
            for _ in 0..n {
                // SAFETY: `data` is `data.len()` readable bytes, which `btf__new` copies;
                // the non-null result is freed once, by `btf__free`.
                unsafe {
                    let b = btf__new(black_box(data.as_ptr()).cast(), data.len() as u32);
                    if b.is_null() {
                        return Err("libbpf btf__new failed".into());
                    }
                    btf__free(b);
                }
            }
        }
        "minratio" => {
            let opts = ParseOpts {
                log_level: 0,
                resolve: true,
                sem,
            };
            let (kernel, structs) = vmlinux_structs(&data, sem)?;
            let vm = kernel.vmlinux().ok_or("no vmlinux")?;
            let mask = map_value_mask(&sem);
            let (mut ours, mut theirs, mut fields) = (f64::MAX, f64::MAX, f64::MAX);
            for _ in 0..n {
                let t = std::time::Instant::now();
                for &(id, size) in &structs {
                    black_box(btf_parse_fields(vm, &kernel, id, mask, size, &sem).is_ok());
                }
                fields = fields.min(t.elapsed().as_secs_f64());
                let t = std::time::Instant::now();
                let b = btf_verify(Box::from(black_box(&data[..])), None, &opts)
                    .map_err(|e| format!("{e:?}"))?;
                drop(black_box(b));
                ours = ours.min(t.elapsed().as_secs_f64());
                let t = std::time::Instant::now();
                // SAFETY: as in the `libbpf` mode.
                unsafe {
                    let b = btf__new(black_box(data.as_ptr()).cast(), data.len() as u32);
                    if b.is_null() {
                        return Err("libbpf btf__new failed".into());
                    }
                    btf__free(b);
                }
                theirs = theirs.min(t.elapsed().as_secs_f64());
            }
            println!(
                "btf_verify {:.3} ms, btf__new {:.3} ms, ratio {:.2}; btf_parse_fields {:.3} ms",
                ours * 1e3,
                theirs * 1e3,
                ours / theirs,
                fields * 1e3
            );
        }
        _ => return Err("usage: icount verify|fields|libbpf|minratio N".into()),
    }
    Ok(())
}

/// The vmlinux BTF registered as the kernel's, and the (id, size) of its every STRUCT.
fn vmlinux_structs(data: &[u8], sem: Semantics) -> Result<(KernelBtfs, Vec<(u32, u32)>), String> {
    let vm = btf_parse_vmlinux(data, true, sem).map_err(|e| format!("{e:?}"))?;
    let idr = BtfIdr::new(Arc::new(Rcu::new()));
    let kernel = KernelBtfs::new(idr, Some(vm)).map_err(|e| format!("{e:?}"))?;
    let structs = kernel
        .vmlinux()
        .ok_or("no vmlinux")?
        .data()
        .local_types()
        .filter(|t| t.kind() == BtfKind::Struct)
        .map(|t| (t.id(), t.size()))
        .collect();
    Ok((kernel, structs))
}
