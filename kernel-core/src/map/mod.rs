//! Maps: `map_create` and `map_check_btf` (kernel/bpf/syscall.c) with the map types'
//! own checks (kernel/bpf/arraymap.c, hashtab.c, bpf_local_storage.c, ...).

pub mod create;
pub mod runtime;
pub mod types;

pub use create::{BpfMap, MapAttr, map_check_btf, map_create};
pub use types::*;
