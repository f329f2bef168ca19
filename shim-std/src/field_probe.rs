//! Which special fields the running kernel recorded in a map's values, read from the
//! verifier, and a field-by-field judgement of the model's record against them.
//!
//! A probe program reaches one value of the map (a route per map type, see
//! [`judge_fields`]) and hands a byte range of it to a helper: `bpf_probe_read_kernel`
//! writes it, or `bpf_strtol` reads it for `BPF_F_RDONLY_PROG` maps.
//! `check_helper_mem_access` passes the range to `check_map_access`, which refuses a range
//! overlapping any special field and names the lowest one: "bpf_timer cannot be accessed
//! directly by load/store", "kptr cannot be accessed indirectly by helper",
//! "percpu_kptr ...", "uptr ...". Bisecting ranges finds each field's start in a few
//! programs whatever the value size (the model's offsets are tried first). A direct 8-byte
//! store of 1 tells a referenced kptr ("store to referenced kptr disallowed") from an
//! unreferenced one ("BPF_ST imm must be 0 when storing to kptr at off=N"), and the register
//! type of an 8-byte load at `log_level=2` names the pointee (`rcu_ptr_or_null_task_struct`)
//! or, for a uptr, its size (`mem_or_null(id=2,sz=24)`). Offsets are added to the value
//! pointer with a 32-bit immediate, so any offset works. Programs are loaded, never attached
//! or run; every fd is closed.
//!
//! Each kptr is then handed to `bpf_kptr_xchg` ([`KptrFacts`]): `process_kptr_func` refuses
//! an unreferenced one ("off=N kptr isn't referenced kptr"); for a referenced one the
//! pointer it hands out is an allocated object (`MEM_ALLOC`, a pointee in program BTF: a
//! local kptr) exactly when `bpf_obj_drop_impl` (`bpf_percpu_obj_drop_impl` for a per-CPU
//! kptr) takes it, and a kernel object otherwise ("arg#0 expected pointer to allocated
//! object"). A local kptr is then handed a new object of the program-BTF struct named as
//! its pointee (`bpf_obj_new_impl`, per-CPU `bpf_percpu_obj_new_impl`, with the map's own
//! BTF attached by fd and one `func_info` record), which `bpf_kptr_xchg` takes only for
//! the field's own type. The kernel records a referenced kptr to a kernel type only when
//! `btf_find_dtor_kfunc` finds its registered destructor, and sets none for a local or an
//! unreferenced kptr, so these facts tell whether the field has a destructor; its name, and
//! the BTF or module references the field holds, are not shown (see
//! `tests/README.md`).
//!
//! A map whose type takes no special field (`map_check_btf` refuses every field type in
//! it with `EOPNOTSUPP`; e.g. QUEUE, RINGBUF, PROG_ARRAY) and that no program can look
//! into is judged by its creation: the kernel created it, so its record holds no field.

use std::fmt;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::OnceLock;

use kernel_core::btf::BtfData;
use kernel_core::map::map_type_name;

use crate::check::FieldReport;
use crate::maps::MapDef;
use crate::oracle::{ProgLoad, insn, prog_load_req, prog_load_with_func_info};

/// `BPF_PROG_TYPE_SCHED_CLS`.
const SCHED_CLS: u32 = 3;
/// `BPF_PROG_TYPE_CGROUP_SKB`.
const CGROUP_SKB: u32 = 8;
/// `BPF_PROG_TYPE_LSM`.
const LSM: u32 = 29;
/// `BPF_LSM_MAC` (`expected_attach_type` of an LSM program).
const BPF_LSM_MAC: u32 = 27;
/// The LSM hook an inode-storage probe attaches to (by BTF id; never attached).
const LSM_HOOK: &str = "bpf_lsm_file_open";

/// Helper ids (`include/uapi/linux/bpf.h`).
mod func {
    pub const MAP_LOOKUP_ELEM: i32 = 1;
    pub const GET_LOCAL_STORAGE: i32 = 81;
    pub const STRTOL: i32 = 105;
    pub const SK_STORAGE_GET: i32 = 107;
    pub const PROBE_READ_KERNEL: i32 = 113;
    pub const INODE_STORAGE_GET: i32 = 145;
    pub const TASK_STORAGE_GET: i32 = 156;
    pub const CGRP_STORAGE_GET: i32 = 210;
    pub const KPTR_XCHG: i32 = 194;
}

/// `BPF_PSEUDO_KFUNC_CALL` (a call's `src_reg` for a kfunc named by its vmlinux BTF id).
const PSEUDO_KFUNC_CALL: u8 = 2;

use crate::oracle::op;

/// `BPF_PSEUDO_MAP_FD`.
const PSEUDO_MAP_FD: u8 = 1;
/// `offsetof(struct __sk_buff, sk)`.
const SKB_SK_OFF: i16 = 168;
/// `BPF_F_RDONLY_PROG`.
const BPF_F_RDONLY_PROG: u32 = 1 << 7;
/// `MAX_BPF_STACK`.
const MAX_STACK: u32 = 512;
/// Log buffer of a probe program (its logs are a few KiB even at `log_level=2`).
const PROBE_LOG_SIZE: u32 = 1 << 20;

/// Map types whose values `bpf_map_lookup_elem` returns as `PTR_TO_MAP_VALUE`.
fn lookup_type(t: u32) -> bool {
    // HASH, ARRAY, PERCPU_HASH, PERCPU_ARRAY, LRU_HASH, LRU_PERCPU_HASH, LPM_TRIE
    matches!(t, 1 | 2 | 5 | 6 | 9 | 10 | 11)
}

/// The inner map template of an `ARRAY_OF_MAPS` / `HASH_OF_MAPS` (its `map_type`,
/// `key_size`, `value_size` and `map_flags`, as passed to `BPF_MAP_CREATE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InnerMap {
    /// `map_type`.
    pub map_type: u32,
    /// `key_size`.
    pub key_size: u32,
    /// `value_size`.
    pub value_size: u32,
    /// `map_flags`.
    pub map_flags: u32,
}

/// Map types `map_check_btf` lets some special field live in (every other type is
/// refused any field with `EOPNOTSUPP`; `kernel/bpf/syscall.c`).
fn takes_special_fields(t: u32) -> bool {
    // HASH, ARRAY, PERCPU_HASH, PERCPU_ARRAY, LRU_HASH, LRU_PERCPU_HASH, CGROUP_STORAGE,
    // SK_STORAGE, INODE_STORAGE, TASK_STORAGE, CGRP_STORAGE
    matches!(t, 1 | 2 | 5 | 6 | 9 | 10 | 19 | 24 | 28 | 29 | 32)
}

