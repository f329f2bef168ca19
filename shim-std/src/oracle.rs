//! The running kernel as a test oracle.
//!
//! Thin wrappers around the `bpf(2)` syscall: `BPF_BTF_LOAD`, `BPF_MAP_CREATE` (also with an
//! inner map, for map-in-map) and `BPF_PROG_LOAD` (also with an attach target), plus a tiny
//! verifier probe program that looks up key 0 of an array map and touches the value at an
//! offset; [`crate::field_probe`] builds the full field probe on them. The attribute structs are prefixes of
//! `union bpf_attr` from `include/uapi/linux/bpf.h`; the kernel treats the fields after them
//! as zero. Every fd the kernel hands out is wrapped in an [`OwnedFd`] and closed on drop;
//! nothing is pinned.

use std::ffi::c_void;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::sync::OnceLock;

/// `BPF_MAP_CREATE` command number.
const BPF_MAP_CREATE: libc::c_int = 0;
/// `BPF_MAP_LOOKUP_ELEM` command number.
const BPF_MAP_LOOKUP_ELEM: libc::c_int = 1;
/// `BPF_MAP_UPDATE_ELEM` command number.
const BPF_MAP_UPDATE_ELEM: libc::c_int = 2;
/// `BPF_MAP_DELETE_ELEM` command number.
const BPF_MAP_DELETE_ELEM: libc::c_int = 3;
/// `BPF_PROG_TEST_RUN` command number.
const BPF_PROG_TEST_RUN: libc::c_int = 10;
/// `BPF_PROG_LOAD` command number.
const BPF_PROG_LOAD: libc::c_int = 5;
/// `BPF_BTF_LOAD` command number.
const BPF_BTF_LOAD: libc::c_int = 18;

/// `BPF_OBJ_NAME_LEN`: size of `map_name` / `prog_name`, including the NUL.
const BPF_OBJ_NAME_LEN: usize = 16;

/// Size of every log buffer handed to the kernel (16 MiB).
const LOG_BUF_SIZE: usize = 16 << 20;

/// `BPF_PROG_TYPE_SCHED_CLS`.
const BPF_PROG_TYPE_SCHED_CLS: u32 = 3;

/// `BPF_PSEUDO_MAP_FD`: `src_reg` of a `BPF_LD_IMM64` whose `imm` is a map fd.
const BPF_PSEUDO_MAP_FD: u8 = 1;

/// The `BPF_BTF_LOAD` part of `union bpf_attr` (up to `btf_log_true_size`).
#[repr(C)]
#[derive(Default)]
struct BtfLoadAttr {
    btf: u64,
    btf_log_buf: u64,
    btf_size: u32,
    btf_log_size: u32,
    btf_log_level: u32,
    btf_log_true_size: u32,
}

/// The `BPF_MAP_*_ELEM` part of `union bpf_attr`.
#[repr(C)]
#[derive(Default)]
struct MapElemAttr {
    map_fd: u32,
    pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

/// The `BPF_MAP_CREATE` part of `union bpf_attr` (up to `map_extra`). No padding.
#[repr(C)]
#[derive(Default)]
struct MapCreateAttr {
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
    inner_map_fd: u32,
    numa_node: u32,
    map_name: [u8; BPF_OBJ_NAME_LEN],
    map_ifindex: u32,
    btf_fd: u32,
    btf_key_type_id: u32,
    btf_value_type_id: u32,
    btf_vmlinux_value_type_id: u32,
    map_extra: u64,
}

/// The `BPF_PROG_LOAD` part of `union bpf_attr` (up to `core_relo_cnt`, which is kept as an
/// explicit zero field so that the struct has no padding bytes).
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; BPF_OBJ_NAME_LEN],
    prog_ifindex: u32,
    expected_attach_type: u32,
    prog_btf_fd: u32,
    func_info_rec_size: u32,
    func_info: u64,
    func_info_cnt: u32,
    line_info_rec_size: u32,
    line_info: u64,
    line_info_cnt: u32,
    attach_btf_id: u32,
    attach_prog_fd: u32,
    core_relo_cnt: u32,
}

// The kernel rejects non-zero bytes it does not know, so padding must not exist.
const _: () = assert!(std::mem::size_of::<BtfLoadAttr>() == 32);
const _: () = assert!(std::mem::size_of::<MapCreateAttr>() == 72);
const _: () = assert!(std::mem::size_of::<ProgLoadAttr>() == 120);

