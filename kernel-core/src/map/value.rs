//! A map value's special-field-aware helpers (include/linux/bpf.h: `copy_map_value`,
//! `copy_map_value_locked`, `check_and_init_map_value`) and the update flags
//! (include/uapi/linux/bpf.h), shared by the map types at run time.

use alloc::vec::Vec;

use crate::obj::{Words, bpf_obj_init};
use crate::record::BtfRecord;

/// `BPF_ANY`, `BPF_NOEXIST`, `BPF_EXIST`.
pub const BPF_NOEXIST: u64 = 1;
/// `BPF_EXIST`.
pub const BPF_EXIST: u64 = 2;

/// `copy_map_value`: copies `src` into `dst`, skipping the special fields.
pub fn copy_map_value(rec: Option<&BtfRecord>, dst: &Words, src: &[u8]) {
    let mut skip: Vec<(u32, u32)> = rec
        .map(|r| {
            r.fields
                .iter()
                .map(|f| (f.offset, f.offset + f.size))
                .collect()
        })
        .unwrap_or_default();
    skip.sort_unstable();
    let mut k = 0;
    for i in 0..(dst.size().min(src.len() as u32)) {
        while k < skip.len() && skip[k].1 <= i {
            k += 1;
        }
        if k < skip.len() && skip[k].0 <= i && i < skip[k].1 {
            continue;
        }
        dst.set_byte(i, src[i as usize]);
    }
}

/// `check_and_init_map_value`.
pub fn check_and_init_map_value(rec: Option<&BtfRecord>, v: &Words) {
    bpf_obj_init(rec, v);
}

/// `BPF_F_LOCK`: update or look up a value under its `bpf_spin_lock`.
pub const BPF_F_LOCK: u64 = 4;

/// `copy_map_value_locked` (include/linux/bpf.h) with `lock_src` false: `copy_map_value`
/// under the destination value's `bpf_spin_lock`.
pub(crate) fn copy_map_value_locked(rec: &BtfRecord, dst: &Words, src: &[u8]) {
    let lock = rec.spin_lock_off as u32;
    crate::obj::bpf_spin_lock(dst, lock);
    copy_map_value(Some(rec), dst, src);
    crate::obj::bpf_spin_unlock(dst, lock);
}