/// A map created in the running kernel, to be judged.
#[derive(Clone, Copy)]
pub struct ProbeTarget<'a> {
    /// The map's fd (the outer map's for map-in-map). Borrowed; not closed.
    pub map_fd: BorrowedFd<'a>,
    /// `map_type` as created.
    pub map_type: u32,
    /// `key_size` as created.
    pub key_size: u32,
    /// `value_size` as created.
    pub value_size: u32,
    /// `map_flags` as created.
    pub map_flags: u32,
    /// For `ARRAY_OF_MAPS` / `HASH_OF_MAPS`: the inner template whose record is judged.
    pub inner: Option<InnerMap>,
    /// The object's BTF, to compare a uptr's pointee size (the verifier shows no name).
    pub prog_btf: Option<&'a BtfData>,
    /// The fd of that BTF as loaded into the kernel (the map's own BTF), attached to the
    /// probes that make local objects with `bpf_obj_new`; none: those probes are not run.
    pub btf_fd: Option<BorrowedFd<'a>>,
}

impl fmt::Debug for ProbeTarget<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProbeTarget")
            .field("map_fd", &self.map_fd)
            .field("map_type", &self.map_type)
            .field("key_size", &self.key_size)
            .field("value_size", &self.value_size)
            .field("map_flags", &self.map_flags)
            .field("inner", &self.inner)
            .field("prog_btf", &self.prog_btf.is_some())
            .field("btf_fd", &self.btf_fd)
            .finish()
    }
}

impl<'a> ProbeTarget<'a> {
    /// The target for `def` created as `map_fd` (no inner map, no BTF).
    pub fn from_def(map_fd: BorrowedFd<'a>, def: &MapDef) -> Self {
        ProbeTarget {
            map_fd,
            map_type: def.map_type,
            key_size: def.key_size,
            value_size: def.value_size,
            map_flags: def.map_flags,
            inner: None,
            prog_btf: None,
            btf_fd: None,
        }
    }
}

/// A field the kernel recorded, as the verifier shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelField {
    /// Byte offset in the value.
    pub offset: u32,
    /// Type name, as [`FieldReport::ty`] spells it.
    pub ty: &'static str,
    /// Pointee name of a kptr (from the loaded register's type).
    pub pointee: Option<String>,
    /// Pointee size of a uptr (`sz=` of the loaded register).
    pub pointee_size: Option<u32>,
    /// What `bpf_kptr_xchg` shows of a kptr (kptrs only).
    pub kptr: Option<KptrFacts>,
}

/// What the verifier shows of a kptr through `bpf_kptr_xchg(&value->field, NULL)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KptrFacts {
    /// `bpf_kptr_xchg` takes the field: it holds a reference to hand over (refused for an
    /// unreferenced kptr).
    pub referenced: bool,
    /// For a referenced kptr: the pointer handed out is an allocated object of program
    /// BTF (`MEM_ALLOC`: `bpf_obj_drop_impl`, or `bpf_percpu_obj_drop_impl` for a
    /// per-CPU kptr, takes it), i.e. the pointee is local. `None` for an unreferenced
    /// kptr (no pointer is handed out, so the verifier does not show it).
    pub local: Option<bool>,
    /// For a local kptr: `bpf_kptr_xchg` takes an object `bpf_obj_new_impl` (per-CPU:
    /// `bpf_percpu_obj_new_impl`) made of the program-BTF struct named as the pointee, as
    /// the verifier takes only an object of the field's own type (`map_kptr_match_type`).
    /// `None` when not asked (no program BTF fd, no FUNC for its func info, or no such
    /// struct in it).
    pub takes_new_object: Option<bool>,
}

impl KptrFacts {
    /// Whether the kernel's field has a destructor, as the facts imply: the kernel records
    /// a referenced kptr to a kernel type only with its registered destructor
    /// (`btf_parse_kptr`, `btf_find_dtor_kfunc`), and gives a local or an unreferenced
    /// kptr none (v6.4 and later).
    pub fn has_dtor(&self) -> bool {
        self.referenced && self.local == Some(false)
    }
}

impl fmt::Display for KernelField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "+{} {}", self.offset, self.ty)?;
        if let Some(p) = &self.pointee {
            write!(f, " -> {p}")?;
        }
        if let Some(s) = self.pointee_size {
            write!(f, " -> {s}-byte pointee")?;
        }
        if let Some(k) = &self.kptr {
            match k.local {
                Some(true) => write!(f, " (local)")?,
                Some(false) => write!(f, " (kernel)")?,
                None => {}
            }
            if k.has_dtor() {
                write!(f, " with a destructor")?;
            }
            if k.takes_new_object == Some(false) {
                write!(f, " refusing a new object of that name")?;
            }
        }
        Ok(())
    }
}

/// One model field's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The kernel has the same type (and pointee) at the same offset.
    Same,
    /// What the kernel has instead (`"+8 kptr_unref -> task_struct"`, `"no field at +8"`).
    Differs(String),
}

/// A model field and what the kernel has at its offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldVerdict {
    /// The model's field.
    pub model: FieldReport,
    /// The kernel's field at the same offset, if any.
    pub kernel: Option<KernelField>,
    /// The comparison.
    pub verdict: Verdict,
}

impl fmt::Display for FieldVerdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "+{} {}", self.model.offset, self.model.ty)?;
        if let Some(p) = &self.model.pointee {
            write!(f, " -> {p}")?;
        }
        // A difference shows the model's kptr facts beside the kernel's.
        if self.verdict != Verdict::Same && self.kernel.as_ref().is_some_and(|k| k.kptr.is_some()) {
            match self.model.local {
                Some(true) => write!(f, " (local)")?,
                Some(false) => write!(f, " (kernel)")?,
                None => {}
            }
            if self.model.dtor.is_some() {
                write!(f, " with a destructor")?;
            }
        }
        match &self.verdict {
            Verdict::Same => write!(f, ": same"),
            Verdict::Differs(k) => write!(f, ": DIFFERS (kernel: {k})"),
        }
    }
}

/// Whether the map could be judged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Every field was judged.
    Judged,
    /// This machine or program type cannot reach the map's values (not the object's fault).
    NotJudged(String),
    /// A probe program was refused for a reason the probe does not know (a probe bug).
    ProbeError(String),
}