/// Calls `bpf(cmd, attr, sizeof(*attr))`. Returns the non-negative result or the positive
/// errno.
///
/// # Safety
///
/// `T` must be one of the `#[repr(C)]` attribute structs above, and every pointer stored in
/// `attr` must be valid for the access the kernel makes through it for `cmd` (reads of the
/// given sizes, or writes of the given log size) for the duration of the call.
unsafe fn sys_bpf<T>(cmd: libc::c_int, attr: &mut T) -> Result<libc::c_long, i32> {
    let size = std::mem::size_of::<T>() as libc::c_uint;
    // SAFETY: `attr` points to a live, fully initialised struct of `size` bytes; the caller
    // guarantees the pointers inside it are valid for the kernel's accesses.
    let ret = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr as *mut T as *mut c_void, size) };
    if ret < 0 { Err(last_errno()) } else { Ok(ret) }
}

/// The thread's errno after a failed syscall (`EIO` if, impossibly, there is none).
fn last_errno() -> i32 {
    std::io::Error::last_os_error()
        .raw_os_error()
        .filter(|e| *e > 0)
        .unwrap_or(libc::EIO)
}

/// Wraps a syscall result that is a new fd.
fn own_fd(ret: libc::c_long) -> Result<OwnedFd, i32> {
    let fd = libc::c_int::try_from(ret).map_err(|_| libc::EOVERFLOW)?;
    if fd < 0 {
        return Err(libc::EBADF);
    }
    // SAFETY: the kernel just returned `fd` as a new file descriptor owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Text of a kernel log buffer, cut at the first NUL.
fn log_text(buf: &[u8]) -> String {
    String::from_utf8_lossy(log_bytes(buf)).into_owned()
}

/// A log buffer's bytes up to the first NUL.
fn log_bytes(buf: &[u8]) -> &[u8] {
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    &buf[..end]
}

/// `name` as a NUL-terminated `BPF_OBJ_NAME_LEN` array (truncated to 15 bytes).
fn obj_name(name: &str) -> [u8; BPF_OBJ_NAME_LEN] {
    let mut out = [0u8; BPF_OBJ_NAME_LEN];
    let bytes = name.as_bytes();
    let n = bytes.len().min(BPF_OBJ_NAME_LEN - 1);
    out[..n].copy_from_slice(&bytes[..n]);
    out
}

/// Raw fd number of an optional borrowed fd, 0 when absent (as the uapi expects).
fn raw_or_zero(fd: Option<BorrowedFd<'_>>) -> u32 {
    fd.map_or(0, |fd| fd.as_raw_fd() as u32)
}

/// The smallest valid BTF: one signed 32-bit INT named "int".
fn tiny_btf() -> Vec<u8> {
    let mut b = Vec::with_capacity(45);
    b.extend_from_slice(&0xEB9F_u16.to_le_bytes()); // magic
    b.push(1); // version
    b.push(0); // flags
    for v in [24u32, 0, 16, 16, 5] {
        // hdr_len, type_off, type_len, str_off, str_len
        b.extend_from_slice(&v.to_le_bytes());
    }
    // struct btf_type: name_off 1, info = BTF_KIND_INT << 24, size 4
    for v in [1u32, 1 << 24, 4] {
        b.extend_from_slice(&v.to_le_bytes());
    }
    // INT encoding: BTF_INT_SIGNED << 24 | offset 0 << 16 | nr_bits 32
    b.extend_from_slice(&((1u32 << 24) | 32).to_le_bytes());
    b.extend_from_slice(b"\0int\0");
    b
}

/// `BPF_MAP_UPDATE_ELEM` of `key` to `value` with `flags`: the kernel's errno on
/// failure. The caller passes buffers of the map's key and value sizes.
pub fn map_update_elem(
    map: BorrowedFd<'_>,
    key: &[u8],
    value: &[u8],
    flags: u64,
) -> Result<(), i32> {
    let mut attr = MapElemAttr {
        map_fd: map.as_raw_fd() as u32,
        key: key.as_ptr() as u64,
        value: value.as_ptr() as u64,
        flags,
        ..Default::default()
    };
    // SAFETY: `attr` is a valid BPF_MAP_UPDATE_ELEM prefix of `union bpf_attr`; the key
    // and value pointers refer to live buffers for the duration of the call, which the
    // kernel only reads.
    unsafe { sys_bpf(BPF_MAP_UPDATE_ELEM, &mut attr) }.map(|_| ())
}

/// `BPF_MAP_LOOKUP_ELEM` of `key` into `value` (the map's value size, times the
/// possible CPUs for a per-CPU map): the kernel's errno on failure.
pub fn map_lookup_elem(map: BorrowedFd<'_>, key: &[u8], value: &mut [u8]) -> Result<(), i32> {
    let mut attr = MapElemAttr {
        map_fd: map.as_raw_fd() as u32,
        key: key.as_ptr() as u64,
        value: value.as_mut_ptr() as u64,
        ..Default::default()
    };
    // SAFETY: a valid BPF_MAP_LOOKUP_ELEM prefix; the key is read and the value buffer,
    // as large as the caller's map needs, written during the call only.
    unsafe { sys_bpf(BPF_MAP_LOOKUP_ELEM, &mut attr) }.map(|_| ())
}

/// `BPF_MAP_DELETE_ELEM` of `key`: the kernel's errno on failure.
pub fn map_delete_elem(map: BorrowedFd<'_>, key: &[u8]) -> Result<(), i32> {
    let mut attr = MapElemAttr {
        map_fd: map.as_raw_fd() as u32,
        key: key.as_ptr() as u64,
        ..Default::default()
    };
    // SAFETY: a valid BPF_MAP_DELETE_ELEM prefix; the key is read during the call only.
    unsafe { sys_bpf(BPF_MAP_DELETE_ELEM, &mut attr) }.map(|_| ())
}

/// The `BPF_PROG_TEST_RUN` part of `union bpf_attr` (up to `batch_size`).
#[repr(C)]
#[derive(Default)]
struct TestRunAttr {
    prog_fd: u32,
    retval: u32,
    data_size_in: u32,
    data_size_out: u32,
    data_in: u64,
    data_out: u64,
    repeat: u32,
    duration: u32,
    ctx_size_in: u32,
    ctx_size_out: u32,
    ctx_in: u64,
    ctx_out: u64,
    flags: u32,
    cpu: u32,
    batch_size: u32,
    pad: u32,
}

/// `BPF_PROG_TEST_RUN` of a `BPF_PROG_TYPE_SYSCALL` program with `ctx` as its
/// context: `bpf_prog_test_run_syscall` copies the context back into `ctx_in`, so
/// `ctx` receives it as the program left it. The program's return value, or the
/// kernel's errno.
pub fn prog_test_run_ctx(prog: BorrowedFd<'_>, ctx: &mut [u8]) -> Result<u32, i32> {
    let mut attr = TestRunAttr {
        prog_fd: prog.as_raw_fd() as u32,
        ctx_size_in: ctx.len() as u32,
        ctx_in: ctx.as_mut_ptr() as u64,
        ..Default::default()
    };
    // SAFETY: a valid BPF_PROG_TEST_RUN prefix; `ctx` is read and written back (its
    // length is ctx_size_in) during the call only.
    unsafe { sys_bpf(BPF_PROG_TEST_RUN, &mut attr) }?;
    Ok(attr.retval)
}

/// Why the running kernel refuses every `BPF_MAP_TYPE_ARENA` map, if it does: a valid
/// request (`arena_map_alloc`'s own checks pass) that fails with EPERM. Upstream
/// `map_create` asks only for CAP_BPF; a machine whose kernel or policy refuses arenas
/// before their attributes are checked (seen on a 6.18 kernel whose process lacks
/// CAP_SYS_RESOURCE) answers EPERM to every ARENA request, which says nothing about the
/// object.
pub fn arena_refused() -> Option<String> {
    let r = map_create(&MapCreate {
        map_type: 33,
        key_size: 0,
        value_size: 0,
        max_entries: 1,
        map_flags: 1 << 10,
        btf_fd: None,
        btf_key_type_id: 0,
        btf_value_type_id: 0,
        name: "arena_probe",
    });
    match r {
        Err(e) if e == libc::EPERM => Some(String::from(
            "this machine's kernel refuses every ARENA map with EPERM (machine policy, not \
             one of arena_map_alloc's checks)",
        )),
        _ => None,
    }
}

/// Why the kernel cannot be asked (no permission, no bpf syscall, no BTF).
///
/// `None` when a tiny valid BTF loads and `/sys/kernel/btf/vmlinux` exists. Computed once.
pub fn unavailable_reason() -> Option<String> {
    static REASON: OnceLock<Option<String>> = OnceLock::new();
    REASON
        .get_or_init(|| {
            if !std::path::Path::new("/sys/kernel/btf/vmlinux").exists() {
                return Some("/sys/kernel/btf/vmlinux does not exist (kernel without BTF)".into());
            }
            // The comparisons judge the model's v6.18 profile: another kernel is not
            // its judge.
            let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
            if !release.starts_with("6.18.") && release.trim() != "6.18" {
                return Some(format!("kernel {}, profile v6.18", release.trim()));
            }
            match btf_load_fd(&tiny_btf()) {
                Ok(_fd) => None,
                Err(e) => Some(format!(
                    "BPF_BTF_LOAD of a one-INT BTF failed: {} (errno {e}{})",
                    std::io::Error::from_raw_os_error(e),
                    match e {
                        libc::EPERM => ", no CAP_BPF?",
                        libc::ENOSYS => ", no bpf syscall",
                        _ => "",
                    }
                )),
            }
        })
        .clone()
}

/// True when env var `KPTR_REQUIRE_KERNEL=1`: tests must then fail instead of skipping when
/// [`unavailable_reason`] is `Some`.
pub fn kernel_required() -> bool {
    std::env::var("KPTR_REQUIRE_KERNEL").is_ok_and(|v| v == "1")
}

/// Verdict of `BPF_BTF_LOAD`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BtfLoadVerdict {
    /// `None` on success, `Some(positive errno)` on failure.
    pub errno: Option<i32>,
    /// Verifier log of a second load with `log_level=1` (empty if the kernel wrote none),
    /// cut at the first NUL: the kernel's bytes.
    pub log: Vec<u8>,
}

