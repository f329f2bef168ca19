//! What the fuzz targets share: a small kernel (the embedded vmlinux BTF, its
//! destructor kfuncs registered) for the targets that need one.

use kernel_core::Semantics;
use kernel_core::btf::{BtfIdr, KernelBtfs, btf_parse_vmlinux};
use kernel_core::sync::{Arc, Rcu};

/// A kernel whose BTF is the embedded vmlinux, as the model's tests build it.
pub fn new_kernel(sem: Semantics) -> KernelBtfs {
    let vm = btf_parse_vmlinux(&shim_std::kernel_btf::embedded_vmlinux(), true, sem)
        .unwrap_or_else(|e| panic!("the embedded vmlinux BTF: {e}"));
    let k = KernelBtfs::new(BtfIdr::new(Arc::new(Rcu::new())), Some(vm))
        .unwrap_or_else(|e| panic!("the embedded kernel: {e:?}"));
    kernel_core::btf::dtors::register_kernel_dtors(&k, &sem);
    k
}
