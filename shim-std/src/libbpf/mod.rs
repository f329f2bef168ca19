//! What libbpf does to a BPF object before the kernel sees it, modelled on libbpf 1.5
//! (tools/lib/bpf/libbpf.c of Linux 6.12), in libbpf's order: `bpf_object__open`
//! collects the externs (`bpf_object__collect_externs`) and fixes up the DATASECs
//! (`bpf_object_fixup_btf`); `bpf_object__load` marks hidden subprograms static and
//! sends the result (`bpf_object__sanitize_and_load_btf`; no feature sanitising is
//! needed on the kernels of our profiles). Internal maps get libbpf's names
//! (`internal_map_name`). `tests/tests/libbpf_prepare.rs` compares all of it with the
//! installed libbpf (1.1) and the running kernel.

pub mod externs;
pub mod fixup;
pub mod maps;
pub mod raw;

use std::collections::HashMap;

pub use externs::{Extern, ExternType};

use crate::elf::LoadError;

/// `BPF_OBJ_NAME_LEN`.
pub const BPF_OBJ_NAME_LEN: usize = 16;

/// One ELF symbol as libbpf reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ElfSym {
    /// Name (empty when it has none).
    pub name: String,
    /// `ELF64_ST_BIND`.
    pub bind: u8,
    /// `ELF64_ST_TYPE`.
    pub st_type: u8,
    /// `ELF64_ST_VISIBILITY`.
    pub visibility: u8,
    /// `st_shndx == SHN_UNDEF`.
    pub undefined: bool,
    /// Defined in the `.text` section.
    pub in_text: bool,
    /// Defined in the `.maps` section (a BTF-defined map).
    pub in_maps: bool,
    /// `st_value`.
    pub value: u64,
}

/// The object's BTF as libbpf sends it, and what libbpf learnt on the way.
#[derive(Clone, Debug)]
pub struct Prepared {
    /// The bytes of `BPF_BTF_LOAD`.
    pub btf: Vec<u8>,
    /// The externs, in libbpf's order.
    pub externs: Vec<Extern>,
    /// The `.kconfig` map's value size, when there are kconfig externs.
    pub kconfig_size: Option<u32>,
    /// The prepared BTF as libbpf reads it afterwards (map definitions).
    pub raw: raw::RawBtf,
}

/// libbpf's preparation of `btf_raw` (the object's `.BTF`) given its symbols and
/// section sizes.
pub fn prepare_btf(
    btf_raw: &[u8],
    syms: &[ElfSym],
    sec_sizes: &HashMap<String, u64>,
) -> Result<Prepared, LoadError> {
    let mut btf = raw::RawBtf::new(btf_raw)?;
    let (externs, kconfig_size) = externs::bpf_object__collect_externs(&mut btf, syms)?;
    fixup::bpf_object_fixup_btf(&mut btf, sec_sizes, syms)?;
    fixup::mark_hidden_subprogs_static(&mut btf, syms);
    Ok(Prepared {
        btf: btf.raw_data(),
        externs,
        kconfig_size,
        raw: btf,
    })
}

/// The object's name as `bpf_object__new` derives it from a path: the file name cut
/// to 15 bytes, then at its first `.`.
pub fn object_name(path: &str) -> String {
    let base = path.rsplit('/').next().unwrap_or(path).as_bytes();
    let cut = &base[..base.len().min(BPF_OBJ_NAME_LEN - 1)];
    let cut = cut.split(|&c| c == b'.').next().unwrap_or(cut);
    String::from_utf8_lossy(cut).into_owned()
}

/// `internal_map_name`: the name libbpf gives the map of data section `real_name`
/// (`.data`, `.bss`, `.rodata`, `.kconfig`, `.data.NAME`, ...) of object `obj_name`.
/// At least 7 bytes are kept for the section; custom sections (a second `.`) get no
/// object prefix; the result fits `BPF_OBJ_NAME_LEN`; bytes the kernel refuses
/// become `_`.
pub fn internal_map_name(obj_name: &str, real_name: &str) -> String {
    let real = real_name.as_bytes();
    let sfx_len = real.len().clamp(7, BPF_OBJ_NAME_LEN - 1);
    let pfx_len = if real.len() > 1 && real[1..].contains(&b'.') {
        0
    } else {
        (BPF_OBJ_NAME_LEN - sfx_len - 1).min(obj_name.len())
    };
    let mut name: Vec<u8> = obj_name.as_bytes()[..pfx_len].to_vec();
    name.extend_from_slice(&real[..real.len().min(sfx_len)]);
    name.truncate(BPF_OBJ_NAME_LEN - 1);
    if let Some(n) = name.iter().position(|&c| c == 0) {
        name.truncate(n);
    }
    name.iter()
        .map(|&c| {
            if c.is_ascii_alphanumeric() || c == b'_' || c == b'.' {
                c as char
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_names_follow_libbpf() {
        assert_eq!(
            internal_map_name("my_object_name", ".rodata"),
            "my_objec.rodata"
        );
        assert_eq!(internal_map_name("my_object_name", ".bss"), "my_objec.bss");
        assert_eq!(
            internal_map_name("my_object_name", ".kconfig"),
            "my_obje.kconfig"
        );
        assert_eq!(internal_map_name("x", ".data"), "x.data");
        assert_eq!(
            internal_map_name("my_object_name", ".rodata.abracadabra"),
            ".rodata.abracad"
        );
        assert_eq!(internal_map_name("abc", ".data.custom"), ".data.custom");
    }

    #[test]
    fn object_names_follow_bpf_object_new() {
        assert_eq!(object_name("dir/c8e18754_example.o"), "c8e18754_exampl");
        assert_eq!(object_name("a.bpf.o"), "a");
        assert_eq!(object_name("/x/short.o"), "short");
    }
}
