//! An object's `.BTF` as libbpf holds it while it prepares the object: types edited in
//! place, a type or string appended the way `btf__add_var`/`btf__add_str` append them,
//! and the bytes `btf_get_raw_data` hands to `BPF_BTF_LOAD` (tools/lib/bpf/btf.c).

use kernel_core::Errno;
use kernel_core::btf::uapi::{BtfKind, btf_info_kind, btf_info_vlen, btf_type_trailing_len};

use crate::elf::LoadError;

/// `BTF_VAR_STATIC`.
pub const BTF_VAR_STATIC: u32 = 0;
/// `BTF_VAR_GLOBAL_ALLOCATED`.
pub const BTF_VAR_GLOBAL_ALLOCATED: u32 = 1;
/// `BTF_VAR_GLOBAL_EXTERN`.
pub const BTF_VAR_GLOBAL_EXTERN: u32 = 2;
/// `BTF_FUNC_STATIC`.
pub const BTF_FUNC_STATIC: u32 = 0;
/// `BTF_FUNC_GLOBAL`.
pub const BTF_FUNC_GLOBAL: u32 = 1;
/// `BTF_FUNC_EXTERN`.
pub const BTF_FUNC_EXTERN: u32 = 2;

/// libbpf's `MAX_RESOLVE_DEPTH` (`btf__resolve_size`, `skip_mods_and_typedefs`).
const MAX_RESOLVE_DEPTH: usize = 32;

fn malformed() -> LoadError {
    LoadError {
        errno: Errno::EINVAL,
        reason: ".BTF is truncated or malformed".into(),
    }
}

/// The editable BTF: header, type section and string section, with every type's
/// offset in the type section (index = type id; id 0 is void).
#[derive(Clone, Debug)]
pub struct RawBtf {
    hdr: Vec<u8>,
    types: Vec<u8>,
    strs: Vec<u8>,
    offs: Vec<usize>,
    /// Unchanged layout: the original bytes with in-place edits are what libbpf sends
    /// (its cached `raw_data`); set once a type is appended.
    rebuilt: bool,
    orig: Vec<u8>,
    type_start: usize,
}

fn rd(b: &[u8], o: usize) -> Option<u32> {
    b.get(o..o.checked_add(4)?)
        .map(|s| u32::from_ne_bytes([s[0], s[1], s[2], s[3]]))
}

impl RawBtf {
    /// Splits `blob` as `btf__new` does (native byte order only).
    pub fn new(blob: &[u8]) -> Result<RawBtf, LoadError> {
        let hdr_len = rd(blob, 4).ok_or_else(malformed)? as usize;
        let type_off = rd(blob, 8).ok_or_else(malformed)? as usize;
        let type_len = rd(blob, 12).ok_or_else(malformed)? as usize;
        let str_off = rd(blob, 16).ok_or_else(malformed)? as usize;
        let str_len = rd(blob, 20).ok_or_else(malformed)? as usize;
        let range = |off: usize, len: usize| {
            let s = hdr_len.checked_add(off)?;
            let e = s.checked_add(len)?;
            (e <= blob.len()).then_some(s..e)
        };
        let tr = range(type_off, type_len).ok_or_else(malformed)?;
        let sr = range(str_off, str_len).ok_or_else(malformed)?;
        if hdr_len < 24 || hdr_len > blob.len() {
            return Err(malformed());
        }
        let types = blob[tr.clone()].to_vec();
        let mut offs = vec![0usize];
        let mut cur = 0usize;
        while cur < types.len() {
            let info = rd(&types, cur + 4).ok_or_else(malformed)?;
            let len = 12 + btf_type_trailing_len(info).ok_or_else(malformed)?;
            if cur + len > types.len() {
                return Err(malformed());
            }
            offs.push(cur);
            cur += len;
        }
        Ok(RawBtf {
            hdr: blob[..hdr_len].to_vec(),
            types,
            strs: blob[sr].to_vec(),
            offs,
            rebuilt: false,
            orig: blob.to_vec(),
            type_start: tr.start,
        })
    }

    /// `btf__type_cnt`: the number of type ids, void included.
    pub fn type_cnt(&self) -> u32 {
        self.offs.len() as u32
    }

    fn off(&self, id: u32) -> Option<usize> {
        (id != 0)
            .then(|| self.offs.get(id as usize).copied())
            .flatten()
    }

