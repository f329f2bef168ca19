//! The maps libbpf creates for an object (`bpf_object__init_maps`,
//! tools/lib/bpf/libbpf.c, libbpf 1.5): BTF-defined maps of `.maps`
//! (`bpf_object__init_user_btf_map`, `parse_btf_map_def`, inner maps of map-in-map as
//! `<outer>.inner`), an internal map per data section
//! (`bpf_object__init_global_data_maps`) and `.kconfig`
//! (`bpf_object__init_kconfig_map`), with the attributes `bpf_object__create_map`
//! passes. They are read from the prepared BTF, as libbpf reads them at open.
#![allow(non_snake_case)]

use kernel_core::Errno;
use kernel_core::btf::uapi::BtfKind;

use super::raw::{BTF_VAR_GLOBAL_ALLOCATED, BTF_VAR_STATIC, RawBtf};
use crate::elf::{DataSec, LoadError};
use crate::maps::{BPF_F_MMAPABLE, BPF_F_RDONLY_PROG, BPF_MAP_TYPE_ARRAY, MapDef};

/// `BPF_MAP_TYPE_PROG_ARRAY`.
const BPF_MAP_TYPE_PROG_ARRAY: u32 = 3;
/// `BPF_MAP_TYPE_ARRAY_OF_MAPS`, `BPF_MAP_TYPE_HASH_OF_MAPS`.
const MAP_IN_MAP: [u32; 2] = [12, 13];
/// `BPF_MAP_TYPE_RINGBUF`, `BPF_MAP_TYPE_USER_RINGBUF`.
const RINGBUFS: [u32; 2] = [27, 31];

fn einval(map: &str, why: String) -> LoadError {
    LoadError {
        errno: Errno::EINVAL,
        reason: format!("map '{map}': {why}"),
    }
}

fn kind_str(btf: &RawBtf, id: u32) -> &'static str {
    btf.kind(id).map_or("UNKN", |k| k.as_str())
}

/// `get_map_field_int`: `__uint(name, N)` is `int (*name)[N]`; N.
fn get_map_field_int(btf: &RawBtf, map: &str, attr: &str, ty: u32) -> Result<u32, LoadError> {
    let t = btf.skip_mods_and_typedefs(ty);
    if btf.kind(t) != Some(BtfKind::Ptr) {
        return Err(einval(
            map,
            format!("attr '{attr}': expected PTR, got {}", kind_str(btf, t)),
        ));
    }
    let a = btf.word(t, 2).unwrap_or(0);
    if btf.kind(a) != Some(BtfKind::Array) {
        return Err(einval(
            map,
            format!("attr '{attr}': expected ARRAY, got {}", kind_str(btf, a)),
        ));
    }
    Ok(btf.word(a, 5).unwrap_or(0))
}

/// `__type(name, T)`: `T *name`; (T's id, its size).
fn get_map_field_type(
    btf: &RawBtf,
    map: &str,
    attr: &str,
    ty: u32,
) -> Result<(u32, u32), LoadError> {
    if btf.kind(ty) != Some(BtfKind::Ptr) {
        return Err(einval(
            map,
            format!("{attr} spec is not PTR: {}", kind_str(btf, ty)),
        ));
    }
    let id = btf.word(ty, 2).unwrap_or(0);
    let sz = btf.resolve_size(id).map_err(|e| LoadError {
        errno: e,
        reason: format!("map '{map}': can't determine {attr} size for type [{id}]"),
    })?;
    Ok((id, sz))
}

fn empty_def(name: &str) -> MapDef {
    MapDef {
        name: name.to_string(),
        map_type: 0,
        key_size: 0,
        value_size: 0,
        max_entries: 0,
        map_flags: 0,
        btf_key_type_id: 0,
        btf_value_type_id: 0,
        internal: false,
        kname: name.to_string(),
        map_extra: 0,
        inner: None,
        init_slots: Vec::new(),
        btf_var_idx: None,
    }
}

