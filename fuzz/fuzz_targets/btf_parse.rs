//! Fuzz target for the BTF verifier: any bytes, as user BTF (`btf_parse`, with and
//! without a log) and as kernel BTF (meta pass only); must never panic. See run.sh.
#![no_main]

use kernel_core::Semantics;
use kernel_core::btf::{btf_parse, btf_parse_vmlinux};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = btf_parse(data, 0, Semantics::V6_18);
    let _ = btf_parse(data, 1, Semantics::V6_12);
    let _ = btf_parse_vmlinux(data, false, Semantics::V6_18);
});