/// One `BPF_BTF_LOAD`, with a log buffer when `log` is given.
fn btf_load_raw(blob: &[u8], log: Option<&mut [u8]>) -> Result<OwnedFd, i32> {
    let btf_size = u32::try_from(blob.len()).map_err(|_| libc::E2BIG)?;
    let mut attr = BtfLoadAttr {
        btf: blob.as_ptr() as u64,
        btf_size,
        ..BtfLoadAttr::default()
    };
    if let Some(buf) = log {
        attr.btf_log_buf = buf.as_mut_ptr() as u64;
        attr.btf_log_size = u32::try_from(buf.len()).map_err(|_| libc::E2BIG)?;
        attr.btf_log_level = 1;
    }
    // SAFETY: `btf` points to `btf_size` readable bytes of `blob`; `btf_log_buf`, when set,
    // points to `btf_log_size` writable bytes of `buf`; both outlive the call.
    let ret = unsafe { sys_bpf(BPF_BTF_LOAD, &mut attr) }?;
    own_fd(ret)
}

/// Loads `blob` with `BPF_BTF_LOAD`: the errno of a plain load and the log of a second load
/// with `log_level=1` and a 16 MiB buffer. Any fd obtained is closed.
pub fn btf_load(blob: &[u8]) -> BtfLoadVerdict {
    let errno = btf_load_raw(blob, None).err();
    let mut buf = vec![0u8; LOG_BUF_SIZE];
    // The result of the logged load is not the verdict; its fd (if any) is dropped here.
    let _ = btf_load_raw(blob, Some(&mut buf));
    BtfLoadVerdict {
        errno,
        log: log_bytes(&buf).to_vec(),
    }
}

