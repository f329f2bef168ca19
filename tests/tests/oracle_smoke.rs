//! Smoke test of the kernel oracle (`shim_std::oracle`): BTF load, map create and the
//! verifier probe against the running kernel.

use std::os::fd::AsFd;

use shim_std::oracle::{
    MapCreate, ProbeAccess, btf_load, btf_load_fd, kernel_required, map_create, probe_value_access,
    unavailable_reason,
};

/// `EINVAL` on Linux (this crate does not depend on `libc`).
const EINVAL: i32 = 22;

/// `BPF_MAP_TYPE_ARRAY`.
const BPF_MAP_TYPE_ARRAY: u32 = 2;

/// Returns false (after a loud message) when the kernel cannot be asked; panics instead
/// when `KPTR_REQUIRE_KERNEL=1`.
fn kernel_available() -> bool {
    match unavailable_reason() {
        None => true,
        Some(reason) => {
            eprintln!("KERNEL ORACLE NOT RUN: {reason}");
            if kernel_required() {
                panic!("KERNEL ORACLE NOT RUN: {reason} (KPTR_REQUIRE_KERNEL=1)");
            }
            false
        }
    }
}

/// The smallest valid BTF: header + one signed 32-bit INT "int" + strings "\0int\0".
fn minimal_btf() -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&0xEB9F_u16.to_le_bytes()); // magic
    b.push(1); // version
    b.push(0); // flags
    b.extend_from_slice(&24u32.to_le_bytes()); // hdr_len
    b.extend_from_slice(&0u32.to_le_bytes()); // type_off
    b.extend_from_slice(&16u32.to_le_bytes()); // type_len
    b.extend_from_slice(&16u32.to_le_bytes()); // str_off
    b.extend_from_slice(&5u32.to_le_bytes()); // str_len
    b.extend_from_slice(&1u32.to_le_bytes()); // name_off -> "int"
    b.extend_from_slice(&(1u32 << 24).to_le_bytes()); // info: BTF_KIND_INT, vlen 0
    b.extend_from_slice(&4u32.to_le_bytes()); // size
    b.extend_from_slice(&((1u32 << 24) | 32).to_le_bytes()); // BTF_INT_SIGNED, off 0, 32 bits
    b.extend_from_slice(b"\0int\0");
    assert_eq!(b.len(), 45);
    b
}

/// Last few lines of a log, for the test output.
fn tail(s: &[u8]) -> String {
    String::from_utf8_lossy(&s[s.len().saturating_sub(300)..]).into_owned()
}

#[test]
fn oracle_smoke() {
    if !kernel_available() {
        return;
    }

    // (a) A minimal valid BTF loads.
    let blob = minimal_btf();
    let ok = btf_load(&blob);
    eprintln!("(a) errno={:?} log tail:\n{}", ok.errno, tail(&ok.log));
    assert_eq!(ok.errno, None, "log: {}", String::from_utf8_lossy(&ok.log));

    // (b) Bad magic: EINVAL, log ends with "Invalid magic".
    let mut bad = blob.clone();
    bad[0] = 0x00;
    bad[1] = 0x00;
    let v = btf_load(&bad);
    eprintln!("(b) errno={:?} log tail:\n{}", v.errno, tail(&v.log));
    assert_eq!(v.errno, Some(EINVAL));
    // Observed on 6.18: the log is the header dump followed by "Invalid magic", no newline.
    assert!(
        v.log.ends_with(b"\nInvalid magic"),
        "log: {}",
        String::from_utf8_lossy(&v.log)
    );

    // (c) ARRAY map, key 4 / value 4 with key and value type id 1 ("int"): created;
    //     value_size 8 with a 4-byte value type: EINVAL.
    let btf = btf_load_fd(&blob).expect("minimal BTF must load (checked above)");
    let mut req = MapCreate {
        map_type: BPF_MAP_TYPE_ARRAY,
        key_size: 4,
        value_size: 4,
        max_entries: 1,
        map_flags: 0,
        btf_fd: Some(btf.as_fd()),
        btf_key_type_id: 1,
        btf_value_type_id: 1,
        name: "smoke_ok",
    };
    let map = map_create(&req);
    eprintln!("(c) value_size 4: {:?}", map.as_ref().map(|_| "ok"));
    assert!(map.is_ok(), "errno {map:?}");
    drop(map);
    req.value_size = 8;
    req.name = "smoke_bad";
    let map = map_create(&req);
    eprintln!("(c) value_size 8: {:?}", map.as_ref().map(|_| "ok"));
    assert_eq!(map.err(), Some(EINVAL));

    // (d) Probe: plain array map (no BTF), 1-byte store at offset 0 is accepted.
    let plain = map_create(&MapCreate {
        map_type: BPF_MAP_TYPE_ARRAY,
        key_size: 4,
        value_size: 4,
        max_entries: 1,
        map_flags: 0,
        btf_fd: None,
        btf_key_type_id: 0,
        btf_value_type_id: 0,
        name: "smoke_plain",
    })
    .expect("plain array map must be created");
    let (loaded, log) = probe_value_access(plain.as_fd(), 0, ProbeAccess::Store1Byte, 1);
    eprintln!("(d) loaded={loaded} log tail:\n{}", tail(log.as_bytes()));
    assert!(loaded, "log: {log}");
}
