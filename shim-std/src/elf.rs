//! BPF ELF objects: the `.BTF` section prepared as libbpf prepares it before
//! `BPF_BTF_LOAD` (externs, DATASEC sizes and VAR offsets, hidden subprograms: see
//! [`crate::libbpf`]), the data sections libbpf makes maps of, and the section sizes.

use std::collections::HashMap;

use kernel_core::Errno;
use object::{Object, ObjectSection, ObjectSymbol};

/// An error reading an object or BTF file: the errno the kernel (or libbpf) would
/// give and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    /// errno.
    pub errno: Errno,
    /// What was wrong.
    pub reason: String,
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.errno, self.reason)
    }
}

impl std::error::Error for LoadError {}

fn einval(reason: impl Into<String>) -> LoadError {
    LoadError {
        errno: Errno::EINVAL,
        reason: reason.into(),
    }
}

/// A data section libbpf turns into an internal map (`bpf_object__elf_collect`):
/// `SHT_PROGBITS` without `SHF_EXECINSTR` named `.data`, `.data.*`, `.rodata`,
/// `.rodata.*`, or `SHT_NOBITS` named `.bss`, `.bss.*`; in section order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataSec {
    /// The ELF section's name.
    pub name: String,
    /// Its size.
    pub size: u64,
    /// `.rodata` or `.rodata.*` (`BPF_F_RDONLY_PROG`).
    pub rodata: bool,
}

/// What a BPF object carries for this model.
#[derive(Clone, Debug)]
pub struct BpfObject {
    /// libbpf's name for the object (`bpf_object__new`: from the file name); empty
    /// when the object was read from memory without one.
    pub name: String,
    /// `.BTF` as clang wrote it.
    pub btf_raw: Vec<u8>,
    /// `.BTF` after libbpf's preparation (what `BPF_BTF_LOAD` receives).
    pub btf: Vec<u8>,
    /// Section sizes by name.
    pub section_sizes: HashMap<String, u64>,
    /// Sections in file order, with their sizes.
    pub sections: Vec<(String, u64)>,
    /// The sections libbpf makes internal maps of, in file order.
    pub data_secs: Vec<DataSec>,
    /// The externs (`.ksyms`, `.kconfig`), in libbpf's order.
    pub externs: Vec<crate::libbpf::Extern>,
    /// The `.kconfig` map's value size, when the object has kconfig externs.
    pub kconfig_size: Option<u32>,
    /// The maps libbpf creates, in its order (`bpf_object__init_maps`).
    pub maps: Vec<crate::maps::MapDef>,
}

/// True if `data` starts with the ELF magic.
pub fn is_elf(data: &[u8]) -> bool {
    data.starts_with(b"\x7fELF")
}

/// Reads a BPF ELF object read from memory (no file name: internal maps get no
/// object prefix). See [`read_bpf_object_named`].
pub fn read_bpf_object(data: &[u8]) -> Result<BpfObject, LoadError> {
    read_bpf_object_named(data, "")
}