/// The kernel's judgement of one map's record.
#[derive(Debug, Clone)]
pub struct FieldJudgement {
    /// Judged, or why not.
    pub status: Status,
    /// How the probe programs reached the values (empty when no route exists).
    pub route: &'static str,
    /// One verdict per model field, in the model's order (empty unless judged).
    pub fields: Vec<FieldVerdict>,
    /// Fields the kernel recorded at offsets where the model has none (each a difference).
    pub kernel_only: Vec<KernelField>,
    /// Number of probe programs loaded.
    pub programs: u32,
}

impl FieldJudgement {
    fn stopped(status: Status, route: &'static str, programs: u32) -> Self {
        FieldJudgement {
            status,
            route,
            fields: Vec::new(),
            kernel_only: Vec::new(),
            programs,
        }
    }

    /// True when the map was judged.
    pub fn is_judged(&self) -> bool {
        self.status == Status::Judged
    }

    /// True when judged and every field is the same on both sides.
    pub fn all_same(&self) -> bool {
        self.is_judged() && self.differences().is_empty()
    }

    /// One line per difference (empty when not judged).
    pub fn differences(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .fields
            .iter()
            .filter(|v| v.verdict != Verdict::Same)
            .map(|v| v.to_string())
            .collect();
        out.extend(self.kernel_only.iter().map(kernel_only_line));
        out
    }

    /// One line per model field (`"+0 kptr_ref -> task_struct: same"`), then one per
    /// kernel-only field; or the single line `"not judged: ..."` / `"probe error: ..."`.
    pub fn lines(&self) -> Vec<String> {
        match &self.status {
            Status::NotJudged(r) => vec![format!("not judged: {r}")],
            Status::ProbeError(r) => vec![format!("probe error: {r}")],
            Status::Judged => {
                let mut out: Vec<String> = self.fields.iter().map(|v| v.to_string()).collect();
                out.extend(self.kernel_only.iter().map(kernel_only_line));
                out
            }
        }
    }
}

fn kernel_only_line(k: &KernelField) -> String {
    format!("{k}: DIFFERS (kernel has it, the model does not)")
}

/// How a probe program reaches a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    /// `bpf_map_lookup_elem(map, &zero_key)`.
    Lookup,
    /// Lookup in the outer map, then in the inner map it returns.
    MapInMap,
    /// `bpf_sk_storage_get(map, skb->sk, NULL, 0)`.
    SkStorage,
    /// `bpf_get_local_storage(map, 0)`.
    CgroupStorage,
    /// `helper(map, NULL owner, NULL, 0)` (task, cgroup and inode storage).
    OwnerStorage(i32),
}

/// A route to the values, with the program type that may take it.
#[derive(Debug, Clone, Copy)]
struct Route {
    access: Access,
    desc: &'static str,
    prog_type: u32,
    expected_attach_type: u32,
    attach_btf_id: u32,
    map_fd: i32,
    /// Zeroed key bytes on the stack (a multiple of 8).
    key_area: u32,
    /// Size and flags of the value reached (the inner map's for map-in-map).
    value_size: u32,
    value_flags: u32,
}

fn round8(x: u32) -> u32 {
    x.div_ceil(8).saturating_mul(8)
}

fn route_for(t: &ProbeTarget<'_>) -> Result<Route, Status> {
    let mut r = Route {
        access: Access::Lookup,
        desc: "bpf_map_lookup_elem in a SCHED_CLS program",
        prog_type: SCHED_CLS,
        expected_attach_type: 0,
        attach_btf_id: 0,
        map_fd: t.map_fd.as_raw_fd(),
        key_area: 0,
        value_size: t.value_size,
        value_flags: t.map_flags,
    };
    match t.map_type {
        mt if lookup_type(mt) => r.key_area = round8(t.key_size),
        12 | 13 => {
            let Some(inner) = t.inner else {
                return Err(Status::NotJudged(String::from(
                    "map-in-map without the inner map's definition",
                )));
            };
            if !lookup_type(inner.map_type) {
                return Err(Status::NotJudged(format!(
                    "the verifier gives no program a pointer into an inner {} map's values",
                    map_type_name(inner.map_type)
                )));
            }
            r.access = Access::MapInMap;
            r.desc = "bpf_map_lookup_elem of the outer map, then of the inner map, in a \
                      SCHED_CLS program";
            r.key_area = round8(t.key_size.max(inner.key_size));
            r.value_size = inner.value_size;
            r.value_flags = inner.map_flags;
        }
        24 => {
            r.access = Access::SkStorage;
            r.desc = "bpf_sk_storage_get(skb->sk) in a SCHED_CLS program";
        }
        19 | 21 => {
            r.access = Access::CgroupStorage;
            r.desc = "bpf_get_local_storage in a CGROUP_SKB program";
            r.prog_type = CGROUP_SKB;
        }
        29 => {
            r.access = Access::OwnerStorage(func::TASK_STORAGE_GET);
            r.desc = "bpf_task_storage_get(NULL task) in a SCHED_CLS program";
        }
        32 => {
            r.access = Access::OwnerStorage(func::CGRP_STORAGE_GET);
            r.desc = "bpf_cgrp_storage_get(NULL cgroup) in a SCHED_CLS program";
        }
        28 => {
            let Some(id) = lsm_hook_id() else {
                return Err(Status::NotJudged(format!(
                    "bpf_inode_storage_get is for LSM and tracing programs only, and this \
                     machine's vmlinux BTF has no {LSM_HOOK} to attach an LSM probe to"
                )));
            };
            r.access = Access::OwnerStorage(func::INODE_STORAGE_GET);
            r.desc = "bpf_inode_storage_get(NULL inode) in an LSM program on bpf_lsm_file_open";
            r.prog_type = LSM;
            r.expected_attach_type = BPF_LSM_MAC;
            r.attach_btf_id = id;
        }
        mt => {
            return Err(Status::NotJudged(format!(
                "the verifier gives no program a pointer into a {} map's values",
                map_type_name(mt)
            )));
        }
    }
    // The read helper's result goes below the key.
    let stack = r.key_area
        + if r.value_flags & BPF_F_RDONLY_PROG != 0 {
            8
        } else {
            0
        };
    if stack > MAX_STACK {
        return Err(Status::NotJudged(format!(
            "a {}-byte key leaves no room on the probe's 512-byte stack",
            t.key_size
        )));
    }
    Ok(r)
}

/// The kind of field a refusal names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// A field refused "directly by load/store" (its type name).
    Plain(&'static str),
    /// "kptr cannot be accessed indirectly by helper" (referenced or not).
    Kptr,
    /// "percpu_kptr cannot be accessed indirectly by helper".
    PercpuKptr,
    /// "uptr cannot be accessed indirectly by helper".
    Uptr,
}