/// `parse_btf_map_def` (strict, as `bpf_object__open` is by default) on the struct
/// `def_t`; `is_inner` for a map-in-map's inner definition.
pub fn parse_btf_map_def(
    btf: &RawBtf,
    map_name: &str,
    def_t: u32,
    is_inner: bool,
) -> Result<MapDef, LoadError> {
    let mut m = empty_def(map_name);
    let vlen = btf.vlen(def_t) as usize;
    for i in 0..vlen {
        let name = btf
            .word(def_t, 3 + 3 * i)
            .and_then(|o| btf.str_at(o))
            .ok_or_else(|| einval(map_name, format!("invalid field #{i}")))?;
        let ty = btf.word(def_t, 4 + 3 * i).unwrap_or(0);
        let conflict = |what: &str, old: u32, new: u32| {
            einval(map_name, format!("conflicting {what} size {old} != {new}"))
        };
        match name.as_str() {
            "type" => m.map_type = get_map_field_int(btf, map_name, &name, ty)?,
            "max_entries" => m.max_entries = get_map_field_int(btf, map_name, &name, ty)?,
            "map_flags" => m.map_flags = get_map_field_int(btf, map_name, &name, ty)?,
            "numa_node" => {
                get_map_field_int(btf, map_name, &name, ty)?;
            }
            "key_size" | "value_size" => {
                let sz = get_map_field_int(btf, map_name, &name, ty)?;
                let slot = if name == "key_size" {
                    &mut m.key_size
                } else {
                    &mut m.value_size
                };
                if *slot != 0 && *slot != sz {
                    return Err(conflict(&name[..name.len() - 5], *slot, sz));
                }
                *slot = sz;
            }
            "key" | "value" => {
                let (id, sz) = get_map_field_type(btf, map_name, &name, ty)?;
                let (slot, tid) = if name == "key" {
                    (&mut m.key_size, &mut m.btf_key_type_id)
                } else {
                    (&mut m.value_size, &mut m.btf_value_type_id)
                };
                if *slot != 0 && *slot != sz {
                    return Err(conflict(&name, *slot, sz));
                }
                *slot = sz;
                *tid = id;
            }
            "values" => {
                let is_mim = MAP_IN_MAP.contains(&m.map_type);
                let is_prog_array = m.map_type == BPF_MAP_TYPE_PROG_ARRAY;
                if is_inner {
                    return Err(LoadError {
                        errno: Errno::EOPNOTSUPP,
                        reason: format!("map '{map_name}': multi-level inner maps not supported"),
                    });
                }
                if i != vlen - 1 {
                    return Err(einval(map_name, "'values' member should be last".into()));
                }
                if !is_mim && !is_prog_array {
                    return Err(LoadError {
                        errno: Errno::EOPNOTSUPP,
                        reason: format!(
                            "map '{map_name}': 'values' needs a map-in-map or prog-array type"
                        ),
                    });
                }
                if m.value_size != 0 && m.value_size != 4 {
                    return Err(conflict("value", m.value_size, 4));
                }
                m.value_size = 4;
                let desc = if is_mim {
                    "map-in-map inner"
                } else {
                    "prog-array value"
                };
                if btf.kind(ty) != Some(BtfKind::Array) || btf.word(ty, 5) != Some(0) {
                    return Err(einval(
                        map_name,
                        format!("{desc} spec is not a zero-sized array"),
                    ));
                }
                let p = btf.skip_mods_and_typedefs(btf.word(ty, 3).unwrap_or(0));
                if btf.kind(p) != Some(BtfKind::Ptr) {
                    return Err(einval(
                        map_name,
                        format!("{desc} def is of unexpected kind {}", kind_str(btf, p)),
                    ));
                }
                let t = btf.skip_mods_and_typedefs(btf.word(p, 2).unwrap_or(0));
                if is_prog_array {
                    if btf.kind(t) != Some(BtfKind::FuncProto) {
                        return Err(einval(
                            map_name,
                            format!(
                                "prog-array value def is of unexpected kind {}",
                                kind_str(btf, t)
                            ),
                        ));
                    }
                    continue;
                }
                if btf.kind(t) != Some(BtfKind::Struct) {
                    return Err(einval(
                        map_name,
                        format!(
                            "map-in-map inner def is of unexpected kind {}",
                            kind_str(btf, t)
                        ),
                    ));
                }
                let inner_name = format!("{map_name}.inner");
                let inner = parse_btf_map_def(btf, &inner_name, t, true)?;
                m.inner = Some(Box::new(fill_map_from_def(inner)));
            }
            "pinning" => {
                if is_inner {
                    return Err(einval(map_name, "inner def can't be pinned".into()));
                }
                let v = get_map_field_int(btf, map_name, &name, ty)?;
                if v > 1 {
                    return Err(einval(map_name, format!("invalid pinning value {v}")));
                }
            }
            "map_extra" => {
                // get_map_field_long: __ulong(map_extra, N) is an enum's value (or an
                // __uint-style array for small values).
                m.map_extra = get_map_field_long(btf, map_name, ty)?;
            }
            other => {
                return Err(LoadError {
                    errno: Errno::EOPNOTSUPP,
                    reason: format!("map '{map_name}': unknown field '{other}'"),
                });
            }
        }
    }
    Ok(m)
}

