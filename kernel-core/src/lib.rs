//! A model of the Linux kernel's BPF "special field" machinery: BTF loading and
//! verification, `btf_record`s, kptrs (kernel commit c8e18754 "bpf: Support __kptr to
//! local kptrs") and value teardown, with the kernel's refcounting, locking and RCU.
//!
//! Kernel names are kept, results are errno-backed, and every behaviour that changed
//! across releases reads a flag of [`profile::Semantics`].
//!
//! # Module graph
//!
//! Layers go one way, each module naming only its own layer and lower ones: base
//! ([`errno`], [`profile`], [`sync`], [`trace`], [`why`], [`tally`], [`module`]) ->
//! BTF format (`btf::uapi`, `builder`, `names`, `log`) -> verified BTF ([`btf`]) ->
//! records ([`record`]) -> objects ([`obj`]) -> maps ([`map`]) -> the syscall entry
//! points ([`syscall`]) -> test support (`testing`, feature `testing`). The remaining
//! cycles between modules: `obj::free_fields` <-> `obj::helpers`, the kernel's own
//! recursion (`bpf_obj_free_fields` -> `__bpf_obj_drop_impl` -> `bpf_obj_free_fields`);
//! and `btf::object` <-> `btf::registry`, because `btf_put` unpublishes a BTF from the
//! IDR that lists it (`btf_free_id`). A split BTF's `Btf` object owns its base; the type
//! storage only points at the base's data.
//! `tests/tests/layers.rs` checks both.
#![no_std]
#![deny(missing_docs)]

#[cfg(any(loom, feature = "std"))]
extern crate std;

extern crate alloc;

pub mod btf;
pub mod errno;
pub mod map;
pub mod module;
pub mod obj;
pub mod profile;
pub mod record;
pub mod sync;
pub mod syscall;
pub mod tally;
#[cfg(feature = "testing")]
pub mod testing;
pub mod trace;
pub mod why;

pub use errno::{Errno, KResult};
pub use profile::Semantics;
