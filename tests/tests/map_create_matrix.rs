//! `map_create` without BTF over a matrix of map types x key sizes x value sizes x
//! max_entries x flags: the model's errno must be the running kernel's for every
//! combination of every modelled map type (the maps of maps with an ARRAY as their inner
//! map). (Results that depend on the machine, such as CPUMAP's NR_CPUS bound or the BPF
//! LSM, are left out.)

use kernel_core::Semantics;
use kernel_core::btf::{BtfIdr, KernelBtfs};
use kernel_core::map::create::map_type_modelled;
use kernel_core::map::*;
use kernel_core::sync::{Arc, Rcu};
use kernel_core::syscall::map_create;
use shim_std::oracle;
use std::os::fd::AsFd;

/// The matrix: flags, key sizes, value sizes and max_entries of every request.
const FLAGS: [u32; 16] = [
    0,
    BPF_F_NO_PREALLOC,
    BPF_F_NO_COMMON_LRU,
    BPF_F_NUMA_NODE,
    BPF_F_RDONLY,
    BPF_F_RDONLY | BPF_F_WRONLY,
    BPF_F_RDONLY_PROG,
    BPF_F_RDONLY_PROG | BPF_F_WRONLY_PROG,
    BPF_F_ZERO_SEED,
    BPF_F_STACK_BUILD_ID,
    BPF_F_CLONE,
    BPF_F_MMAPABLE,
    BPF_F_PRESERVE_ELEMS,
    BPF_F_INNER_MAP,
    BPF_F_NO_PREALLOC | BPF_F_CLONE,
    BPF_F_NO_PREALLOC | BPF_F_NO_COMMON_LRU,
];
const KEY_SIZES: [u32; 4] = [0, 4, 8, 16];
const VALUE_SIZES: [u32; 5] = [0, 4, 8, 16, 32];
const MAX_ENTRIES: [u32; 3] = [0, 1, 4096];

/// The max_entries a request of map type `t` tries (CPUMAP's bound is the machine's
/// NR_CPUS: only 0 and 1).
fn max_entries(t: u32) -> &'static [u32] {
    if t == BPF_MAP_TYPE_CPUMAP {
        &MAX_ENTRIES[..2]
    } else {
        &MAX_ENTRIES
    }
}

/// The requests the matrix makes: every modelled map type (ARENA's left out where the
/// kernel refuses every ARENA map), from the dimensions above.
fn requests(with_arena: bool) -> usize {
    (1..=BPF_MAP_TYPE_ARENA)
        .filter(|&t| map_type_modelled(t) && (with_arena || t != BPF_MAP_TYPE_ARENA))
        .map(|t| KEY_SIZES.len() * VALUE_SIZES.len() * max_entries(t).len() * FLAGS.len())
        .sum()
}

/// The README's figures for the matrix and the limits, on either kind of machine.
#[test]
fn readme_counts_the_requests() {
    use kptr_tests::readme::{n, states};
    let arena_limits = LIMITS.iter().filter(|c| c.0 == BPF_MAP_TYPE_ARENA).count();
    states(&format!(
        "and {} limits (E2BIG and size bounds)",
        n(LIMITS.len())
    ));
    states(&format!(
        "({} requests and {} limits where the kernel allows ARENA maps, {} and {} where it refuses them, as this machine's does)",
        n(requests(true)),
        n(LIMITS.len()),
        n(requests(false)),
        n(LIMITS.len() - arena_limits)
    ));
}

