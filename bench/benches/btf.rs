//! kernel-core's BTF loader and name lookup against libbpf (system, through the FFI
//! declared below), aya-obj and btf-rs, in the same run on the same input bytes.
//!
//! Input: `$KPTR_BENCH_BTF` if set, else `/sys/kernel/btf/vmlinux`, read once. Without
//! it every group is skipped with a message.
//!
//! Groups:
//! - `load_vmlinux`: one parse of the whole file per iteration, freeing included; with
//!   two floors (see [`floor`]) that no loader checking what the kernel checks can
//!   beat, and the running kernel's own `BPF_BTF_LOAD` of the same bytes (skipped,
//!   with a message, where this process cannot ask the kernel).
//! - `lookup`: 64 STRUCT names spread over the named STRUCTs' ids, one iteration looks all 64
//!   up (throughput = 64 elements, so criterion's per-element rate and the `ratios`
//!   printer give the per-lookup time).
//!
//! `cargo run -p kptr-bench --bin ratios` prints the Markdown table of a run.

#![deny(clippy::undocumented_unsafe_blocks)]

use std::ffi::{CStr, CString};
use std::hint::black_box;
use std::sync::OnceLock;
use std::time::Duration;

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use kernel_core::Semantics;
use kernel_core::btf::{
    BtfIdr, BtfRef, KernelBtfs, ParseOpts, btf_find_by_name_kind, btf_parse_vmlinux, btf_verify,
};
use kernel_core::sync::{Arc, Rcu};

/// `BTF_KIND_STRUCT`.
const KIND_STRUCT: u8 = 4;
/// How many names the `lookup` group looks up per iteration.
const N_NAMES: usize = 64;
const DEFAULT_INPUT: &str = "/sys/kernel/btf/vmlinux";

/// The system libbpf (1.x): just what the benches call.
mod libbpf {
    use std::ffi::{CStr, c_char, c_void};
    use std::marker::{PhantomData, PhantomPinned};
    use std::ptr::NonNull;

    /// `struct btf`, opaque.
    #[repr(C)]
    pub struct RawBtf {
        _data: [u8; 0],
        _marker: PhantomData<(*mut u8, PhantomPinned)>,
    }

    // SAFETY: the signatures match libbpf 1.x's <bpf/btf.h> (`__u32`/`__s32` are
    // `u32`/`i32`); the library is linked by build.rs.
    unsafe extern "C" {
        fn btf__new(data: *const c_void, size: u32) -> *mut RawBtf;
        fn btf__free(btf: *mut RawBtf);
        fn btf__find_by_name_kind(btf: *const RawBtf, type_name: *const c_char, kind: u32) -> i32;
        fn btf__type_cnt(btf: *const RawBtf) -> u32;
    }

    /// An owned `struct btf *` from `btf__new`, freed on drop.
    pub struct Btf(NonNull<RawBtf>);

    impl Btf {
        /// `btf__new`: libbpf copies `data` and parses it. libbpf 1.x returns NULL
        /// (errno set) on error.
        pub fn new(data: &[u8]) -> Option<Btf> {
            let size = u32::try_from(data.len()).ok()?;
            // SAFETY: `data` is valid for reads of `size` bytes for the whole call;
            // btf__new copies it and keeps no pointer into it.
            let p = unsafe { btf__new(data.as_ptr().cast(), size) };
            NonNull::new(p).map(Btf)
        }

        /// `btf__find_by_name_kind`: the first id of this kind and name, or a
        /// negative errno.
        pub fn find_by_name_kind(&self, name: &CStr, kind: u32) -> i32 {
            // SAFETY: `self.0` is a live btf from btf__new (freed only on drop) and
            // `name` is NUL-terminated and outlives the call.
            unsafe { btf__find_by_name_kind(self.0.as_ptr(), name.as_ptr(), kind) }
        }

        /// `btf__type_cnt`: number of types, void included.
        pub fn type_cnt(&self) -> u32 {
            // SAFETY: `self.0` is a live btf from btf__new.
            unsafe { btf__type_cnt(self.0.as_ptr()) }
        }
    }

