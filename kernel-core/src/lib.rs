//! A model of the Linux kernel's BPF "special field" machinery: BTF loading and
//! verification, `btf_record`s, kptrs (kernel commit c8e18754 "bpf: Support __kptr to
//! local kptrs") and value teardown, with the kernel's refcounting, locking and RCU.
//!
//! Kernel names are kept, results are errno-backed, and every behaviour that changed
//! across releases reads a flag of [`profile::Semantics`].
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