/// The field a refusal message names (`check_map_access`, `btf_field_type_name`).
fn classify(msg: &str) -> Option<Class> {
    if let Some(name) = msg.strip_suffix(" cannot be accessed directly by load/store") {
        let ty = match name {
            "bpf_spin_lock" => "spin_lock",
            "bpf_res_spin_lock" => "res_spin_lock",
            "bpf_timer" => "timer",
            "bpf_wq" => "wq",
            "bpf_task_work" => "task_work",
            "bpf_list_head" => "list_head",
            "bpf_list_node" => "list_node",
            "bpf_rb_root" => "rb_root",
            "bpf_rb_node" => "rb_node",
            "bpf_refcount" => "refcount",
            _ => return None,
        };
        return Some(Class::Plain(ty));
    }
    match msg.strip_suffix(" cannot be accessed indirectly by helper")? {
        "kptr" => Some(Class::Kptr),
        "percpu_kptr" => Some(Class::PercpuKptr),
        "uptr" => Some(Class::Uptr),
        _ => None,
    }
}

/// Size of a recorded field of type `ty` (`btf_field_type_size` on 6.18).
fn field_size(ty: &str) -> u32 {
    match ty {
        "spin_lock" | "res_spin_lock" | "refcount" => 4,
        "timer" | "wq" | "list_head" | "rb_root" => 16,
        "list_node" => 24,
        "rb_node" => 32,
        // kptrs, uptr, task_work
        _ => 8,
    }
}

/// The verifier's message: the last non-empty log line that is not the statistics line.
fn last_msg(log: &str) -> &str {
    log.lines()
        .rfind(|l| !l.trim().is_empty() && !l.starts_with("processed "))
        .unwrap_or("")
        .trim()
}

fn errno_text(e: i32) -> String {
    match kernel_core::Errno::from_raw(e).name() {
        Some(n) => String::from(n),
        None => format!("errno {e}"),
    }
}

/// What a probe does with the value.
#[derive(Debug, Clone, Copy)]
enum Body {
    /// Nothing (is the route itself accepted?).
    None,
    /// Hand `[off, off + len)` to the range helper.
    Range(u32, u32),
    /// `*(u64 *)(value + off) = 1`.
    Store1(u32),
    /// `r1 = *(u64 *)(value + off)`.
    Load8(u32),
    /// `bpf_kptr_xchg(value + off, NULL)`, then the kfunc with this vmlinux BTF id on a
    /// non-NULL result (none: the result is dropped on the floor).
    Xchg(u32, Option<i32>),
    /// `p = new(type_id, NULL)` (kfunc ids), `bpf_kptr_xchg(value + off, p)`, then `drop`
    /// on what comes out: `ObjNew(off, new, type_id, drop)`.
    ObjNew(u32, i32, i32, i32),
}

/// Loads probe programs along one route.
struct Prober<'a> {
    route: Route,
    programs: u32,
    new_objects: Option<NewObjects<'a>>,
}

/// What the `bpf_obj_new` probes need: the program BTF's fd, a FUNC of it for the func
/// info, and its named structs (the first id of each name).
struct NewObjects<'a> {
    btf_fd: BorrowedFd<'a>,
    func: u32,
    structs: Vec<(String, u32)>,
}

impl<'a> NewObjects<'a> {
    fn of(t: &ProbeTarget<'a>) -> Option<Self> {
        let (btf, btf_fd) = (t.prog_btf?, t.btf_fd?);
        let func = btf
            .local_types()
            .find(|x| x.kind() == kernel_core::btf::BtfKind::Func)?
            .id();
        let mut structs: Vec<(String, u32)> = Vec::new();
        for x in btf.local_types().filter(|x| x.is_struct_only()) {
            let n = btf.name_by_offset(x.name_off());
            if !n.is_empty() && !structs.iter().any(|(m, _)| m == n) {
                structs.push((String::from(n), x.id()));
            }
        }
        Some(NewObjects {
            btf_fd,
            func,
            structs,
        })
    }
}

