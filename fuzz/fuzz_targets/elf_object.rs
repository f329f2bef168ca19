//! Fuzz target for BPF ELF objects: libbpf's preparation (externs, DATASEC fix-ups,
//! map definitions, `.rel.maps` slots, internal map names) and the whole `check` (BTF
//! load, every map, map-in-map slots) over the embedded kernel. Must never panic.
#![no_main]

use std::sync::OnceLock;

use kernel_core::Semantics;
use kernel_core::btf::KernelBtfs;
use libfuzzer_sys::fuzz_target;

fn kernel() -> &'static KernelBtfs {
    static K: OnceLock<KernelBtfs> = OnceLock::new();
    K.get_or_init(|| kptr_model_fuzz::new_kernel(Semantics::V6_18))
}

fuzz_target!(|data: &[u8]| {
    if shim_std::elf::read_bpf_object_named(data, "fuzz").is_ok() {
        let _ = shim_std::check::check_object_named(kernel(), data, "fuzz", &Semantics::V6_18);
    }
});
