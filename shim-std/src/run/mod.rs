//! Run-time scenarios (`kptr-model run`): a text file of map operations and program
//! steps on one map of a BPF object, run on the model and, with `--kernel`, on the
//! running kernel, with one observation per step (which object a slot holds, each
//! step's result or errno). The format is documented in `tests/scenarios/README.md`:
//!
//! ```text
//! object bpf/obj/sc_hash.o   # the object (relative to the scenario file)
//! map vals                   # its map the steps act on (default: vals)
//! stash 0 7                  # program: bpf_obj_new id 7, bpf_kptr_xchg into key 0
//! peek 0 -> holds 7          # program: which object key 0's slot holds
//! update 0 exist             # user space: BPF_MAP_UPDATE_ELEM (any|noexist|exist|lock)
//! delete 0                   # user space: BPF_MAP_DELETE_ELEM
//! update self lock           # a local storage map's key: the owner the runner makes
//! update 0 any data 5,6      # per-CPU: CPU 0's slice gets data 5, CPU 1's 6
//! values 0                   # user space: BPF_MAP_LOOKUP_ELEM, each CPU's data
//! timer-init 0               # program: bpf_timer_init on the value's timer
//! close-fd                   # user space closes its fd of the map (map_release_uref)
//! outer-delete 0             # user space: delete the map of maps' slot holding the map
//! owner-free                 # the storage owner goes (a cgroup removed, a socket closed)
//! ```
//!
//! `-> RESULT` after a step is what the step must give (the model, and the kernel
//! when asked). `leaks N` says how many objects the model must find left after the
//! map's close (a kernel leak the scenario reproduces; 0 by default).

pub mod kernel;
pub mod model;

use std::path::{Path, PathBuf};

use kernel_core::Errno;

use crate::elf::LoadError;

/// `BPF_NOEXIST`, `BPF_EXIST`, `BPF_F_LOCK`.
pub const BPF_NOEXIST: u64 = 1;
/// `BPF_EXIST`.
pub const BPF_EXIST: u64 = 2;
/// `BPF_F_LOCK`.
pub const BPF_F_LOCK: u64 = 4;

/// The most keys `fill` tries.
pub const FILL_MAX: u32 = 4096;

/// The key `self`: a local storage map's owner (the runner's thread for task storage,
/// a cgroup it creates, a UDP socket it opens), named in user-space steps by its fd
/// (a pidfd, the cgroup directory's fd, the socket).
pub const OWNER_SELF: u32 = u32::MAX;

/// The offset of `struct val`'s `data` in the scenario objects (tests/scenarios/bpf/
/// scenario.h: a `bpf_spin_lock` or a `__u32`, then `data`): what `update ... data`
/// writes and `values` reads.
pub const DATA_OFF: usize = 4;

/// One step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Program: a new object with id `.1` exchanged into key `.0`'s slot; the
    /// displaced object is reported and dropped.
    Stash(u32, u64),
    /// Program: the slot emptied; the object taken is reported and dropped.
    Take(u32),
    /// Program: the slot's object reported and put back.
    Peek(u32),
    /// Program (hash maps): look the value up, delete the key with
    /// `bpf_map_delete_elem` while holding it, then stash a new object with id `.1`
    /// into the unlinked element.
    StashDeleted(u32, u64),
    /// User space: `BPF_MAP_UPDATE_ELEM` of a zeroed value with these flags; with
    /// `data`, the value's (per-CPU: each CPU's slice's, in order) `data` field set.
    Update(u32, u64, Vec<u32>),
    /// User space: `BPF_MAP_DELETE_ELEM`.
    Delete(u32),
    /// User space: `BPF_MAP_LOOKUP_ELEM`.
    Lookup(u32),
    /// User space: updates with `BPF_NOEXIST` from this key on until one is refused.
    Fill(u32),
    /// User space: `BPF_MAP_LOOKUP_ELEM` with these flags, reporting the value's
    /// `data` (each CPU's, for a per-CPU map).
    Values(u32, u64),
    /// Program: `bpf_timer_init` on the value's timer (objects with a `bpf_timer`).
    TimerInit(u32),
    /// User space closes its fd of the map; the programs keep it (its last user
    /// reference goes: `map_release_uref`). User-space steps on it are then -EBADF.
    CloseFd,
    /// User space: `BPF_MAP_DELETE_ELEM` of this slot of the map of maps that holds
    /// the scenario's map.
    OuterDelete(u32),
    /// User space: `BPF_MAP_UPDATE_ELEM` of this slot of the map of maps with the
    /// scenario's map (its fd).
    OuterUpdate(u32),
    /// The local storage owner goes: the cgroup is removed, the socket closed (its
    /// storage freed: `bpf_cgrp_storage_free`, `bpf_sk_storage_free`). Programs then
    /// find no owner (-ENOENT), user space has no fd for it (-EBADF).
    OwnerFree,
}