/// Loads BTF and keeps the fd (for map creation and program loads). `Err(errno)` on failure.
pub fn btf_load_fd(blob: &[u8]) -> Result<OwnedFd, i32> {
    btf_load_raw(blob, None)
}

/// A `BPF_MAP_CREATE` request with BTF.
#[derive(Debug, Clone, Copy)]
pub struct MapCreate<'a> {
    /// `enum bpf_map_type` (2 = `BPF_MAP_TYPE_ARRAY`).
    pub map_type: u32,
    /// Key size in bytes.
    pub key_size: u32,
    /// Value size in bytes.
    pub value_size: u32,
    /// Maximum number of entries.
    pub max_entries: u32,
    /// `BPF_F_*` map flags.
    pub map_flags: u32,
    /// BTF object describing key and value, if any.
    pub btf_fd: Option<BorrowedFd<'a>>,
    /// BTF type id of the key (0 for none).
    pub btf_key_type_id: u32,
    /// BTF type id of the value (0 for none).
    pub btf_value_type_id: u32,
    /// Map name (truncated to 15 bytes; the kernel accepts only `[A-Za-z0-9_.]`).
    pub name: &'a str,
}

/// `BPF_MAP_CREATE` with BTF: the map fd, or `Err(errno)` on failure.
pub fn map_create(req: &MapCreate<'_>) -> Result<OwnedFd, i32> {
    map_create_with_inner(req, None)
}