impl Prober<'_> {
    fn ld_map(&self, out: &mut Vec<u64>) {
        out.push(insn(op::LD_IMM64, 1, PSEUDO_MAP_FD, 0, self.route.map_fd));
        out.push(insn(0, 0, 0, 0, 0));
    }

    /// Instructions that leave the value pointer (or NULL) in `r0`.
    fn prefix(&self) -> Vec<u64> {
        let mut v = Vec::new();
        let call = |id: i32| insn(op::CALL, 0, 0, 0, id);
        match self.route.access {
            Access::Lookup | Access::MapInMap => {
                // key_area <= 512 (route_for), so these fit in i16 and i32.
                let k = self.route.key_area as i16;
                let mut o = -k;
                while o < 0 {
                    v.push(insn(op::ST_DW, 10, 0, o, 0));
                    o += 8;
                }
                v.push(insn(op::MOV64_X, 2, 10, 0, 0));
                v.push(insn(op::ADD64_K, 2, 0, 0, -i32::from(k)));
                self.ld_map(&mut v);
                v.push(call(func::MAP_LOOKUP_ELEM));
                if self.route.access == Access::MapInMap {
                    v.push(insn(op::JNE_K, 0, 0, 2, 0));
                    v.push(insn(op::MOV64_K, 0, 0, 0, 0));
                    v.push(insn(op::EXIT, 0, 0, 0, 0));
                    v.push(insn(op::MOV64_X, 1, 0, 0, 0));
                    v.push(insn(op::MOV64_X, 2, 10, 0, 0));
                    v.push(insn(op::ADD64_K, 2, 0, 0, -i32::from(k)));
                    v.push(call(func::MAP_LOOKUP_ELEM));
                }
            }
            Access::SkStorage => {
                v.push(insn(op::LDX_DW, 2, 1, SKB_SK_OFF, 0));
                v.push(insn(op::JNE_K, 2, 0, 2, 0));
                v.push(insn(op::MOV64_K, 0, 0, 0, 0));
                v.push(insn(op::EXIT, 0, 0, 0, 0));
                self.ld_map(&mut v);
                v.push(insn(op::MOV64_K, 3, 0, 0, 0));
                v.push(insn(op::MOV64_K, 4, 0, 0, 0));
                v.push(call(func::SK_STORAGE_GET));
            }
            Access::CgroupStorage => {
                self.ld_map(&mut v);
                v.push(insn(op::MOV64_K, 2, 0, 0, 0));
                v.push(call(func::GET_LOCAL_STORAGE));
            }
            Access::OwnerStorage(helper) => {
                self.ld_map(&mut v);
                for r in 2..=4 {
                    v.push(insn(op::MOV64_K, r, 0, 0, 0));
                }
                v.push(call(helper));
            }
        }
        v
    }

    fn body(&self, b: Body) -> Result<Vec<u64>, Status> {
        let imm = |x: u32| {
            i32::try_from(x).map_err(|_| {
                Status::ProbeError(format!("offset or size {x} does not fit an immediate"))
            })
        };
        Ok(match b {
            Body::None => Vec::new(),
            Body::Range(off, len) => {
                let mut v = vec![
                    insn(op::MOV64_X, 1, 0, 0, 0),
                    insn(op::ADD64_K, 1, 0, 0, imm(off)?),
                    insn(op::MOV64_K, 2, 0, 0, imm(len)?),
                    insn(op::MOV64_K, 3, 0, 0, 0),
                ];
                if self.route.value_flags & BPF_F_RDONLY_PROG != 0 {
                    // bpf_strtol(buf, len, 0, &res): reads the range; res below the key.
                    let res = -i32::try_from(self.route.key_area + 8).unwrap_or(i32::MAX);
                    v.push(insn(op::MOV64_X, 4, 10, 0, 0));
                    v.push(insn(op::ADD64_K, 4, 0, 0, res));
                    v.push(insn(op::CALL, 0, 0, 0, func::STRTOL));
                } else {
                    // bpf_probe_read_kernel(dst, len, NULL): writes the range.
                    v.push(insn(op::CALL, 0, 0, 0, func::PROBE_READ_KERNEL));
                }
                v
            }
            Body::Store1(off) => vec![
                insn(op::ADD64_K, 0, 0, 0, imm(off)?),
                insn(op::ST_DW, 0, 0, 0, 1),
            ],
            Body::Load8(off) => vec![
                insn(op::ADD64_K, 0, 0, 0, imm(off)?),
                insn(op::LDX_DW, 1, 0, 0, 0),
            ],
            Body::Xchg(off, drop) => {
                let mut v = vec![
                    insn(op::MOV64_X, 1, 0, 0, 0),
                    insn(op::ADD64_K, 1, 0, 0, imm(off)?),
                    insn(op::MOV64_K, 2, 0, 0, 0),
                    insn(op::CALL, 0, 0, 0, func::KPTR_XCHG),
                ];
                if let Some(id) = drop {
                    v.push(insn(op::JEQ_K, 0, 0, 3, 0));
                    v.push(insn(op::MOV64_X, 1, 0, 0, 0));
                    v.push(insn(op::MOV64_K, 2, 0, 0, 0));
                    v.push(insn(op::CALL, 0, PSEUDO_KFUNC_CALL, 0, id));
                }
                v
            }
            Body::ObjNew(off, new, type_id, drop) => vec![
                insn(op::MOV64_X, 6, 0, 0, 0),
                insn(op::MOV64_K, 1, 0, 0, type_id),
                insn(op::MOV64_K, 2, 0, 0, 0),
                insn(op::CALL, 0, PSEUDO_KFUNC_CALL, 0, new),
                insn(op::JEQ_K, 0, 0, 8, 0),
                insn(op::MOV64_X, 1, 6, 0, 0),
                insn(op::ADD64_K, 1, 0, 0, imm(off)?),
                insn(op::MOV64_X, 2, 0, 0, 0),
                insn(op::CALL, 0, 0, 0, func::KPTR_XCHG),
                insn(op::JEQ_K, 0, 0, 3, 0),
                insn(op::MOV64_X, 1, 0, 0, 0),
                insn(op::MOV64_K, 2, 0, 0, 0),
                insn(op::CALL, 0, PSEUDO_KFUNC_CALL, 0, drop),
            ],
        })
    }

    /// Loads the probe: the route, a null check, `b`, `return 0`. The errno and the log.
    fn load(&mut self, b: Body, log_level: u32) -> Result<(Result<(), i32>, String), Status> {
        let body = self.body(b)?;
        let mut p = self.prefix();
        let skip = i16::try_from(body.len())
            .map_err(|_| Status::ProbeError(String::from("probe body too long")))?;
        p.push(insn(op::JEQ_K, 0, 0, skip, 0));
        p.extend_from_slice(&body);
        p.push(insn(op::MOV64_K, 0, 0, 0, 0));
        p.push(insn(op::EXIT, 0, 0, 0, 0));
        let req = ProgLoad {
            prog_type: self.route.prog_type,
            expected_attach_type: self.route.expected_attach_type,
            attach_btf_id: self.route.attach_btf_id,
            log_size: PROBE_LOG_SIZE,
            ..ProgLoad::new(self.route.prog_type, &p, log_level)
        };
        self.programs += 1;
        let (res, log) = match (b, &self.new_objects) {
            (Body::ObjNew(..), Some(n)) => prog_load_with_func_info(
                &ProgLoad {
                    prog_btf_fd: Some(n.btf_fd),
                    ..req
                },
                n.func,
            ),
            _ => prog_load_req(&req),
        };
        // The program fd, if any, is closed here.
        Ok((res.map(drop), log))
    }

    /// Hands `[off, off + len)` to the range helper: `None` when accepted, else the class
    /// of the lowest field the range overlaps.
    fn range(&mut self, off: u32, len: u32) -> Result<Option<Class>, Status> {
        let (res, log) = self.load(Body::Range(off, len), 1)?;
        if res.is_ok() {
            return Ok(None);
        }
        let msg = last_msg(&log);
        classify(msg).map(Some).ok_or_else(|| {
            Status::ProbeError(format!(
                "range +{off}..+{} refused with {}: {msg:?}",
                u64::from(off) + u64::from(len),
                res.err().map_or_else(String::new, errno_text)
            ))
        })
    }

    /// The first field starting at or after `pos` (`[pos, start)` is free), trying `hint`
    /// first: its offset and class.
    fn next_field(&mut self, pos: u32, hint: Option<u32>) -> Result<Option<(u32, Class)>, Status> {
        let vs = self.route.value_size;
        let mut lo = pos; // [pos, lo) is free
        let mut hi: Option<(u32, Class)> = None; // the start is <= hi.0
        if let Some(h) = hint.filter(|h| *h >= pos && *h < vs) {
            if h > pos {
                match self.range(pos, h - pos)? {
                    None => lo = h,
                    Some(c) => hi = Some((h - 1, c)),
                }
            }
            if hi.is_none() {
                match self.range(pos, h + 1 - pos)? {
                    Some(c) => return Ok(Some((h, c))),
                    None => lo = h + 1,
                }
            }
        }
        let (mut top, class) = match hi {
            Some(x) => x,
            None => {
                if lo >= vs {
                    return Ok(None);
                }
                match self.range(pos, vs - pos)? {
                    None => return Ok(None),
                    Some(c) => (vs - 1, c),
                }
            }
        };
        // Every refused range from `pos` names the field at the first taken byte.
        while lo < top {
            let mid = lo + (top - lo) / 2;
            if self.range(pos, mid + 1 - pos)?.is_some() {
                top = mid;
            } else {
                lo = mid + 1;
            }
        }
        Ok(Some((lo, class)))
    }

    /// The register type of an 8-byte load at `off` (`rcu_ptr_or_null_task_struct(id=2)`).
    fn loaded_type(&mut self, off: u32) -> Result<String, Status> {
        let (res, log) = self.load(Body::Load8(off), 2)?;
        if let Err(e) = res {
            return Err(Status::ProbeError(format!(
                "8-byte load at +{off} refused with {}: {:?}",
                errno_text(e),
                last_msg(&log)
            )));
        }
        log.lines()
            .filter(|l| l.contains("r1 = *(u64 *)(r0 +0)"))
            .find_map(|l| l.split(" R1=").nth(1))
            .and_then(|t| t.split_whitespace().next())
            .map(String::from)
            .ok_or_else(|| {
                Status::ProbeError(format!("no R1 type after the 8-byte load at +{off}"))
            })
    }

    /// Reads the field starting at `s` whose range refusal named `class`.
    fn identify(&mut self, s: u32, class: Class) -> Result<KernelField, Status> {
        let mut f = KernelField {
            offset: s,
            ty: "",
            pointee: None,
            pointee_size: None,
            kptr: None,
        };
        match class {
            Class::Plain(ty) => {
                f.ty = ty;
                return Ok(f);
            }
            Class::PercpuKptr => f.ty = "percpu_kptr",
            Class::Uptr => f.ty = "uptr",
            Class::Kptr => {
                let (res, log) = self.load(Body::Store1(s), 1)?;
                let msg = last_msg(&log);
                let unref = format!("BPF_ST imm must be 0 when storing to kptr at off={s}");
                f.ty = if res.is_err() && msg == "store to referenced kptr disallowed" {
                    "kptr_ref"
                } else if res.is_err() && msg == unref {
                    "kptr_unref"
                } else {
                    return Err(Status::ProbeError(format!(
                        "8-byte store of 1 at the kptr at +{s}: {msg:?}"
                    )));
                };
            }
        }
        let t = self.loaded_type(s)?;
        if class == Class::Uptr {
            f.pointee_size = t
                .split_once("sz=")
                .and_then(|(_, r)| r.split(|c: char| !c.is_ascii_digit()).next())
                .and_then(|n| n.parse().ok());
        } else {
            let p = pointee_name(&t);
            f.kptr = Some(self.kptr_facts(s, class, &p)?);
            f.pointee = Some(p);
        }
        Ok(f)
    }

    /// What `bpf_kptr_xchg` shows of the kptr at `s` ([`KptrFacts`]).
    fn kptr_facts(&mut self, s: u32, class: Class, pointee: &str) -> Result<KptrFacts, Status> {
        let (res, log) = self.load(Body::Xchg(s, None), 1)?;
        let msg = last_msg(&log);
        if res.is_err() && msg == format!("off={s} kptr isn't referenced kptr") {
            return Ok(KptrFacts {
                referenced: false,
                local: None,
                takes_new_object: None,
            });
        }
        // The handed-out reference is never released here: the verifier must say so
        // ("Unreleased reference id=N", or on 6.18 "BPF_EXIT instruction in main prog
        // would lead to reference leak").
        let leak = msg.starts_with("Unreleased reference") || msg.ends_with("reference leak");
        if res.is_ok() || !leak {
            return Err(Status::ProbeError(format!(
                "bpf_kptr_xchg of the kptr at +{s}: {msg:?}"
            )));
        }
        let (name, want) = if class == Class::PercpuKptr {
            (
                "bpf_percpu_obj_drop_impl",
                "arg#0 expected for bpf_percpu_obj_drop_impl()",
            )
        } else {
            (
                "bpf_obj_drop_impl",
                "arg#0 expected pointer to allocated object",
            )
        };
        let Some(id) = vmlinux_func_id(name) else {
            return Err(Status::ProbeError(format!(
                "this machine's vmlinux BTF has no kfunc {name}"
            )));
        };
        let (res, log) = self.load(Body::Xchg(s, Some(id)), 1)?;
        let msg = last_msg(&log);
        let local = match res {
            Ok(()) => true,
            Err(_) if msg == want => false,
            Err(e) => {
                return Err(Status::ProbeError(format!(
                    "{name} of what bpf_kptr_xchg hands out at +{s}: {}: {msg:?}",
                    errno_text(e)
                )));
            }
        };
        let takes_new_object = if local {
            self.takes_new_object(s, class, pointee)?
        } else {
            None
        };
        Ok(KptrFacts {
            referenced: true,
            local: Some(local),
            takes_new_object,
        })
    }

    /// Whether `bpf_kptr_xchg` takes, into the local kptr at `s`, an object made by
    /// `bpf_obj_new_impl` (per-CPU: `bpf_percpu_obj_new_impl`) of the program-BTF struct
    /// named `pointee`; `None` when it cannot be asked.
    fn takes_new_object(
        &mut self,
        s: u32,
        class: Class,
        pointee: &str,
    ) -> Result<Option<bool>, Status> {
        let Some(new) = self.new_objects.as_ref() else {
            return Ok(None);
        };
        let Some(type_id) = new.structs.iter().find(|(n, _)| n == pointee).map(|x| x.1) else {
            return Ok(None);
        };
        let (new_name, drop_name) = if class == Class::PercpuKptr {
            ("bpf_percpu_obj_new_impl", "bpf_percpu_obj_drop_impl")
        } else {
            ("bpf_obj_new_impl", "bpf_obj_drop_impl")
        };
        let (Some(new_id), Some(drop_id)) = (vmlinux_func_id(new_name), vmlinux_func_id(drop_name))
        else {
            return Err(Status::ProbeError(format!(
                "this machine's vmlinux BTF has no kfunc {new_name} or {drop_name}"
            )));
        };
        let type_id = i32::try_from(type_id)
            .map_err(|_| Status::ProbeError(format!("type id {type_id} too large")))?;
        let (res, log) = self.load(Body::ObjNew(s, new_id, type_id, drop_id), 1)?;
        let msg = last_msg(&log);
        match res {
            Ok(()) => Ok(Some(true)),
            Err(_) if msg.starts_with("invalid kptr access") => Ok(Some(false)),
            Err(e) => Err(Status::ProbeError(format!(
                "{new_name} of struct {pointee} into the kptr at +{s}: {}: {msg:?}",
                errno_text(e)
            ))),
        }
    }
}