impl Step {
    /// A program run (what `BPF_PROG_TEST_RUN` or an iterator runs).
    pub fn is_program(&self) -> bool {
        matches!(
            self,
            Step::Stash(..)
                | Step::StashDeleted(..)
                | Step::Take(_)
                | Step::Peek(_)
                | Step::TimerInit(_)
        )
    }

    /// The key the step names, if any.
    pub fn key(&self) -> Option<u32> {
        match *self {
            Step::Stash(k, _)
            | Step::StashDeleted(k, _)
            | Step::Take(k)
            | Step::Peek(k)
            | Step::Update(k, ..)
            | Step::Delete(k)
            | Step::Lookup(k)
            | Step::Fill(k)
            | Step::Values(k, _)
            | Step::TimerInit(k) => Some(k),
            Step::CloseFd | Step::OuterDelete(_) | Step::OuterUpdate(_) | Step::OwnerFree => None,
        }
    }
}

/// A step with where it came from.
#[derive(Clone, Debug)]
pub struct Line {
    /// Line number in the file (1-based).
    pub no: usize,
    /// The step as written (without its expectation).
    pub text: String,
    /// The step.
    pub step: Step,
    /// What it must give, if the scenario says.
    pub expect: Option<String>,
}

/// A parsed scenario.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// The file.
    pub path: PathBuf,
    /// The object, resolved against the scenario's directory.
    pub object: PathBuf,
    /// The map the steps act on.
    pub map: String,
    /// The steps.
    pub lines: Vec<Line>,
    /// `leaks N`: the objects the model must find left after the map's close (a
    /// kernel leak the scenario reproduces); they are acknowledged in the suite's
    /// allocation tally. Without it, none may be left.
    pub leaks: usize,
}

fn bad(path: &Path, no: usize, why: impl std::fmt::Display) -> LoadError {
    LoadError {
        errno: Errno::EINVAL,
        reason: format!("{}:{no}: {why}", path.display()),
    }
}

/// A key: a number, or `self` ([`OWNER_SELF`]).
fn key(path: &Path, no: usize, w: Option<&str>) -> Result<u32, LoadError> {
    match w {
        Some("self") => Ok(OWNER_SELF),
        _ => num(path, no, w, "key"),
    }
}

/// Update or lookup flags: `any`, `noexist`, `exist`, `lock`, joined by `+`.
fn flags(path: &Path, no: usize, w: &str) -> Result<u64, LoadError> {
    let mut f = 0;
    for part in w.split('+') {
        f |= match part {
            "any" => 0,
            "noexist" => BPF_NOEXIST,
            "exist" => BPF_EXIST,
            "lock" => BPF_F_LOCK,
            _ => {
                return Err(bad(
                    path,
                    no,
                    format!("unknown update flag {w:?} (any, noexist, exist, lock, joined by +)"),
                ));
            }
        };
    }
    Ok(f)
}

fn num<T: std::str::FromStr>(
    path: &Path,
    no: usize,
    w: Option<&str>,
    what: &str,
) -> Result<T, LoadError> {
    let w = w.ok_or_else(|| bad(path, no, format!("missing {what}")))?;
    w.parse()
        .map_err(|_| bad(path, no, format!("{what} {w:?} is not a number")))
}