/// `BPF_MAP_CREATE` with `inner_map_fd` (the inner map template of an `ARRAY_OF_MAPS` or
/// `HASH_OF_MAPS`, which must then have a 4-byte value and no BTF value type).
pub fn map_create_with_inner(
    req: &MapCreate<'_>,
    inner_map_fd: Option<BorrowedFd<'_>>,
) -> Result<OwnedFd, i32> {
    let mut attr = MapCreateAttr {
        map_type: req.map_type,
        key_size: req.key_size,
        value_size: req.value_size,
        max_entries: req.max_entries,
        map_flags: req.map_flags,
        map_name: obj_name(req.name),
        btf_fd: raw_or_zero(req.btf_fd),
        btf_key_type_id: req.btf_key_type_id,
        btf_value_type_id: req.btf_value_type_id,
        inner_map_fd: raw_or_zero(inner_map_fd),
        ..MapCreateAttr::default()
    };
    // SAFETY: the attribute holds no pointers; `btf_fd` and `inner_map_fd` are borrowed for
    // the call.
    let ret = unsafe { sys_bpf(BPF_MAP_CREATE, &mut attr) }?;
    own_fd(ret)
}

/// `BPF_PROG_LOAD` of raw instructions with license "GPL", `log_level` and a 16 MiB log
/// buffer. Returns the program fd or `Err(errno)`, and the log.
pub fn prog_load(prog_type: u32, insns: &[u64], log_level: u32) -> (Result<OwnedFd, i32>, String) {
    prog_load_with_btf(prog_type, insns, log_level, None)
}

/// Like [`prog_load`], with an optional `prog_btf_fd`.
pub fn prog_load_with_btf(
    prog_type: u32,
    insns: &[u64],
    log_level: u32,
    prog_btf_fd: Option<BorrowedFd<'_>>,
) -> (Result<OwnedFd, i32>, String) {
    prog_load_req(&ProgLoad {
        prog_btf_fd,
        ..ProgLoad::new(prog_type, insns, log_level)
    })
}

/// A `BPF_PROG_LOAD` request (license "GPL").
#[derive(Debug, Clone, Copy)]
pub struct ProgLoad<'a> {
    /// `enum bpf_prog_type`.
    pub prog_type: u32,
    /// `enum bpf_attach_type` (0 where the type needs none).
    pub expected_attach_type: u32,
    /// BTF id of the attach target in vmlinux (tracing and LSM programs), 0 for none.
    pub attach_btf_id: u32,
    /// `BPF_F_*` program flags (`BPF_F_SLEEPABLE` = 16).
    pub prog_flags: u32,
    /// The instructions (see [`insn`]).
    pub insns: &'a [u64],
    /// Verifier log level: 0 (no log), 1, or 2 (register states).
    pub log_level: u32,
    /// Log buffer size in bytes; a log that does not fit fails the load with `ENOSPC`.
    pub log_size: u32,
    /// Program BTF, if any.
    pub prog_btf_fd: Option<BorrowedFd<'a>>,
}

impl<'a> ProgLoad<'a> {
    /// A request without attach target, flags or BTF, with a 16 MiB log buffer.
    pub fn new(prog_type: u32, insns: &'a [u64], log_level: u32) -> Self {
        ProgLoad {
            prog_type,
            expected_attach_type: 0,
            attach_btf_id: 0,
            prog_flags: 0,
            insns,
            log_level,
            log_size: LOG_BUF_SIZE as u32,
            prog_btf_fd: None,
        }
    }
}

/// `BPF_PROG_LOAD` of `req`: the program fd or `Err(errno)`, and the verifier log (empty at
/// `log_level` 0).
pub fn prog_load_req(req: &ProgLoad<'_>) -> (Result<OwnedFd, i32>, String) {
    prog_load_inner(req, None)
}

/// `BPF_PROG_LOAD` of `req` with one `bpf_func_info` (`insn_off` 0, `type_id`
/// `func_type_id`, a FUNC of the program BTF `req.prog_btf_fd`): the kernel keeps the
/// program BTF (`prog->aux->btf`) only when func info comes with it, and `bpf_obj_new`
/// needs it. The program fd or `Err(errno)`, and the verifier log.
pub fn prog_load_with_func_info(
    req: &ProgLoad<'_>,
    func_type_id: u32,
) -> (Result<OwnedFd, i32>, String) {
    prog_load_inner(req, Some(func_type_id))
}

