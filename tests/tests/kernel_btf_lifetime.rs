//! Dropping a kernel (`KernelBtfs`) frees its BTFs: the RCU callbacks that free them
//! run, and no memory is left behind (measured with the counting allocator).

use kernel_core::Semantics;
use shim_std::alloc_account::{CountingAlloc, live_bytes};
use shim_std::kernel_btf::load_kernel_btfs;

#[global_allocator]
static A: CountingAlloc = CountingAlloc;

#[test]
fn a_dropped_kernel_leaves_no_memory_behind() {
    // The first load may initialise lazily held state; measure the ones after it.
    drop(load_kernel_btfs(None, false, Semantics::V6_18).expect("kernel BTF"));
    let base = live_bytes();
    for _ in 0..3 {
        let (k, _) = load_kernel_btfs(None, false, Semantics::V6_18).expect("kernel BTF");
        assert!(
            live_bytes() - base > 1_000_000,
            "the kernel BTF is held while alive"
        );
        drop(k);
        assert_eq!(live_bytes(), base, "bytes left after dropping the kernel");
    }
}
