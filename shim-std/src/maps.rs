//! A BPF map as libbpf would create it from an object (see [`crate::libbpf::maps`] for
//! how libbpf finds them), and its `BPF_MAP_CREATE` request to the model and to the
//! kernel.

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
    /// `map_extra`.
    pub map_extra: u64,
    /// A map-in-map's inner map (`__array(values, ...)`), named `<outer>.inner`.
    pub inner: Option<Box<MapDef>>,
    /// A map-in-map's initial slots (`.values = { [i] = &map }`): the map names by
    /// index, as libbpf stores them after creating the outer map.
    pub init_slots: Vec<Option<String>>,
    /// Index of the map's VAR in the `.maps` DATASEC (BTF-defined maps).
    pub btf_var_idx: Option<usize>,
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
            inner_map: None,
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

    /// The name libbpf's `bpf_map__name` gives (`map_uses_real_name`): the section name
    /// for `.data.*`/`.rodata.*` maps, else [`MapDef::kname`].
    pub fn libbpf_name(&self) -> &str {
        let custom = |p: &str| self.name.starts_with(p) && self.name.len() > p.len();
        if self.internal && (custom(".data.") || custom(".rodata.")) {
            &self.name
        } else {
            &self.kname
        }
    }

    /// The `map_name` libbpf passes to `BPF_MAP_CREATE`: at most 15 bytes of
    /// [`MapDef::kname`] (the kernel refuses longer names; libbpf cuts them as
    /// `libbpf_strlcpy` into `BPF_OBJ_NAME_LEN` does).
    pub fn kernel_name(&self) -> String {
        self.kname.chars().take(15).collect()
    }
}

/// The map types `bpf_object__create_map` creates without BTF ids.
pub fn libbpf_drops_btf(map_type: u32) -> bool {
    matches!(
        map_type,
        4 | 7 | 8 | 12 | 13 | 14 | 15 | 16 | 17 | 18 | 22 | 23 | 25 | 33
    )
}