    /// Word `w` (0: name_off, 1: info, 2: size/type, 3..: trailing data) of type `id`.
    pub fn word(&self, id: u32, w: usize) -> Option<u32> {
        rd(&self.types, self.off(id)? + 4 * w)
    }

    /// Writes word `w` of type `id`.
    pub fn set_word(&mut self, id: u32, w: usize, v: u32) -> Option<()> {
        let o = self.off(id)? + 4 * w;
        self.types
            .get_mut(o..o + 4)?
            .copy_from_slice(&v.to_ne_bytes());
        Some(())
    }

    /// The kind of `id` (`None` for void or an unknown id).
    pub fn kind(&self, id: u32) -> Option<BtfKind> {
        BtfKind::from_u8(btf_info_kind(self.word(id, 1)?))
    }

    /// `btf_vlen`.
    pub fn vlen(&self, id: u32) -> u32 {
        self.word(id, 1).map_or(0, |i| u32::from(btf_info_vlen(i)))
    }

    /// The string at `off` (`btf__name_by_offset`), lossily.
    pub fn str_at(&self, off: u32) -> Option<String> {
        let s = self.strs.get(off as usize..)?;
        let n = s.iter().position(|&c| c == 0)?;
        Some(String::from_utf8_lossy(&s[..n]).into_owned())
    }

    /// The name of type `id`.
    pub fn name(&self, id: u32) -> String {
        self.word(id, 0)
            .and_then(|o| self.str_at(o))
            .unwrap_or_default()
    }

    /// `btf__find_by_name_kind` (any kind when `kind` is `None`): the first id.
    pub fn find_by_name(&self, name: &str, kind: Option<BtfKind>) -> Option<u32> {
        (1..self.type_cnt())
            .find(|&id| kind.is_none_or(|k| self.kind(id) == Some(k)) && self.name(id) == name)
    }

    /// `skip_mods_and_typedefs` (tools/lib/bpf/libbpf.c): the id reached.
    pub fn skip_mods_and_typedefs(&self, mut id: u32) -> u32 {
        for _ in 0..MAX_RESOLVE_DEPTH {
            match self.kind(id) {
                Some(
                    BtfKind::Typedef
                    | BtfKind::Volatile
                    | BtfKind::Const
                    | BtfKind::Restrict
                    | BtfKind::TypeTag,
                ) => id = self.word(id, 2).unwrap_or(0),
                _ => return id,
            }
        }
        id
    }

    /// `btf__resolve_size` (tools/lib/bpf/btf.c): `Err(errno)` as libbpf returns it.
    pub fn resolve_size(&self, mut id: u32) -> Result<u32, Errno> {
        let mut nelems: u64 = 1;
        for _ in 0..MAX_RESOLVE_DEPTH {
            let size: u64 = match self.kind(id).ok_or(Errno::EINVAL)? {
                BtfKind::Int
                | BtfKind::Enum
                | BtfKind::Enum64
                | BtfKind::Struct
                | BtfKind::Union
                | BtfKind::Datasec
                | BtfKind::Float => u64::from(self.word(id, 2).ok_or(Errno::EINVAL)?),
                BtfKind::Ptr => 8,
                BtfKind::Typedef
                | BtfKind::Volatile
                | BtfKind::Const
                | BtfKind::Restrict
                | BtfKind::Var
                | BtfKind::DeclTag
                | BtfKind::TypeTag => {
                    id = self.word(id, 2).ok_or(Errno::EINVAL)?;
                    continue;
                }
                BtfKind::Array => {
                    let n = self.word(id, 5).ok_or(Errno::EINVAL)?;
                    if n != 0 && nelems > u64::from(u32::MAX) / u64::from(n) {
                        return Err(Errno::E2BIG);
                    }
                    nelems *= u64::from(n);
                    id = self.word(id, 3).ok_or(Errno::EINVAL)?;
                    continue;
                }
                _ => return Err(Errno::EINVAL),
            };
            if nelems != 0 && size > u64::from(u32::MAX) / nelems {
                return Err(Errno::E2BIG);
            }
            return Ok((nelems * size) as u32);
        }
        Err(Errno::EINVAL)
    }