    impl Drop for Btf {
        fn drop(&mut self) {
            // SAFETY: `self.0` came from btf__new and is freed exactly once, here.
            unsafe { btf__free(self.0.as_ptr()) }
        }
    }
}

/// The input bytes, read once; `None` (after printing why) if unreadable.
/// Two lower bounds for a loader that checks what the kernel's `btf_parse` checks,
/// with no check in them: the copy (as every loader here makes) and the walk that
/// finds each record from the one before (`btf_check_all_metas` must make it, and so
/// does libbpf's `btf_parse_type_sec`); then one load of the referred type's kind for
/// every type id a record holds, at once for a lower id and in a second pass for a
/// higher one (the kernel's `btf_check_all_types` needs every referred type, and a
/// type may refer to a later id).
mod floor {
    /// Words of the record whose `info` word is `info`, after its 12-byte header.
    #[inline(always)]
    fn extra_words(info: u32) -> Option<usize> {
        let vlen = (info & 0xffff) as usize;
        Some(match (info >> 24) & 0x1f {
            1 | 14 | 17 => 1,
            3 => 3,
            4 | 5 | 15 | 19 => 3 * vlen,
            6 | 13 => 2 * vlen,
            2 | 7..=12 | 16 | 18 => 0,
            _ => return None,
        })
    }

    /// `f` over the type section of a copy of `data`, as words in place (the copy is
    /// malloc-aligned and the section starts at a multiple of 4 in vmlinux).
    fn with_words<T>(data: &[u8], f: impl FnOnce(&[u32]) -> Option<T>) -> Option<T> {
        let copy: Box<[u8]> = Box::from(data);
        let rd = |o: usize| Some(u32::from_ne_bytes(copy.get(o..o + 4)?.try_into().ok()?));
        let start = rd(4)? as usize + rd(8)? as usize;
        let sec = copy.get(start..start + rd(12)? as usize)?;
        // SAFETY: every bit pattern is a valid u32; `align_to` hands back only the
        // aligned middle, and anything outside it is refused below.
        let (pre, w, post) = unsafe { sec.align_to::<u32>() };
        if !pre.is_empty() || !post.is_empty() {
            return None;
        }
        f(w)
    }

    /// Every record's word offset, in id order (id 0 is void).
    fn walk(w: &[u32]) -> Option<Vec<u32>> {
        let mut rec = Vec::with_capacity(w.len() / 3 + 1);
        rec.push(u32::MAX);
        let mut cur = 0;
        while cur < w.len() {
            rec.push(cur as u32);
            cur += 3 + extra_words(*w.get(cur + 1)?)?;
        }
        Some(rec)
    }

    /// The copy and the walk: the number of types.
    pub fn copy_walk(data: &[u8]) -> Option<usize> {
        with_words(data, |w| Some(walk(w)?.len()))
    }

    /// The copy, the walk with each type's kind kept, and the kind of every type id
    /// the records refer to loaded once: a checksum of those kinds.
    pub fn copy_walk_refs(data: &[u8]) -> Option<u64> {
        with_words(data, walk_refs)
    }

    /// The walk loads the kind of every referred id below the record's own (its arms
    /// know which words are ids) and gathers the others, whose kinds one pass loads
    /// after it.
    fn walk_refs(w: &[u32]) -> Option<u64> {
        let mut kinds = Vec::with_capacity(w.len() / 3 + 1);
        let mut refs = Vec::new();
        kinds.push(0u8);
        let mut sum = 0u64;
        let mut cur = 0;
        while cur < w.len() {
            let h = w.get(cur..cur + 3)?;
            let k = (h[1] >> 24) as u8 & 0x1f;
            let n = extra_words(h[1])?;
            let d = w.get(cur + 3..cur + 3 + n)?;
            kinds.push(k);
            let mut one = |id: u32| match kinds.get(id as usize) {
                Some(&k) => sum += u64::from(k),
                None => refs.push(id),
            };
            match k {
                2 | 8..=12 | 14 | 17 | 18 => one(h[2]),
                3 => {
                    one(d[0]);
                    one(d[1]);
                }
                4 | 5 => d.chunks_exact(3).for_each(|m| one(m[1])),
                13 => {
                    one(h[2]);
                    d.chunks_exact(2).for_each(|p| one(p[1]));
                }
                15 => d.chunks_exact(3).for_each(|v| one(v[0])),
                _ => {}
            }
            cur += 3 + n;
        }
        Some(
            sum + refs
                .iter()
                .map(|&id| u64::from(kinds.get(id as usize).copied().unwrap_or(0)))
                .sum::<u64>(),
        )
    }
}

