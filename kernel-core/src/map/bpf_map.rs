//! `struct bpf_map` as far as special fields care, and the `BPF_MAP_CREATE` attributes
//! the model reads (include/linux/bpf.h, include/uapi/linux/bpf.h).

use alloc::boxed::Box;
use alloc::string::String;

use crate::btf::BtfRef;
use crate::errno::Errno;
use crate::record::BtfRecord;

/// The `BPF_MAP_CREATE` attributes the model reads.
#[derive(Clone, Copy)]
pub struct MapAttr<'a> {
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
    /// The BTF behind `btf_fd` (`None` = no fd).
    pub btf: Option<&'a BtfRef>,
    /// `btf_key_type_id`.
    pub btf_key_type_id: u32,
    /// `btf_value_type_id`.
    pub btf_value_type_id: u32,
    /// `map_name`.
    pub name: &'a str,
    /// The map behind `inner_map_fd`, read by the map-in-map types only. `None` is an
    /// fd with no file behind it (`__bpf_map_get`: -EBADF); an open fd that is not a
    /// map (-EINVAL) is not modelled.
    pub inner_map: Option<&'a BpfMap>,
}

/// A created map: its attributes, its BTF (one reference), and its record.
pub struct BpfMap {
    /// `map_type`.
    pub map_type: u32,
    /// `key_size`.
    pub key_size: u32,
    /// `value_size`.
    pub value_size: u32,
    /// `max_entries`.
    pub max_entries: u32,
    /// `map->map_flags`: the creation flags without `BPF_F_RDONLY`/`BPF_F_WRONLY`
    /// (`bpf_map_flags_retain_permanent`: they belong to the fd, not the map).
    pub map_flags: u32,
    /// `map->name`.
    pub name: String,
    /// `map->inner_map_meta`: the template of a map-in-map's inner maps
    /// ([`super::map_in_map::bpf_map_meta_alloc`]); freed first, as `map_free` does.
    pub inner_map_meta: Option<Box<BpfMap>>,
    /// `map->record`: `None` both for "no special fields" and for a record that failed
    /// to parse (the kernel's error pointer), which [`BpfMap::record_error`] keeps.
    /// Declared before `btf`: a plain drop frees the record, then puts the BTF, as
    /// `bpf_map_free_deferred` (v6.7+) and `bpf_map_meta_free` do.
    pub record: Option<BtfRecord>,
    /// Why the record failed, when it did (the map is created all the same).
    pub record_error: Option<Errno>,
    /// `map->btf` (a reference).
    pub btf: Option<BtfRef>,
    /// False when the map type's own checks are not modelled (only the generic ones
    /// and `map_check_btf` ran).
    pub modelled: bool,
}
