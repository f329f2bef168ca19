//! BPF ELF objects: the `.BTF` section, finalised as libbpf's `btf_finalize_data` does
//! before `BPF_BTF_LOAD` (DATASEC sizes from the ELF sections, VAR offsets from the
//! symbol table), and the raw section bytes the `.maps` reader needs.

use std::collections::HashMap;

use kernel_core::Errno;
use kernel_core::btf::uapi::{BtfKind, btf_info_kind, btf_info_vlen, btf_type_trailing_len};
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

/// What a BPF object carries for this model.
#[derive(Debug, Clone)]
pub struct BpfObject {
    /// `.BTF` as clang wrote it.
    pub btf_raw: Vec<u8>,
    /// `.BTF` after libbpf's finalisation (what `BPF_BTF_LOAD` receives).
    pub btf: Vec<u8>,
    /// Section sizes by name.
    pub section_sizes: HashMap<String, u64>,
    /// Sections in file order, with their sizes.
    pub sections: Vec<(String, u64)>,
}

/// True if `data` starts with the ELF magic.
pub fn is_elf(data: &[u8]) -> bool {
    data.starts_with(b"\x7fELF")
}

fn rd32(b: &[u8], o: usize) -> Option<u32> {
    b.get(o..o + 4)
        .map(|s| u32::from_ne_bytes([s[0], s[1], s[2], s[3]]))
}

fn wr32(b: &mut [u8], o: usize, v: u32) -> Option<()> {
    b.get_mut(o..o + 4)?.copy_from_slice(&v.to_ne_bytes());
    Some(())
}

/// Reads a BPF ELF object: extracts `.BTF` and finalises it.
pub fn read_bpf_object(data: &[u8]) -> Result<BpfObject, LoadError> {
    let file =
        object::File::parse(data).map_err(|e| einval(format!("not a valid ELF object: {e}")))?;
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
    for s in file.sections() {
        if let Ok(n) = s.name() {
            section_sizes.insert(n.to_string(), s.size());
            sections.push((n.to_string(), s.size()));
        }
    }
    let mut syms: HashMap<(String, String), u64> = HashMap::new();
    for sym in file.symbols() {
        let (Ok(name), Some(idx)) = (sym.name(), sym.section_index()) else {
            continue;
        };
        if let Ok(s) = file.section_by_index(idx)
            && let Ok(sn) = s.name()
        {
            syms.insert((sn.to_string(), name.to_string()), sym.address());
        }
    }
    let mut btf = btf_raw.clone();
    finalize(&mut btf, &section_sizes, &syms)?;
    Ok(BpfObject {
        btf_raw,
        btf,
        section_sizes,
        sections,
    })
}

/// libbpf's `btf_fixup_datasec` over every DATASEC: size from the ELF section, VAR
/// offsets from the symbols (static VARs keep offset 0 when no symbol names them).
fn finalize(
    btf: &mut [u8],
    sizes: &HashMap<String, u64>,
    syms: &HashMap<(String, String), u64>,
) -> Result<(), LoadError> {
    let bad = || einval(".BTF is truncated or malformed");
    let hdr_len = rd32(btf, 4).ok_or_else(bad)? as usize;
    let type_off = rd32(btf, 8).ok_or_else(bad)? as usize;
    let type_len = rd32(btf, 12).ok_or_else(bad)? as usize;
    let str_off = rd32(btf, 16).ok_or_else(bad)? as usize;
    let str_len = rd32(btf, 20).ok_or_else(bad)? as usize;
    let tstart = hdr_len.checked_add(type_off).ok_or_else(bad)?;
    let tend = tstart.checked_add(type_len).ok_or_else(bad)?;
    let sstart = hdr_len.checked_add(str_off).ok_or_else(bad)?;
    if tend > btf.len() || sstart.checked_add(str_len).is_none_or(|e| e > btf.len()) {
        return Err(bad());
    }
    let strs = btf[sstart..sstart + str_len].to_vec();
    let name = |off: u32| -> String {
        let s = strs.get(off as usize..).unwrap_or(&[]);
        let n = s.iter().position(|&c| c == 0).unwrap_or(s.len());
        String::from_utf8_lossy(&s[..n]).into_owned()
    };
    // First pass: offsets of every type, so VAR names can be read by id.
    let mut offs = vec![0usize];
    let mut cur = tstart;
    while cur + 12 <= tend {
        offs.push(cur);
        let info = rd32(btf, cur + 4).ok_or_else(bad)?;
        cur += 12 + btf_type_trailing_len(info).ok_or_else(bad)?;
    }
    for &t in offs.iter().skip(1) {
        let info = rd32(btf, t + 4).ok_or_else(bad)?;
        if btf_info_kind(info) != BtfKind::Datasec as u8 {
            continue;
        }
        // The variables must end inside the type section: past it they would be
        // the string section, which the fix-up must not write.
        if t + 12 + 12 * btf_info_vlen(info) as usize > tend {
            return Err(bad());
        }
        let sec = name(rd32(btf, t).ok_or_else(bad)?);
        let size = match sizes.get(&sec) {
            Some(s) => *s as u32,
            None => continue,
        };
        wr32(btf, t + 8, size).ok_or_else(bad)?;
        for i in 0..btf_info_vlen(info) as usize {
            let vsi = t + 12 + 12 * i;
            let var_id = rd32(btf, vsi).ok_or_else(bad)? as usize;
            let Some(&vt) = offs.get(var_id) else {
                continue;
            };
            let vname = name(rd32(btf, vt).ok_or_else(bad)?);
            if let Some(&addr) = syms.get(&(sec.clone(), vname)) {
                wr32(btf, vsi + 4, addr as u32).ok_or_else(bad)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kernel_core::btf::builder::BtfBuilder;
    use kernel_core::btf::uapi::BTF_INT_SIGNED;

    /// A `.data` DATASEC with one VAR `x`: (blob, offset of the DATASEC record).
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

    #[test]
    fn finalize_sets_section_size_and_var_offsets() {
        let (mut blob, ds) = datasec_blob();
        let sizes = HashMap::from([(".data".to_string(), 64u64)]);
        let syms = HashMap::from([((".data".to_string(), "x".to_string()), 12u64)]);
        finalize(&mut blob, &sizes, &syms).expect("finalized");
        assert_eq!(rd32(&blob, ds + 8), Some(64), "section size");
        assert_eq!(rd32(&blob, ds + 12 + 4), Some(12), "x's offset");
    }

    /// A DATASEC whose entries would run past the type section is refused before
    /// anything is written (the string section stays as it was).
    #[test]
    fn finalize_refuses_entries_past_the_type_section() {
        let (mut blob, ds) = datasec_blob();
        let info = rd32(&blob, ds + 4).expect("info");
        wr32(&mut blob, ds + 4, (info & !0xffff) | 40).expect("vlen 40");
        let before = blob.clone();
        let sizes = HashMap::from([(".data".to_string(), 64u64)]);
        let syms = HashMap::new();
        let e = finalize(&mut blob, &sizes, &syms).expect_err("refused");
        assert_eq!(e.errno, Errno::EINVAL);
        assert_eq!(blob, before, "nothing written");
    }
}