fn input() -> Option<&'static [u8]> {
    static INPUT: OnceLock<Option<Vec<u8>>> = OnceLock::new();
    INPUT
        .get_or_init(|| {
            let path = std::env::var("KPTR_BENCH_BTF").unwrap_or_else(|_| DEFAULT_INPUT.into());
            match std::fs::read(&path) {
                Ok(d) => {
                    eprintln!("kptr-bench: input {path} ({} bytes)", d.len());
                    Some(d)
                }
                Err(e) => {
                    eprintln!("kptr-bench: {path}: {e}; skipping the BTF benchmarks");
                    None
                }
            }
        })
        .as_deref()
}

fn verify_opts() -> ParseOpts {
    ParseOpts {
        log_level: 0,
        resolve: true,
        sem: Semantics::V6_18,
    }
}

fn load_vmlinux(c: &mut Criterion) {
    let Some(data) = input() else { return };
    // Every parser must accept the input before it is timed.
    let ours = btf_parse_vmlinux(data, true, Semantics::V6_18).expect("kernel-core full parse");
    let nr_types = ours.data().nr_types();
    let lb = libbpf::Btf::new(data).expect("libbpf btf__new");
    assert_eq!(
        lb.type_cnt(),
        nr_types,
        "libbpf and kernel-core type counts"
    );
    drop((ours, lb));
    aya_obj::btf::Btf::parse(data, object::Endianness::default()).expect("aya-obj parse");
    assert_eq!(
        floor::copy_walk(data),
        Some(nr_types as usize),
        "the floor walk finds every type"
    );
    btf_rs::Btf::from_bytes(data).expect("btf-rs from_bytes");
    // The running kernel's own BPF_BTF_LOAD of the same blob (btf_parse: the same
    // checks, and the copy from user space), when this process may ask it.
    let kernel_load = match shim_std::oracle::btf_load_fd(data) {
        Ok(fd) => {
            drop(fd);
            true
        }
        Err(errno) => {
            eprintln!(
                "kptr-bench: the kernel's BPF_BTF_LOAD cannot be asked here (errno {errno}); \
                 skipping load_vmlinux/kernel_bpf_btf_load"
            );
            false
        }
    };

    let mut g = c.benchmark_group("load_vmlinux");
    // Milliseconds per iteration: equal-sized samples fit the 3 s budget, where
    // criterion's linear sampling needs 210 iterations.
    g.sampling_mode(SamplingMode::Flat);
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.bench_function("kptr_full_verify_index", |b| {
        b.iter(|| btf_parse_vmlinux(black_box(data), true, Semantics::V6_18).unwrap())
    });
    g.bench_function("kptr_verify", |b| {
        let opts = verify_opts();
        b.iter(|| btf_verify(Box::from(black_box(data)), None, &opts).unwrap())
    });
    // What the kernel itself does for vmlinux at boot: metas only, plus the index.
    g.bench_function("kptr_vmlinux_meta_index", |b| {
        b.iter(|| btf_parse_vmlinux(black_box(data), false, Semantics::V6_18).unwrap())
    });
    g.bench_function("libbpf_btf_new", |b| {
        b.iter(|| libbpf::Btf::new(black_box(data)).unwrap())
    });
    if kernel_load {
        // The fd's close frees the BTF after an RCU grace period, outside the time.
        g.bench_function("kernel_bpf_btf_load", |b| {
            b.iter(|| shim_std::oracle::btf_load_fd(black_box(data)).unwrap())
        });
    }
    g.bench_function("aya_obj_parse", |b| {
        b.iter(|| aya_obj::btf::Btf::parse(black_box(data), object::Endianness::default()).unwrap())
    });
    g.bench_function("btf_rs_from_bytes", |b| {
        b.iter(|| btf_rs::Btf::from_bytes(black_box(data)).unwrap())
    });
    g.bench_function("floor_copy_walk", |b| {
        b.iter(|| floor::copy_walk(black_box(data)).unwrap())
    });
    g.bench_function("floor_copy_walk_refs", |b| {
        b.iter(|| floor::copy_walk_refs(black_box(data)).unwrap())
    });
    g.finish();
}

