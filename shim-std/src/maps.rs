//! BPF maps as libbpf would create them from an object: BTF-defined maps in `.maps`
//! (`__uint`/`__type` members, `parse_btf_map_def` in libbpf) and the global-data
//! maps of `.data`, `.bss`, `.rodata` and their `.data.*`/`.rodata.*` variants
//! (`bpf_object__init_internal_map`), with the attributes libbpf passes to
//! `BPF_MAP_CREATE` (including its zeroing of BTF ids for map types that take none).

use kernel_core::btf::uapi::BtfKind;
use kernel_core::btf::{BtfData, TypeRef};

use crate::elf::{BpfObject, DataSec};

/// `BPF_F_RDONLY_PROG`.
pub const BPF_F_RDONLY_PROG: u32 = 1 << 7;
/// `BPF_F_MMAPABLE`.
pub const BPF_F_MMAPABLE: u32 = 1 << 10;
/// `BPF_MAP_TYPE_ARRAY`.
pub const BPF_MAP_TYPE_ARRAY: u32 = 2;

/// One map as libbpf would create it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapDef {
    /// The map's name in the object (the VAR name, or the section for global data).
    pub name: String,
    /// `map_type`.
    pub map_type: u32,
    /// `key_size`.
    pub key_size: u32,
    /// `value_size`.
    pub value_size: u32,
    /// `max_entries`.
    pub max_entries: u32,
    /// `map_flags`.
    pub map_flags: u32,
    /// `btf_key_type_id` as libbpf passes it.
    pub btf_key_type_id: u32,
    /// `btf_value_type_id` as libbpf passes it.
    pub btf_value_type_id: u32,
    /// A global-data map (`.bss`, `.data`, `.rodata`, `.kconfig`, ...).
    pub internal: bool,
    /// The name libbpf gives the kernel (`bpf_map__name`, what `bpftool map list`
    /// shows): the VAR name for `.maps`, [`crate::libbpf::internal_map_name`] for
    /// internal maps.
    pub kname: String,
}

impl MapDef {
    /// The model's `BPF_MAP_CREATE` attributes for this map over `btf`.
    pub fn attr<'a>(
        &self,
        btf: &'a kernel_core::btf::BtfRef,
        name: &'a str,
    ) -> kernel_core::map::MapAttr<'a> {
        kernel_core::map::MapAttr {
            map_type: self.map_type,
            key_size: self.key_size,
            value_size: self.value_size,
            max_entries: self.max_entries,
            map_flags: self.map_flags,
            btf: Some(btf),
            btf_key_type_id: self.btf_key_type_id,
            btf_value_type_id: self.btf_value_type_id,
            name,
        }
    }

    /// The same request for the running kernel, with the BTF fd when an id is given.
    pub fn oracle_request<'a>(
        &self,
        btf_fd: std::os::fd::BorrowedFd<'a>,
        name: &'a str,
    ) -> crate::oracle::MapCreate<'a> {
        crate::oracle::MapCreate {
            map_type: self.map_type,
            key_size: self.key_size,
            value_size: self.value_size,
            max_entries: self.max_entries,
            map_flags: self.map_flags,
            btf_fd: (self.btf_key_type_id != 0 || self.btf_value_type_id != 0).then_some(btf_fd),
            btf_key_type_id: self.btf_key_type_id,
            btf_value_type_id: self.btf_value_type_id,
            name,
        }
    }

    /// The `map_name` libbpf passes to `BPF_MAP_CREATE`: at most 15 bytes of
    /// [`MapDef::kname`] (the kernel refuses longer names; libbpf cuts them as
    /// `libbpf_strlcpy` into `BPF_OBJ_NAME_LEN` does).
    pub fn kernel_name(&self) -> String {
        self.kname.chars().take(15).collect()
    }
}

/// libbpf zeroes the BTF ids for these map types.
fn libbpf_drops_btf(map_type: u32) -> bool {
    matches!(
        map_type,
        4 | 7 | 8 | 12 | 13 | 14 | 15 | 16 | 17 | 18 | 22 | 23 | 25 | 33
    )
}

fn member_uint(d: &BtfData, ty: u32) -> Option<u32> {
    // __uint(name, val): `int (*name)[val]`.
    let (p, _) = d.skip_modifiers(ty);
    let p = p.filter(|p| p.kind() == BtfKind::Ptr)?;
    let (a, _) = d.skip_modifiers(p.type_id());
    let a = a.filter(|a| a.kind() == BtfKind::Array)?;
    Some(a.array().2)
}

fn member_type(d: &BtfData, ty: u32) -> Option<(u32, u32)> {
    // __type(name, T): `T *name`; the pointee id and its resolved size.
    let (p, _) = d.skip_modifiers(ty);
    let p = p.filter(|p| p.kind() == BtfKind::Ptr)?;
    let id = p.type_id();
    let size = d.type_id_size(id).map(|x| x.2)?;
    Some((id, size))
}

