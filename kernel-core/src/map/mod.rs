//! Maps: `find_and_alloc_map` and `map_check_btf` (kernel/bpf/syscall.c) with the map types'
//! own checks (kernel/bpf/arraymap.c, hashtab.c, bpf_local_storage.c, ...) and maps of
//! maps (kernel/bpf/map_in_map.c); at run time ([`runtime`]) arrays, hash maps, arrays
//! of maps and local storage ([`local_storage`]).

pub mod bpf_map;
mod check_btf;
pub mod create;
pub mod local_storage;
pub mod lru;
pub mod map_in_map;
pub mod runtime;
#[cfg(test)]
mod tests;
pub mod types;
pub mod value;

pub use bpf_map::{BpfMap, MapAttr};
pub use create::{find_and_alloc_map, map_check_btf};
pub use map_in_map::{
    bpf_map_fd_get_ptr, bpf_map_meta_alloc, bpf_map_meta_equal, bpf_map_meta_free,
};
pub use types::*;
