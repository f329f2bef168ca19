//! `btf_record_free` (kernel/bpf/syscall.c): the references a record's fields hold,
//! released field by field, then the record.
//!
//! Every record is released by [`btf_record_free`]: map teardown (`bpf_map_free`,
//! `bpf_map_meta_free`, local storage) calls it by name, and `Drop for BtfRecord`
//! delegates to it, so a record that goes out of scope on an error path (as the
//! kernel's `btf_parse_fields` and `btf_record_dup` free theirs) releases exactly the
//! same references in the same order.

use alloc::vec::Vec;

use super::field::{BtfField, BtfFieldType as F, BtfRecord, KptrBtf};
use crate::btf::btf_put;
use crate::module::module_put;
use crate::sync::warn::warn;

/// `btf_record_free` (kernel/bpf/syscall.c): for each kptr or uptr field, `module_put`
/// of the destructor's module when one is held, then
/// `if (btf_is_kernel(kptr.btf)) btf_put(kptr.btf)`; graph roots, nodes, locks,
/// timers, workqueues, task works and refcounts hold nothing; then the record itself.
/// `None` is the kernel's `IS_ERR_OR_NULL(rec)`.
///
/// The `btf_is_kernel` test reads the BTF even for a local kptr that holds no
/// reference (v6.12+): a record freed after its BTF (the map's BTF put first, v6.4) reads
/// freed memory, which [`UnrefBtf::btf_is_kernel`](super::UnrefBtf::btf_is_kernel)
/// reports. Profile flag `local_kptr_holds_btf` (c8e18754..v6.11): a local kptr's
/// field holds its program BTF, and this puts it (the kernel then put every kptr's BTF).
pub fn btf_record_free(rec: Option<BtfRecord>) {
    let Some(mut rec) = rec else { return };
    let fields: Vec<BtfField> = core::mem::take(&mut rec.fields);
    for f in fields {
        match f.ty {
            F::KPTR_UNREF | F::KPTR_REF | F::KPTR_PERCPU | F::UPTR => {
                let Some(k) = f.kptr else {
                    warn("btf_record_free: kptr field without its kptr");
                    continue;
                };
                if let Some(m) = &k.module {
                    module_put(m);
                }
                match k.btf {
                    // A held reference is a kernel BTF's (or, with
                    // `local_kptr_holds_btf`, the program BTF's): put it.
                    KptrBtf::Held(b) => btf_put(b),
                    KptrBtf::Borrowed(p) => {
                        let _ = p.btf_is_kernel(
                            "use after free: btf_record_free read a freed BTF (btf_is_kernel(kptr.btf))",
                        );
                    }
                }
            }
            F::LIST_HEAD
            | F::LIST_NODE
            | F::RB_ROOT
            | F::RB_NODE
            | F::SPIN_LOCK
            | F::RES_SPIN_LOCK
            | F::TIMER
            | F::WORKQUEUE
            | F::TASK_WORK
            | F::REFCOUNT => {}
            _ => warn("btf_record_free: unknown field type"),
        }
    }
    // kfree(rec): `rec` goes here with no fields left, so its `Drop` releases nothing.
}

impl Drop for BtfRecord {
    /// A record that is not passed to [`btf_record_free`] is freed by it all the same.
    fn drop(&mut self) {
        if self.fields.is_empty() {
            return;
        }
        btf_record_free(Some(BtfRecord {
            fields: core::mem::take(&mut self.fields),
            ..*self
        }));
    }
}