/// The BTF type name in a `PTR_TO_BTF_ID` register type (`reg_type_str` + the name).
fn pointee_name(t: &str) -> String {
    let mut s = t.split('(').next().unwrap_or(t);
    const FLAGS: [&str; 7] = [
        "rdonly_",
        "ringbuf_",
        "user_",
        "percpu_",
        "rcu_",
        "untrusted_",
        "trusted_",
    ];
    while let Some(rest) = FLAGS.iter().find_map(|p| s.strip_prefix(p)) {
        s = rest;
    }
    let s = s
        .strip_prefix("ptr_or_null_")
        .or_else(|| s.strip_prefix("ptr_"))
        .unwrap_or(s);
    String::from(s)
}

/// The route of a map no program can look into whose type takes no special field.
pub const CREATED_EMPTY: &str = "BPF_MAP_CREATE created it, and map_check_btf refuses every \
     special field in a map of its type (EOPNOTSUPP): its record holds none";

/// Every field the kernel recorded in the target's values, in offset order. `hints` are
/// offsets to try first (the model's); any offset is found without them.
pub fn kernel_fields(
    target: &ProbeTarget<'_>,
    hints: &[u32],
) -> (Result<Vec<KernelField>, Status>, &'static str, u32) {
    let route = match route_for(target) {
        Ok(r) => r,
        Err(_) if !takes_special_fields(target.map_type) && !matches!(target.map_type, 12 | 13) => {
            return (Ok(Vec::new()), CREATED_EMPTY, 0);
        }
        Err(s) => return (Err(s), "", 0),
    };
    let mut p = Prober {
        route,
        programs: 0,
        new_objects: NewObjects::of(target),
    };
    let res = read_fields(&mut p, hints);
    (res, route.desc, p.programs)
}

