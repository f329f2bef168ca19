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
    /// User space: `BPF_MAP_UPDATE_ELEM` of a zeroed value with these flags.
    Update(u32, u64),
    /// User space: `BPF_MAP_DELETE_ELEM`.
    Delete(u32),
    /// User space: `BPF_MAP_LOOKUP_ELEM`.
    Lookup(u32),
    /// User space: updates with `BPF_NOEXIST` from this key on until one is refused.
    Fill(u32),
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
                num(path, no, w.next(), "key")?,
                num(path, no, w.next(), "object id")?,
            ),
            "stash-deleted" => Step::StashDeleted(
                num(path, no, w.next(), "key")?,
                num(path, no, w.next(), "object id")?,
            ),
            "take" => Step::Take(num(path, no, w.next(), "key")?),
            "peek" => Step::Peek(num(path, no, w.next(), "key")?),
            "update" => {
                let key = num(path, no, w.next(), "key")?;
                let flags = match w.next().unwrap_or("any") {
                    "any" => 0,
                    "noexist" => BPF_NOEXIST,
                    "exist" => BPF_EXIST,
                    "lock" => BPF_F_LOCK,
                    "exist+lock" | "lock+exist" => BPF_EXIST | BPF_F_LOCK,
                    f => {
                        return Err(bad(
                            path,
                            no,
                            format!(
                                "unknown update flag {f:?} (any, noexist, exist, lock, exist+lock)"
                            ),
                        ));
                    }
                };
                Step::Update(key, flags)
            }
            "delete" => Step::Delete(num(path, no, w.next(), "key")?),
            "lookup" => Step::Lookup(num(path, no, w.next(), "key")?),
            "fill" => Step::Fill(num(path, no, w.next(), "first key")?),
            v => {
                return Err(bad(
                    path,
                    no,
                    format!(
                        "unknown step {v:?} (object, map, stash, stash-deleted, take, peek, update, delete, lookup, fill)"
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
