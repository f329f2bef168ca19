//! `map_lookup_elem` from user space (kernel/bpf/syscall.c, `bpf_map_copy_value`): how
//! many bytes each map type hands back (`bpf_map_value_size`: `value_size` for an
//! ARRAY or a HASH, `round_up(value_size, 8)` per possible CPU for the per-CPU maps,
//! `bpf_percpu_array_copy` and `bpf_percpu_hash_copy` filling each CPU's slice with
//! `copy_map_value_long`), and its answers to flags and missing keys, the model's and
//! the running kernel's. The values are 12 bytes, so a slice is longer than a value.

use std::os::fd::AsFd;

use kernel_core::Semantics;
use kernel_core::map::runtime::{MapRt, NR_CPUS};
use kernel_core::map::value::BPF_F_LOCK;
use kernel_core::map::{
    BPF_MAP_TYPE_ARRAY, BPF_MAP_TYPE_HASH, BPF_MAP_TYPE_LRU_HASH, BPF_MAP_TYPE_LRU_PERCPU_HASH,
    BPF_MAP_TYPE_PERCPU_ARRAY, BPF_MAP_TYPE_PERCPU_HASH, MapAttr,
};
use kernel_core::syscall::map_create;

const VALUE_SIZE: u32 = 12;
const TYPES: [u32; 6] = [
    BPF_MAP_TYPE_ARRAY,
    BPF_MAP_TYPE_PERCPU_ARRAY,
    BPF_MAP_TYPE_HASH,
    BPF_MAP_TYPE_PERCPU_HASH,
    BPF_MAP_TYPE_LRU_HASH,
    BPF_MAP_TYPE_LRU_PERCPU_HASH,
];

fn per_cpu(ty: u32) -> bool {
    matches!(
        ty,
        BPF_MAP_TYPE_PERCPU_ARRAY | BPF_MAP_TYPE_PERCPU_HASH | BPF_MAP_TYPE_LRU_PERCPU_HASH
    )
}

/// The lookups asked of every map: (key, flags). Key 0 holds a value; key 9 is past an
/// array's end and absent from a hash; flag 1 (`BPF_NOEXIST`) is not a lookup flag;
/// `BPF_F_LOCK` needs a `bpf_spin_lock` these values do not have.
const LOOKUPS: [(u32, u64); 4] = [(0, 0), (9, 0), (0, 1), (0, BPF_F_LOCK)];

/// One lookup's observation: the bytes written per CPU (the whole value for a map
/// that is not per-CPU), or the errno.
type Seen = Result<usize, i32>;

/// The model: key 0 written with 0x11 in every byte, then [`LOOKUPS`].
fn model(ty: u32) -> Vec<Seen> {
    let sem = Semantics::V6_18;
    let (k, rt, _p) = kptr_tests::runtime(sem);
    let attr = MapAttr {
        inner_map: None,
        map_type: ty,
        key_size: 4,
        value_size: VALUE_SIZE,
        max_entries: 4,
        map_flags: 0,
        btf: None,
        btf_key_type_id: 0,
        btf_value_type_id: 0,
        name: "lookups",
    };
    let m = MapRt::new(map_create(&k, &attr, &sem).expect("map"), &sem).expect("map rt");
    let value = vec![0x11u8; m.bpf_map_value_size()];
    m.update(&rt, &0u32.to_ne_bytes(), &value, 0)
        .expect("update");
    let cpus = if per_cpu(ty) { NR_CPUS } else { 1 };
    let seen = LOOKUPS
        .iter()
        .map(|&(key, flags)| {
            m.bpf_map_copy_value(&key.to_ne_bytes(), flags)
                .map(|b| {
                    assert!(b.iter().all(|&x| x == 0x11), "type {ty}: {b:?}");
                    b.len() / cpus
                })
                .map_err(|e| e.raw())
        })
        .collect();
    if let Some(f) = MapRt::bpf_map_put(m) {
        f.run(&rt);
    }
    rt.rcu.rcu_barrier();
    assert!(rt.mem.live().is_empty() && rt.warnings().is_empty());
    seen
}

/// The possible CPUs (`/sys/devices/system/cpu/possible`, "0-N" or "0").
fn possible_cpus() -> usize {
    let s = std::fs::read_to_string("/sys/devices/system/cpu/possible").expect("possible CPUs");
    let last = s.trim().rsplit(['-', ',']).next().unwrap_or("0");
    last.parse::<usize>().expect("a CPU number") + 1
}

/// The running kernel: the same map without BTF, key 0 written with 0x11, then
/// [`LOOKUPS`] into a buffer of 0xaa much larger than any value; the bytes written are
/// those before the first 0xaa.
fn kernel(ty: u32) -> Vec<Seen> {
    let fd = shim_std::oracle::map_create(&shim_std::oracle::MapCreate {
        map_type: ty,
        key_size: 4,
        value_size: VALUE_SIZE,
        max_entries: 4,
        map_flags: 0,
        btf_fd: None,
        btf_key_type_id: 0,
        btf_value_type_id: 0,
        name: "lookups",
    })
    .expect("the kernel creates the map");
    let cpus = if per_cpu(ty) { possible_cpus() } else { 1 };
    let size = if per_cpu(ty) {
        VALUE_SIZE.div_ceil(8) as usize * 8 * cpus
    } else {
        VALUE_SIZE as usize
    };
    shim_std::oracle::map_update_elem(fd.as_fd(), &0u32.to_ne_bytes(), &vec![0x11u8; size], 0)
        .expect("update");
    LOOKUPS
        .iter()
        .map(|&(key, flags)| {
            let mut buf = vec![0xaau8; size + 4096];
            shim_std::oracle::map_lookup_elem_flags(fd.as_fd(), &key.to_ne_bytes(), &mut buf, flags)
                .map(|()| buf.iter().position(|&b| b == 0xaa).unwrap_or(buf.len()) / cpus)
        })
        .collect()
}

/// Per map type: 12 bytes back from an ARRAY or a HASH, 16 per CPU from a per-CPU map;
/// -ENOENT past an array's end or for a missing key, -EINVAL for a flag other than
/// `BPF_F_LOCK` and for `BPF_F_LOCK` without a lock. The model's answers, and the
/// running kernel's, which must be the same.
#[test]
fn lookups_hand_back_the_kernels_bytes_and_errnos() {
    for ty in TYPES {
        let slice = if per_cpu(ty) { 16 } else { 12 };
        let want: Vec<Seen> = vec![
            Ok(slice),
            Err(libc::ENOENT),
            Err(libc::EINVAL),
            Err(libc::EINVAL),
        ];
        assert_eq!(model(ty), want, "model: type {ty}");
        if kptr_tests::kernel_skip("map lookups") {
            continue;
        }
        assert_eq!(kernel(ty), want, "the running kernel: type {ty}");
    }
}