/// Whether `bpf_kptr_xchg` takes, into the local kptr at `offset` of the target's values
/// (`percpu`: a per-CPU kptr), an object `bpf_obj_new_impl` (`bpf_percpu_obj_new_impl`)
/// made of the program-BTF struct named `name` ([`KptrFacts::takes_new_object`] asks it
/// for the pointee's own name). `None` when it cannot be asked.
pub fn takes_new_object(
    target: &ProbeTarget<'_>,
    offset: u32,
    percpu: bool,
    name: &str,
) -> Result<Option<bool>, Status> {
    let route = route_for(target)?;
    let mut p = Prober {
        route,
        programs: 0,
        new_objects: NewObjects::of(target),
    };
    let class = if percpu {
        Class::PercpuKptr
    } else {
        Class::Kptr
    };
    p.takes_new_object(offset, class, name)
}

fn read_fields(p: &mut Prober<'_>, hints: &[u32]) -> Result<Vec<KernelField>, Status> {
    let (res, log) = p.load(Body::None, 1)?;
    if let Err(e) = res {
        let msg = last_msg(&log);
        return Err(Status::NotJudged(format!(
            "{}: BPF_PROG_LOAD refused with {}{}",
            p.route.desc,
            errno_text(e),
            if msg.is_empty() {
                String::from(" before the verifier ran (no log)")
            } else {
                format!(": {msg}")
            }
        )));
    }
    let mut hints: Vec<u32> = hints.to_vec();
    hints.sort_unstable();
    hints.dedup();
    let mut out = Vec::new();
    let mut pos = 0u32;
    while pos < p.route.value_size {
        let hint = hints.iter().copied().find(|h| *h >= pos);
        let Some((s, class)) = p.next_field(pos, hint)? else {
            break;
        };
        let f = p.identify(s, class)?;
        pos = s.saturating_add(field_size(f.ty));
        out.push(f);
    }
    Ok(out)
}

/// Judges `model` (the model's fields for the map) against what the running kernel
/// recorded for `target`: per model field `same` or `DIFFERS`, plus the kernel's fields the
/// model lacks. Kptrs compare type, pointee name and [`KptrFacts`] (referenced, local,
/// and so whether the field has a destructor); a uptr compares its pointee's size when
/// `target.prog_btf` is given.
///
/// Routes to the values: `bpf_map_lookup_elem` in SCHED_CLS (HASH, ARRAY, their per-CPU
/// and LRU variants, LPM_TRIE, global data), two lookups for ARRAY_OF_MAPS/HASH_OF_MAPS
/// (the inner template's record), `bpf_sk_storage_get(skb->sk)` and
/// `bpf_task_storage_get`/`bpf_cgrp_storage_get` with a NULL owner in SCHED_CLS,
/// `bpf_get_local_storage` in CGROUP_SKB, `bpf_inode_storage_get` in an LSM program. A
/// map type no program can look into and that takes no special field is judged by its
/// creation ([`CREATED_EMPTY`]); a route this machine refuses (LSM programs) gives
/// [`Status::NotJudged`].
pub fn judge_fields(target: &ProbeTarget<'_>, model: &[FieldReport]) -> FieldJudgement {
    let hints: Vec<u32> = model.iter().map(|f| f.offset).collect();
    let (res, route, programs) = kernel_fields(target, &hints);
    let kernel = match res {
        Ok(k) => k,
        Err(s) => return FieldJudgement::stopped(s, route, programs),
    };
    let fields = model
        .iter()
        .map(|m| {
            let k = kernel.iter().find(|k| k.offset == m.offset).cloned();
            let verdict = match &k {
                None => Verdict::Differs(format!("no field at +{}", m.offset)),
                Some(k) if same_field(m, k, target.prog_btf) => Verdict::Same,
                Some(k) => Verdict::Differs(k.to_string()),
            };
            FieldVerdict {
                model: m.clone(),
                kernel: k,
                verdict,
            }
        })
        .collect();
    let kernel_only = kernel
        .into_iter()
        .filter(|k| !model.iter().any(|m| m.offset == k.offset))
        .collect();
    FieldJudgement {
        status: Status::Judged,
        route,
        fields,
        kernel_only,
        programs,
    }
}

