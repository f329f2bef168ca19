//! Test support, not part of the model (feature `testing`): the program-BTF set-up the
//! integration tests (`tests/`), the loom models (`loom-tests/`) and the benches
//! (`bench/`) share: a tiny vmlinux, a program BTF whose map value holds a `__kptr` to
//! a local object type, and the attributes of an ARRAY map of that value.

use alloc::vec::Vec;

use crate::btf::builder::BtfBuilder;
use crate::btf::uapi::BTF_INT_SIGNED;
use crate::btf::{BtfIdr, BtfRef, KernelBtfs, btf_parse_vmlinux};
use crate::errno::KResult;
use crate::map::MapAttr;
use crate::profile::Semantics;
use crate::sync::{Arc, Rcu};

/// A tiny vmlinux BTF: `int` and `struct task_struct { int pid; }`.
pub fn tiny_vmlinux() -> Vec<u8> {
    let mut vb = BtfBuilder::new();
    let vint = vb.int("int", 4, BTF_INT_SIGNED, 32);
    vb.struct_("task_struct", 8, &[("pid", vint, 0)]);
    vb.build()
}

/// A kernel whose BTF is [`tiny_vmlinux`] (fully verified), and its RCU domain.
pub fn tiny_kernel(sem: Semantics) -> KResult<(Arc<KernelBtfs>, Arc<Rcu>)> {
    let vm = btf_parse_vmlinux(&tiny_vmlinux(), true, sem).map_err(|e| e.errno)?;
    let rcu = Arc::new(Rcu::new());
    let kernel = Arc::new(KernelBtfs::new(BtfIdr::new(Arc::clone(&rcu)), Some(vm))?);
    Ok((kernel, rcu))
}

/// The special field of [`KptrProg`]'s object type, at +8.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeField {
    /// `struct bpf_spin_lock l`.
    SpinLock,
    /// `struct bpf_refcount r`.
    Refcount,
}

/// A program BTF: `struct node { long key; <NodeField> @8; }` (16 bytes) and
/// `struct value { struct node __kptr *n; }` (8 bytes, the kptr at 0); also the
/// program of [`list_prog`].
pub struct KptrProg {
    /// The raw BTF, for `BPF_BTF_LOAD`.
    pub blob: Vec<u8>,
    /// `int`, an array map's key.
    pub int: u32,
    /// `struct node`.
    pub node: u32,
    /// `struct value`.
    pub value: u32,
}

/// Builds [`KptrProg`] with `field` in the object type.
pub fn kptr_prog(field: NodeField) -> KptrProg {
    let mut b = BtfBuilder::new();
    let int = b.int("int", 4, BTF_INT_SIGNED, 32);
    let long = b.int("long", 8, BTF_INT_SIGNED, 64);
    let node = match field {
        NodeField::SpinLock => {
            let lock = b.struct_("bpf_spin_lock", 4, &[("v", int, 0)]);
            b.struct_("node", 16, &[("key", long, 0), ("l", lock, 64)])
        }
        NodeField::Refcount => {
            let rc = b.struct_("bpf_refcount", 4, &[("v", int, 0)]);
            b.struct_("node", 16, &[("key", long, 0), ("r", rc, 64)])
        }
    };
    let t = b.type_tag("kptr", node);
    let p = b.ptr(t);
    let value = b.struct_("value", 8, &[("n", p, 0)]);
    KptrProg {
        blob: b.build(),
        int,
        node,
        value,
    }
}

/// A program BTF with a list in its value: `struct gnode { long key; struct
/// bpf_list_node ln; }` (32 bytes, the node at 8; v6.4+ sizes) and `struct gvalue {
/// <lock> l; struct bpf_list_head h __contains(gnode, ln); }` (24 bytes, the lock at 0,
/// the head at 8), `lock` being `"bpf_spin_lock"` or `"bpf_res_spin_lock"`. The ids
/// are [`KptrProg`]'s: `node` is `gnode`, `value` is `gvalue`.
pub fn list_prog(lock: &str) -> KptrProg {
    let mut b = BtfBuilder::new();
    let int = b.int("int", 4, BTF_INT_SIGNED, 32);
    let long = b.int("long", 8, BTF_INT_SIGNED, 64);
    let l = b.struct_(lock, 4, &[("v", int, 0)]);
    let head = b.struct_("bpf_list_head", 16, &[("a", long, 0), ("b", long, 64)]);
    let ln = b.struct_(
        "bpf_list_node",
        24,
        &[("a", long, 0), ("b", long, 64), ("c", long, 128)],
    );
    let node = b.struct_("gnode", 32, &[("key", long, 0), ("ln", ln, 64)]);
    let value = b.struct_("gvalue", 24, &[("l", l, 0), ("h", head, 64)]);
    b.decl_tag("contains:gnode:ln", value, 1);
    KptrProg {
        blob: b.build(),
        int,
        node,
        value,
    }
}

/// `BPF_MAP_CREATE`'s attributes for an ARRAY map (int keys, `value_size`-byte values
/// of type `value`) over `btf`.
pub fn array_attr<'a>(
    btf: &'a BtfRef,
    key: u32,
    value: u32,
    value_size: u32,
    entries: u32,
    name: &'a str,
) -> MapAttr<'a> {
    MapAttr {
        inner_map: None,
        map_type: 2,
        key_size: 4,
        value_size,
        max_entries: entries,
        map_flags: 0,
        btf: Some(btf),
        btf_key_type_id: key,
        btf_value_type_id: value,
        name,
    }
}
