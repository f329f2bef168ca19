//! libbpf's DATASEC fix-ups (`bpf_object_fixup_btf`, `btf_fixup_datasec`) and its
//! marking of hidden subprograms as static (in `bpf_object__sanitize_and_load_btf`),
//! tools/lib/bpf/libbpf.c, libbpf 1.5.

use std::collections::HashMap;

use kernel_core::Errno;
use kernel_core::btf::uapi::BtfKind;

use super::ElfSym;
use super::externs::{KCONFIG_SEC, KSYMS_SEC};
use super::raw::{BTF_FUNC_GLOBAL, BTF_FUNC_STATIC, BTF_VAR_GLOBAL_EXTERN, BTF_VAR_STATIC, RawBtf};
use crate::elf::LoadError;

/// `btf_fixup_datasec`: the section size from the ELF section (when clang left 0), each
/// non-static, non-extern VAR's offset from its ELF symbol, hidden globals turned
/// static, entries sorted by offset. `.ksyms` and `.kconfig` are only sorted.
pub fn btf_fixup_datasec(
    btf: &mut RawBtf,
    id: u32,
    sec_sizes: &HashMap<String, u64>,
    syms: &[ElfSym],
) -> Result<(), LoadError> {
    let sec_name = btf.name(id);
    let vars = btf.vlen(id) as usize;
    if sec_name != KCONFIG_SEC && sec_name != KSYMS_SEC {
        let mut fixup_offsets = false;
        if btf.word(id, 2) == Some(0) {
            let size = sec_sizes.get(&sec_name).copied().unwrap_or(0);
            if size == 0 || size > u64::from(u32::MAX) {
                return Err(LoadError {
                    errno: Errno::ENOENT,
                    reason: format!(
                        "DATASEC '{sec_name}': no ELF section of that name with a size (libbpf: failed to determine size from ELF)"
                    ),
                });
            }
            btf.set_word(id, 2, size as u32);
            fixup_offsets = true;
        }
        for i in 0..vars {
            let vt = btf.word(id, 3 + 3 * i).unwrap_or(0);
            if btf.kind(vt) != Some(BtfKind::Var) {
                return Err(LoadError {
                    errno: Errno::EINVAL,
                    reason: format!("DATASEC '{sec_name}': entry {i} is not a VAR"),
                });
            }
            let linkage = btf.word(vt, 3).unwrap_or(0);
            if linkage == BTF_VAR_STATIC || linkage == BTF_VAR_GLOBAL_EXTERN {
                continue;
            }
            let vname = btf.name(vt);
            // find_elf_var_sym: the first global or weak STT_OBJECT of that name.
            let sym = syms.iter().find(|s| {
                s.st_type == object::elf::STT_OBJECT
                    && (s.bind == object::elf::STB_GLOBAL || s.bind == object::elf::STB_WEAK)
                    && s.name == vname
            });
            let Some(sym) = sym else {
                return Err(LoadError {
                    errno: Errno::ENOENT,
                    reason: format!(
                        "DATASEC '{sec_name}': no ELF symbol for VAR '{vname}' (libbpf: failed to find ELF symbol)"
                    ),
                });
            };
            if fixup_offsets {
                btf.set_word(id, 4 + 3 * i, sym.value as u32);
            }
            if sym.visibility == object::elf::STV_HIDDEN
                || sym.visibility == object::elf::STV_INTERNAL
            {
                btf.set_word(vt, 3, BTF_VAR_STATIC);
            }
        }
    }
    // qsort by offset. Entries with equal offsets are left in an order glibc's
    // qsort (a merge sort for these sizes) keeps: stable.
    let mut ents: Vec<[u32; 3]> = (0..vars)
        .map(|i| [0, 1, 2].map(|k| btf.word(id, 3 + 3 * i + k).unwrap_or(0)))
        .collect();
    ents.sort_by_key(|e| e[1] as i32);
    for (i, e) in ents.iter().enumerate() {
        for (k, w) in e.iter().enumerate() {
            btf.set_word(id, 3 + 3 * i + k, *w);
        }
    }
    Ok(())
}

/// `bpf_object_fixup_btf`: [`btf_fixup_datasec`] over every DATASEC.
pub fn bpf_object_fixup_btf(
    btf: &mut RawBtf,
    sec_sizes: &HashMap<String, u64>,
    syms: &[ElfSym],
) -> Result<(), LoadError> {
    for id in 1..btf.type_cnt() {
        if btf.kind(id) == Some(BtfKind::Datasec) {
            btf_fixup_datasec(btf, id, sec_sizes, syms)?;
        }
    }
    Ok(())
}

/// The hidden-subprogram step of `bpf_object__sanitize_and_load_btf`: a global or weak
/// function in `.text` with `STV_HIDDEN`/`STV_INTERNAL` visibility (`mark_btf_static`)
/// has its first `BTF_FUNC_GLOBAL` FUNC of that name made `BTF_FUNC_STATIC`.
pub fn mark_hidden_subprogs_static(btf: &mut RawBtf, syms: &[ElfSym]) {
    for s in syms {
        let hidden =
            s.visibility == object::elf::STV_HIDDEN || s.visibility == object::elf::STV_INTERNAL;
        let global = s.bind != object::elf::STB_LOCAL;
        if !(s.in_text && s.st_type == object::elf::STT_FUNC && global && hidden) {
            continue;
        }
        let found = (1..btf.type_cnt()).find(|&id| {
            btf.kind(id) == Some(BtfKind::Func)
                && btf.vlen(id) == BTF_FUNC_GLOBAL
                && btf.name(id) == s.name
        });
        if let Some(id) = found {
            btf.set_word(id, 1, ((BtfKind::Func as u32) << 24) | BTF_FUNC_STATIC);
        }
    }
}
