//! Fuzz target for split (module) BTF on top of the embedded vmlinux: the meta pass
//! and the full resolve. Must never panic.
#![no_main]

use std::sync::OnceLock;

use kernel_core::Semantics;
use kernel_core::btf::{BtfRef, btf_parse_module, btf_parse_vmlinux};
use libfuzzer_sys::fuzz_target;

struct Base(BtfRef);
// SAFETY: the base BTF is immutable once parsed and its refcount is atomic; the
// fuzzer runs the target on one thread.
unsafe impl Sync for Base {}
// SAFETY: as above.
unsafe impl Send for Base {}

fn base() -> &'static BtfRef {
    static B: OnceLock<Base> = OnceLock::new();
    &B.get_or_init(|| {
        Base(
            btf_parse_vmlinux(&shim_std::kernel_btf::embedded_vmlinux(), true, Semantics::V6_18)
                .unwrap_or_else(|e| panic!("the embedded vmlinux BTF: {e}")),
        )
    })
    .0
}

fuzz_target!(|data: &[u8]| {
    let _ = btf_parse_module("fuzz", data, base(), false, Semantics::V6_18);
    let _ = btf_parse_module("fuzz", data, base(), true, Semantics::V6_12);
});