/// Parses scenario `text` read from `path`.
pub fn parse(path: &Path, text: &str) -> Result<Scenario, LoadError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut object = None;
    let mut map = "vals".to_string();
    let mut leaks = 0;
    let mut lines = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let no = i + 1;
        let body = raw.split('#').next().unwrap_or("").trim();
        if body.is_empty() {
            continue;
        }
        let (step_text, expect) = match body.split_once("->") {
            Some((a, b)) => (a.trim(), Some(b.trim().to_string())),
            None => (body, None),
        };
        let mut w = step_text.split_whitespace();
        let verb = w.next().unwrap_or("");
        let step = match verb {
            "object" => {
                let p = w
                    .next()
                    .ok_or_else(|| bad(path, no, "missing object path"))?;
                object = Some(dir.join(p));
                continue;
            }
            "map" => {
                map = w
                    .next()
                    .ok_or_else(|| bad(path, no, "missing map name"))?
                    .to_string();
                continue;
            }
            "leaks" => {
                leaks = num(path, no, w.next(), "leak count")?;
                continue;
            }
            "stash" => Step::Stash(
                key(path, no, w.next())?,
                num(path, no, w.next(), "object id")?,
            ),
            "stash-deleted" => Step::StashDeleted(
                key(path, no, w.next())?,
                num(path, no, w.next(), "object id")?,
            ),
            "take" => Step::Take(key(path, no, w.next())?),
            "peek" => Step::Peek(key(path, no, w.next())?),
            "update" => {
                let k = key(path, no, w.next())?;
                let f = flags(path, no, w.next().unwrap_or("any"))?;
                let mut data = Vec::new();
                if let Some(d) = w.next() {
                    if d != "data" {
                        return Err(bad(path, no, format!("unexpected {d:?} (data N[,N...])")));
                    }
                    let list = w
                        .next()
                        .ok_or_else(|| bad(path, no, "missing data after `data`"))?;
                    for n in list.split(',') {
                        data.push(num(path, no, Some(n), "data")?);
                    }
                }
                Step::Update(k, f, data)
            }
            "delete" => Step::Delete(key(path, no, w.next())?),
            "lookup" => Step::Lookup(key(path, no, w.next())?),
            "fill" => Step::Fill(num(path, no, w.next(), "first key")?),
            "values" => {
                let k = key(path, no, w.next())?;
                let f = match w.next() {
                    Some(f) => flags(path, no, f)?,
                    None => 0,
                };
                Step::Values(k, f)
            }
            "timer-init" => Step::TimerInit(key(path, no, w.next())?),
            "close-fd" => Step::CloseFd,
            "outer-delete" => Step::OuterDelete(num(path, no, w.next(), "key")?),
            "outer-update" => Step::OuterUpdate(num(path, no, w.next(), "key")?),
            "owner-free" => Step::OwnerFree,
            v => {
                return Err(bad(
                    path,
                    no,
                    format!(
                        "unknown step {v:?} (object, map, leaks, stash, stash-deleted, take, peek, timer-init, update, delete, lookup, values, fill, close-fd, outer-delete, outer-update, owner-free)"
                    ),
                ));
            }
        };
        if let Some(extra) = w.next() {
            return Err(bad(path, no, format!("unexpected {extra:?}")));
        }
        if object.is_none() {
            return Err(bad(path, no, "a step before the `object` line"));
        }
        lines.push(Line {
            no,
            text: step_text.to_string(),
            step,
            expect,
        });
    }
    let object = object.ok_or_else(|| bad(path, 0, "no `object` line"))?;
    Ok(Scenario {
        path: path.to_path_buf(),
        object,
        map,
        lines,
        leaks,
    })
}

/// Reads and parses a scenario file.
pub fn load(path: &Path) -> Result<Scenario, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|e| LoadError {
        errno: Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
        reason: format!("{}: {e}", path.display()),
    })?;
    parse(path, &text)
}

/// What `values` prints: the `data` of each value in `bytes` (one value, or one slice
/// of `slice` bytes per CPU, the first `cpus` of them).
pub fn values_result(bytes: &[u8], slice: usize, cpus: usize) -> String {
    let mut out = String::from("data");
    for v in bytes.chunks(slice.max(1)).take(cpus.max(1)) {
        let d = v
            .get(DATA_OFF..DATA_OFF + 4)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map_or(0, u32::from_ne_bytes);
        out += &format!(" {d}");
    }
    out
}

/// The value user space sends for `data` (each slice's `data` set in order; the
/// rest zero): `size` bytes, `slice` bytes per CPU.
pub fn update_value(size: usize, slice: usize, data: &[u32]) -> Vec<u8> {
    let mut v = vec![0u8; size];
    for (i, d) in data.iter().enumerate() {
        let at = i * slice + DATA_OFF;
        if let Some(b) = v.get_mut(at..at + 4) {
            b.copy_from_slice(&d.to_ne_bytes());
        }
    }
    v
}

/// The map of maps in the scenario's object whose preset slots hold the scenario's
/// map (`.values = { [i] = &map }`), if any: the map `outer-delete` and
/// `outer-update` act on, and through which the programs reach the scenario's map.
pub fn outer_map(maps: &[crate::maps::MapDef], map: &str) -> Option<crate::maps::MapDef> {
    maps.iter()
        .find(|m| m.init_slots.iter().flatten().any(|s| s == map))
        .cloned()
}

/// A step's result as both sides print it.
pub fn errno_result(e: i32) -> String {
    Errno::from_raw(e).to_string()
}

/// What a program step reported (`args->ret`): an object id, an empty slot, or an
/// errno.
pub fn program_result(step: &Step, ret: i64) -> String {
    if ret < 0 {
        return errno_result((-ret) as i32);
    }
    let what = match step {
        Step::Stash(..) | Step::StashDeleted(..) => "old",
        Step::Take(_) => "took",
        Step::TimerInit(_) => return "ok".into(),
        _ => "holds",
    };
    if ret == 0 {
        format!("{what} none")
    } else {
        format!("{what} {ret}")
    }
}

/// A step's observations side by side.
#[derive(Clone, Debug)]
pub struct Observed {
    /// The line.
    pub line: Line,
    /// The model's result.
    pub model: String,
    /// The kernel's, when asked.
    pub kernel: Option<String>,
}

impl Observed {
    /// The kernel agrees with the model (or was not asked).
    pub fn same(&self) -> bool {
        self.kernel.as_ref().is_none_or(|k| *k == self.model)
    }

    /// The expectation, if any, holds on both sides.
    pub fn as_expected(&self) -> bool {
        self.line
            .expect
            .as_ref()
            .is_none_or(|e| *e == self.model && self.kernel.as_ref().is_none_or(|k| k == e))
    }
}