fn same_field(m: &FieldReport, k: &KernelField, btf: Option<&BtfData>) -> bool {
    if m.ty != k.ty {
        return false;
    }
    match k.ty {
        "kptr_ref" | "kptr_unref" | "percpu_kptr" => {
            m.pointee == k.pointee && k.kptr.is_some_and(|x| same_kptr(m, &x))
        }
        "uptr" => match (btf, &m.pointee, k.pointee_size) {
            (Some(b), Some(name), Some(sz)) => b
                .local_types()
                .any(|t| t.is_struct() && b.name_by_offset(t.name_off()) == name && t.size() == sz),
            (Some(_), Some(_), None) => false,
            _ => true,
        },
        _ => true,
    }
}

/// The model's kptr against what `bpf_kptr_xchg` showed: referenced or not, local or
/// not where shown, and a destructor exactly where the kernel must have one.
fn same_kptr(m: &FieldReport, k: &KptrFacts) -> bool {
    let model_referenced = m.ty != "kptr_unref";
    model_referenced == k.referenced
        && k.local.is_none_or(|l| m.local == Some(l))
        && k.takes_new_object != Some(false)
        && m.dtor.is_some() == k.has_dtor()
}

/// The BTF id of the FUNC `name` in `/sys/kernel/btf/vmlinux` (the kfuncs the kptr probes
/// call), each looked up once.
fn vmlinux_func_id(name: &'static str) -> Option<i32> {
    static IDS: OnceLock<Vec<(&'static str, Option<u32>)>> = OnceLock::new();
    IDS.get_or_init(|| {
        let data = std::fs::read(crate::kernel_btf::SYS_VMLINUX).unwrap_or_default();
        [
            "bpf_obj_drop_impl",
            "bpf_percpu_obj_drop_impl",
            "bpf_obj_new_impl",
            "bpf_percpu_obj_new_impl",
        ]
        .into_iter()
        .map(|n| (n, btf_func_id(&data, n)))
        .collect()
    })
    .iter()
    .find(|(n, _)| *n == name)
    .and_then(|(_, id)| *id)
    .and_then(|id| i32::try_from(id).ok())
}

/// BTF id of the FUNC [`LSM_HOOK`] in `/sys/kernel/btf/vmlinux`, read once.
fn lsm_hook_id() -> Option<u32> {
    static ID: OnceLock<Option<u32>> = OnceLock::new();
    *ID.get_or_init(|| {
        let data = std::fs::read(crate::kernel_btf::SYS_VMLINUX).ok()?;
        btf_func_id(&data, LSM_HOOK)
    })
}

fn rd32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_ne_bytes([s[0], s[1], s[2], s[3]]))
}

/// The id of the FUNC named `name` in raw (base) BTF `data`, by a walk of its type records.
fn btf_func_id(data: &[u8], name: &str) -> Option<u32> {
    if data.get(0..2)? != 0xEB9F_u16.to_ne_bytes() {
        return None;
    }
    let hdr = rd32(data, 4)? as usize;
    let (toff, tlen) = (rd32(data, 8)? as usize, rd32(data, 12)? as usize);
    let (soff, slen) = (rd32(data, 16)? as usize, rd32(data, 20)? as usize);
    let types = data.get(hdr.checked_add(toff)?..hdr.checked_add(toff)?.checked_add(tlen)?)?;
    let strs = data.get(hdr.checked_add(soff)?..hdr.checked_add(soff)?.checked_add(slen)?)?;
    let (mut at, mut id) = (0usize, 1u32);
    while at + 12 <= types.len() {
        let (name_off, info) = (rd32(types, at)? as usize, rd32(types, at + 4)?);
        let (kind, vlen) = ((info >> 24) & 0x1f, (info & 0xffff) as usize);
        let extra = match kind {
            1 | 14 | 17 => 4,             // INT, VAR, DECL_TAG
            3 => 12,                      // ARRAY
            4 | 5 | 15 | 19 => 12 * vlen, // STRUCT, UNION, DATASEC, ENUM64
            6 | 13 => 8 * vlen,           // ENUM, FUNC_PROTO
            2 | 7..=12 | 16 | 18 => 0,    // PTR, FWD, TYPEDEF, modifiers, FUNC, FLOAT, TYPE_TAG
            _ => return None,
        };
        if kind == 12 {
            let n = strs.get(name_off..)?;
            let n = &n[..n.iter().position(|b| *b == 0)?];
            if n == name.as_bytes() {
                return Some(id);
            }
        }
        at += 12 + extra;
        id += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_classify() {
        assert_eq!(
            classify("bpf_timer cannot be accessed directly by load/store"),
            Some(Class::Plain("timer"))
        );
        assert_eq!(
            classify("kptr cannot be accessed indirectly by helper"),
            Some(Class::Kptr)
        );
        assert_eq!(
            classify("percpu_kptr cannot be accessed indirectly by helper"),
            Some(Class::PercpuKptr)
        );
        assert_eq!(classify("invalid access to map value"), None);
        assert_eq!(
            classify("bpf_foo cannot be accessed directly by load/store"),
            None
        );
    }

    #[test]
    fn pointee_names() {
        assert_eq!(
            pointee_name("rcu_ptr_or_null_task_struct(id=2)"),
            "task_struct"
        );
        assert_eq!(
            pointee_name("percpu_rcu_ptr_or_null_plainobj(id=1)"),
            "plainobj"
        );
        assert_eq!(
            pointee_name("untrusted_ptr_or_null_rcu_head(id=1)"),
            "rcu_head"
        );
        assert_eq!(
            pointee_name("rcu_ptr_or_null_node_data(id=2,non_own_ref)"),
            "node_data"
        );
    }

    #[test]
    fn func_id_walk() {
        use kernel_core::btf::builder::BtfBuilder;
        let mut b = BtfBuilder::new();
        let int = b.int("int", 4, 1, 32);
        let st = b.struct_("s", 4, &[("a", int, 0)]);
        let proto = b.func_proto(int, &[("p", st)]);
        let f = b.func("f", proto, 1);
        let g = b.func("g", proto, 1);
        let blob = b.build();
        assert_eq!(btf_func_id(&blob, "g"), Some(g));
        assert_eq!(btf_func_id(&blob, "f"), Some(f));
        assert_eq!(btf_func_id(&blob, "s"), None);
        assert_eq!(btf_func_id(&blob[..30], "g"), None);
    }
}