/// `N_NAMES` STRUCT names spread evenly over the named STRUCTs in id order (every
/// ~150th of vmlinux's ~9,600, ids ~100..45,000): each name is kept at its first id
/// only, so the list has no repeats.
fn pick_struct_names(btf: &BtfRef) -> Vec<String> {
    let d = btf.data();
    let mut all: Vec<&str> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for t in d.local_types() {
        if t.kind_raw() != KIND_STRUCT {
            continue;
        }
        match std::str::from_utf8(d.type_name(&t)) {
            Ok(name) if !name.is_empty() && seen.insert(name) => all.push(name),
            _ => {}
        }
    }
    let n = all.len().min(N_NAMES);
    (0..n).map(|i| all[i * all.len() / n].to_owned()).collect()
}

/// btf-rs has no kind-aware lookup: ids by name, then the first that is a struct.
fn btf_rs_find_struct(btf: &btf_rs::Btf, name: &str) -> Option<u32> {
    btf.resolve_ids_by_name(name).ok()?.into_iter().find(|&id| {
        let t = btf.resolve_type_by_id(id);
        matches!(t, Ok(btf_rs::Type::Struct(_)))
    })
}

fn lookup(c: &mut Criterion) {
    let Some(data) = input() else { return };
    let vmlinux = btf_parse_vmlinux(data, true, Semantics::V6_18).expect("kernel-core full parse");
    let names = pick_struct_names(&vmlinux);
    assert!(!names.is_empty(), "no named STRUCT in the input");
    let cnames: Vec<CString> = names
        .iter()
        .map(|n| CString::new(n.as_str()).unwrap())
        .collect();
    let kernel = KernelBtfs::new(BtfIdr::new(Arc::new(Rcu::new())), Some(vmlinux)).unwrap();
    let ours = kernel.vmlinux().unwrap();
    let lb = libbpf::Btf::new(data).expect("libbpf btf__new");
    let aya = aya_obj::btf::Btf::parse(data, object::Endianness::default()).expect("aya-obj");
    let brs = btf_rs::Btf::from_bytes(data).expect("btf-rs");

    // Everyone must find the same first id for every name.
    let mut ids = Vec::with_capacity(names.len());
    for (n, cn) in names.iter().zip(&cnames) {
        let id = btf_find_by_name_kind(ours, n, KIND_STRUCT).expect("kernel-core lookup");
        let (id2, b) = kernel.bpf_find_btf_id(n, KIND_STRUCT).unwrap();
        drop(b);
        let lid = lb.find_by_name_kind(cn, u32::from(KIND_STRUCT));
        let aid = aya
            .id_by_type_name_kind(n, aya_obj::btf::BtfKind::Struct)
            .unwrap();
        let rid = btf_rs_find_struct(&brs, n);
        assert!(
            id2 == id && i64::from(lid) == i64::from(id) && aid == id && rid == Some(id),
            "{n}: kernel-core {id}, bpf_find_btf_id {id2}, libbpf {lid}, aya-obj {aid}, btf-rs {rid:?}"
        );
        ids.push(id);
    }
    eprintln!(
        "kptr-bench: {} STRUCT names, ids {}..{} of {}: {} (#{}) .. {} (#{})",
        names.len(),
        ids[0],
        ids[ids.len() - 1],
        ours.data().nr_types(),
        names[0],
        ids[0],
        names[names.len() - 1],
        ids[ids.len() - 1]
    );

    let mut g = c.benchmark_group("lookup");
    g.throughput(Throughput::Elements(names.len() as u64));
    g.bench_function("kptr_btf_find_by_name_kind", |b| {
        b.iter(|| {
            for n in &names {
                black_box(btf_find_by_name_kind(ours, black_box(n), KIND_STRUCT).unwrap());
            }
        })
    });
    g.bench_function("kptr_bpf_find_btf_id", |b| {
        b.iter(|| {
            for n in &names {
                let (id, btf) = kernel.bpf_find_btf_id(black_box(n), KIND_STRUCT).unwrap();
                drop(btf);
                black_box(id);
            }
        })
    });
    g.bench_function("libbpf_btf_find_by_name_kind", |b| {
        b.iter(|| {
            for n in &cnames {
                let n: &CStr = black_box(n);
                black_box(lb.find_by_name_kind(n, u32::from(KIND_STRUCT)));
            }
        })
    });
    g.bench_function("aya_obj_id_by_type_name_kind", |b| {
        b.iter(|| {
            for n in &names {
                let kind = aya_obj::btf::BtfKind::Struct;
                black_box(aya.id_by_type_name_kind(black_box(n), kind).unwrap());
            }
        })
    });
    g.bench_function("btf_rs_resolve_ids_by_name", |b| {
        b.iter(|| {
            for n in &names {
                black_box(btf_rs_find_struct(&brs, black_box(n)).unwrap());
            }
        })
    });
    g.finish();
}

