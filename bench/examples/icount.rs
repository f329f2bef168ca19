//! A loop for instruction counts under `valgrind --tool=callgrind`:
//! `icount verify N` runs `btf_verify` (log off) N times over vmlinux BTF,
//! `icount fields N` runs `btf_parse_fields` over every vmlinux STRUCT N times.
//! One iteration's count is (count of N=3 minus count of N=1) / 2.

use std::hint::black_box;

use kernel_core::Semantics;
use kernel_core::btf::{BtfIdr, BtfKind, KernelBtfs, ParseOpts, btf_parse_vmlinux, btf_verify};
use kernel_core::map::create::map_value_mask;
use kernel_core::record::btf_parse_fields;
use kernel_core::sync::{Arc, Rcu};

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
            let vm = btf_parse_vmlinux(&data, true, sem).map_err(|e| format!("{e:?}"))?;
            let idr = BtfIdr::new(Arc::new(Rcu::new()));
            let kernel = KernelBtfs::new(idr, Some(vm)).map_err(|e| format!("{e:?}"))?;
            let vm = kernel.vmlinux().ok_or("no vmlinux")?;
            let structs: Vec<(u32, u32)> = vm
                .data()
                .local_types()
                .filter(|t| t.kind() == BtfKind::Struct)
                .map(|t| (t.id(), t.size()))
                .collect();
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
        _ => return Err("usage: icount verify|fields N".into()),
    }
    Ok(())
}