#[test]
fn every_modelled_map_type_gets_the_kernels_errno() {
    if kptr_tests::kernel_skip("map_create matrix") {
        return;
    }
    let sem = Semantics::V6_18;
    let kernel = KernelBtfs::new(BtfIdr::new(Arc::new(Rcu::new())), None).expect("kernel");
    let (mut total, mut ok) = (0usize, 0usize);
    let mut seen: std::collections::BTreeMap<Option<i32>, usize> = Default::default();
    let mut mismatches = Vec::new();
    let arena = kptr_tests::arena_refused();
    // The inner map template the map-in-map requests pass (`inner_map_fd`): an ARRAY of
    // one 4-byte value, in the kernel and in the model.
    let inner_req = oracle::MapCreate {
        map_type: BPF_MAP_TYPE_ARRAY,
        key_size: 4,
        value_size: 4,
        max_entries: 1,
        map_flags: 0,
        btf_fd: None,
        btf_key_type_id: 0,
        btf_value_type_id: 0,
        name: "inner",
    };
    let inner_fd = oracle::map_create(&inner_req).expect("the kernel creates the inner map");
    let inner_attr = MapAttr {
        inner_map: None,
        map_type: BPF_MAP_TYPE_ARRAY,
        key_size: 4,
        value_size: 4,
        max_entries: 1,
        map_flags: 0,
        btf: None,
        btf_key_type_id: 0,
        btf_value_type_id: 0,
        name: "inner",
    };
    let inner = map_create(&kernel, &inner_attr, &sem).expect("the model creates the inner map");
    for t in 1..=BPF_MAP_TYPE_ARENA {
        if !map_type_modelled(t) {
            continue;
        }
        let of_maps = matches!(t, BPF_MAP_TYPE_ARRAY_OF_MAPS | BPF_MAP_TYPE_HASH_OF_MAPS);
        if t == BPF_MAP_TYPE_ARENA
            && let Some(r) = &arena
        {
            eprintln!("KERNEL ORACLE NOT RUN (map_create matrix, ARENA requests): {r}");
            continue;
        }
        for ks in KEY_SIZES {
            for vs in VALUE_SIZES {
                for &me in max_entries(t) {
                    for f in FLAGS {
                        let kr = oracle::map_create_with_inner(
                            &oracle::MapCreate {
                                map_type: t,
                                key_size: ks,
                                value_size: vs,
                                max_entries: me,
                                map_flags: f,
                                btf_fd: None,
                                btf_key_type_id: 0,
                                btf_value_type_id: 0,
                                name: "mx",
                            },
                            of_maps.then(|| inner_fd.as_fd()),
                        )
                        .err();
                        let attr = MapAttr {
                            inner_map: of_maps.then_some(&inner),
                            map_type: t,
                            key_size: ks,
                            value_size: vs,
                            max_entries: me,
                            map_flags: f,
                            btf: None,
                            btf_key_type_id: 0,
                            btf_value_type_id: 0,
                            name: "mx",
                        };
                        let mr = map_create(&kernel, &attr, &sem).err().map(|e| e.raw());
                        total += 1;
                        *seen.entry(kr).or_default() += 1;
                        if kr == mr {
                            ok += 1;
                        } else {
                            mismatches.push(format!(
                                "{} ks={ks} vs={vs} me={me} flags={f:#x}: kernel {kr:?} model {mr:?}",
                                map_type_name(t)
                            ));
                        }
                    }
                }
            }
        }
    }
    eprintln!(
        "{ok} of {total} map_create requests: same errno as the kernel; kernel answers: {seen:?}"
    );
    assert_eq!(
        total,
        requests(arena.is_none()),
        "every request of the matrix compared"
    );
    // The matrix reaches success and several distinct errnos.
    assert!(
        seen.len() >= 3 && seen.get(&None).copied().unwrap_or(0) > 100,
        "{seen:?}"
    );
    assert!(
        mismatches.is_empty(),
        "{} mismatches (first 40):\n{}",
        mismatches.len(),
        mismatches
            .iter()
            .take(40)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// (type, key size, value size, max entries, flags): each at or just past a limit.
const LIMITS: &[(u32, u32, u32, u32, u32)] = &[
    (BPF_MAP_TYPE_PERCPU_ARRAY, 4, 32768, 1, 0),
    (BPF_MAP_TYPE_PERCPU_ARRAY, 4, 32769, 1, 0),
    (BPF_MAP_TYPE_PERCPU_HASH, 4, 32769, 1, 0),
    (BPF_MAP_TYPE_CGROUP_STORAGE, 8, 65407, 0, 0),
    (BPF_MAP_TYPE_CGROUP_STORAGE, 8, 65408, 0, 0),
    (BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE, 16, 32769, 0, 0),
    (BPF_MAP_TYPE_SOCKHASH, 512, 4, 1, 0),
    (BPF_MAP_TYPE_SOCKHASH, 513, 4, 1, 0),
    (BPF_MAP_TYPE_SOCKHASH, 4, 4, (1 << 27) + 1, 0),
    (BPF_MAP_TYPE_ARENA, 0, 0, (1 << 20) + 1, BPF_F_MMAPABLE),
    (BPF_MAP_TYPE_QUEUE, 0, 4_194_305, 1, 0),
    (
        BPF_MAP_TYPE_STACK,
        0,
        8,
        u32::MAX / 8 - 1,
        BPF_F_RDONLY_PROG | BPF_F_WRONLY_PROG,
    ),
    (BPF_MAP_TYPE_STACK_TRACE, 4, 1016, 1, 0),
    (BPF_MAP_TYPE_STACK_TRACE, 4, 1024, 1, 0),
    (BPF_MAP_TYPE_STACK_TRACE, 4, 4064, 1, BPF_F_STACK_BUILD_ID),
    (BPF_MAP_TYPE_STACK_TRACE, 4, 4096, 1, BPF_F_STACK_BUILD_ID),
    (BPF_MAP_TYPE_LPM_TRIE, 260, 4, 1, BPF_F_NO_PREALLOC),
    (BPF_MAP_TYPE_LPM_TRIE, 261, 4, 1, BPF_F_NO_PREALLOC),
    (BPF_MAP_TYPE_LPM_TRIE, 8, 4_194_024, 1, BPF_F_NO_PREALLOC),
    (BPF_MAP_TYPE_LPM_TRIE, 8, 4_194_025, 1, BPF_F_NO_PREALLOC),
    (BPF_MAP_TYPE_BLOOM_FILTER, 0, 4_194_305, 1, 0),
    (BPF_MAP_TYPE_HASH, 4_194_200, 100, 1, 0),
    (BPF_MAP_TYPE_DEVMAP_HASH, 4, 4, (1 << 31) + 1, 0),
    (BPF_MAP_TYPE_RINGBUF, 0, 0, 8192, 0),
    (BPF_MAP_TYPE_RINGBUF, 0, 0, 6000, 0),
    (BPF_MAP_TYPE_USER_RINGBUF, 0, 0, 4096, BPF_F_RDONLY),
    (
        BPF_MAP_TYPE_ARRAY,
        4,
        8,
        1,
        BPF_F_MMAPABLE | BPF_F_INNER_MAP,
    ),
    (
        BPF_MAP_TYPE_LRU_PERCPU_HASH,
        4,
        8,
        4,
        BPF_F_NO_COMMON_LRU | BPF_F_NUMA_NODE,
    ),
];

#[test]
fn size_and_count_limits_get_the_kernels_errno() {
    if kptr_tests::kernel_skip("map_create limits") {
        return;
    }
    let sem = Semantics::V6_18;
    let kernel = KernelBtfs::new(BtfIdr::new(Arc::new(Rcu::new())), None).expect("kernel");
    let mut seen = std::collections::BTreeSet::new();
    let arena = kptr_tests::arena_refused();
    let mut compared = 0;
    for &(t, ks, vs, me, f) in LIMITS {
        if t == BPF_MAP_TYPE_ARENA
            && let Some(r) = &arena
        {
            eprintln!("KERNEL ORACLE NOT RUN (map_create limits, ARENA me={me}): {r}");
            continue;
        }
        let kr = oracle::map_create(&oracle::MapCreate {
            map_type: t,
            key_size: ks,
            value_size: vs,
            max_entries: me,
            map_flags: f,
            btf_fd: None,
            btf_key_type_id: 0,
            btf_value_type_id: 0,
            name: "lim",
        })
        .err();
        let attr = MapAttr {
            inner_map: None,
            map_type: t,
            key_size: ks,
            value_size: vs,
            max_entries: me,
            map_flags: f,
            btf: None,
            btf_key_type_id: 0,
            btf_value_type_id: 0,
            name: "lim",
        };
        let mr = map_create(&kernel, &attr, &sem).err().map(|e| e.raw());
        assert_eq!(
            kr,
            mr,
            "{} ks={ks} vs={vs} me={me} flags={f:#x}",
            map_type_name(t)
        );
        seen.insert(kr);
        compared += 1;
    }
    let arena_limits = LIMITS.iter().filter(|c| c.0 == BPF_MAP_TYPE_ARENA).count();
    assert_eq!(
        compared,
        LIMITS.len() - if arena.is_some() { arena_limits } else { 0 },
        "every limit compared"
    );
    assert!(seen.contains(&Some(7)), "E2BIG cases reached: {seen:?}");
}