/// `btf_parse_fields` with the map-value mask over every STRUCT of vmlinux BTF (the
/// record parser alone: no peer implements it, so the figure is absolute).
fn parse_fields_all_structs(c: &mut Criterion) {
    use kernel_core::btf::BtfKind;
    use kernel_core::map::create::map_value_mask;
    use kernel_core::record::btf_parse_fields;
    use kernel_core::sync::{Arc, Rcu};
    let Some(data) = input() else { return };
    let sem = kernel_core::Semantics::V6_18;
    let Ok(vm) = kernel_core::btf::btf_parse_vmlinux(data, true, sem) else {
        eprintln!("vmlinux BTF did not verify; skipping parse_fields");
        return;
    };
    let idr = kernel_core::btf::BtfIdr::new(Arc::new(Rcu::new()));
    let Ok(kernel) = kernel_core::btf::KernelBtfs::new(idr, Some(vm)) else {
        return;
    };
    let Some(vm) = kernel.vmlinux() else { return };
    let structs: Vec<(u32, u32)> = vm
        .data()
        .local_types()
        .filter(|t| t.kind() == BtfKind::Struct)
        .map(|t| (t.id(), t.size()))
        .collect();
    eprintln!("parse_fields: {} structs", structs.len());
    let mask = map_value_mask(&sem);
    let mut g = c.benchmark_group("parse_fields");
    g.throughput(Throughput::Elements(structs.len() as u64));
    g.sampling_mode(SamplingMode::Flat);
    g.bench_function("kptr_btf_parse_fields_all_vmlinux_structs", |b| {
        b.iter(|| {
            let mut n = 0usize;
            for &(id, size) in &structs {
                if let Ok(Some(r)) = btf_parse_fields(vm, &kernel, id, mask, size, &sem) {
                    n += r.fields.len();
                }
            }
            n
        })
    });
    g.finish();
}

