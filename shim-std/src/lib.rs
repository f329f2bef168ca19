//! The host for `kernel-core`: reading BTF and BPF ELF objects, this machine's kernel
//! BTF, the running kernel as an oracle, and the `kptr-model` command line.
#![deny(missing_docs)]

pub mod alloc_account;
pub mod check;
pub mod cli;
pub mod compare;
pub mod dump;
pub mod elf;
pub mod field_probe;
pub mod kernel_btf;
pub mod libbpf;
pub mod libbpf_dl;
pub mod maps;
pub mod oracle;
pub mod run;
pub mod scenario;
pub mod tally;
pub mod warns;
pub mod why;