fn prog_load_inner(
    req: &ProgLoad<'_>,
    func_type_id: Option<u32>,
) -> (Result<OwnedFd, i32>, String) {
    let Ok(insn_cnt) = u32::try_from(req.insns.len()) else {
        return (Err(libc::E2BIG), String::new());
    };
    // `struct bpf_insn` is little-endian in this encoding; a no-op on little-endian hosts.
    let code: Vec<u64> = req.insns.iter().map(|i| i.to_le()).collect();
    let license = c"GPL";
    let log_size = if req.log_level == 0 { 0 } else { req.log_size };
    let mut log = vec![0u8; log_size as usize];
    let mut attr = ProgLoadAttr {
        prog_type: req.prog_type,
        insn_cnt,
        insns: code.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: req.log_level,
        prog_flags: req.prog_flags,
        expected_attach_type: req.expected_attach_type,
        prog_btf_fd: raw_or_zero(req.prog_btf_fd),
        attach_btf_id: req.attach_btf_id,
        ..ProgLoadAttr::default()
    };
    // `struct bpf_func_info { __u32 insn_off; __u32 type_id; }`.
    let func_info: [u32; 2] = [0, func_type_id.unwrap_or(0)];
    if func_type_id.is_some() {
        attr.func_info_rec_size = 8;
        attr.func_info = func_info.as_ptr() as u64;
        attr.func_info_cnt = 1;
    }
    if log_size != 0 {
        attr.log_buf = log.as_mut_ptr() as u64;
        attr.log_size = log_size;
    }
    // SAFETY: `insns` points to `insn_cnt` 8-byte instructions in `code`, `license` to a
    // NUL-terminated string, `func_info` (when set) to one 8-byte record, `log_buf` (when
    // set) to `log_size` writable bytes of `log`; all outlive the call. `prog_btf_fd` is
    // borrowed for the call.
    let ret = unsafe { sys_bpf(BPF_PROG_LOAD, &mut attr) };
    (ret.and_then(own_fd), log_text(&log))
}

/// Builds one `struct bpf_insn` as a `u64`: `code:8, dst_reg:4 (low nibble), src_reg:4 (high
/// nibble), off:16, imm:32`, little endian (byte 0 is `code`).
pub fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> u64 {
    u64::from(code)
        | u64::from(dst & 0xf) << 8
        | u64::from(src & 0xf) << 12
        | u64::from(off as u16) << 16
        | u64::from(imm as u32) << 32
}

/// What the probe program does with `R0` (the looked-up map value) at the probed offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeAccess {
    /// `*(u8 *)(r0 + off) = 1` (`BPF_ST | BPF_MEM | BPF_B`).
    Store1Byte,
    /// `*(u64 *)(r0 + off) = imm` (`BPF_ST | BPF_MEM | BPF_DW`).
    StoreImm8(i32),
    /// `r1 = *(u64 *)(r0 + off)` (`BPF_LDX | BPF_MEM | BPF_DW`).
    Load8,
}

/// BPF instruction opcodes the probes use (include/uapi/linux/bpf_common.h).
pub mod op {
    #![allow(missing_docs)]
    pub const LD_IMM64: u8 = 0x18; // BPF_LD | BPF_IMM | BPF_DW
    pub const ST_W: u8 = 0x62; // BPF_ST | BPF_MEM | BPF_W
    pub const ST_B: u8 = 0x72; // BPF_ST | BPF_MEM | BPF_B
    pub const ST_DW: u8 = 0x7a; // BPF_ST | BPF_MEM | BPF_DW
    pub const LDX_DW: u8 = 0x79; // BPF_LDX | BPF_MEM | BPF_DW
    pub const MOV64_X: u8 = 0xbf; // BPF_ALU64 | BPF_MOV | BPF_X
    pub const MOV64_K: u8 = 0xb7; // BPF_ALU64 | BPF_MOV | BPF_K
    pub const ADD64_K: u8 = 0x07; // BPF_ALU64 | BPF_ADD | BPF_K
    pub const JEQ_K: u8 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
    pub const JNE_K: u8 = 0x55; // BPF_JMP | BPF_JNE | BPF_K
    pub const CALL: u8 = 0x85; // BPF_JMP | BPF_CALL
    pub const EXIT: u8 = 0x95; // BPF_JMP | BPF_EXIT
}