/// Tearing down an ARRAY map of 1,000,000 values, each holding a local kptr to an
/// object that itself has a special field (`bpf_refcount`), against freeing 1,000,000
/// plain allocations of the same sizes, in the same run.
fn teardown(c: &mut Criterion) {
    use criterion::BatchSize;
    use kernel_core::map::runtime::MapRt;
    use kernel_core::obj::{BpfRuntime, bpf_kptr_xchg, bpf_obj_new_impl};
    use kernel_core::syscall::bpf_btf_load;
    use kernel_core::syscall::map_create;
    const N: u32 = 1_000_000;
    let sem = kernel_core::Semantics::V6_18;
    let prog = kernel_core::testing::kptr_prog(kernel_core::testing::NodeField::Refcount);
    let node = prog.node;
    let setup = || {
        let (kernel, rcu) = kernel_core::testing::tiny_kernel(sem).expect("k");
        let (btf, _) = bpf_btf_load(&kernel, &prog.blob, 0, &sem).expect("prog");
        let attr = kernel_core::testing::array_attr(&btf, prog.int, prog.value, 8, N, "big");
        let map = MapRt::new(map_create(&kernel, &attr, &sem).expect("map"), &sem).expect("rt");
        let rt = BpfRuntime::new(sem, kernel, rcu);
        rt.migrate_disable();
        for i in 0..N {
            let o = bpf_obj_new_impl(&rt, &btf, node).expect("obj");
            bpf_kptr_xchg(map.array_value(i, 0).expect("v"), 0, o).expect("xchg");
        }
        rt.migrate_enable();
        (rt, map, btf)
    };
    let mut g = c.benchmark_group("teardown");
    g.sample_size(10);
    g.sampling_mode(SamplingMode::Flat);
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function("kptr_map_free_1M_values_with_local_kptrs", |bch| {
        bch.iter_batched(
            setup,
            |(rt, map, btf)| {
                if let Some(f) = MapRt::bpf_map_put(map) {
                    f.run(&rt);
                }
                rt.rcu.rcu_barrier();
                assert!(rt.mem.live().is_empty());
                (rt, btf)
            },
            BatchSize::PerIteration,
        )
    });
    g.bench_function("plain_free_1M_allocations", |bch| {
        bch.iter_batched(
            || (0..N).map(|_| Box::new([0u8; 16])).collect::<Vec<_>>(),
            drop,
            BatchSize::PerIteration,
        )
    });
    // What the kernel itself does per value, with no model around it: exchange the
    // slot with NULL, drop the object's refcount (refcount_dec_and_test), free it.
    // No faithful teardown can cost less on this machine.
    struct Node {
        _key: u64,
        refs: std::sync::atomic::AtomicU32,
    }
    g.bench_function("kernel_floor_1M_xchg_refcount_free", |bch| {
        use std::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};
        bch.iter_batched(
            || {
                (0..N)
                    .map(|_| {
                        let n = Box::new(Node {
                            _key: 0,
                            refs: AtomicU32::new(1),
                        });
                        AtomicU64::new(Box::into_raw(n) as u64)
                    })
                    .collect::<Vec<_>>()
            },
            |slots| {
                for s in &slots {
                    let p = s.swap(0, Ordering::AcqRel) as *mut Node;
                    if p.is_null() {
                        continue;
                    }
                    // SAFETY: every slot holds a pointer from `Box::into_raw` above, taken
                    // out exactly once by this swap.
                    let last = unsafe { &*p }.refs.fetch_sub(1, Ordering::Release) == 1;
                    if last {
                        fence(Ordering::Acquire);
                        // SAFETY: the last reference: nothing else points to the node.
                        drop(unsafe { Box::from_raw(p) });
                    }
                }
                slots
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();

    let mut g = c.benchmark_group("kptr_xchg");
    let w = kernel_core::obj::WordsBuf::new(8);
    let raw = std::sync::atomic::AtomicU64::new(0);
    g.throughput(Throughput::Elements(1000));
    g.bench_function("kptr_bpf_kptr_xchg_x1000", |bch| {
        bch.iter(|| {
            let mut x = 0u64;
            for i in 1..=1000u64 {
                x ^= bpf_kptr_xchg(&w, 0, i).unwrap_or(0);
            }
            x
        })
    });
    g.bench_function("raw_atomic_swap_x1000", |bch| {
        bch.iter(|| {
            let mut x = 0u64;
            for i in 1..=1000u64 {
                x ^= raw.swap(i, std::sync::atomic::Ordering::AcqRel);
            }
            x
        })
    });
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

criterion_group! {
    name = benches;
    config = config();
    targets = load_vmlinux, lookup, parse_fields_all_structs, teardown
}
criterion_main!(benches);