    /// `btf__align_of` (tools/lib/bpf/btf.c) for 8-byte pointers; 0 where libbpf
    /// gives up (an unsupported kind). Bounded at libbpf's resolve depth.
    pub fn align_of(&self, id: u32) -> u32 {
        self.align_of_depth(id, 0)
    }

    fn align_of_depth(&self, id: u32, depth: usize) -> u32 {
        if depth > MAX_RESOLVE_DEPTH {
            return 0;
        }
        let w2 = self.word(id, 2).unwrap_or(0);
        match self.kind(id) {
            Some(BtfKind::Int | BtfKind::Enum | BtfKind::Enum64 | BtfKind::Float) => w2.min(8),
            Some(BtfKind::Ptr) => 8,
            Some(
                BtfKind::Typedef
                | BtfKind::Volatile
                | BtfKind::Const
                | BtfKind::Restrict
                | BtfKind::TypeTag,
            ) => self.align_of_depth(w2, depth + 1),
            Some(BtfKind::Array) => self.align_of_depth(self.word(id, 3).unwrap_or(0), depth + 1),
            Some(BtfKind::Struct | BtfKind::Union) => {
                let kflag = self.word(id, 1).is_some_and(|i| i >> 31 != 0);
                let mut max_align = 1;
                for i in 0..self.vlen(id) as usize {
                    let mt = self.word(id, 3 + 3 * i + 1).unwrap_or(0);
                    let moff = self.word(id, 3 + 3 * i + 2).unwrap_or(0);
                    let bit_off = if kflag { moff & 0x00ff_ffff } else { moff };
                    let align = self.align_of_depth(mt, depth + 1);
                    if align == 0 {
                        return 0;
                    }
                    max_align = max_align.max(align);
                    if !bit_off.is_multiple_of(8 * align) {
                        return 1;
                    }
                }
                if !w2.is_multiple_of(max_align) {
                    return 1;
                }
                max_align
            }
            _ => 0,
        }
    }

    /// `btf__add_str`: the offset of `s`, appended unless the string set already
    /// holds it at a string start.
    pub fn add_str(&mut self, s: &str) -> u32 {
        let mut off = 0usize;
        while off < self.strs.len() {
            let end = self.strs[off..]
                .iter()
                .position(|&c| c == 0)
                .map_or(self.strs.len(), |n| off + n);
            if &self.strs[off..end] == s.as_bytes() {
                return off as u32;
            }
            off = end + 1;
        }
        let at = self.strs.len() as u32;
        self.strs.extend_from_slice(s.as_bytes());
        self.strs.push(0);
        self.rebuilt = true;
        at
    }

    /// `btf__add_var(name, linkage, type_id)`: the new VAR's id.
    pub fn add_var(&mut self, name: &str, linkage: u32, type_id: u32) -> u32 {
        let name_off = self.add_str(name);
        let at = self.types.len();
        for w in [name_off, (BtfKind::Var as u32) << 24, type_id, linkage] {
            self.types.extend_from_slice(&w.to_ne_bytes());
        }
        self.offs.push(at);
        self.rebuilt = true;
        self.type_cnt() - 1
    }

    /// The bytes libbpf's `btf_load_into_kernel` sends (`btf_get_raw_data`): the
    /// original blob with in-place edits, or, once something was appended, header,
    /// types and strings laid out back to back with the header's lengths updated.
    pub fn raw_data(&self) -> Vec<u8> {
        if !self.rebuilt {
            let mut out = self.orig.clone();
            out[self.type_start..self.type_start + self.types.len()].copy_from_slice(&self.types);
            return out;
        }
        let mut hdr = self.hdr.clone();
        let type_len = self.types.len() as u32;
        let put = |h: &mut Vec<u8>, o: usize, v: u32| h[o..o + 4].copy_from_slice(&v.to_ne_bytes());
        // btf_commit_type grows type_len and str_off by the same amount; btf__add_str
        // sets str_len.
        let old_type_len = rd(&hdr, 12).unwrap_or(0);
        let old_str_off = rd(&hdr, 16).unwrap_or(0);
        put(&mut hdr, 12, type_len);
        put(
            &mut hdr,
            16,
            old_str_off.wrapping_add(type_len.wrapping_sub(old_type_len)),
        );
        put(&mut hdr, 20, self.strs.len() as u32);
        let mut out = hdr;
        out.extend_from_slice(&self.types);
        out.extend_from_slice(&self.strs);
        out
    }
}