/// `get_map_field_long`: `__uint`-style, or an ENUM/ENUM64 whose one value is it.
fn get_map_field_long(btf: &RawBtf, map: &str, ty: u32) -> Result<u64, LoadError> {
    if let Ok(v) = get_map_field_int(btf, map, "map_extra", ty) {
        return Ok(u64::from(v));
    }
    let t = btf.skip_mods_and_typedefs(ty);
    let p = btf.skip_mods_and_typedefs(btf.word(t, 2).unwrap_or(0));
    match btf.kind(t).zip(btf.kind(p)) {
        Some((BtfKind::Ptr, BtfKind::Enum)) if btf.vlen(p) == 1 => {
            Ok(u64::from(btf.word(p, 4).unwrap_or(0)))
        }
        Some((BtfKind::Ptr, BtfKind::Enum64)) if btf.vlen(p) == 1 => {
            let lo = u64::from(btf.word(p, 4).unwrap_or(0));
            let hi = u64::from(btf.word(p, 5).unwrap_or(0));
            Ok(lo | (hi << 32))
        }
        _ => Err(einval(
            map,
            "attr 'map_extra': expected PTR to ARRAY or ENUM".into(),
        )),
    }
}

/// `fill_map_from_def`: a ring buffer's size is rounded up to a power-of-two number of
/// pages (`adjust_ringbuf_sz`, 4 KiB pages).
/// `bpf_object__create_map` then passes no BTF ids for the map types that take none
/// ([`crate::maps::libbpf_drops_btf`]).
fn fill_map_from_def(mut m: MapDef) -> MapDef {
    if RINGBUFS.contains(&m.map_type) {
        m.max_entries = adjust_ringbuf_sz(m.max_entries);
    }
    if crate::maps::libbpf_drops_btf(m.map_type) {
        m.btf_key_type_id = 0;
        m.btf_value_type_id = 0;
    }
    m
}

fn adjust_ringbuf_sz(sz: u32) -> u32 {
    const PAGE: u32 = 4096;
    if sz == 0 || (sz.is_multiple_of(PAGE) && (sz / PAGE).is_power_of_two()) {
        return sz;
    }
    let mut mul: u32 = 1;
    while mul <= u32::MAX / PAGE {
        if mul * PAGE > sz {
            return mul * PAGE;
        }
        mul <<= 1;
    }
    sz
}