/// Reads a BPF ELF object whose libbpf name is `name` (see
/// [`crate::libbpf::object_name`]): extracts `.BTF` and prepares it as libbpf does.
pub fn read_bpf_object_named(data: &[u8], name: &str) -> Result<BpfObject, LoadError> {
    use object::read::elf::{ElfFile64, SectionHeader};
    let file = ElfFile64::<object::Endianness>::parse(data)
        .map_err(|e| einval(format!("not a valid 64-bit ELF object: {e}")))?;
    let endian = file.endian();
    let sec = file.section_by_name(".BTF").ok_or_else(|| LoadError {
        errno: Errno::ENOENT,
        reason: "object has no .BTF section".into(),
    })?;
    let btf_raw = sec
        .data()
        .map_err(|e| einval(format!("cannot read .BTF: {e}")))?
        .to_vec();
    let mut section_sizes = HashMap::new();
    let mut sections = Vec::new();
    let mut data_secs = Vec::new();
    let mut text_idx = None;
    for s in file.sections() {
        let Ok(n) = s.name() else { continue };
        section_sizes.insert(n.to_string(), s.size());
        sections.push((n.to_string(), s.size()));
        let h = s.elf_section_header();
        let (ty, flags) = (h.sh_type(endian), h.sh_flags(endian));
        let exec = flags & u64::from(object::elf::SHF_EXECINSTR) != 0;
        if n == ".text" && exec {
            text_idx = Some(s.index());
        }
        let has = |p: &str| n == p || n.starts_with(&format!("{p}."));
        let progbits = ty == object::elf::SHT_PROGBITS && !exec && s.size() > 0;
        if (progbits && (has(".data") || has(".rodata")))
            || (ty == object::elf::SHT_NOBITS && has(".bss") && s.size() > 0)
        {
            data_secs.push(DataSec {
                name: n.to_string(),
                size: s.size(),
                rodata: has(".rodata"),
            });
        }
    }
    let maps_sec = file.section_by_name(".maps");
    let maps_idx = maps_sec.as_ref().map(|s| s.index());
    // Symbols by their index in the symbol table (object skips the null symbol 0).
    let mut sym_at: HashMap<usize, usize> = HashMap::new();
    let mut syms = Vec::new();
    for sym in file.symbols() {
        sym_at.insert(sym.index().0, syms.len());
        let (st_info, st_other) = match sym.flags() {
            object::SymbolFlags::Elf { st_info, st_other } => (st_info, st_other),
            _ => (0, 0),
        };
        syms.push(crate::libbpf::ElfSym {
            name: sym.name().unwrap_or("").to_string(),
            bind: st_info >> 4,
            st_type: st_info & 0xf,
            visibility: st_other & 0x3,
            undefined: matches!(sym.section(), object::SymbolSection::Undefined),
            in_text: text_idx.is_some() && sym.section_index() == text_idx,
            in_maps: maps_idx.is_some() && sym.section_index() == maps_idx,
            value: sym.address(),
        });
    }
    let prep = crate::libbpf::prepare_btf(&btf_raw, &syms, &section_sizes)?;
    let maps_size = maps_sec.as_ref().map(|s| s.size());
    let mut maps = crate::libbpf::maps::bpf_object__init_maps(
        &prep.raw,
        name,
        maps_size,
        &data_secs,
        prep.kconfig_size,
    )?;
    // `.rel.maps`: the initial slots of maps of maps (`__array(values, ...)` with an
    // initialiser), as `bpf_object__collect_map_relos` reads them.
    if let Some(ms) = &maps_sec {
        let mut rels = Vec::new();
        for (off, r) in ms.relocations() {
            let sym = match r.target() {
                object::RelocationTarget::Symbol(i) => sym_at.get(&i.0).map(|&k| &syms[k]),
                _ => None,
            };
            let Some(sym) = sym else {
                return Err(LoadError {
                    errno: Errno::EINVAL,
                    reason: format!(".maps relo at {off}: symbol not found"),
                });
            };
            rels.push((off, sym.clone()));
        }
        crate::libbpf::maps::bpf_object__collect_map_relos(&prep.raw, &mut maps, &rels)?;
    }
    Ok(BpfObject {
        maps,
        name: name.to_string(),
        btf_raw,
        btf: prep.btf,
        section_sizes,
        sections,
        data_secs,
        externs: prep.externs,
        kconfig_size: prep.kconfig_size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::libbpf::ElfSym;
    use crate::libbpf::fixup::bpf_object_fixup_btf;
    use crate::libbpf::raw::RawBtf;
    use kernel_core::btf::builder::BtfBuilder;
    use kernel_core::btf::uapi::BTF_INT_SIGNED;

    fn rd32(b: &[u8], o: usize) -> Option<u32> {
        b.get(o..o + 4)
            .map(|s| u32::from_ne_bytes([s[0], s[1], s[2], s[3]]))
    }

    /// A `.data` DATASEC with one global VAR `x`: (blob, offset of the DATASEC record).
    fn datasec_blob() -> (Vec<u8>, usize) {
        let mut b = BtfBuilder::new();
        let int = b.int("int", 4, BTF_INT_SIGNED, 32);
        let x = b.var("x", int, 1);
        b.datasec(".data", 0, &[(x, 0, 4)]);
        let blob = b.build();
        // int (16 bytes) and VAR (16 bytes) precede the DATASEC.
        let hdr_len = u32::from_ne_bytes([blob[4], blob[5], blob[6], blob[7]]) as usize;
        (blob, hdr_len + 32)
    }

    fn sym(name: &str, value: u64) -> ElfSym {
        ElfSym {
            name: name.into(),
            bind: object::elf::STB_GLOBAL,
            st_type: object::elf::STT_OBJECT,
            visibility: 0,
            undefined: false,
            in_text: false,
            in_maps: false,
            value,
        }
    }

    #[test]
    fn fixup_sets_section_size_and_var_offsets() {
        let (blob, ds) = datasec_blob();
        let mut btf = RawBtf::new(&blob).expect("btf");
        let sizes = HashMap::from([(".data".to_string(), 64u64)]);
        bpf_object_fixup_btf(&mut btf, &sizes, &[sym("x", 12)]).expect("fixed up");
        let out = btf.raw_data();
        assert_eq!(rd32(&out, ds + 8), Some(64), "section size");
        assert_eq!(rd32(&out, ds + 12 + 4), Some(12), "x's offset");
    }

    /// A global VAR without an ELF symbol fails as libbpf fails it (-ENOENT).
    #[test]
    fn fixup_refuses_a_global_without_a_symbol() {
        let (blob, _) = datasec_blob();
        let mut btf = RawBtf::new(&blob).expect("btf");
        let sizes = HashMap::from([(".data".to_string(), 64u64)]);
        let e = bpf_object_fixup_btf(&mut btf, &sizes, &[]).expect_err("refused");
        assert_eq!(e.errno, Errno::ENOENT);
        assert!(e.reason.contains("'x'"), "{}", e.reason);
    }

    /// A DATASEC whose entries would run past the type section is malformed.
    #[test]
    fn raw_btf_refuses_entries_past_the_type_section() {
        let (mut blob, ds) = datasec_blob();
        let info = rd32(&blob, ds + 4).expect("info");
        blob[ds + 4..ds + 8].copy_from_slice(&((info & !0xffff) | 40).to_ne_bytes());
        let e = RawBtf::new(&blob).expect_err("refused");
        assert_eq!(e.errno, Errno::EINVAL);
    }
}
