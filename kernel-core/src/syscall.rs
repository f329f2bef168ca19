//! The BPF syscall's entry points (kernel/bpf/syscall.c), the top of the model's
//! layers: `BPF_BTF_LOAD` ([`bpf_btf_load`]: the verifier, then the records of the
//! struct metas) and `BPF_MAP_CREATE` ([`map_create`]: the map, then its record).

use alloc::string::String;
use alloc::vec::Vec;

use crate::btf::{
    Btf, BtfIdr, BtfOrigin, BtfParseError, BtfRef, BtfStage, KernelBtfs, ParseOpts, btf_get,
    btf_verify,
};
use crate::errno::{Errno, KResult};
use crate::map::create::{bpf_obj_name_cpy_ok, find_and_alloc_map, map_check_btf};
use crate::map::{BPF_F_RDONLY, BPF_F_WRONLY, BpfMap, MapAttr};
use crate::profile::Semantics;
use crate::record::btf_parse_struct_meta_tab;
use crate::why::refuse;

/// `bpf_btf_load` (`BPF_BTF_LOAD`, kernel/bpf/syscall.c): `btf_new_fd` -> `btf_parse`
/// (kernel/bpf/btf.c: the verifier, then struct metas, their fix-ups and, with profile
/// flag `ownership_depth`, the ownership-depth check:
/// [`btf_parse_struct_meta_tab`]), then the id in the kernel's IDR (`btf_alloc_id`).
/// Struct-meta failures carry no log line of their own, as in the kernel: the log is
/// the type dump. Profile flags: those of the verifier and of `btf_parse_fields`.
pub fn bpf_btf_load(
    kernel: &KernelBtfs,
    data: &[u8],
    log_level: u32,
    sem: &Semantics,
) -> Result<(BtfRef, Vec<u8>), BtfParseError> {
    let opts = ParseOpts {
        log_level,
        resolve: true,
        sem: *sem,
    };
    let (d, log) = btf_verify(data.into(), None, &opts)?;
    let log = log.into_bytes();
    let mut btf = Btf::new(d, "", BtfOrigin::User);
    btf_parse_struct_meta_tab(&btf, kernel, sem)
        .map_err(|(errno, stage)| BtfParseError::after_verifier(errno, stage, log.clone()))?;
    // btf_new_fd: the id is allocated only once btf_parse (struct metas and their
    // fix-ups included) has succeeded (btf_alloc_id).
    BtfIdr::publish(kernel.idr(), &mut btf)
        .map_err(|e| BtfParseError::after_verifier(e, BtfStage::AllocId, log.clone()))?;
    Ok((btf, log))
}

/// `map_create` (`BPF_MAP_CREATE`, kernel/bpf/syscall.c): the attributes' own checks,
/// [`find_and_alloc_map`] (the map type's allocation check and a map-in-map's inner
/// map template), the name (`bpf_obj_name_cpy`), the BTF (a kernel BTF is -EACCES) and
/// [`map_check_btf`] when a value type is given. A record
/// error does not fail creation: the map has no special fields. Profile flags: those of
/// [`map_check_btf`].
pub fn map_create(kernel: &KernelBtfs, a: &MapAttr<'_>, sem: &Semantics) -> KResult<BpfMap> {
    if a.btf_key_type_id != 0 && a.btf_value_type_id == 0 {
        return Err(Errno::EINVAL);
    }
    if a.map_flags & BPF_F_RDONLY != 0 && a.map_flags & BPF_F_WRONLY != 0 {
        return Err(Errno::EINVAL);
    }
    let mut map = find_and_alloc_map(a)?;
    if !bpf_obj_name_cpy_ok(a.name) {
        return Err(refuse(Errno::EINVAL, "bpf_obj_name_cpy", 0, None, || {
            alloc::format!(
                "map name `{}`: at most 15 characters of letters, digits, `_` and `.`",
                a.name
            )
        }));
    }
    map.name = String::from(a.name);
    if a.btf_key_type_id != 0 || a.btf_value_type_id != 0 {
        let btf = a.btf.ok_or_else(|| {
            refuse(Errno::EBADF, "map_create", 0, None, || {
                alloc::string::String::from("BTF type ids without a BTF fd")
            })
        })?;
        if btf.is_kernel() {
            return Err(refuse(Errno::EACCES, "map_create", 0, None, || {
                alloc::string::String::from("the BTF fd is a kernel BTF")
            }));
        }
        map.btf = Some(btf_get(btf));
        if a.btf_value_type_id != 0 {
            map_check_btf(
                kernel,
                &mut map,
                btf,
                a.btf_key_type_id,
                a.btf_value_type_id,
                sem,
            )?;
        }
    }
    Ok(map)
}