/// `bpf_object__init_user_btf_maps`: one map per VAR of the `.maps` DATASEC, in
/// order. `maps_sec_size` is the `.maps` ELF section's size (`None`: no section).
pub fn bpf_object__init_user_btf_maps(
    btf: &RawBtf,
    maps_sec_size: Option<u64>,
) -> Result<Vec<MapDef>, LoadError> {
    let Some(sec_size) = maps_sec_size else {
        return Ok(Vec::new());
    };
    let sec = btf
        .find_by_name(".maps", Some(BtfKind::Datasec))
        .ok_or(LoadError {
            errno: Errno::ENOENT,
            reason: "DATASEC '.maps' not found".into(),
        })?;
    let mut out = Vec::new();
    for i in 0..btf.vlen(sec) as usize {
        let var = btf.word(sec, 3 + 3 * i).unwrap_or(0);
        let (off, size) = (
            btf.word(sec, 4 + 3 * i).unwrap_or(0),
            btf.word(sec, 5 + 3 * i).unwrap_or(0),
        );
        let name = btf.name(var);
        if name.is_empty() {
            return Err(LoadError {
                errno: Errno::EINVAL,
                reason: format!("map #{i}: empty name"),
            });
        }
        if u64::from(off) + u64::from(size) > sec_size {
            return Err(einval(
                &name,
                "BTF data is corrupted (past the .maps section)".into(),
            ));
        }
        if btf.kind(var) != Some(BtfKind::Var) {
            return Err(einval(
                &name,
                format!("unexpected var kind {}", kind_str(btf, var)),
            ));
        }
        if btf.word(var, 3) != Some(BTF_VAR_GLOBAL_ALLOCATED) {
            return Err(LoadError {
                errno: Errno::EOPNOTSUPP,
                reason: format!("map '{name}': unsupported map linkage (static or extern)"),
            });
        }
        let def = btf.skip_mods_and_typedefs(btf.word(var, 2).unwrap_or(0));
        if btf.kind(def) != Some(BtfKind::Struct) {
            return Err(einval(
                &name,
                format!("unexpected def kind {}", kind_str(btf, def)),
            ));
        }
        if btf.word(def, 2).unwrap_or(0) > size {
            return Err(einval(&name, "invalid def size".into()));
        }
        let mut m = fill_map_from_def(parse_btf_map_def(btf, &name, def, false)?);
        m.btf_var_idx = Some(i);
        out.push(m);
    }
    Ok(out)
}

/// `bpf_object__init_internal_map` with `map_fill_btf_type_info` (the first type named
/// like the section, any kind; none is fine, as for `.rodata.str1.1`) and
/// `map_is_mmapable` (a DATASEC with a VAR that is not static).
pub fn bpf_object__init_internal_map(
    btf: &RawBtf,
    obj_name: &str,
    real_name: &str,
    size: u32,
    rdonly_prog: bool,
) -> MapDef {
    let value_id = btf.find_by_name(real_name, None).unwrap_or(0);
    let mut flags = if rdonly_prog { BPF_F_RDONLY_PROG } else { 0 };
    let mmapable = value_id != 0
        && btf.kind(value_id) == Some(BtfKind::Datasec)
        && (0..btf.vlen(value_id) as usize).any(|i| {
            let v = btf.word(value_id, 3 + 3 * i).unwrap_or(0);
            btf.kind(v) == Some(BtfKind::Var) && btf.word(v, 3) != Some(BTF_VAR_STATIC)
        });
    if mmapable {
        flags |= BPF_F_MMAPABLE;
    }
    MapDef {
        map_type: BPF_MAP_TYPE_ARRAY,
        key_size: 4,
        value_size: size,
        max_entries: 1,
        map_flags: flags,
        btf_value_type_id: value_id,
        internal: true,
        kname: super::internal_map_name(obj_name, real_name),
        ..empty_def(real_name)
    }
}

/// `bpf_object__init_maps`: `.maps`, then the data sections, then `.kconfig`.
pub fn bpf_object__init_maps(
    btf: &RawBtf,
    obj_name: &str,
    maps_sec_size: Option<u64>,
    data_secs: &[DataSec],
    kconfig_size: Option<u32>,
) -> Result<Vec<MapDef>, LoadError> {
    let mut out = bpf_object__init_user_btf_maps(btf, maps_sec_size)?;
    for s in data_secs {
        out.push(bpf_object__init_internal_map(
            btf,
            obj_name,
            &s.name,
            s.size as u32,
            s.rodata,
        ));
    }
    if let Some(size) = kconfig_size {
        out.push(bpf_object__init_internal_map(
            btf, obj_name, ".kconfig", size, true,
        ));
    }
    Ok(out)
}

