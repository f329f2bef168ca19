//! BTF: the format, a zero-copy view, the verifier `btf_parse` runs (one engine,
//! generic over its log: `verifier`, `names`, `log`), split BTF,
//! refcounted `struct btf` objects and the registry of kernel BTFs.

pub mod builder;
pub mod dtors;
pub mod log;
pub mod name_index;
mod names;
pub mod object;
pub mod registry;
pub mod types;
pub mod uapi;
pub mod verifier;

pub use object::{
    Btf, BtfOrigin, BtfRef, btf_get, btf_parse, btf_parse_module, btf_parse_vmlinux,
    btf_parse_with_log, btf_put,
};
pub use registry::{BtfIdr, KernelBtfs, btf_find_by_name_kind};
pub use types::{BtfData, BtfMember, BtfVarSecinfo, TypeRef};
pub use uapi::BtfKind;
pub use verifier::{BtfParseError, BtfStage, ParseOpts, Verified, btf_verify};