fn btf_map(d: &BtfData, var: &TypeRef<'_>) -> Option<MapDef> {
    let name = String::from(d.name_by_offset(var.name_off()));
    let (st, _) = d.skip_modifiers(var.type_id());
    let st = st.filter(|s| s.is_struct_only())?;
    let mut m = MapDef {
        kname: name.clone(),
        name,
        map_type: 0,
        key_size: 0,
        value_size: 0,
        max_entries: 0,
        map_flags: 0,
        btf_key_type_id: 0,
        btf_value_type_id: 0,
        internal: false,
    };
    for mem in st.members() {
        match d.name_by_offset(mem.name_off) {
            "type" => m.map_type = member_uint(d, mem.type_id)?,
            "max_entries" => m.max_entries = member_uint(d, mem.type_id)?,
            "map_flags" => m.map_flags = member_uint(d, mem.type_id)?,
            "key_size" => m.key_size = member_uint(d, mem.type_id)?,
            "value_size" => m.value_size = member_uint(d, mem.type_id)?,
            "key" => {
                let (id, size) = member_type(d, mem.type_id)?;
                m.btf_key_type_id = id;
                m.key_size = size;
            }
            "value" => {
                let (id, size) = member_type(d, mem.type_id)?;
                m.btf_value_type_id = id;
                m.value_size = size;
            }
            _ => {}
        }
    }
    if libbpf_drops_btf(m.map_type) {
        m.btf_key_type_id = 0;
        m.btf_value_type_id = 0;
    }
    Some(m)
}

/// The maps of an object read without a file name, its data sections classified by
/// name only. Prefer [`libbpf_maps`].
pub fn object_maps(d: &BtfData, sections: &[(String, u64)]) -> Vec<MapDef> {
    let has = |n: &str, p: &str| n == p || n.starts_with(&format!("{p}."));
    let secs: Vec<DataSec> = sections
        .iter()
        .filter(|(n, sz)| *sz > 0 && (has(n, ".data") || has(n, ".rodata") || has(n, ".bss")))
        .map(|(n, sz)| DataSec {
            name: n.clone(),
            size: *sz,
            rodata: has(n, ".rodata"),
        })
        .collect();
    maps_of(d, "", &secs, None)
}

/// The maps libbpf creates for object `o` whose prepared BTF is `d`
/// (`bpf_object__init_maps`): the BTF-defined maps of `.maps` in DATASEC order, then an
/// internal map per data section (`bpf_object__init_global_data_maps`), then
/// `.kconfig` (`bpf_object__init_kconfig_map`).
pub fn libbpf_maps(d: &BtfData, o: &BpfObject) -> Vec<MapDef> {
    maps_of(d, &o.name, &o.data_secs, o.kconfig_size)
}

/// `bpf_object__init_internal_map` with `map_fill_btf_type_info` (the first type named
/// like the section, any kind; none is fine, as for `.rodata.str1.1`) and
/// `map_is_mmapable` (a DATASEC with a VAR that is not static).
fn internal_map(d: &BtfData, obj_name: &str, real_name: &str, size: u32, ro: bool) -> MapDef {
    let value_id = d
        .local_types()
        .find(|t| d.name_by_offset(t.name_off()) == real_name)
        .map_or(0, |t| t.id());
    let mut flags = if ro { BPF_F_RDONLY_PROG } else { 0 };
    let mmapable = d
        .type_by_id(value_id)
        .filter(|t| value_id != 0 && t.kind() == BtfKind::Datasec)
        .is_some_and(|ds| {
            (0..ds.vlen()).any(|i| {
                d.type_by_id(ds.var_secinfo(i).type_id)
                    .is_some_and(|v| v.kind() == BtfKind::Var && v.var_linkage() != 0)
            })
        });
    if mmapable {
        flags |= BPF_F_MMAPABLE;
    }
    MapDef {
        name: real_name.to_string(),
        map_type: BPF_MAP_TYPE_ARRAY,
        key_size: 4,
        value_size: size,
        max_entries: 1,
        map_flags: flags,
        btf_key_type_id: 0,
        btf_value_type_id: value_id,
        internal: true,
        kname: crate::libbpf::internal_map_name(obj_name, real_name),
    }
}

fn maps_of(d: &BtfData, obj_name: &str, secs: &[DataSec], kconfig: Option<u32>) -> Vec<MapDef> {
    let mut out = Vec::new();
    if let Some(ds) = d
        .local_types()
        .find(|t| t.kind() == BtfKind::Datasec && d.name_by_offset(t.name_off()) == ".maps")
    {
        for i in 0..ds.vlen() {
            let vsi = ds.var_secinfo(i);
            if let Some(var) = d.type_by_id(vsi.type_id)
                && let Some(m) = btf_map(d, &var)
            {
                out.push(m);
            }
        }
    }
    for sec in secs {
        out.push(internal_map(
            d,
            obj_name,
            &sec.name,
            sec.size as u32,
            sec.rodata,
        ));
    }
    if let Some(size) = kconfig {
        out.push(internal_map(d, obj_name, ".kconfig", size, true));
    }
    out
}
