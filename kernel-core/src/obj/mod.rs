//! Objects and values at run time: the BPF allocator model, the object helpers, and
//! `bpf_obj_free_fields`.

pub mod free_fields;
pub mod helpers;
mod local_frees;
pub mod mem;
pub mod runtime;
pub mod uptr;
pub mod user_pages;

/// The suite-wide tally, at its old path (it sits below the BTF objects, which count
/// themselves in it).
pub use crate::tally;
pub use crate::tally::{MemTally, mem_tally};
pub use free_fields::{bpf_obj_free_fields, graph_root_free_warns};
pub use helpers::*;
pub use mem::{BpfMemAlloc, FaultKind, MemFault, Obj, ObjInfo, Words, WordsBuf};
pub use runtime::{BpfRuntime, KernelObj};
pub use uptr::UserPages;