/// `bpf_map_lookup_elem` helper id.
const BPF_FUNC_MAP_LOOKUP_ELEM: i32 = 1;

/// The probe program's instructions for map fd `map_fd`.
fn probe_insns(map_fd: i32, off: i16, access: ProbeAccess) -> Vec<u64> {
    let access_insn = match access {
        ProbeAccess::Store1Byte => insn(op::ST_B, 0, 0, off, 1),
        ProbeAccess::StoreImm8(imm) => insn(op::ST_DW, 0, 0, off, imm),
        ProbeAccess::Load8 => insn(op::LDX_DW, 1, 0, off, 0),
    };
    vec![
        insn(op::ST_W, 10, 0, -4, 0),   // *(u32 *)(r10 - 4) = 0
        insn(op::MOV64_X, 2, 10, 0, 0), // r2 = r10
        insn(op::ADD64_K, 2, 0, 0, -4), // r2 += -4
        insn(op::LD_IMM64, 1, BPF_PSEUDO_MAP_FD, 0, map_fd), // r1 = map ll
        insn(0, 0, 0, 0, 0),            //   (second slot)
        insn(op::CALL, 0, 0, 0, BPF_FUNC_MAP_LOOKUP_ELEM), // call bpf_map_lookup_elem
        insn(op::JEQ_K, 0, 0, 1, 0),    // if r0 == 0 goto +1
        access_insn,                    // access r0 + off
        insn(op::MOV64_K, 0, 0, 0, 0),  // r0 = 0
        insn(op::EXIT, 0, 0, 0, 0),     // exit
    ]
}

/// A verifier probe: a SCHED_CLS program that looks up key 0 (a 4-byte key on the stack) in
/// the map `map_fd`, null-checks the result, performs `access` on `R0` at `off` and exits
/// with 0. Returns whether the program loaded and the verifier log at `log_level` (use 1, or
/// 2 to see register types). The program fd, if any, is closed before returning.
pub fn probe_value_access(
    map_fd: BorrowedFd<'_>,
    off: i16,
    access: ProbeAccess,
    log_level: u32,
) -> (bool, String) {
    let insns = probe_insns(map_fd.as_raw_fd(), off, access);
    let (res, log) = prog_load(BPF_PROG_TYPE_SCHED_CLS, &insns, log_level);
    (res.is_ok(), log)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insn_bit_layout() {
        // r1 = map fd 7 (ld_imm64, src_reg = 1): dst_reg is the low nibble of byte 1.
        let i = insn(0x18, 1, 1, 0, 7);
        assert_eq!(i.to_le_bytes(), [0x18, 0x11, 0, 0, 7, 0, 0, 0]);
        let i = insn(0xbf, 2, 10, 0, 0);
        assert_eq!(i.to_le_bytes(), [0xbf, 0xa2, 0, 0, 0, 0, 0, 0]);
        let i = insn(0x62, 10, 0, -4, -1);
        assert_eq!(
            i.to_le_bytes(),
            [0x62, 0x0a, 0xfc, 0xff, 0xff, 0xff, 0xff, 0xff]
        );
    }

    #[test]
    fn tiny_btf_is_45_bytes() {
        assert_eq!(tiny_btf().len(), 45);
    }

    #[test]
    fn log_cut_at_nul() {
        assert_eq!(log_text(b"abc\0def"), "abc");
        assert_eq!(log_text(b""), "");
    }
}

/// `BPF_LINK_CREATE`.
const BPF_LINK_CREATE: libc::c_int = 28;
/// `BPF_ITER_CREATE`.
const BPF_ITER_CREATE: libc::c_int = 33;
/// `BPF_TRACE_ITER` (`enum bpf_attach_type`).
const BPF_TRACE_ITER: u32 = 28;

/// The `BPF_LINK_CREATE` part of `union bpf_attr` for an iterator (`iter_info` and
/// `iter_info_len`).
#[repr(C)]
#[derive(Default)]
struct LinkCreateIterAttr {
    prog_fd: u32,
    target_fd: u32,
    attach_type: u32,
    flags: u32,
    iter_info: u64,
    iter_info_len: u32,
    pad: u32,
}

/// The `BPF_ITER_CREATE` part of `union bpf_attr`.
#[repr(C)]
#[derive(Default)]
struct IterCreateAttr {
    link_fd: u32,
    flags: u32,
}

