//! Blobs written to tell kernel behaviours apart where the sources of nearby releases
//! disagree (ownership rule, tag handling in `btf_find_kptr`); the model's `v6.18`
//! answer must be the running kernel's. A map created with `BPF_F_RDONLY_PROG` fails
//! with -EACCES exactly when its record is valid and not empty.

use std::os::fd::AsFd;

use kernel_core::Semantics;
use kernel_core::btf::builder::BtfBuilder;
use kernel_core::btf::uapi::*;
use kernel_core::map::{BPF_F_RDONLY_PROG, BPF_MAP_TYPE_ARRAY, MapAttr};
use kernel_core::syscall::bpf_btf_load;
use kernel_core::syscall::map_create;
use shim_std::kernel_btf::load_kernel_btfs;
use shim_std::oracle;

struct Case {
    name: &'static str,
    blob: Vec<u8>,
    /// (value type id, value size) of an ARRAY map to create, if any.
    map: Option<(u32, u32)>,
    /// What the model says under profiles with the other rule, to show the blob
    /// separates them: (profile, BTF-load errno, RDONLY map errno).
    other: (Semantics, Option<i32>, Option<i32>),
}

fn specials(b: &mut BtfBuilder, int: u32) -> (u32, u32, u32, u32) {
    let lock = b.struct_("bpf_spin_lock", 4, &[("val", int, 0)]);
    let head = b.struct_("bpf_list_head", 16, &[("a", int, 0), ("b", int, 64)]);
    let node = b.struct_(
        "bpf_list_node",
        24,
        &[("a", int, 0), ("b", int, 64), ("c", int, 128)],
    );
    let timer = b.struct_("bpf_timer", 16, &[("a", int, 0), ("b", int, 64)]);
    (lock, head, node, timer)
}

fn ownership_chain() -> Case {
    // foo { lock; head -> bar; node }, bar { lock; head -> baz; node }, baz { node }:
    // two types both owner and owned. The older rule refuses it (-ELOOP); the
    // ownership-depth rule of some stable backports (depth 3 <= 8) accepts it.
    let mut b = BtfBuilder::new();
    let int = b.int("int", 4, BTF_INT_SIGNED, 32);
    let (lock, head, node, _) = specials(&mut b, int);
    let owned = b.struct_("baz", 24, &[("n", node, 0)]);
    let bar = b.struct_(
        "bar",
        48,
        &[("l", lock, 0), ("h", head, 64), ("n", node, 192)],
    );
    let top = b.struct_(
        "foo",
        48,
        &[("l", lock, 0), ("h", head, 64), ("n", node, 192)],
    );
    b.decl_tag("contains:bar:n", top, 1);
    b.decl_tag("contains:baz:n", bar, 1);
    let _ = owned;
    Case {
        name: "owner-and-owned chain of three",
        blob: b.build(),
        map: None,
        other: (
            Semantics {
                ownership_depth: true,
                ..Semantics::V6_18
            },
            None,
            None,
        ),
    }
}

fn two_tags() -> Case {
    // value { PTR -> TYPE_TAG "user" -> TYPE_TAG "kptr" -> obj }: a second tag is
    // -EINVAL for btf_find_kptr of v6.12/6.18; newer kernels walk the tags instead.
    let mut b = BtfBuilder::new();
    let int = b.int("int", 4, BTF_INT_SIGNED, 32);
    let obj = b.struct_("probe_obj", 8, &[("x", int, 0)]);
    let k = b.type_tag("kptr", obj);
    let u = b.type_tag("user", k);
    let p = b.ptr(u);
    let v = b.struct_("probe_val", 8, &[("p", p, 0)]);
    Case {
        name: "two stacked tags on a kptr",
        blob: b.build(),
        map: Some((v, 8)),
        other: (Semantics::V6_18, None, None),
    }
}

fn unknown_tag_next_to_timer() -> Case {
    // value { PTR -> TYPE_TAG "foo" -> obj; bpf_timer }: an unknown tag fails the
    // record (the map keeps no fields); a kernel ignoring unknown tags records the timer.
    let mut b = BtfBuilder::new();
    let int = b.int("int", 4, BTF_INT_SIGNED, 32);
    let (_, _, _, timer) = specials(&mut b, int);
    let obj = b.struct_("probe_obj2", 8, &[("x", int, 0)]);
    let t = b.type_tag("foo", obj);
    let p = b.ptr(t);
    let v = b.struct_("probe_val2", 24, &[("p", p, 0), ("t", timer, 64)]);
    Case {
        name: "unknown tag next to a timer",
        blob: b.build(),
        map: Some((v, 24)),
        other: (Semantics::V6_18, None, None),
    }
}

