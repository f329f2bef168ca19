//! The destructor kfuncs the kernel registers with `register_btf_id_dtor_kfuncs`, per
//! profile, as data: which kernel types may be stored as referenced kptrs.
//!
//! Sources: kernel/bpf/helpers.c (`generic_dtor_ids`), kernel/bpf/cpumask.c,
//! kernel/bpf/crypto.c (v6.10+), net/bpf/test_run.c (`bpf_prog_test_dtor_kfunc_ids`),
//! and the selftests' bpf_testmod module. Since v6.10 the registered functions are the
//! `*_dtor` wrappers (CFI-sealed); before, the release kfuncs themselves.

use alloc::vec::Vec;

use super::registry::{KernelBtfs, btf_find_by_name_kind};
use super::uapi::BtfKind;
use crate::profile::Semantics;

/// One destructor: the owning BTF ("vmlinux" or a module), the registering call (the
/// kernel source file whose initcall registers it; one call per file), the object
/// type, the destructor function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DtorDecl {
    /// "vmlinux" or the module's name.
    pub owner: &'static str,
    /// The source file of the `register_btf_id_dtor_kfuncs` call.
    pub call: &'static str,
    /// The struct the destructor releases.
    pub ty: &'static str,
    /// The destructor FUNC.
    pub func: &'static str,
}

const fn d(call: &'static str, ty: &'static str, func: &'static str) -> DtorDecl {
    DtorDecl {
        owner: "vmlinux",
        call,
        ty,
        func,
    }
}

/// v6.12 and v6.18 (kernel sources of those releases).
const DTORS_NEW: &[DtorDecl] = &[
    d("helpers.c", "task_struct", "bpf_task_release_dtor"),
    d("helpers.c", "cgroup", "bpf_cgroup_release_dtor"),
    d("cpumask.c", "bpf_cpumask", "bpf_cpumask_release_dtor"),
    d("crypto.c", "bpf_crypto_ctx", "bpf_crypto_ctx_release_dtor"),
    d(
        "test_run.c",
        "prog_test_ref_kfunc",
        "bpf_kfunc_call_test_release_dtor",
    ),
    d(
        "test_run.c",
        "prog_test_member",
        "bpf_kfunc_call_memb_release_dtor",
    ),
];

/// v6.3 to v6.9: the release kfuncs themselves (no crypto ctx yet).
const DTORS_OLD: &[DtorDecl] = &[
    d("helpers.c", "task_struct", "bpf_task_release"),
    d("helpers.c", "cgroup", "bpf_cgroup_release"),
    d("cpumask.c", "bpf_cpumask", "bpf_cpumask_release"),
    d(
        "test_run.c",
        "prog_test_ref_kfunc",
        "bpf_kfunc_call_test_release",
    ),
    d(
        "test_run.c",
        "prog_test_member",
        "bpf_kfunc_call_memb_release",
    ),
];

/// The registrations of a profile. Profile flag: `wq` marks the v6.10+ tables.
pub fn kernel_dtor_kfuncs(sem: &Semantics) -> &'static [DtorDecl] {
    if sem.wq { DTORS_NEW } else { DTORS_OLD }
}

/// Registers the profile's destructors on the kernel's BTFs, one call per registering
/// source file, as the kernel does at boot and module load. Destructors whose type or
/// function is absent from that BTF (a kernel built without them) are left out of
/// their call and returned; a call that fails returns all of its own.
pub fn register_kernel_dtors(kernel: &KernelBtfs, sem: &Semantics) -> Vec<DtorDecl> {
    let mut skipped = Vec::new();
    let decls = kernel_dtor_kfuncs(sem);
    let mut start = 0;
    while start < decls.len() {
        let first = decls[start];
        let n = decls[start..]
            .iter()
            .take_while(|x| x.owner == first.owner && x.call == first.call)
            .count();
        let call = &decls[start..start + n];
        start += n;
        let owner = if first.owner == "vmlinux" {
            kernel.vmlinux().map(super::object::btf_get)
        } else {
            kernel
                .modules()
                .into_iter()
                .find(|m| m.name() == first.owner)
        };
        let Some(owner) = owner else {
            skipped.extend_from_slice(call);
            continue;
        };
        let present = |x: &&DtorDecl| {
            btf_find_by_name_kind(&owner, x.ty, BtfKind::Struct as u8).is_ok()
                && btf_find_by_name_kind(&owner, x.func, BtfKind::Func as u8).is_ok()
        };
        let (have, missing): (Vec<&DtorDecl>, Vec<&DtorDecl>) = call.iter().partition(present);
        skipped.extend(missing.into_iter().copied());
        if have.is_empty() {
            continue;
        }
        let pairs: Vec<(&str, &str)> = have.iter().map(|x| (x.ty, x.func)).collect();
        if kernel.register_btf_id_dtor_kfuncs(&owner, &pairs).is_err() {
            skipped.extend(have.into_iter().copied());
        }
    }
    skipped
}