/// `BPF_LINK_CREATE` of the iterator program `prog` (`BPF_TRACE_ITER`, no iterator
/// parameters): the link, or the kernel's errno.
pub fn link_create_iter(prog: BorrowedFd<'_>) -> Result<OwnedFd, i32> {
    let mut attr = LinkCreateIterAttr {
        prog_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_TRACE_ITER,
        ..Default::default()
    };
    // SAFETY: a valid BPF_LINK_CREATE prefix with no pointer in it (iter_info 0).
    own_fd(unsafe { sys_bpf(BPF_LINK_CREATE, &mut attr) }?)
}

/// `BPF_ITER_CREATE` on an iterator link: the iterator's fd, or the kernel's errno.
pub fn iter_create(link: BorrowedFd<'_>) -> Result<OwnedFd, i32> {
    let mut attr = IterCreateAttr {
        link_fd: link.as_raw_fd() as u32,
        flags: 0,
    };
    // SAFETY: a valid BPF_ITER_CREATE prefix with no pointer in it.
    own_fd(unsafe { sys_bpf(BPF_ITER_CREATE, &mut attr) }?)
}

/// One run of the iterator program `prog`: a link, an iterator on it, read to its end
/// (the program runs once per object the iterator visits, in the calling thread);
/// both fds closed. The kernel's errno on failure.
pub fn run_iter(prog: BorrowedFd<'_>) -> Result<(), i32> {
    use std::io::Read;
    let link = link_create_iter(prog)?;
    let iter = iter_create(std::os::fd::AsFd::as_fd(&link))?;
    let mut f = std::fs::File::from(iter);
    let mut buf = Vec::new();
    f.read_to_end(&mut buf)
        .map_err(|e| e.raw_os_error().unwrap_or(libc::EIO))?;
    Ok(())
}

/// `BPF_MAP_LOOKUP_ELEM` of `key` into `value` with `flags` (`BPF_F_LOCK`): the
/// kernel's errno on failure.
pub fn map_lookup_elem_flags(
    map: BorrowedFd<'_>,
    key: &[u8],
    value: &mut [u8],
    flags: u64,
) -> Result<(), i32> {
    let mut attr = MapElemAttr {
        map_fd: map.as_raw_fd() as u32,
        key: key.as_ptr() as u64,
        value: value.as_mut_ptr() as u64,
        flags,
        ..Default::default()
    };
    // SAFETY: a valid BPF_MAP_LOOKUP_ELEM prefix; the key is read and the value buffer,
    // as large as the caller's map needs, written during the call only.
    unsafe { sys_bpf(BPF_MAP_LOOKUP_ELEM, &mut attr) }.map(|_| ())
}

/// A map element command for [`map_elem_raw_fd`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapElemCmd {
    /// `BPF_MAP_LOOKUP_ELEM`: `value` is written.
    Lookup,
    /// `BPF_MAP_UPDATE_ELEM`: `value` is read.
    Update,
    /// `BPF_MAP_DELETE_ELEM`: `value` is not used.
    Delete,
}

/// `cmd` on the map behind the fd number `map_fd`, which need not be open (a closed
/// or negative number gets the kernel's EBADF): the kernel's errno on failure. The
/// caller passes buffers of the map's key and value sizes.
pub fn map_elem_raw_fd(
    cmd: MapElemCmd,
    map_fd: std::os::fd::RawFd,
    key: &[u8],
    value: &mut [u8],
    flags: u64,
) -> Result<(), i32> {
    let mut attr = MapElemAttr {
        map_fd: map_fd as u32,
        key: key.as_ptr() as u64,
        value: if cmd == MapElemCmd::Delete {
            0
        } else {
            value.as_mut_ptr() as u64
        },
        flags,
        ..Default::default()
    };
    let c = match cmd {
        MapElemCmd::Lookup => BPF_MAP_LOOKUP_ELEM,
        MapElemCmd::Update => BPF_MAP_UPDATE_ELEM,
        MapElemCmd::Delete => BPF_MAP_DELETE_ELEM,
    };
    // SAFETY: a valid prefix of `union bpf_attr` for the command; the key is read and
    // the value buffer read or written (as large as the caller's map needs) during the
    // call only. An fd number that is not open is refused by the kernel (EBADF).
    unsafe { sys_bpf(c, &mut attr) }.map(|_| ())
}
