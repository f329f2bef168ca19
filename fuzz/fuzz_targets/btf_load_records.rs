//! Fuzz target for the whole `BPF_BTF_LOAD` (the verifier, struct metas and their
//! fix-ups) and, on what loads, `btf_parse_fields` and `map_create` of an ARRAY over
//! every struct (the first 64 types), under two profiles. Must never panic.
#![no_main]

use std::sync::OnceLock;

use kernel_core::Semantics;
use kernel_core::btf::{BtfKind, KernelBtfs};
use kernel_core::map::{MapAttr, create::map_value_mask};
use kernel_core::record::btf_parse_fields;
use kernel_core::syscall::{bpf_btf_load, map_create};
use libfuzzer_sys::fuzz_target;

fn kernel(sem: Semantics) -> &'static KernelBtfs {
    static K18: OnceLock<KernelBtfs> = OnceLock::new();
    static K4: OnceLock<KernelBtfs> = OnceLock::new();
    let cell = if sem.name == Semantics::V6_4.name { &K4 } else { &K18 };
    cell.get_or_init(|| kptr_model_fuzz::new_kernel(sem))
}

fuzz_target!(|data: &[u8]| {
    for sem in [Semantics::V6_18, Semantics::V6_4] {
        let k = kernel(sem);
        let Ok((btf, _)) = bpf_btf_load(k, data, 0, &sem) else {
            continue;
        };
        let d = btf.data();
        let n = d.nr_types().min(64);
        let key = (1..n)
            .find(|&i| d.type_id_size(i).is_some_and(|x| x.2 == 4))
            .unwrap_or(0);
        for id in 1..n {
            let Some(t) = d.type_by_id(id) else { continue };
            if t.kind() != BtfKind::Struct {
                continue;
            }
            let _ = btf_parse_fields(&btf, k, id, map_value_mask(&sem), t.size(), &sem);
            let attr = MapAttr {
                map_type: 2,
                key_size: 4,
                value_size: t.size(),
                max_entries: 1,
                map_flags: 0,
                btf: Some(&btf),
                btf_key_type_id: key,
                btf_value_type_id: id,
                name: "fuzz",
                inner_map: None,
            };
            let _ = map_create(k, &attr, &sem);
        }
    }
});