#[test]
fn model_v6_18_matches_the_kernel_where_releases_differ() {
    if kptr_tests::kernel_skip("semantics probes") {
        return;
    }
    let sem = Semantics::V6_18;
    let (kernel, _) = load_kernel_btfs(None, false, sem).expect("kernel BTF");
    let mut maps_compared = 0;
    let with_map = [ownership_chain(), two_tags(), unknown_tag_next_to_timer()]
        .iter()
        .filter(|c| c.map.is_some())
        .count();
    for c in [ownership_chain(), two_tags(), unknown_tag_next_to_timer()] {
        // The model under the other rule gives what the case says it does.
        let (osem, o_btf, o_map) = c.other;
        let (okernel, _) = load_kernel_btfs(None, false, osem).expect("kernel BTF");
        let om = bpf_btf_load(&okernel, &c.blob, 0, &osem);
        assert_eq!(
            om.as_ref().err().map(|e| e.errno.raw()),
            o_btf,
            "{}: {}",
            c.name,
            osem.name
        );
        if let (Some((vid, vsize)), Ok((obtf, _))) = (c.map, &om) {
            let attr = MapAttr {
                inner_map: None,
                map_type: BPF_MAP_TYPE_ARRAY,
                key_size: 4,
                value_size: vsize,
                max_entries: 1,
                map_flags: BPF_F_RDONLY_PROG,
                btf: Some(obtf),
                btf_key_type_id: 1,
                btf_value_type_id: vid,
                name: "probe",
            };
            let r = map_create(&okernel, &attr, &osem).err().map(|e| e.raw());
            assert_eq!(r, o_map, "{}: RDONLY map under {}", c.name, osem.name);
        }
        let k = oracle::btf_load(&c.blob);
        let m = bpf_btf_load(&kernel, &c.blob, 0, &sem);
        assert_eq!(
            k.errno,
            m.as_ref().err().map(|e| e.errno.raw()),
            "{}: BTF load",
            c.name
        );
        let (Some((vid, vsize)), Ok((btf, _))) = (c.map, m) else {
            continue;
        };
        let fd = oracle::btf_load_fd(&c.blob).expect("loads");
        let kr = oracle::map_create(&oracle::MapCreate {
            map_type: BPF_MAP_TYPE_ARRAY,
            key_size: 4,
            value_size: vsize,
            max_entries: 1,
            map_flags: BPF_F_RDONLY_PROG,
            btf_fd: Some(fd.as_fd()),
            btf_key_type_id: 1,
            btf_value_type_id: vid,
            name: "probe",
        })
        .err();
        let attr = MapAttr {
            inner_map: None,
            map_type: BPF_MAP_TYPE_ARRAY,
            key_size: 4,
            value_size: vsize,
            max_entries: 1,
            map_flags: BPF_F_RDONLY_PROG,
            btf: Some(&btf),
            btf_key_type_id: 1,
            btf_value_type_id: vid,
            name: "probe",
        };
        let mr = map_create(&kernel, &attr, &sem).err().map(|e| e.raw());
        assert_eq!(kr, mr, "{}: RDONLY map create", c.name);
        maps_compared += 1;
        eprintln!(
            "{}: kernel and model agree (BTF load {:?}, map {:?})",
            c.name, k.errno, kr
        );
    }
    assert!(
        with_map > 0 && maps_compared == with_map,
        "{maps_compared} of {with_map} map cases compared"
    );
}

#[test]
fn the_ownership_blob_separates_the_two_rules() {
    let c = ownership_chain();
    let (kernel, _) = load_kernel_btfs(None, false, Semantics::V6_18).expect("kernel BTF");
    let (sem, errno, _) = c.other;
    let (k12, _) = load_kernel_btfs(None, false, sem).expect("kernel BTF");
    assert_eq!(
        bpf_btf_load(&kernel, &c.blob, 0, &Semantics::V6_18)
            .err()
            .map(|e| e.errno.raw()),
        Some(40),
        "the older rule: -ELOOP"
    );
    assert_eq!(
        bpf_btf_load(&k12, &c.blob, 0, &sem)
            .err()
            .map(|e| e.errno.raw()),
        errno,
        "depth rule: accepted"
    );
}
