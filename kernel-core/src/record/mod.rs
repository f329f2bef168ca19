//! `btf_record`: special fields in BTF-described values (kernel/bpf/btf.c,
//! kernel/bpf/syscall.c).

pub mod field;
pub mod find;
pub mod free;
pub mod metas;
pub mod parse;

pub use field::{
    BtfField, BtfFieldGraphRoot, BtfFieldKptr, BtfFieldType, BtfRecord, BtfStructMetas, KptrBtf,
    KptrDtor, MetaRec, UnrefBtf, find_meta, struct_meta_tab,
};
pub use find::{FieldInfo, btf_find_field};
pub use free::btf_record_free;
pub use metas::{
    btf_check_ownership_depth, btf_parse_struct_meta_tab, btf_parse_struct_metas, struct_meta_mask,
};
pub use parse::{
    RecordResult, btf_check_and_fixup_fields, btf_check_and_fixup_record, btf_parse_fields,
    btf_parse_kptr, btf_record_dup, btf_record_equal,
};
