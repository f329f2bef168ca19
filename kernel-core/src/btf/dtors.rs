//! The destructor kfuncs the kernel registers with `register_btf_id_dtor_kfuncs`, per
//! profile, as data: which kernel types may be stored as referenced kptrs.
//!
//! Sources: kernel/bpf/helpers.c (`generic_dtor_ids`), kernel/bpf/cpumask.c,
//! kernel/bpf/crypto.c (v6.10+), net/bpf/test_run.c (`bpf_prog_test_dtor_kfunc_ids`),
//! and the selftests' bpf_testmod module. Since v6.10 the registered functions are the
//! `*_dtor` wrappers (CFI-sealed); before, the release kfuncs themselves.

use alloc::vec::Vec;

use super::registry::KernelBtfs;
use crate::profile::Semantics;

/// One registration: the owning BTF ("vmlinux" or a module), the object type, the
/// destructor function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DtorDecl {
    /// "vmlinux" or the module's name.
    pub owner: &'static str,
    /// The struct the destructor releases.
    pub ty: &'static str,
    /// The destructor FUNC.
    pub func: &'static str,
}

const fn d(owner: &'static str, ty: &'static str, func: &'static str) -> DtorDecl {
    DtorDecl { owner, ty, func }
}

/// v6.12 and v6.18 (kernel sources of those releases).
const DTORS_NEW: &[DtorDecl] = &[
    d("vmlinux", "task_struct", "bpf_task_release_dtor"),
    d("vmlinux", "cgroup", "bpf_cgroup_release_dtor"),
    d("vmlinux", "bpf_cpumask", "bpf_cpumask_release_dtor"),
    d("vmlinux", "bpf_crypto_ctx", "bpf_crypto_ctx_release_dtor"),
    d(
        "vmlinux",
        "prog_test_ref_kfunc",
        "bpf_kfunc_call_test_release_dtor",
    ),
    d(
        "vmlinux",
        "prog_test_member",
        "bpf_kfunc_call_memb_release_dtor",
    ),
];

/// v6.3 to v6.9: the release kfuncs themselves (no crypto ctx yet).
const DTORS_OLD: &[DtorDecl] = &[
    d("vmlinux", "task_struct", "bpf_task_release"),
    d("vmlinux", "cgroup", "bpf_cgroup_release"),
    d("vmlinux", "bpf_cpumask", "bpf_cpumask_release"),
    d(
        "vmlinux",
        "prog_test_ref_kfunc",
        "bpf_kfunc_call_test_release",
    ),
    d("vmlinux", "prog_test_member", "bpf_kfunc_call_memb_release"),
];

/// The registrations of a profile. Profile flag: `wq` marks the v6.10+ tables.
pub fn kernel_dtor_kfuncs(sem: &Semantics) -> &'static [DtorDecl] {
    if sem.wq { DTORS_NEW } else { DTORS_OLD }
}

/// Registers the profile's destructors on the kernel's BTFs, as the kernel does at
/// boot and module load. Registrations whose type or function is absent from that BTF
/// (a kernel built without it) are skipped and returned.
pub fn register_kernel_dtors(kernel: &KernelBtfs, sem: &Semantics) -> Vec<DtorDecl> {
    let mut skipped = Vec::new();
    for decl in kernel_dtor_kfuncs(sem) {
        let owner = if decl.owner == "vmlinux" {
            kernel.vmlinux().map(super::object::btf_get)
        } else {
            kernel
                .modules()
                .into_iter()
                .find(|m| m.name() == decl.owner)
        };
        let ok = owner.is_some_and(|o| {
            kernel
                .register_btf_id_dtor_kfuncs(&o, &[(decl.ty, decl.func)])
                .is_ok()
        });
        if !ok {
            skipped.push(*decl);
        }
    }
    skipped
}