/// `bpf_object__collect_map_relos` for maps of maps: each relocation of `.maps`
/// (`rels`: offset in the section, the symbol) puts a BTF-defined map into a slot of the
/// `values` array of the map whose VAR covers the offset. Program arrays' slots are
/// programs, not modelled here (their relocations are checked, then left).
pub fn bpf_object__collect_map_relos(
    btf: &RawBtf,
    maps: &mut [MapDef],
    rels: &[(u64, super::ElfSym)],
) -> Result<(), LoadError> {
    let Some(sec) = btf.find_by_name(".maps", Some(BtfKind::Datasec)) else {
        return Err(LoadError {
            errno: Errno::EINVAL,
            reason: ".maps relocations without a .maps DATASEC".into(),
        });
    };
    let vsi = |i: usize| {
        (
            btf.word(sec, 3 + 3 * i).unwrap_or(0),
            u64::from(btf.word(sec, 4 + 3 * i).unwrap_or(0)),
            u64::from(btf.word(sec, 5 + 3 * i).unwrap_or(0)),
        )
    };
    for (n, (off, sym)) in rels.iter().enumerate() {
        let name = if sym.name.is_empty() {
            "<?>"
        } else {
            &sym.name
        };
        let found = maps.iter().position(|m| {
            m.btf_var_idx.is_some_and(|i| {
                let (_, vo, vs) = vsi(i);
                vo <= *off && off + 8 <= vo + vs
            })
        });
        let Some(j) = found else {
            return Err(LoadError {
                errno: Errno::EINVAL,
                reason: format!(".maps relo #{n}: cannot find map '{name}' at offset {off}"),
            });
        };
        let m = &maps[j];
        if m.map_type == BPF_MAP_TYPE_PROG_ARRAY {
            continue;
        }
        if !MAP_IN_MAP.contains(&m.map_type) {
            return Err(einval(
                &m.name,
                format!(
                    ".maps relo #{n}: '{name}' in a map that is neither map-in-map nor prog-array"
                ),
            ));
        }
        if !sym.in_maps {
            return Err(LoadError {
                errno: Errno::EINVAL,
                reason: format!(
                    ".maps relo #{n}: '{name}' isn't a BTF-defined map (libbpf: -LIBBPF_ERRNO__RELOC)"
                ),
            });
        }
        if m.map_type == MAP_IN_MAP[1] && m.key_size != 4 {
            return Err(einval(
                &m.name,
                format!(".maps relo #{n}: hash-of-maps should have key size 4"),
            ));
        }
        if !maps.iter().any(|t| t.libbpf_name() == name) {
            return Err(LoadError {
                errno: Errno::ESRCH,
                reason: format!(".maps relo #{n}: '{name}' isn't a valid map reference"),
            });
        }
        let (var, vo, _) = vsi(maps[j].btf_var_idx.unwrap_or(0));
        let def = btf.skip_mods_and_typedefs(btf.word(var, 2).unwrap_or(0));
        let vlen = btf.vlen(def) as usize;
        let last = vlen
            .checked_sub(1)
            .ok_or_else(|| einval(&maps[j].name, "empty map definition".into()))?;
        if btf
            .word(def, 3 + 3 * last)
            .and_then(|o| btf.str_at(o))
            .as_deref()
            != Some("values")
        {
            return Err(einval(
                &maps[j].name,
                format!(".maps relo #{n}: the last member is not 'values'"),
            ));
        }
        let moff = u64::from(btf.word(def, 5 + 3 * last).unwrap_or(0) & 0x00ff_ffff) / 8;
        let rel = off - vo;
        if rel < moff || (rel - moff) % 8 != 0 {
            return Err(einval(
                &maps[j].name,
                format!(".maps relo #{n}: offset {off} is not a slot of 'values'"),
            ));
        }
        // Within the VAR, which lies within the `.maps` section: bounded by the input.
        let slot = ((rel - moff) / 8) as usize;
        let slots = &mut maps[j].init_slots;
        if slot >= slots.len() {
            slots.resize(slot + 1, None);
        }
        slots[slot] = Some(name.to_string());
    }
    Ok(())
}
