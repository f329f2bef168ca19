//! The BTF verifier `btf_parse` runs (kernel/bpf/btf.c), as one engine: the header and
//! section checks (`btf_parse_hdr`, `btf_check_sec_info`, `btf_parse_str_sec`), the
//! per-kind meta pass (`btf_check_all_metas`), the resolve pass (`btf_check_all_types`)
//! and the type-tag chain check (`btf_check_type_tags`), with the kernel's errno, its
//! first failing check and, at log level 1, its log text byte for byte.
//!
//! Every rule is one function under the kernel's name, so that a search for a kernel
//! function finds its model: `btf_int_check_meta`, `btf_struct_check_meta`,
//! `btf_array_resolve`, `btf_struct_resolve`, `btf_datasec_resolve`,
//! `btf_decl_tag_resolve`, `btf_modifier_resolve`/`btf_ptr_resolve`/`btf_var_resolve`
//! (one body, `Env::btf_ref_type_resolve`), the `btf_*_check_member` family,
//! `btf_func_proto_check`, `btf_func_check`, `btf_resolve`, `btf_resolve_valid`,
//! `btf_type_id_size`, `env_stack_push`, `env_stack_pop_resolved`, ... Checks run in
//! the kernel's order, so the first failing check, its errno and its log line are the
//! kernel's.
//!
//! The engine is generic over its log ([`BtfLog`]): [`VerifierLog`] at log level 1,
//! [`NoLog`] at level 0, where every log call compiles to nothing. The failing paths
//! are out of line (`#[cold]`), so the accepting path is the same code in both modes.
//!
//! State per type id is one packed 8-byte slot (`Node`): kind, visit state, size or
//! resolved id, and what `btf_type_id_size` gives. The resolve pass follows an edge
//! of the type graph with one load; the slot is only ever read and written whole (a
//! narrower store followed by the word's load would stall store-to-load forwarding).
//! The verified [`BtfData`] keeps the slots: the kernel's `resolved_ids` and
//! `resolved_sizes` are read from them. Names are checked by `super::names`, which
//! classifies the string section once.
//!
//! The passes run in the kernel's order, with two shortcuts of the resolve pass that
//! change nothing the kernel would observe, taken only with the log off (with it on,
//! every turn is taken as the kernel takes it; `tests/tests/btf_fast_path.rs` holds
//! the two modes to the same verdicts, errors and resolved state): a FUNC whose
//! prototype is a lower id passing `btf_func_check`, and a FUNC_PROTO whose return
//! type and parameters are lower ids that will have passed by its turn, are found
//! so by the meta pass, which reads those records anyway, and the resolve pass has
//! nothing to do at their turns (`PRE_OK`). A FUNC so resolved early is seen by any
//! walk before its turn as the kernel has it then, not resolved (`Env::turn_view`).
//! The resolve pass visits only the ids it has something to do for, in id order.
//!
//! With the log off the meta pass also takes the commonest kinds (FUNC, FUNC_PROTO,
//! PTR, STRUCT, UNION) in one loop of two-way tests instead of the kind's table jump:
//! the same checks (the kind's `*_check_meta`, or for a FUNC the tests it makes, each
//! in one comparison) and the same slot. A record that loop does not take, or whose
//! tests it cannot pass at once, goes through `btf_check_meta`, which reports the
//! kernel's failure. A member's plain INT (`PLAIN_INT`) takes the byte-sized
//! member test, which it passes exactly where the INT checks do; a failure goes on
//! to the INT checks for the kernel's message.
//!
//! Split BTF (a module's, on a base) is verified by the same code: ids below
//! `start_id` and string offsets below `start_str_off` are read from the base, whose
//! types count as resolved (`env_type_is_resolved`).
//!
//! Profile flag: `btf_tag_kflag` (kind_flag allowed on TYPE_TAG and DECL_TAG;
//! `btf_ref_type_check_meta`, `btf_decl_tag_check_meta`).

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::marker::PhantomData;

use super::log::{BtfLog, LogName, NoLog, VerifierLog};
use super::names::{Names, btf_name_valid_identifier, btf_name_valid_section};
use super::types::{
    BtfData, BtfMember, BtfVarSecinfo, NOT_VISITED, Node, RESOLVED, TypeRef, VISITED, VOID_OFF,
    View, rd32,
};
use super::uapi::kind::*;
use super::uapi::*;
use crate::errno::Errno;
use crate::profile::Semantics;

pub(crate) use super::names::name_char_rest_ok;

// ---------------------------------------------------------------------------------
// results
// ---------------------------------------------------------------------------------

/// The stage of `BPF_BTF_LOAD` that refused a blob, named after the kernel function
/// whose error `btf_parse` returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BtfStage {
    /// `btf_parse` itself, before the header: the blob's size (`BTF_MAX_SIZE`).
    Parse,
    /// `btf_parse_hdr`, with `btf_check_sec_info`.
    ParseHdr,
    /// `btf_parse_str_sec`.
    ParseStrSec,
    /// `btf_parse_type_sec`'s own checks (the type section's alignment and presence).
    ParseTypeSec,
    /// `btf_check_all_metas`.
    CheckAllMetas,
    /// `btf_check_all_types`.
    CheckAllTypes,
    /// `btf_check_type_tags`.
    CheckTypeTags,
    /// `btf_parse_struct_metas`: after the verifier, in `BPF_BTF_LOAD`.
    ParseStructMetas,
    /// `btf_check_and_fixup_fields` of a struct meta's record.
    CheckAndFixupFields,
    /// `btf_check_ownership_depth`.
    CheckOwnershipDepth,
    /// `btf_alloc_id`, in `btf_new_fd`.
    AllocId,
}

impl BtfStage {
    /// The kernel function's name.
    pub const fn name(self) -> &'static str {
        match self {
            BtfStage::Parse => "btf_parse",
            BtfStage::ParseHdr => "btf_parse_hdr",
            BtfStage::ParseStrSec => "btf_parse_str_sec",
            BtfStage::ParseTypeSec => "btf_parse_type_sec",
            BtfStage::CheckAllMetas => "btf_check_all_metas",
            BtfStage::CheckAllTypes => "btf_check_all_types",
            BtfStage::CheckTypeTags => "btf_check_type_tags",
            BtfStage::ParseStructMetas => "btf_parse_struct_metas",
            BtfStage::CheckAndFixupFields => "btf_check_and_fixup_fields",
            BtfStage::CheckOwnershipDepth => "btf_check_ownership_depth",
            BtfStage::AllocId => "btf_alloc_id",
        }
    }

    /// Whether the verifier proper refused (`btf_parse` up to `btf_check_type_tags`),
    /// which logs the failing check's message; the later stages log none of their own.
    pub const fn is_verifier(self) -> bool {
        !matches!(
            self,
            BtfStage::ParseStructMetas
                | BtfStage::CheckAndFixupFields
                | BtfStage::CheckOwnershipDepth
                | BtfStage::AllocId
        )
    }
}

/// Why a BTF blob was refused: the kernel's errno, the failing check's message (its
/// format string, as in the kernel source), the stage that refused it and, at log
/// level 1, the full verifier log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BtfParseError {
    /// The errno `BPF_BTF_LOAD` returns.
    pub errno: Errno,
    /// The failing check's message template, e.g. `"Invalid magic"`; after the
    /// verifier, the stage's kernel function name.
    pub reason: &'static str,
    /// The stage that refused the blob.
    pub stage: BtfStage,
    /// Whether the failing check writes its own message to the log (false for a
    /// `WARN_ON_ONCE` check, which returns the errno without a line, and for a
    /// refusal after the verifier).
    pub logged: bool,
    /// The verifier log's bytes (empty at log level 0).
    pub log: Vec<u8>,
}

impl BtfParseError {
    /// A refusal after the verifier accepted (struct metas, the id): the stage's
    /// function name is the reason, and `log` is the verifier's (no line of its own).
    pub fn after_verifier(errno: Errno, stage: BtfStage, log: Vec<u8>) -> Self {
        BtfParseError {
            errno,
            reason: stage.name(),
            stage,
            logged: false,
            log,
        }
    }

    /// The last line of the log (the kernel's message for the failing check), or the
    /// reason when no log was kept.
    pub fn message(&self) -> String {
        let mut log = &self.log[..];
        while let Some(l) = log.strip_suffix(b"\n") {
            log = l;
        }
        match log.rsplit(|&b| b == b'\n').next() {
            Some(l) if !l.is_empty() => String::from_utf8_lossy(l).into_owned(),
            _ => String::from(self.reason),
        }
    }
}

impl fmt::Display for BtfParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.errno, self.message())
    }
}

/// Options of one verifier run.
#[derive(Clone, Copy, Debug)]
pub struct ParseOpts {
    /// `log_level` (0 or 1).
    pub log_level: u32,
    /// Run the resolve pass (always for user BTF; the kernel skips it for its own BTF).
    pub resolve: bool,
    /// Behaviour switches of the kernel profile.
    pub sem: Semantics,
}

/// A failed check: the errno and the message template.
#[derive(Clone, Copy, Debug)]
struct Fail {
    errno: Errno,
    reason: &'static str,
    /// The check writes its message to the log (see [`BtfParseError::logged`]).
    logged: bool,
}

/// A check failed; what failed is in [`Env::failed`]. A zero-sized error keeps the
/// accepting path's results in registers.
struct Stop;

type VResult<T = ()> = Result<T, Stop>;

const EINVAL: Errno = Errno::EINVAL;

// ---------------------------------------------------------------------------------
// kinds and the per-type slot
// ---------------------------------------------------------------------------------

/// `btf_type_is_modifier`.
const MODIFIER: KindSet = MODIFIER_KINDS;
/// `btf_type_needs_resolve`.
const NEEDS_RESOLVE: KindSet = NEEDS_RESOLVE_KINDS;
/// `btf_type_nosize` (void is kind 0 here).
const NOSIZE: KindSet = NOSIZE_KINDS;
/// `btf_type_has_size`.
const HAS_SIZE: KindSet = HAS_SIZE_KINDS;
/// `btf_type_is_resolve_source_only`.
const SOURCE_ONLY: KindSet = SOURCE_ONLY_KINDS;
/// `btf_type_is_struct`.
const STRUCTS: KindSet = STRUCT_KINDS;
const ENUMS: KindSet = ENUM_KINDS;
/// Member kinds checked as whole bytes at a byte offset (`btf_ptr_check_member`,
/// `btf_array_check_member`, `btf_struct_check_member`, `btf_enum_check_member`).
const BYTE_SIZED: KindSet = KindSet::of(&[PTR, ARRAY, STRUCT, UNION, ENUM, ENUM64]);
/// Kinds whose slot holds `t->type` until they are resolved.
const REFS: KindSet = MODIFIER.with(KindSet::of(&[PTR, VAR, DECL_TAG, FUNC]));
/// Kinds `btf_type_id_size` sizes by themselves.
const SIZED: KindSet = HAS_SIZE.with(KindSet::of(&[PTR, ARRAY]));
/// The kinds whose slot holds a size: `btf_type_has_size` and ARRAY.
const SIZED_NOT_PTR: KindSet = HAS_SIZE.with(KindSet::of(&[ARRAY]));
/// MODIFIER and VAR: `btf_type_id_size` follows their resolved id.
const MODIFIER_OR_VAR: KindSet = MODIFIER.with(KindSet::of(&[VAR]));

/// `enum resolve_mode` as the kinds that are not sinks in it
/// (`env_type_is_resolve_sink`): `RESOLVE_TBD`, `RESOLVE_PTR`,
/// `RESOLVE_STRUCT_OR_ARRAY`.
const MODE_TBD: KindSet = NEEDS_RESOLVE;
const MODE_PTR: KindSet = MODIFIER.with(KindSet::of(&[PTR]));
const MODE_STRUCT_OR_ARRAY: KindSet = MODIFIER.with(STRUCTS).with(KindSet::of(&[ARRAY]));
/// The mode `env_stack_push` leaves after pushing a type of each kind in
/// `RESOLVE_TBD`.
const AFTER_PUSH: [KindSet; 32] = {
    let mut t = [MODE_TBD; 32];
    t[PTR as usize] = MODE_PTR;
    t[STRUCT as usize] = MODE_STRUCT_OR_ARRAY;
    t[UNION as usize] = MODE_STRUCT_OR_ARRAY;
    t[ARRAY as usize] = MODE_STRUCT_OR_ARRAY;
    t
};

/// `btf_type_id_size` of the id succeeds (fixed once the id is resolved).
const TIS: u8 = 1;
/// A FUNC_PROTO with a parameter that has no name but a type, which `btf_func_check`
/// refuses for any FUNC of that prototype.
const BAD_PARAM: u8 = 2;
/// An INT whose `btf_int_check_member` and `btf_int_check_kflag_member` pass exactly
/// where a byte-sized member's check does: no bit offset, `8 * size` bits, and a
/// size of 1, 2, 4, 8 or 16 bytes (`btf_type_int_is_regular`). The bit of
/// `BAD_PARAM`, which only a FUNC_PROTO has.
const PLAIN_INT: u8 = 2;
/// Resolved, or of a kind that never needs it (`btf_type_needs_resolve`): one test
/// where the kernel asks both.
const DONE: u8 = 4;
/// A FUNC_PROTO with a named parameter whose name `btf_func_proto_check` refuses (an
/// invalid offset or not an identifier), found while the metas read the records in
/// section order; `btf_func_proto_check` then makes the name checks itself.
const BAD_ARG_NAME: u8 = 8;
/// `DONE` and `TIS` and not source-only (`btf_type_is_resolve_source_only`): the
/// state in which a FUNC_PROTO's return type or parameter, or a member, passes every
/// test before its size check. Kept with `DONE` and `TIS`, so that the common case
/// is one test.
const ARG_OK: u8 = 16;

/// Known by the meta pass: once the resolve pass has come past this type's id (so
/// that it and every lower id are resolved), `ARG_OK` holds. Set for a kind that
/// `btf_type_id_size` sizes by itself and that is not source-only, and for a
/// modifier whose target is a lower id with `FINAL_OK` (a modifier resolves to what
/// its target resolves to, `btf_modifier_resolve`).
const FINAL_OK: u8 = 32;
/// Found by the meta pass, from lower ids only, to hold when the resolve pass comes
/// to this id.
///
/// A FUNC: its type is a lower-id FUNC_PROTO without a parameter that has a type but
/// no name, so its `btf_resolve` at its turn (one step, `btf_func_resolve`) passes
/// and resolves it to that prototype. The meta pass gives it that state at once, so
/// the resolve pass has nothing to do at its turn; until the turn, a walk that comes
/// to it sees the kernel's state, not resolved ([`Env::turn_view`]).
///
/// A FUNC_PROTO: no parameter name it would refuse, no bad vararg, and its return
/// type and parameters are lower ids with `FINAL_OK`, so every test of
/// `btf_func_proto_check` passes and nothing is left for it to resolve.
const PRE_OK: u8 = 64;

/// A FUNC that the meta pass resolved with `PRE_OK`: until its turn, walks see it
/// as not resolved ([`Env::turn_view`]).
const EARLY: u8 = 128;

/// The slot the meta pass gives a type of kind `k` whose `t->size`/`t->type` is `st`,
/// with `extra` flags found by its kind's check (`BAD_PARAM`, `BAD_ARG_NAME`,
/// `PRE_OK`, a modifier's `FINAL_OK`), and whether the resolve pass has something to
/// do at its turn. Called with a constant kind, it folds to constants.
#[inline(always)]
const fn initial_slot(st: u32, k: u8, extra: u8) -> (Node, bool) {
    // A FUNC or PTR with PRE_OK is resolved now (see PRE_OK).
    let early = (k == FUNC || k == PTR) && extra & PRE_OK != 0;
    let todo = (NEEDS_RESOLVE.has(k) && !early) || (k == FUNC_PROTO && extra & PRE_OK == 0);
    let mut flags = extra;
    if early {
        flags |= EARLY;
    }
    if SIZED.has(k) {
        flags |= TIS;
        if !SOURCE_ONLY.has(k) {
            flags |= FINAL_OK;
        }
    }
    if !NEEDS_RESOLVE.has(k) || early {
        flags |= DONE;
    }
    let a = if HAS_SIZE.with(REFS).has(k) { st } else { 0 };
    let visit = if early { RESOLVED } else { NOT_VISITED };
    (Node::new(a, k, visit, k, with_arg_ok(flags, k)), todo)
}

/// The slot of [`initial_slot`] for a kind's class, with kind `k` of the class
/// put in as its kind and resolved kind.
#[inline(always)]
const fn of_kind((n, todo): (Node, bool), k: u8) -> (Node, bool) {
    let n = Node(n.0 & !(0xff << 32) & !(0xff << 48) | (k as u64) << 32 | (k as u64) << 48);
    (n, todo)
}

/// The flags of a slot whose `DONE` and `TIS` are `flags`, of kind `k`.
#[inline(always)]
const fn with_arg_ok(flags: u8, k: u8) -> u8 {
    if flags & (DONE | TIS) == DONE | TIS && !SOURCE_ONLY.has(k) {
        flags | ARG_OK
    } else {
        flags
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    CheckMeta,
    CheckType,
}

/// `btf_add_type`'s growth of the `types` array, kept to reproduce its limit check.
pub(crate) struct TypesCap {
    pub(crate) size: u32,
}

impl TypesCap {
    /// The number of types (void included) at which `btf_add_type` first refuses
    /// one, for a BTF whose first id is `start_id`; `None` if it never does.
    pub(crate) fn limit(start_id: u32) -> Option<u32> {
        let mut c = TypesCap { size: 0 };
        let mut n = 0u32;
        loop {
            if c.size == n {
                if !c.add(n, start_id) {
                    return Some(n);
                }
                if c.size == n {
                    // No growth left (the kernel's array is full): never refused.
                    return None;
                }
            }
            n = c.size;
        }
    }

    #[inline(always)]
    pub(crate) fn add(&mut self, nr_types: u32, start_id: u32) -> bool {
        if self.size == nr_types {
            if start_id.wrapping_add(self.size) == BTF_MAX_TYPE {
                return false;
            }
            let expand = (self.size >> 2).max(16);
            self.size = BTF_MAX_TYPE.min(self.size + expand);
        }
        true
    }
}

/// The STRUCT or UNION whose member is checked: its id, `t->size` and kind_flag.
#[derive(Clone, Copy)]
struct Holder {
    id: u32,
    size: u32,
    kflag: bool,
}

/// The header words of the record being checked by the meta pass.
#[derive(Clone, Copy)]
struct Rec {
    /// Word index of the record in the type section.
    cur: usize,
    name: u32,
    info: u32,
    /// `t->size` / `t->type`.
    st: u32,
}

impl Rec {
    #[inline(always)]
    fn vlen(self) -> usize {
        btf_info_vlen(self.info) as usize
    }
    #[inline(always)]
    fn kflag(self) -> bool {
        btf_info_kflag(self.info)
    }
}

/// `struct btf_verifier_env` with the verifier's view of the `struct btf` it fills.
/// `SPLIT`: the BTF has a base (split BTF); without one, `start_id` and
/// `start_str_off` are 0 and nothing is read from a base, at no cost.
struct Env<'a, 'l, L: BtfLog, const SPLIT: bool> {
    log: &'l mut L,
    /// The whole blob.
    data: &'a [u8],
    /// The type section as native-endian words (a copy where it is not 4-aligned).
    w: &'a [u32],
    /// Byte offset of the type section in the blob, and of its end.
    sec: usize,
    types_end: usize,
    /// `hdr.type_len`.
    type_len: usize,
    base: Option<&'a BtfData>,
    start_id: u32,
    start_str_off: u32,
    str_start: usize,
    str_len: u32,
    names: Names<'a>,
    sem: Semantics,
    /// Per local type: the blob offset of its record (`VOID_OFF` for void):
    /// `btf->types`.
    rec: Vec<u32>,
    /// Per local type: its slot.
    nodes: Vec<Node>,
    /// The modifiers, ascending: the type-tag pass walks only them.
    mods: Vec<u32>,
    /// The ids the resolve pass has something to do for at their turn, ascending:
    /// those that need resolving (`btf_type_needs_resolve`) but a FUNC with
    /// `PRE_OK`, and each FUNC_PROTO without `PRE_OK`.
    work: Vec<u32>,
    /// The id whose turn it is in `btf_check_all_types`.
    cursor: u32,
    stack: [(u32, u16); MAX_RESOLVE_DEPTH],
    top: usize,
    /// The kinds that are not sinks in the current `env->resolve_mode`.
    mode: KindSet,
    log_type_id: u32,
    phase: Phase,
    stage: BtfStage,
    failed: Fail,
}

macro_rules! vlog {
    ($env:expr, $($arg:tt)*) => {
        if $env.log.needed() {
            $env.log.write(format_args!($($arg)*));
        }
    };
}

// ---------------------------------------------------------------------------------
// reading types, names and slots
// ---------------------------------------------------------------------------------

impl<'a, L: BtfLog, const SPLIT: bool> Env<'a, '_, L, SPLIT> {
    /// Records a failed check.
    #[cold]
    #[inline(never)]
    fn fail(&mut self, errno: Errno, reason: &'static str) -> Stop {
        self.failed = Fail {
            errno,
            reason,
            logged: true,
        };
        Stop
    }

    /// A `WARN_ON_ONCE` check failed: the kernel returns the errno with no log line.
    fn fail_warn(&mut self, errno: Errno, reason: &'static str) -> Stop {
        self.failed = Fail {
            errno,
            reason,
            logged: false,
        };
        Stop
    }

    /// `btf->start_id`: 0 without a base.
    #[inline(always)]
    fn start_id(&self) -> u32 {
        if SPLIT { self.start_id } else { 0 }
    }

    /// `btf->start_str_off`: 0 without a base.
    #[inline(always)]
    fn start_str_off(&self) -> u32 {
        if SPLIT { self.start_str_off } else { 0 }
    }

    /// The local index of `id` (huge for a base id).
    #[inline(always)]
    fn local(&self, id: u32) -> usize {
        id.wrapping_sub(self.start_id()) as usize
    }

    /// The slot of `id`; `None` past the last type.
    #[inline(always)]
    fn node(&self, id: u32) -> Option<Node> {
        match self.nodes.get(self.local(id)) {
            Some(&n) => Some(n),
            None if SPLIT => self.base_node(id),
            None => None,
        }
    }

    /// The slot a base type would have: resolved (`env_type_is_resolved`), with the
    /// base's resolved id and what its `btf_type_id_size` gives.
    #[cold]
    #[inline(never)]
    fn base_node(&self, id: u32) -> Option<Node> {
        let b = self.base?;
        if id >= self.start_id {
            return None;
        }
        let t = b.type_by_id(id)?;
        let k = t.kind_raw();
        let a = if HAS_SIZE.has(k) {
            t.size()
        } else if k == ARRAY {
            b.resolved_type_size(id)
        } else {
            b.resolved_type_id(id)
        };
        let mut flags = DONE;
        let mut rk = k;
        if let Some((rt, _, _)) = b.type_id_size(id) {
            flags |= TIS;
            rk = rt.kind_raw();
        }
        if k == FUNC_PROTO
            && (0..t.vlen()).any(|i| {
                let (no, ty) = t.param(i);
                no == 0 && ty != 0
            })
        {
            flags |= BAD_PARAM;
        }
        let flags = with_arg_ok(flags, k);
        let flags = if flags & ARG_OK != 0 {
            flags | FINAL_OK
        } else {
            flags
        };
        Some(Node::new(a, k, RESOLVED, rk, flags))
    }

    /// Kind of `id`; `None` past the last type.
    #[inline(always)]
    fn kind(&self, id: u32) -> Option<u8> {
        self.node(id).map(|n| n.kind())
    }

    /// Word index of local `id`'s record in the type section (out of range for void
    /// and base ids).
    #[inline(always)]
    fn word_index(&self, id: u32) -> usize {
        let r = self.rec.get(self.local(id)).copied().unwrap_or(VOID_OFF);
        (r as usize).wrapping_sub(self.sec) / 4
    }

    /// Word `i` of `id`'s record, the 12-byte header's three first (0 when absent).
    #[inline(always)]
    fn word(&self, id: u32, i: usize) -> u32 {
        match self.w.get(self.word_index(id).wrapping_add(i)) {
            Some(&x) => x,
            None if SPLIT => self.base_word(id, i),
            None => 0,
        }
    }

    #[cold]
    #[inline(never)]
    fn base_word(&self, id: u32, i: usize) -> u32 {
        if id >= self.start_id {
            return 0;
        }
        match self.base.and_then(|b| b.type_by_id(id)) {
            Some(t) if t.is_void() => 0,
            Some(t) => match i {
                0 => t.name_off(),
                1 => t.info(),
                2 => t.size_or_type(),
                _ => rd32(t.trailing(), (i - 3) * 4),
            },
            None => 0,
        }
    }

    /// `t->size` / `t->type` of `id` (0 for void and unknown ids).
    #[inline(always)]
    fn st(&self, id: u32) -> u32 {
        self.word(id, 2)
    }

    /// `t->info` of `id`.
    #[inline(always)]
    fn info(&self, id: u32) -> u32 {
        self.word(id, 1)
    }

    /// The words of local `id`'s record after its header, `n` of them (empty when
    /// absent).
    #[inline(always)]
    fn data(&self, id: u32, n: usize) -> &'a [u32] {
        let r = self.word_index(id).wrapping_add(3);
        self.w.get(r..r.wrapping_add(n)).unwrap_or(&[])
    }

    /// The `info` word of local `id`'s record and the `vlen * 3` words after its
    /// header (a STRUCT's, UNION's or DATASEC's entries); empty when absent.
    #[inline(always)]
    fn record(&self, id: u32) -> (u32, &'a [u32]) {
        let r = self.word_index(id);
        let w = self.w;
        let Some(&info) = w.get(r.wrapping_add(1)) else {
            return (0, &[]);
        };
        let n = btf_info_vlen(info) as usize * 3;
        let d = w.get(r + 3..r + 3 + n).unwrap_or(&[]);
        (info, d)
    }

    /// `resolved_ids[id]` of a type that is not an ARRAY (see [`Node`]).
    #[inline(always)]
    fn rid(&self, id: u32) -> u32 {
        self.node(id).map_or(0, |n| {
            if HAS_SIZE.has(n.kind()) || n.kind() == ARRAY || n.visit() != RESOLVED {
                0
            } else {
                n.a()
            }
        })
    }

    /// `resolved_sizes[id]`: only an ARRAY's is ever set.
    #[inline(always)]
    fn rsize(&self, id: u32) -> u32 {
        self.node(id)
            .map_or(0, |n| if n.kind() == ARRAY { n.a() } else { 0 })
    }

    /// The slot `n` of `id` as the kernel has it now: a FUNC resolved early
    /// (`PRE_OK`) whose turn has not come is not resolved yet.
    #[inline(always)]
    fn turn_view(&self, id: u32, n: Node) -> Node {
        if n.flags() & EARLY != 0 && id >= self.cursor {
            if MODIFIER_OR_VAR.has(n.kind()) {
                return self.before_turn(id, n);
            }
            // A FUNC's or PTR's slot holds its `t->type` either way.
            let flags = n.flags() & !(DONE | PRE_OK | EARLY | ARG_OK);
            Node::new(n.a(), n.kind(), NOT_VISITED, n.kind(), flags)
        } else {
            n
        }
    }

    /// The slot of an early-resolved `id` before the resolve pass: `t->type`, its
    /// kind, and none of what resolving gave it (DONE, ARG_OK, a modifier's TIS).
    #[cold]
    #[inline(never)]
    fn before_turn(&self, id: u32, n: Node) -> Node {
        let k = n.kind();
        let mut flags = n.flags() & !(DONE | PRE_OK | EARLY | ARG_OK);
        if MODIFIER_OR_VAR.has(k) {
            flags &= !TIS;
        }
        Node::new(self.st(id), k, NOT_VISITED, k, flags)
    }

    /// `env_type_is_resolved`.
    #[inline(always)]
    fn is_resolved(&self, id: u32) -> bool {
        self.node(id).is_some_and(|n| n.visit() == RESOLVED)
    }

    /// `btf_type_id_size` of `id`, whose slot is `n`: (resolved id, size, its kind).
    #[inline(always)]
    fn tis(&self, id: u32, n: Node) -> Option<(u32, u32, u8)> {
        self.tis_flags(id, n).map(|(r, size, k, _)| (r, size, k))
    }

    /// [`Self::tis`], with the flags of the slot of the type it sizes.
    #[inline(always)]
    fn tis_flags(&self, id: u32, n: Node) -> Option<(u32, u32, u8, u8)> {
        if n.flags() & TIS == 0 {
            return None;
        }
        let r = if MODIFIER_OR_VAR.has(n.kind()) {
            n.a()
        } else {
            id
        };
        // A load and a select: whether `r` is `id` follows no pattern.
        let own = self.node(r).unwrap_or(Node(0));
        let size = if n.rkind() == PTR { 8 } else { own.a() };
        Some((r, size, n.rkind(), own.flags()))
    }

    /// `btf_type_id_size` (kernel/bpf/btf.c): the sized type behind `id` (through a
    /// resolved modifier or VAR) as (its id, its size, its kind); `None` for a type
    /// without size, or a modifier not (yet) resolved to one.
    /// No profile flag changes it.
    #[inline(always)]
    fn btf_type_id_size(&self, id: u32) -> Option<(u32, u32, u8)> {
        self.tis(id, self.node(id)?)
    }

    /// `btf_type_int_is_regular` (kernel/bpf/btf.c) of an INT id: whole bytes, no bit
    /// offset, 1, 2, 4, 8 or 16 bytes. No profile flag changes it.
    fn btf_type_int_is_regular(&self, id: u32) -> bool {
        int_data_is_regular(self.word(id, 3))
    }

    /// `btf_name_offset_valid` (kernel/bpf/btf.c).
    /// No profile flag changes it.
    #[inline(always)]
    fn btf_name_offset_valid(&self, off: u32) -> bool {
        if off > BTF_MAX_NAME_OFFSET {
            return false;
        }
        match off.checked_sub(self.start_str_off()) {
            Some(o) => o < self.str_len,
            None => self.strs().name_offset_valid(off),
        }
    }

    /// Whether the string section's classification proves offset `off` valid and
    /// the name there an identifier (false says nothing).
    #[inline(always)]
    fn proven_name(&self, off: u32) -> bool {
        off.checked_sub(self.start_str_off())
            .is_some_and(|o| self.names.proven(o))
    }

    /// `btf_name_valid_identifier` of the name at a valid offset.
    #[inline(always)]
    fn ident(&self, off: u32) -> bool {
        match off.checked_sub(self.start_str_off()) {
            Some(o) => self.names.ident(o),
            None => self.base_ident(off),
        }
    }

    #[cold]
    #[inline(never)]
    fn base_ident(&self, off: u32) -> bool {
        btf_name_valid_identifier(self.raw_str(off))
    }

    /// `btf_name_offset_valid` and `btf_name_valid_identifier`: one bit where the
    /// string classes prove the name (an offset so proven is valid).
    #[inline(always)]
    fn valid_ident(&self, off: u32) -> bool {
        self.proven_name(off) || self.valid_ident_unproven(off)
    }

    /// [`Self::valid_ident`] where the classification proves nothing (out of line).
    #[cold]
    #[inline(never)]
    fn valid_ident_unproven(&self, off: u32) -> bool {
        self.btf_name_offset_valid(off) && self.ident(off)
    }

    /// `btf_name_offset_valid`, and the name anonymous or an identifier.
    #[inline(always)]
    fn valid_anon_or_named(&self, off: u32) -> bool {
        if off == 0 {
            self.btf_name_offset_valid(0)
        } else {
            self.valid_ident(off)
        }
    }

    /// A name that must be set and be an identifier.
    #[inline(always)]
    fn named(&self, off: u32) -> bool {
        off != 0 && self.ident(off)
    }

    /// A name that may be anonymous, else an identifier.
    #[inline(always)]
    fn anon_or_named(&self, off: u32) -> bool {
        off == 0 || self.ident(off)
    }

    /// `btf_name_by_offset(btf, off)[0] != 0` at a valid offset (a tag's value).
    #[inline(always)]
    fn nonempty_str(&self, off: u32) -> bool {
        match off.checked_sub(self.start_str_off()) {
            Some(o) => self.names.nonempty(o),
            None => self
                .strs()
                .str_by_offset(off)
                .is_some_and(|s| !s.is_empty()),
        }
    }

    /// The bytes from string offset `off` to the end of its section (what the kernel's
    /// name checks may read).
    fn raw_str(&self, off: u32) -> &'a [u8] {
        raw_str_at(&self.strs(), off)
    }

    /// A view of the blob for names (no types).
    fn strs(&self) -> View<'a> {
        View {
            data: self.data,
            types: &[],
            start_id: self.start_id,
            start_str_off: self.start_str_off,
            str_start: self.str_start,
            str_len: self.str_len,
            types_end: self.types_end,
            base: self.base,
        }
    }

    /// The record at word `cur` of the type section, as the log prints it.
    fn rec_type(&self, cur: usize) -> TypeRef<'a> {
        let at = self.sec + cur * 4;
        TypeRef::new(
            self.data.get(at..self.types_end).unwrap_or(&[]),
            self.log_type_id,
        )
    }

    /// Type `id`, as the log prints it.
    fn type_at(&self, id: u32) -> TypeRef<'a> {
        if id < self.start_id() {
            return self
                .base
                .and_then(|b| b.type_by_id(id))
                .unwrap_or(TypeRef::void());
        }
        match self.rec.get(self.local(id)) {
            Some(&off) if off != VOID_OFF => TypeRef::new(
                self.data.get(off as usize..self.types_end).unwrap_or(&[]),
                id,
            ),
            _ => TypeRef::void(),
        }
    }
}

/// Reads up to the end of the string section holding `off` (the kernel never looks
/// further than `KSYM_NAME_LEN + 1` bytes).
fn raw_str_at<'a>(v: &View<'a>, off: u32) -> &'a [u8] {
    if off < v.start_str_off {
        return match v.base {
            Some(b) => raw_str_at(&b.view(), off),
            None => &[],
        };
    }
    let o = v.str_start + (off - v.start_str_off) as usize;
    let end = (v.str_start + v.str_len as usize).min(v.data.len());
    v.data.get(o..end).unwrap_or(&[])
}

/// `btf_type_int_is_regular` on an INT's data word: whole bytes, no bit offset, 1, 2,
/// 4, 8 or 16 bytes.
pub(crate) fn int_data_is_regular(d: u32) -> bool {
    let nr_bits = btf_int_bits(d) as u8;
    let nr_bytes = nr_bits.div_ceil(8);
    !(nr_bits & 7 != 0 || btf_int_offset(d) != 0 || !matches!(nr_bytes, 1 | 2 | 4 | 8 | 16))
}

// ---------------------------------------------------------------------------------
// the log (__btf_verifier_log_type, btf_verifier_log_member, btf_verifier_log_vsi)
// ---------------------------------------------------------------------------------

impl<'a, L: BtfLog, const SPLIT: bool> Env<'a, '_, L, SPLIT> {
    /// The `log_details` op of `t`'s kind.
    fn log_details(&mut self, t: &TypeRef<'a>) {
        let v = self.strs();
        match t.kind() {
            BtfKind::Int => {
                let d = t.int_data();
                let enc = match btf_int_encoding(d) {
                    0 => "(none)",
                    BTF_INT_SIGNED => "SIGNED",
                    BTF_INT_CHAR => "CHAR",
                    BTF_INT_BOOL => "BOOL",
                    _ => "UNKN",
                };
                vlog!(
                    self,
                    "size={} bits_offset={} nr_bits={} encoding={}",
                    t.size(),
                    btf_int_offset(d),
                    btf_int_bits(d),
                    enc
                );
            }
            BtfKind::Ptr
            | BtfKind::Typedef
            | BtfKind::Volatile
            | BtfKind::Const
            | BtfKind::Restrict
            | BtfKind::TypeTag
            | BtfKind::Func => vlog!(self, "type_id={}", t.type_id()),
            BtfKind::Array => {
                let (ty, idx, n) = t.array();
                vlog!(self, "type_id={} index_type_id={} nr_elems={}", ty, idx, n);
            }
            BtfKind::Struct
            | BtfKind::Union
            | BtfKind::Enum
            | BtfKind::Enum64
            | BtfKind::Datasec => vlog!(self, "size={} vlen={}", t.size(), t.vlen()),
            BtfKind::Fwd => vlog!(self, "{}", if t.kflag() { "union" } else { "struct" }),
            BtfKind::FuncProto => {
                let n = t.vlen();
                vlog!(self, "return={} args=(", t.type_id());
                if n == 0 {
                    vlog!(self, "void");
                } else if n == 1 && t.param(0).1 == 0 {
                    vlog!(self, "vararg");
                } else {
                    let (no, ty) = t.param(0);
                    vlog!(self, "{} {}", ty, LogName(v.name_bytes_by_offset(no)));
                    for i in 1..n - 1 {
                        let (no, ty) = t.param(i);
                        vlog!(self, ", {} {}", ty, LogName(v.name_bytes_by_offset(no)));
                    }
                    if n > 1 {
                        let (no, ty) = t.param(n - 1);
                        if ty != 0 {
                            vlog!(self, ", {} {}", ty, LogName(v.name_bytes_by_offset(no)));
                        } else {
                            vlog!(self, ", vararg");
                        }
                    }
                }
                vlog!(self, ")");
            }
            BtfKind::Var => vlog!(self, "type_id={} linkage={}", t.type_id(), t.var_linkage()),
            BtfKind::Float => vlog!(self, "size={}", t.size()),
            BtfKind::DeclTag => vlog!(
                self,
                "type={} component_idx={}",
                t.type_id(),
                t.decl_tag_component_idx()
            ),
            BtfKind::Unkn => {}
        }
    }

    /// `__btf_verifier_log_type`: `btf_verifier_log_type` with `details`,
    /// `btf_verifier_log_basic` without.
    #[inline(never)]
    fn log_type_impl(&mut self, t: &TypeRef<'a>, details: bool, msg: Option<fmt::Arguments<'_>>) {
        if !self.log.needed() {
            return;
        }
        let name = LogName(self.strs().name_bytes_by_offset(t.name_off()));
        let kind = BtfKind::from_u8(t.kind_raw())
            .unwrap_or(BtfKind::Unkn)
            .as_str();
        vlog!(
            self,
            "[{}] {} {}{}",
            self.log_type_id,
            kind,
            name,
            if details { " " } else { "" }
        );
        if details {
            self.log_details(t);
        }
        if let Some(m) = msg {
            vlog!(self, " {}", m);
        }
        vlog!(self, "\n");
    }

    /// `btf_verifier_log_type(env, t, NULL)` of the record being checked.
    #[inline(always)]
    fn log_rec(&mut self, r: Rec) {
        if self.log.needed() {
            let t = self.rec_type(r.cur);
            self.log_type_impl(&t, true, None);
        }
    }

    /// `btf_verifier_log_member`.
    #[inline(never)]
    fn log_member(&mut self, st: &TypeRef<'a>, m: &BtfMember, msg: Option<fmt::Arguments<'_>>) {
        if !self.log.needed() {
            return;
        }
        if self.phase != Phase::CheckMeta {
            self.log_type_impl(st, true, None);
        }
        let name = LogName(self.strs().name_bytes_by_offset(m.name_off));
        if st.kflag() {
            vlog!(
                self,
                "\t{} type_id={} bitfield_size={} bits_offset={}",
                name,
                m.type_id,
                btf_member_bitfield_size(m.offset),
                btf_member_bit_offset(m.offset)
            );
        } else {
            vlog!(
                self,
                "\t{} type_id={} bits_offset={}",
                name,
                m.type_id,
                m.offset
            );
        }
        if let Some(m) = msg {
            vlog!(self, " {}", m);
        }
        vlog!(self, "\n");
    }

    /// `btf_verifier_log_vsi`.
    #[inline(never)]
    fn log_vsi(&mut self, ds: &TypeRef<'a>, vsi: &BtfVarSecinfo, msg: Option<&'static str>) {
        if !self.log.needed() {
            return;
        }
        if self.phase != Phase::CheckMeta {
            self.log_type_impl(ds, true, None);
        }
        vlog!(
            self,
            "\t type_id={} offset={} size={}",
            vsi.type_id,
            vsi.offset,
            vsi.size
        );
        if let Some(m) = msg {
            vlog!(self, " {}", m);
        }
        vlog!(self, "\n");
    }

    /// `btf_verifier_log_type(env, t, msg)`, then -EINVAL.
    #[cold]
    #[inline(never)]
    fn type_fail(&mut self, t: TypeRef<'a>, msg: &'static str) -> Stop {
        self.log_type_impl(&t, true, Some(format_args!("{msg}")));
        self.fail(EINVAL, msg)
    }

    /// [`Self::type_fail`] of the record being checked by the meta pass.
    #[cold]
    #[inline(never)]
    fn rec_fail(&mut self, r: Rec, msg: &'static str) -> Stop {
        self.type_fail(self.rec_type(r.cur), msg)
    }

    /// [`Self::type_fail`] of type `id` (the resolve pass).
    #[cold]
    #[inline(never)]
    fn id_fail(&mut self, id: u32, msg: &'static str) -> Stop {
        self.type_fail(self.type_at(id), msg)
    }

    /// `btf_verifier_log_member(env, struct_type, member, msg)`, then -EINVAL.
    #[cold]
    #[inline(never)]
    fn member_fail(&mut self, st: TypeRef<'a>, m: BtfMember, msg: &'static str) -> Stop {
        self.log_member(&st, &m, Some(format_args!("{msg}")));
        self.fail(EINVAL, msg)
    }

    /// `btf_verifier_log_vsi(env, datasec_type, vsi, msg)`, then -EINVAL.
    #[cold]
    #[inline(never)]
    fn vsi_fail(&mut self, ds: TypeRef<'a>, vsi: BtfVarSecinfo, msg: &'static str) -> Stop {
        self.log_vsi(&ds, &vsi, Some(msg));
        self.fail(EINVAL, msg)
    }

    /// `btf_verifier_log_basic(env, t, "meta_left:%u meta_needed:%u", ...)`, then
    /// -EINVAL: the record's data after its header does not fit in the section.
    #[cold]
    #[inline(never)]
    fn basic_meta_fail(&mut self, r: Rec, needed_words: usize) -> Stop {
        let left = self.type_len.saturating_sub((r.cur + 3) * 4) as u32;
        let needed = (needed_words * 4) as u32;
        let t = self.rec_type(r.cur);
        self.log_type_impl(
            &t,
            false,
            Some(format_args!("meta_left:{left} meta_needed:{needed}")),
        );
        self.fail(EINVAL, "meta_left:%u meta_needed:%u")
    }

    /// `btf_verifier_log(env, msg)`, then `errno`: a message of its own line start.
    #[cold]
    #[inline(never)]
    fn msg_fail(&mut self, errno: Errno, msg: &'static str) -> Stop {
        vlog!(self, "{msg}");
        self.fail(errno, msg)
    }
}

// ---------------------------------------------------------------------------------
// the meta pass (btf_check_all_metas, btf_check_meta and the kinds' check_meta)
// ---------------------------------------------------------------------------------

impl<'a, L: BtfLog, const SPLIT: bool> Env<'a, '_, L, SPLIT> {
    /// The `n` words after the record's header, or the meta-left failure.
    #[inline(always)]
    fn trailing(&mut self, r: Rec, n: usize) -> VResult<&'a [u32]> {
        let w = self.w;
        match w.get(r.cur + 3..r.cur + 3 + n) {
            Some(d) => Ok(d),
            None => Err(self.basic_meta_fail(r, n)),
        }
    }

    /// `btf_int_check_meta` (kernel/bpf/btf.c).
    /// No profile flag changes it.
    #[inline(always)]
    fn btf_int_check_meta(&mut self, r: Rec) -> VResult<usize> {
        let d = self.trailing(r, 1)?[0];
        if r.vlen() != 0 {
            return Err(self.rec_fail(r, "vlen != 0"));
        }
        if r.kflag() {
            return Err(self.rec_fail(r, "Invalid btf_info kind_flag"));
        }
        if d & !BTF_INT_MASK != 0 {
            return Err(self.int_data_fail(r, d));
        }
        let nr_bits = btf_int_bits(d) + btf_int_offset(d);
        if nr_bits > 128 {
            return Err(self.int_bits_fail(r));
        }
        if nr_bits.div_ceil(8) > r.st {
            return Err(self.rec_fail(r, "nr_bits exceeds type_size"));
        }
        let enc = btf_int_encoding(d);
        if enc != 0 && enc != BTF_INT_SIGNED && enc != BTF_INT_CHAR && enc != BTF_INT_BOOL {
            let t = self.rec_type(r.cur);
            self.log_type_impl(&t, true, Some(format_args!("Unsupported encoding")));
            return Err(self.fail(Errno::ENOTSUPP, "Unsupported encoding"));
        }
        self.log_rec(r);
        Ok(1)
    }

    /// `PLAIN_INT` for the INT record at word `cur` of size `size`, which
    /// `btf_int_check_meta` passed.
    #[inline(always)]
    fn plain_int(&self, cur: usize, size: u32) -> u8 {
        let d = self.w.get(cur + 3).copied().unwrap_or(0);
        // The size first: any u32 can come here (`btf_int_check_meta` bounds the
        // bits, not the size).
        let plain = matches!(size, 1 | 2 | 4 | 8 | 16)
            && btf_int_offset(d) == 0
            && btf_int_bits(d) == size * 8;
        if plain { PLAIN_INT } else { 0 }
    }

    #[cold]
    #[inline(never)]
    fn int_data_fail(&mut self, r: Rec, d: u32) -> Stop {
        let t = self.rec_type(r.cur);
        self.log_type_impl(&t, false, Some(format_args!("Invalid int_data:{d:x}")));
        self.fail(EINVAL, "Invalid int_data:%x")
    }

    #[cold]
    #[inline(never)]
    fn int_bits_fail(&mut self, r: Rec) -> Stop {
        let t = self.rec_type(r.cur);
        self.log_type_impl(&t, true, Some(format_args!("nr_bits exceeds 128")));
        self.fail(EINVAL, "nr_bits exceeds %zu")
    }

    /// `btf_ref_type_check_meta` (kernel/bpf/btf.c): PTR, TYPEDEF, VOLATILE, CONST,
    /// RESTRICT, TYPE_TAG. Profile flag `btf_tag_kflag`: a TYPE_TAG may have kind_flag.
    #[inline(always)]
    fn btf_ref_type_check_meta(&mut self, r: Rec, k: u8) -> VResult<usize> {
        if r.vlen() != 0 {
            return Err(self.rec_fail(r, "vlen != 0"));
        }
        if r.kflag() && !(k == TYPE_TAG && self.sem.btf_tag_kflag) {
            return Err(self.rec_fail(r, "Invalid btf_info kind_flag"));
        }
        if r.st > BTF_MAX_TYPE {
            return Err(self.rec_fail(r, "Invalid type_id"));
        }
        let ok = match k {
            TYPEDEF => self.named(r.name),
            TYPE_TAG => self.nonempty_str(r.name),
            _ => r.name == 0,
        };
        if !ok {
            return Err(self.rec_fail(r, "Invalid name"));
        }
        self.log_rec(r);
        Ok(0)
    }

    /// `btf_fwd_check_meta` (kernel/bpf/btf.c).
    /// No profile flag changes it.
    #[inline(always)]
    fn btf_fwd_check_meta(&mut self, r: Rec) -> VResult<usize> {
        if r.vlen() != 0 {
            return Err(self.rec_fail(r, "vlen != 0"));
        }
        if r.st != 0 {
            return Err(self.rec_fail(r, "type != 0"));
        }
        if !self.named(r.name) {
            return Err(self.rec_fail(r, "Invalid name"));
        }
        self.log_rec(r);
        Ok(0)
    }

    /// `btf_array_check_meta` (kernel/bpf/btf.c).
    /// No profile flag changes it.
    #[inline(always)]
    fn btf_array_check_meta(&mut self, r: Rec) -> VResult<usize> {
        let a = self.trailing(r, 3)?;
        if r.name != 0 {
            return Err(self.rec_fail(r, "Invalid name"));
        }
        if r.vlen() != 0 {
            return Err(self.rec_fail(r, "vlen != 0"));
        }
        if r.kflag() {
            return Err(self.rec_fail(r, "Invalid btf_info kind_flag"));
        }
        if r.st != 0 {
            return Err(self.rec_fail(r, "size != 0"));
        }
        if !(1..=BTF_MAX_TYPE).contains(&a[0]) {
            return Err(self.rec_fail(r, "Invalid elem"));
        }
        if !(1..=BTF_MAX_TYPE).contains(&a[1]) {
            return Err(self.rec_fail(r, "Invalid index"));
        }
        self.log_rec(r);
        Ok(3)
    }

    /// `btf_struct_check_meta` (kernel/bpf/btf.c): STRUCT and UNION.
    /// No profile flag changes it.
    #[inline(always)]
    fn btf_struct_check_meta(&mut self, r: Rec, k: u8) -> VResult<usize> {
        let ms = self.trailing(r, r.vlen() * 3)?;
        if !self.anon_or_named(r.name) {
            return Err(self.rec_fail(r, "Invalid name"));
        }
        self.log_rec(r);
        let kflag = r.kflag();
        let mut last = 0u32;
        for m in ms.chunks_exact(3) {
            let (mn, mt, mo) = (m[0], m[1], m[2]);
            let off = if kflag { btf_member_bit_offset(mo) } else { mo };
            if !self.valid_anon_or_named(mn)
                || !(1..=BTF_MAX_TYPE).contains(&mt)
                || (k == UNION && off != 0)
                || last > off
                || off.div_ceil(8) > r.st
            {
                return Err(self.struct_member_meta_fail(r, k, last, mn, mt, mo));
            }
            if self.log.needed() {
                let t = self.rec_type(r.cur);
                let bm = BtfMember {
                    name_off: mn,
                    type_id: mt,
                    offset: mo,
                };
                self.log_member(&t, &bm, None);
            }
            last = off;
        }
        Ok(ms.len())
    }

    /// The failing member check of `btf_struct_check_meta`, in its order.
    #[cold]
    #[inline(never)]
    fn struct_member_meta_fail(
        &mut self,
        r: Rec,
        k: u8,
        last: u32,
        mn: u32,
        mt: u32,
        mo: u32,
    ) -> Stop {
        let t = self.rec_type(r.cur);
        let m = BtfMember {
            name_off: mn,
            type_id: mt,
            offset: mo,
        };
        let off = t.member_bit_offset(&m);
        if !self.btf_name_offset_valid(mn) {
            self.log_member(
                &t,
                &m,
                Some(format_args!("Invalid member name_offset:{mn}")),
            );
            return self.fail(EINVAL, "Invalid member name_offset:%u");
        }
        let msg = if !self.anon_or_named(mn) {
            "Invalid name"
        } else if !(1..=BTF_MAX_TYPE).contains(&mt) {
            "Invalid type_id"
        } else if (k == UNION && off != 0) || last > off {
            "Invalid member bits_offset"
        } else {
            "Member bits_offset exceeds its struct size"
        };
        self.member_fail(t, m, msg)
    }

    /// `btf_enum_check_meta` (kernel/bpf/btf.c) and `btf_enum64_check_meta`.
    /// No profile flag changes it.
    #[inline(always)]
    fn btf_enum_check_meta(&mut self, r: Rec, k: u8) -> VResult<usize> {
        let esz = if k == ENUM64 { 3 } else { 2 };
        let es = self.trailing(r, r.vlen() * esz)?;
        if r.st > 8 || !r.st.is_power_of_two() {
            return Err(self.rec_fail(r, "Unexpected size"));
        }
        if !self.anon_or_named(r.name) {
            return Err(self.rec_fail(r, "Invalid name"));
        }
        self.log_rec(r);
        for e in es.chunks_exact(esz) {
            let name_off = e[0];
            if !self.valid_ident(name_off) {
                if !self.btf_name_offset_valid(name_off) {
                    return Err(self.enum_name_offset_fail(name_off));
                }
                return Err(self.rec_fail(r, "Invalid name"));
            }
            if self.log.needed() {
                self.log_enum_val(r, k, e);
            }
        }
        Ok(es.len())
    }

    #[cold]
    #[inline(never)]
    fn enum_name_offset_fail(&mut self, name_off: u32) -> Stop {
        vlog!(self, "\tInvalid name_offset:{}", name_off);
        self.fail(EINVAL, "\tInvalid name_offset:%u")
    }

    /// The enum value line of `btf_enum_check_meta`/`btf_enum64_check_meta`.
    #[inline(never)]
    fn log_enum_val(&mut self, r: Rec, k: u8, e: &[u32]) {
        let name = LogName(self.strs().name_bytes_by_offset(e[0]));
        let lo = e.get(1).copied().unwrap_or(0);
        let hi = e.get(2).copied().unwrap_or(0);
        let v64 = (u64::from(hi) << 32) | u64::from(lo);
        match (k == ENUM64, r.kflag()) {
            (false, true) => vlog!(self, "\t{} val={}\n", name, lo as i32),
            (false, false) => vlog!(self, "\t{} val={}\n", name, lo),
            (true, true) => vlog!(self, "\t{} val={}\n", name, v64 as i64),
            (true, false) => vlog!(self, "\t{} val={}\n", name, v64),
        }
    }

    /// `btf_func_proto_check_meta` (kernel/bpf/btf.c). Also notes, for `btf_func_check`
    /// and `btf_func_proto_check`, whether a parameter has no name but a type
    /// (`BAD_PARAM`), and with the resolve pass whether a named parameter's name would
    /// be refused (`BAD_ARG_NAME`) or all of `btf_func_proto_check` passes (`PRE_OK`):
    /// the records and names are read here in section order; the checks that fail stay
    /// in their place. Returns (words, flags). No profile flag changes it.
    #[inline(always)]
    fn btf_func_proto_check_meta(
        &mut self,
        r: Rec,
        id: u32,
        nodes: &[Node],
        resolve: bool,
    ) -> VResult<(usize, u8)> {
        let ps = self.trailing(r, r.vlen() * 2)?;
        if r.name != 0 {
            return Err(self.rec_fail(r, "Invalid name"));
        }
        if r.kflag() {
            return Err(self.rec_fail(r, "Invalid btf_info kind_flag"));
        }
        self.log_rec(r);
        if !resolve {
            let bad = ps.chunks_exact(2).any(|p| p[0] == 0 && p[1] != 0);
            return Ok((ps.len(), if bad { BAD_PARAM } else { 0 }));
        }
        Ok((ps.len(), self.proto_flags(nodes, r.st, ps, id)))
    }

    /// The flags the resolve pass reads of FUNC_PROTO `id` with return type `ret`
    /// and parameters `ps`: `BAD_PARAM`, `BAD_ARG_NAME`, and with the log off
    /// `PRE_OK` (see `btf_func_proto_check_meta`).
    #[inline(always)]
    fn proto_flags(&self, nodes: &[Node], ret: u32, ps: &[u32], id: u32) -> u8 {
        // A lower id whose slot will have ARG_OK when the resolve pass is here.
        let final_ok = |t: u32| self.final_ok_before(nodes, t, id);
        let mut pre_ok = ret == 0 || final_ok(ret);
        let mut bad_param = false;
        let mut bad_name = false;
        let last = ps.len() / 2;
        for (i, p) in ps.chunks_exact(2).enumerate() {
            let (name, ty) = (p[0], p[1]);
            bad_param |= name == 0 && ty != 0;
            bad_name |= name != 0 && !self.valid_ident(name);
            // A last parameter without type is a vararg: it must have no name.
            pre_ok &= if ty == 0 && i + 1 == last {
                name == 0
            } else {
                final_ok(ty)
            };
        }
        let mut flags = 0;
        if bad_param {
            flags |= BAD_PARAM;
        }
        if bad_name {
            flags |= BAD_ARG_NAME;
        }
        if pre_ok && flags & BAD_ARG_NAME == 0 && self.shortcuts() {
            flags |= PRE_OK;
        }
        flags
    }

    /// `btf_func_check_meta` (kernel/bpf/btf.c). With the resolve pass, also notes
    /// whether the FUNC's `btf_func_check` will pass (`PRE_OK`), from a lower id's
    /// slot. No profile flag changes it.
    #[inline(always)]
    fn btf_func_check_meta(&mut self, r: Rec, id: u32, nodes: &[Node]) -> VResult<(usize, u8)> {
        if !self.named(r.name) {
            return Err(self.rec_fail(r, "Invalid name"));
        }
        if r.vlen() > BTF_FUNC_GLOBAL as usize {
            return Err(self.rec_fail(r, "Invalid func linkage"));
        }
        if r.kflag() {
            return Err(self.rec_fail(r, "Invalid btf_info kind_flag"));
        }
        self.log_rec(r);
        let pre_ok = self.shortcuts() && self.func_pre_ok(nodes, r.st, id);
        Ok((0, if pre_ok { PRE_OK } else { 0 }))
    }

    /// Whether FUNC `id` of type `st` passes `btf_func_check` at its turn, from the
    /// slots made so far: `st` is a lower id, a FUNC_PROTO without `BAD_PARAM`.
    #[inline(always)]
    fn func_pre_ok(&self, nodes: &[Node], st: u32, id: u32) -> bool {
        st < id
            && self
                .slot_in(nodes, st)
                .is_some_and(|p| p.kind() == FUNC_PROTO && p.flags() & BAD_PARAM == 0)
    }

    /// Whether type `t` will have `ARG_OK` when the resolve pass comes to id `turn`,
    /// from the slots the meta pass has made so far: `t` is a lower id with
    /// `FINAL_OK`, or a modifier whose chain of modifiers ends, below `turn`, at one
    /// (a modifier resolves to what its target resolves to, `btf_modifier_resolve`,
    /// and every lower id is resolved when the resolve pass is at `turn`). A chain
    /// longer than a few links is left to the resolve pass.
    #[inline(always)]
    fn final_ok_before(&self, nodes: &[Node], t: u32, turn: u32) -> bool {
        let mut t = t;
        for _ in 0..4 {
            if t >= turn {
                return false;
            }
            let Some(n) = self.slot_in(nodes, t) else {
                return false;
            };
            if n.flags() & FINAL_OK != 0 {
                return true;
            }
            if !MODIFIER.has(n.kind()) || n.visit() == RESOLVED {
                return false;
            }
            // An unresolved modifier's slot holds its `t->type`.
            t = n.a();
        }
        false
    }

    /// Whether the meta pass may find, from lower ids, what the resolve pass will
    /// find at a FUNC's or FUNC_PROTO's turn (`PRE_OK`). Only with the log off: with
    /// the log on every turn is taken as the kernel takes it, and the tests hold the
    /// two modes to the same result.
    #[inline(always)]
    fn shortcuts(&self) -> bool {
        !self.log.needed()
    }

    /// `PRE_OK` for PTR `id` to `t`: with the log off, `t` is void (in a base BTF)
    /// or a lower id of this BTF of a kind that `btf_ptr_resolve` takes as it is,
    /// without a push at the PTR's turn: one that is no sink in `RESOLVE_PTR` but is
    /// resolved by then (PTR), or a sink that `btf_type_id_size` sizes by itself or
    /// that ends the walk (FWD, FUNC_PROTO). It resolves to `t`.
    #[inline(always)]
    fn ptr_pre_ok(&self, nodes: &[Node], t: u32, id: u32) -> u8 {
        const TAKEN_AS_IS: KindSet = KindSet::of(&[
            INT, PTR, ARRAY, STRUCT, UNION, ENUM, FWD, FUNC_PROTO, FLOAT, ENUM64,
        ]);
        let ok = if t == 0 {
            !SPLIT
        } else {
            t >= self.start_id()
                && t < id
                && self
                    .slot_in(nodes, t)
                    .is_some_and(|n| TAKEN_AS_IS.has(n.kind()))
        };
        if ok && self.shortcuts() { PRE_OK } else { 0 }
    }

    /// `PRE_OK` for modifier `id` of kind `k` to `t`, with the log off: its slot as
    /// `btf_modifier_resolve` leaves it at its turn, found from lower ids of this BTF
    /// (all resolved by then, so none is pushed): `t` is void (in a base BTF), or a
    /// lower id that `btf_type_id_size` sizes by itself (it resolves to `t`), or a
    /// FWD or FUNC_PROTO (to `t`, unsized), or a modifier so resolved itself (to what
    /// it resolves to). `None` leaves it to its turn.
    #[inline(always)]
    fn modifier_pre_ok(&self, nodes: &[Node], k: u8, t: u32, id: u32) -> Option<Node> {
        const SIZED_TARGET: KindSet =
            KindSet::of(&[INT, PTR, ARRAY, STRUCT, UNION, ENUM, ENUM64, FLOAT]);
        const UNSIZED_END: KindSet = KindSet::of(&[FWD, FUNC_PROTO]);
        if !self.shortcuts() {
            return None;
        }
        let (rid, rk, tis) = if t == 0 {
            if SPLIT {
                return None;
            }
            (0, UNKN, false)
        } else {
            if t < self.start_id() || t >= id {
                return None;
            }
            let n = self.slot_in(nodes, t)?;
            let tk = n.kind();
            if SIZED_TARGET.has(tk) {
                (t, tk, true)
            } else if UNSIZED_END.has(tk) {
                (t, tk, false)
            } else if MODIFIER.has(tk) && n.flags() & EARLY != 0 {
                if n.flags() & TIS != 0 {
                    (n.a(), n.rkind(), true)
                } else {
                    // Resolved to void, a FWD or a FUNC_PROTO: so is this one.
                    (n.a(), UNKN, false)
                }
            } else {
                return None;
            }
        };
        let mut flags = DONE | EARLY | PRE_OK;
        if tis {
            flags |= TIS | FINAL_OK | ARG_OK;
        }
        Some(Node::new(rid, k, RESOLVED, if tis { rk } else { k }, flags))
    }

    /// The slot of `id` while the meta pass builds them in `nodes` (a base id's from
    /// the base).
    #[inline(always)]
    fn slot_in(&self, nodes: &[Node], id: u32) -> Option<Node> {
        match nodes.get(self.local(id)) {
            Some(&n) => Some(n),
            None if SPLIT => self.base_node(id),
            None => None,
        }
    }

    /// `btf_var_check_meta` (kernel/bpf/btf.c).
    /// No profile flag changes it.
    #[inline(always)]
    fn btf_var_check_meta(&mut self, r: Rec) -> VResult<usize> {
        let linkage = self.trailing(r, 1)?[0];
        if r.vlen() != 0 {
            return Err(self.rec_fail(r, "vlen != 0"));
        }
        if r.kflag() {
            return Err(self.rec_fail(r, "Invalid btf_info kind_flag"));
        }
        if !self.named(r.name) {
            return Err(self.rec_fail(r, "Invalid name"));
        }
        if !(1..=BTF_MAX_TYPE).contains(&r.st) {
            return Err(self.rec_fail(r, "Invalid type_id"));
        }
        if linkage != BTF_VAR_STATIC && linkage != BTF_VAR_GLOBAL_ALLOCATED {
            return Err(self.rec_fail(r, "Linkage not supported"));
        }
        self.log_rec(r);
        Ok(1)
    }

    /// `btf_datasec_check_meta` (kernel/bpf/btf.c).
    /// No profile flag changes it.
    #[inline(always)]
    fn btf_datasec_check_meta(&mut self, r: Rec) -> VResult<usize> {
        let vs = self.trailing(r, r.vlen() * 3)?;
        if r.st == 0 {
            return Err(self.rec_fail(r, "size == 0"));
        }
        if r.kflag() {
            return Err(self.rec_fail(r, "Invalid btf_info kind_flag"));
        }
        if r.name == 0 || !btf_name_valid_section(self.raw_str(r.name)) {
            return Err(self.rec_fail(r, "Invalid name"));
        }
        self.log_rec(r);
        let size = u64::from(r.st);
        let (mut last_end, mut sum) = (0u64, 0u64);
        for e in vs.chunks_exact(3) {
            let vsi = BtfVarSecinfo {
                type_id: e[0],
                offset: e[1],
                size: e[2],
            };
            let msg = if !(1..=BTF_MAX_TYPE).contains(&vsi.type_id) {
                Some("Invalid type_id")
            } else if u64::from(vsi.offset) < last_end || u64::from(vsi.offset) >= size {
                Some("Invalid offset")
            } else if vsi.size == 0 || u64::from(vsi.size) > size {
                Some("Invalid size")
            } else {
                // The kernel adds two u32s before widening: the sum wraps at 2^32.
                last_end = u64::from(vsi.offset.wrapping_add(vsi.size));
                (last_end > size).then_some("Invalid offset+size")
            };
            if let Some(msg) = msg {
                return Err(self.vsi_fail(self.rec_type(r.cur), vsi, msg));
            }
            if self.log.needed() {
                let t = self.rec_type(r.cur);
                self.log_vsi(&t, &vsi, None);
            }
            sum += u64::from(vsi.size);
        }
        if size < sum {
            return Err(self.rec_fail(r, "Invalid btf_info size"));
        }
        Ok(vs.len())
    }

    /// `btf_float_check_meta` (kernel/bpf/btf.c).
    /// No profile flag changes it.
    #[inline(always)]
    fn btf_float_check_meta(&mut self, r: Rec) -> VResult<usize> {
        if r.vlen() != 0 {
            return Err(self.rec_fail(r, "vlen != 0"));
        }
        if r.kflag() {
            return Err(self.rec_fail(r, "Invalid btf_info kind_flag"));
        }
        if !matches!(r.st, 2 | 4 | 8 | 12 | 16) {
            return Err(self.rec_fail(r, "Invalid type_size"));
        }
        self.log_rec(r);
        Ok(0)
    }

    /// `btf_decl_tag_check_meta` (kernel/bpf/btf.c). Profile flag `btf_tag_kflag`:
    /// kind_flag allowed.
    #[inline(always)]
    fn btf_decl_tag_check_meta(&mut self, r: Rec) -> VResult<usize> {
        let idx = self.trailing(r, 1)?[0] as i32;
        if !self.nonempty_str(r.name) {
            return Err(self.rec_fail(r, "Invalid value"));
        }
        if r.vlen() != 0 {
            return Err(self.rec_fail(r, "vlen != 0"));
        }
        if r.kflag() && !self.sem.btf_tag_kflag {
            return Err(self.rec_fail(r, "Invalid btf_info kind_flag"));
        }
        if idx < -1 {
            return Err(self.rec_fail(r, "Invalid component_idx"));
        }
        self.log_rec(r);
        Ok(1)
    }

    /// `btf_check_meta` (kernel/bpf/btf.c) of the record at word `cur`, type `id`: (its
    /// words, its slot, whether the resolve pass has something to do at its turn). No
    /// profile flag changes it.
    #[inline(always)]
    fn btf_check_meta(
        &mut self,
        cur: usize,
        id: u32,
        nodes: &[Node],
        mods: &mut Vec<u32>,
        resolve: bool,
    ) -> VResult<(usize, Node, bool)> {
        let Some(h) = self.w.get(cur..cur + 3) else {
            return Err(self.meta_left_fail(cur));
        };
        let r = Rec {
            cur,
            name: h[0],
            info: h[1],
            st: h[2],
        };
        let k = btf_info_kind(r.info);
        // The kind's range is tested by the table jump below (its `_` arm) and, for
        // an invalid name offset, before that failure: the kernel's order.
        if r.info & !BTF_INFO_MASK != 0 {
            return Err(self.info_fail(r.info));
        }
        if !self.btf_name_offset_valid(r.name) {
            return Err(self.name_offset_fail(r.info, r.name));
        }
        let st = r.st;
        // The slot's flags are those of the kind's class; `of_kind` puts the type's
        // own kind in where the class has several.
        let of_kind = |s: (Node, bool)| of_kind(s, k);
        let (var, (slot, todo)) = match k {
            INT => {
                let var = self.btf_int_check_meta(r)?;
                (var, initial_slot(st, INT, self.plain_int(cur, st)))
            }
            PTR => {
                let var = self.btf_ref_type_check_meta(r, k)?;
                (var, initial_slot(st, PTR, self.ptr_pre_ok(nodes, st, id)))
            }
            TYPEDEF | VOLATILE | CONST | RESTRICT | TYPE_TAG => {
                let var = self.btf_ref_type_check_meta(r, k)?;
                mods.push(id);
                match self.modifier_pre_ok(nodes, k, st, id) {
                    Some(slot) => (var, (slot, false)),
                    None => {
                        let target_final = st < id
                            && self
                                .slot_in(nodes, st)
                                .is_some_and(|n| n.flags() & FINAL_OK != 0);
                        let extra = if target_final { FINAL_OK } else { 0 };
                        (var, of_kind(initial_slot(st, TYPEDEF, extra)))
                    }
                }
            }
            ARRAY => (self.btf_array_check_meta(r)?, initial_slot(st, ARRAY, 0)),
            STRUCT | UNION => (
                self.btf_struct_check_meta(r, k)?,
                of_kind(initial_slot(st, STRUCT, 0)),
            ),
            ENUM | ENUM64 => (
                self.btf_enum_check_meta(r, k)?,
                of_kind(initial_slot(st, ENUM, 0)),
            ),
            FWD => (self.btf_fwd_check_meta(r)?, initial_slot(st, FWD, 0)),
            FUNC => {
                let (var, extra) = self.btf_func_check_meta(r, id, nodes)?;
                (var, initial_slot(st, FUNC, extra))
            }
            FUNC_PROTO => {
                let (var, extra) = self.btf_func_proto_check_meta(r, id, nodes, resolve)?;
                (var, initial_slot(st, FUNC_PROTO, extra))
            }
            VAR => (self.btf_var_check_meta(r)?, initial_slot(st, VAR, 0)),
            DATASEC => (
                self.btf_datasec_check_meta(r)?,
                initial_slot(st, DATASEC, 0),
            ),
            FLOAT => (self.btf_float_check_meta(r)?, initial_slot(st, FLOAT, 0)),
            DECL_TAG => (
                self.btf_decl_tag_check_meta(r)?,
                initial_slot(st, DECL_TAG, 0),
            ),
            _ => return Err(self.info_fail(r.info)),
        };
        Ok((3 + var, slot, todo))
    }

    #[cold]
    #[inline(never)]
    fn meta_left_fail(&mut self, cur: usize) -> Stop {
        let left = self.type_len.saturating_sub(cur * 4);
        vlog!(
            self,
            "[{}] meta_left:{} meta_needed:{}",
            self.log_type_id,
            left,
            BTF_TYPE_SIZE
        );
        self.fail(EINVAL, "[%u] meta_left:%u meta_needed:%zu")
    }

    #[cold]
    #[inline(never)]
    fn info_fail(&mut self, info: u32) -> Stop {
        if info & !BTF_INFO_MASK != 0 {
            vlog!(self, "[{}] Invalid btf_info:{:x}", self.log_type_id, info);
            return self.fail(EINVAL, "[%u] Invalid btf_info:%x");
        }
        vlog!(
            self,
            "[{}] Invalid kind:{}",
            self.log_type_id,
            btf_info_kind(info)
        );
        self.fail(EINVAL, "[%u] Invalid kind:%u")
    }

    #[cold]
    #[inline(never)]
    fn name_offset_fail(&mut self, info: u32, name: u32) -> Stop {
        let k = btf_info_kind(info);
        if k == UNKN || k > BTF_KIND_MAX {
            return self.info_fail(info);
        }
        vlog!(self, "[{}] Invalid name_offset:{}", self.log_type_id, name);
        self.fail(EINVAL, "[%u] Invalid name_offset:%u")
    }

    /// `btf_check_all_metas` (kernel/bpf/btf.c): every record in id order through
    /// `btf_check_meta`, each then added by `btf_add_type` (`btf->types`, here `rec`)
    /// and given its slot. No profile flag changes it.
    #[inline(never)]
    fn btf_check_all_metas(&mut self, resolve: bool) -> VResult {
        self.stage = BtfStage::CheckAllMetas;
        let n = self.w.len();
        // At most one type per 3 words, and void: `max` bounds every count below.
        let max = n / 3 + 2;
        let mut rec: Vec<u32> = Vec::with_capacity(max);
        let mut nodes: Vec<Node> = Vec::with_capacity(max);
        let mut mods = Vec::new();
        let mut work: Vec<u32> = Vec::with_capacity(max);
        // `btf->types`, the slots and the work list are written in place, past their
        // lengths, and given their lengths at the end: one count test per type.
        let (rec_p, nodes_p, work_p) = (rec.as_mut_ptr(), nodes.as_mut_ptr(), work.as_mut_ptr());
        // Types added so far (records and slots); the work list holds at most as many.
        let mut n_rec = 0;
        let mut n_work = 0;
        // btf_add_type's refusal, by the number of types it holds (its array's
        // growth is the same for every BTF of this start id).
        let limit = TypesCap::limit(self.start_id()).map_or(usize::MAX, |l| l as usize);
        // The count at which no type is added: the limit, or the capacity, which the
        // records cannot reach (one type per 3 words at most).
        let room = limit.min(max);
        if !SPLIT {
            // btf_add_type lazily puts VOID first; it takes a slot of the first growth.
            // Void needs no resolve (`btf_type_needs_resolve`) and has no size.
            // SAFETY: `max` >= 2 is the capacity of `rec` and `nodes`.
            unsafe {
                rec_p.write(VOID_OFF);
                nodes_p.write(Node::new(0, UNKN, NOT_VISITED, UNKN, DONE));
            }
            n_rec = 1;
        }
        self.log_type_id = if SPLIT { self.start_id } else { 1 };
        let mut cur = 0usize;
        while cur < n {
            // With the log off, a run of FUNC, FUNC_PROTO, PTR, STRUCT and UNION
            // records (the commonest kinds) by two-way tests instead of the kinds'
            // table jump: the checks of `btf_check_meta` in its order, and the record,
            // slot and turn it would give. The first record the loop does not take,
            // or cannot pass at once, goes the whole way, which reports its failure.
            if !self.log.needed() {
                let w = self.w;
                let (start_id, sec) = (self.start_id(), self.sec);
                while let Some(&[name, info, st, ..]) = w.get(cur..) {
                    if n_rec >= room {
                        break;
                    }
                    let id = start_id.wrapping_add(n_rec as u32);
                    // SAFETY: as for `slots` below.
                    let slots = unsafe { core::slice::from_raw_parts(nodes_p, n_rec) };
                    let r = Rec {
                        cur,
                        name,
                        info,
                        st,
                    };
                    // No kind_flag and no bit outside BTF_INFO_MASK in either test.
                    let (words, (slot, todo)) = if info & !0xffff == u32::from(FUNC) << 24 {
                        // A linkage `btf_func_check_meta` takes, and a name the
                        // string section's classification proves an identifier (so
                        // set, at a valid offset).
                        if info & 0xffff > u32::from(BTF_FUNC_GLOBAL) || !self.proven_name(name) {
                            break;
                        }
                        let pre_ok = self.func_pre_ok(slots, st, id);
                        (3, initial_slot(st, FUNC, if pre_ok { PRE_OK } else { 0 }))
                    } else if info & !0xffff == u32::from(FUNC_PROTO) << 24 && name == 0 && resolve
                    {
                        // The parameters whole (`btf_func_proto_check_meta`).
                        let Some(ps) = w.get(cur + 3..cur + 3 + 2 * (info & 0xffff) as usize)
                        else {
                            break;
                        };
                        let flags = self.proto_flags(slots, st, ps, id);
                        (3 + ps.len(), initial_slot(st, FUNC_PROTO, flags))
                    } else if info >> 24 == u32::from(PTR)
                        && info & 0x00ff_0000 == 0
                        && self.btf_name_offset_valid(name)
                    {
                        // The kind exact and no bit outside BTF_INFO_MASK: what
                        // `btf_check_meta` tests before the kind's check.
                        let var = self.btf_ref_type_check_meta(r, PTR)?;
                        (
                            3 + var,
                            initial_slot(st, PTR, self.ptr_pre_ok(slots, st, id)),
                        )
                    } else if info & 0x7fff_0000 == u32::from(STRUCT) << 24
                        || info & 0x7fff_0000 == u32::from(UNION) << 24
                    {
                        if !self.btf_name_offset_valid(name) {
                            break;
                        }
                        let k = btf_info_kind(info);
                        let var = self.btf_struct_check_meta(r, k)?;
                        (3 + var, of_kind(initial_slot(st, STRUCT, 0), k))
                    } else {
                        break;
                    };
                    // SAFETY: as for the writes below.
                    unsafe {
                        rec_p.add(n_rec).write((sec + cur * 4) as u32);
                        nodes_p.add(n_rec).write(slot);
                        work_p.add(n_work).write(id);
                    }
                    n_rec += 1;
                    n_work += usize::from(todo);
                    cur += words;
                }
            }
            if cur >= n {
                break;
            }
            let id = self.start_id().wrapping_add(n_rec as u32);
            // SAFETY: the first `n_rec` slots were written (void above, each type's
            // below), within the capacity of `nodes`.
            let slots = unsafe { core::slice::from_raw_parts(nodes_p, n_rec) };
            let (words, slot, todo) = self.btf_check_meta(cur, id, slots, &mut mods, resolve)?;
            if n_rec >= room {
                return Err(self.msg_fail(Errno::E2BIG, "Exceeded max num of types"));
            }
            // SAFETY: `n_rec` < `room` <= `max`, the capacity of `rec`, `nodes` and
            // `work`, and `n_work` <= `n_rec`.
            unsafe {
                rec_p.add(n_rec).write((self.sec + cur * 4) as u32);
                nodes_p.add(n_rec).write(slot);
                // Written always, kept when `todo`: no branch on the kind.
                work_p.add(n_work).write(id);
            }
            n_rec += 1;
            n_work += usize::from(todo);
            cur += words;
            if self.log.needed() {
                self.log_type_id = self.log_type_id.wrapping_add(1);
            }
        }
        // A type_len that is not a multiple of 4 leaves a record of fewer than 12
        // bytes.
        if cur * 4 < self.type_len {
            return Err(self.meta_left_fail(cur));
        }
        // SAFETY: the first `n_rec` elements of `rec` and `nodes` and the first
        // `n_work` of `work` were written above (each count grows only after a write
        // at its index), within their capacities.
        unsafe {
            rec.set_len(n_rec);
            nodes.set_len(n_rec);
            work.set_len(n_work);
        }
        self.rec = rec;
        self.nodes = nodes;
        self.mods = mods;
        self.work = work;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------
// members (the kinds' check_member and check_kflag_member)
// ---------------------------------------------------------------------------------

impl<'a, L: BtfLog, const SPLIT: bool> Env<'a, '_, L, SPLIT> {
    /// Member `i` of local STRUCT/UNION `id`.
    fn member_of(&self, id: u32, i: usize) -> BtfMember {
        let (_, ms) = self.record(id);
        let m = ms.get(i * 3..i * 3 + 3).unwrap_or(&[0, 0, 0]);
        BtfMember {
            name_off: m[0],
            type_id: m[1],
            offset: m[2],
        }
    }

    /// The member check of STRUCT/UNION `h` for its member
    /// `mi` (`mo` its offset word) of type `mt`, whose slot is `n`: `check_member` (or
    /// with kflag `check_kflag_member`) of the member type's kind. A modifier's is
    /// `btf_modifier_check_member`/`btf_modifier_check_kflag_member`, which runs the
    /// check of the type `btf_type_id_size` resolves it to, on the member with that
    /// type id.
    #[inline(always)]
    fn btf_check_member(&mut self, h: Holder, mi: usize, mt: u32, mo: u32, n: Node) -> VResult {
        let Holder {
            id: st,
            size,
            kflag,
        } = h;
        let Some((r, sz, rk, rf)) = self.tis_flags(mt, n) else {
            return Err(self.unsized_member_fail(st, mi, n.kind(), kflag));
        };
        // Most members take this first test; the kind is not tested by a table jump,
        // whose target would follow the members' kinds. A plain INT passes the INT
        // checks exactly where it passes this one (`PLAIN_INT`).
        let byte_sized = BYTE_SIZED.has(rk) | (rk == INT) & (rf & PLAIN_INT != 0);
        if byte_sized && !(kflag && ENUMS.has(rk)) {
            let (off, bf) = if kflag {
                (btf_member_bit_offset(mo), btf_member_bitfield_size(mo))
            } else {
                (mo, 0)
            };
            if bf == 0 && off & 7 == 0 && size.wrapping_sub(off / 8) >= sz {
                return Ok(());
            }
            if rk != INT {
                return Err(self.byte_sized_member_fail(st, mi, r, size, sz, kflag));
            }
        }
        match rk {
            INT if kflag => self.btf_int_check_kflag_member(st, size, mi, r, mo),
            INT => self.btf_int_check_member(st, size, mi, r, mo),
            ENUM | ENUM64 => self.btf_enum_check_kflag_member(st, size, mi, r, mo),
            FLOAT if kflag => self.btf_generic_check_kflag_member(st, size, mi, r, sz, mo),
            FLOAT => self.btf_float_check_member(st, size, mi, r, sz, mo),
            _ => Err(self.btf_df_check_member(st, kflag)),
        }
    }

    /// The member `mi` of `st` with its type id replaced by `r` (what a modifier's
    /// check passes on).
    fn member_as(&self, st: u32, mi: usize, r: u32) -> BtfMember {
        BtfMember {
            type_id: r,
            ..self.member_of(st, mi)
        }
    }

    /// A member whose type `btf_type_id_size` does not size: a modifier's
    /// "Invalid member" (`btf_modifier_check_member`), else `btf_df_check_member`.
    #[cold]
    #[inline(never)]
    fn unsized_member_fail(&mut self, st: u32, mi: usize, k: u8, kflag: bool) -> Stop {
        if MODIFIER.has(k) {
            let m = self.member_of(st, mi);
            return self.member_fail(self.type_at(st), m, "Invalid member");
        }
        self.btf_df_check_member(st, kflag)
    }

    /// `btf_df_check_member` (kernel/bpf/btf.c) / `btf_df_check_kflag_member`.
    /// No profile flag changes it.
    #[cold]
    #[inline(never)]
    fn btf_df_check_member(&mut self, st: u32, kflag: bool) -> Stop {
        let msg = if kflag {
            "Unsupported check_kflag_member"
        } else {
            "Unsupported check_member"
        };
        let t = self.type_at(st);
        self.log_type_impl(&t, false, Some(format_args!("{msg}")));
        self.fail(EINVAL, msg)
    }

    /// The failing check of `btf_ptr_check_member`, `btf_array_check_member`,
    /// `btf_struct_check_member` and `btf_enum_check_member` (each after
    /// `btf_generic_check_kflag_member`'s bitfield test with kflag), in their order.
    #[cold]
    #[inline(never)]
    fn byte_sized_member_fail(
        &mut self,
        st: u32,
        mi: usize,
        r: u32,
        size: u32,
        sz: u32,
        kflag: bool,
    ) -> Stop {
        let m = self.member_as(st, mi, r);
        let t = self.type_at(st);
        let off = if kflag {
            if btf_member_bitfield_size(m.offset) != 0 {
                return self.member_fail(t, m, "Invalid member bitfield_size");
            }
            btf_member_bit_offset(m.offset)
        } else {
            m.offset
        };
        if off & 7 != 0 {
            return self.member_fail(t, m, "Member is not byte aligned");
        }
        debug_assert!(size.wrapping_sub(off / 8) < sz);
        self.member_fail(t, m, "Member exceeds struct_size")
    }

    /// The common end of `btf_int_check_member` and `btf_int_check_kflag_member`:
    /// `nr_bits` bits at bit offset `bits_off` need at most 128 copy bits and must lie
    /// inside `size` bytes.
    #[inline(always)]
    fn int_member_fits(
        &mut self,
        st: u32,
        mi: usize,
        r: u32,
        size: u32,
        bits_off: u32,
        nr_bits: u32,
    ) -> VResult {
        let bytes_offset = bits_off / 8;
        let nr_copy_bits = nr_bits + (bits_off & 7);
        if nr_copy_bits > 128 {
            return Err(self.member_msg_fail(st, mi, r, "nr_copy_bits exceeds 128"));
        }
        if size < bytes_offset || size - bytes_offset < nr_copy_bits.div_ceil(8) {
            return Err(self.member_msg_fail(st, mi, r, "Member exceeds struct_size"));
        }
        Ok(())
    }

    /// `btf_verifier_log_member(env, struct_type, member, msg)` of member `mi` of `st`
    /// with type id `r`, then -EINVAL.
    #[cold]
    #[inline(never)]
    fn member_msg_fail(&mut self, st: u32, mi: usize, r: u32, msg: &'static str) -> Stop {
        let m = self.member_as(st, mi, r);
        self.member_fail(self.type_at(st), m, msg)
    }

    /// `btf_int_check_member` (kernel/bpf/btf.c).
    /// No profile flag changes it.
    #[inline(always)]
    fn btf_int_check_member(&mut self, st: u32, size: u32, mi: usize, r: u32, mo: u32) -> VResult {
        let d = self.word(r, 3);
        if u32::MAX - mo < btf_int_offset(d) {
            return Err(self.member_msg_fail(st, mi, r, "bits_offset exceeds U32_MAX"));
        }
        self.int_member_fits(st, mi, r, size, mo + btf_int_offset(d), btf_int_bits(d))
    }

    /// `btf_int_check_kflag_member` (kernel/bpf/btf.c).
    /// No profile flag changes it.
    #[inline(always)]
    fn btf_int_check_kflag_member(
        &mut self,
        st: u32,
        size: u32,
        mi: usize,
        r: u32,
        mo: u32,
    ) -> VResult {
        if !self.btf_type_int_is_regular(r) {
            return Err(self.member_msg_fail(st, mi, r, "Invalid member base type"));
        }
        let int_bits = btf_int_bits(self.word(r, 3));
        let bits_off = btf_member_bit_offset(mo);
        let mut nr_bits = btf_member_bitfield_size(mo);
        if nr_bits == 0 {
            if bits_off & 7 != 0 {
                return Err(self.member_msg_fail(st, mi, r, "Invalid member offset"));
            }
            nr_bits = int_bits;
        } else if nr_bits > int_bits {
            return Err(self.member_msg_fail(st, mi, r, "Invalid member bitfield_size"));
        }
        self.int_member_fits(st, mi, r, size, bits_off, nr_bits)
    }

    /// `btf_enum_check_kflag_member` (kernel/bpf/btf.c) (ENUM and ENUM64; without kflag
    /// an enum member is byte-sized: `btf_enum_check_member`). No profile flag changes
    /// it.
    fn btf_enum_check_kflag_member(
        &mut self,
        st: u32,
        size: u32,
        mi: usize,
        r: u32,
        mo: u32,
    ) -> VResult {
        let bits_off = btf_member_bit_offset(mo);
        let mut nr_bits = btf_member_bitfield_size(mo);
        if nr_bits == 0 {
            if bits_off & 7 != 0 {
                return Err(self.member_msg_fail(st, mi, r, "Member is not byte aligned"));
            }
            nr_bits = 32;
        } else if nr_bits > 32 {
            return Err(self.member_msg_fail(st, mi, r, "Invalid member bitfield_size"));
        }
        if size < (bits_off + nr_bits).div_ceil(8) {
            return Err(self.member_msg_fail(st, mi, r, "Member exceeds struct_size"));
        }
        Ok(())
    }

    /// `btf_generic_check_kflag_member` (kernel/bpf/btf.c) of a FLOAT (the byte-sized
    /// kinds take it in [`Self::btf_check_member`]): no bitfield size, then the kind's
    /// `check_member`. No profile flag changes it.
    fn btf_generic_check_kflag_member(
        &mut self,
        st: u32,
        size: u32,
        mi: usize,
        r: u32,
        sz: u32,
        mo: u32,
    ) -> VResult {
        if btf_member_bitfield_size(mo) != 0 {
            return Err(self.member_msg_fail(st, mi, r, "Invalid member bitfield_size"));
        }
        self.btf_float_check_member(st, size, mi, r, sz, mo)
    }

    /// `btf_float_check_member` (kernel/bpf/btf.c): aligned to `min(8, size)` bytes,
    /// inside the struct. No profile flag changes it.
    fn btf_float_check_member(
        &mut self,
        st: u32,
        size: u32,
        mi: usize,
        r: u32,
        fsize: u32,
        mo: u32,
    ) -> VResult {
        let align_bits = 8u64.min(u64::from(fsize)) * 8;
        if align_bits == 0 || !u64::from(mo).is_multiple_of(align_bits) {
            return Err(self.member_msg_fail(st, mi, r, "Member is not properly aligned"));
        }
        if u64::from(mo) / 8 + u64::from(fsize) > u64::from(size) {
            return Err(self.member_msg_fail(st, mi, r, "Member exceeds struct_size"));
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------
// the resolve pass (btf_check_all_types)
// ---------------------------------------------------------------------------------

impl<'a, L: BtfLog, const SPLIT: bool> Env<'a, '_, L, SPLIT> {
    /// `env_type_is_resolve_sink` in the current mode.
    #[inline(always)]
    fn sink(&self, k: u8) -> bool {
        !self.mode.has(k)
    }

    /// `env_stack_push` (kernel/bpf/btf.c).
    /// No profile flag changes it.
    #[inline(always)]
    fn env_stack_push(&mut self, id: u32, k: u8) -> VResult {
        if self.top == MAX_RESOLVE_DEPTH {
            return Err(self.fail(Errno::E2BIG, "Exceeded max resolving depth:%u"));
        }
        let i = self.local(id);
        match self.nodes.get(i).map(|&n| self.turn_view(id, n)) {
            Some(n) if n.visit() == NOT_VISITED => {
                if let Some(slot) = self.nodes.get_mut(i) {
                    *slot = n.with_visit(VISITED);
                }
            }
            _ => return Err(self.fail(Errno::EEXIST, "Loop detected")),
        }
        self.stack[self.top] = (id, 0);
        self.top += 1;
        if self.mode == MODE_TBD {
            self.mode = AFTER_PUSH[(k & 31) as usize];
        }
        Ok(())
    }

    /// `!env_type_is_resolve_sink(env, t) && !env_type_is_resolved(env, id)`, then
    /// `env_stack_push`: `Ok(true)` when pushed.
    #[inline(always)]
    fn push_unless_done(&mut self, id: u32, n: Node) -> VResult<bool> {
        if n.flags() & DONE == 0 && !self.sink(n.kind()) {
            self.env_stack_push(id, n.kind())?;
            return Ok(true);
        }
        Ok(false)
    }

    /// [`Self::push_unless_done`], or with `DIRECT` (a resolve without the walk) only
    /// whether it would push.
    #[inline(always)]
    fn push_unless_done_or<const DIRECT: bool>(&mut self, id: u32, n: Node) -> VResult<bool> {
        if DIRECT {
            return Ok(n.flags() & DONE == 0 && !self.sink(n.kind()));
        }
        self.push_unless_done(id, n)
    }

    /// `env_stack_set_next_member` (kernel/bpf/btf.c).
    /// No profile flag changes it.
    #[inline(always)]
    fn env_stack_set_next_member(&mut self, next: usize) {
        if let Some(v) = self.stack.get_mut(self.top.wrapping_sub(1)) {
            v.1 = next as u16;
        }
    }

    /// `env_stack_pop_resolved` (kernel/bpf/btf.c).
    /// No profile flag changes it.
    #[inline(always)]
    fn env_stack_pop_resolved(&mut self, rid: u32, rsize: u32) {
        self.top -= 1;
        let id = self.stack.get(self.top).map_or(0, |v| v.0);
        self.set_resolved(id, rid, rsize);
    }

    /// What `env_stack_pop_resolved` records of `id`: `resolved_ids`,
    /// `resolved_sizes`, `RESOLVED`. A modifier or VAR also notes whether
    /// `btf_type_id_size` now succeeds through its resolved id, and at which kind.
    #[inline(always)]
    fn set_resolved(&mut self, id: u32, rid: u32, rsize: u32) {
        let i = self.local(id);
        let Some(&old) = self.nodes.get(i) else {
            return;
        };
        let k = old.kind();
        let mut n = old.with_visit(RESOLVED).or_flags(DONE);
        if k == ARRAY {
            n = n.with_a(rsize);
        } else if !HAS_SIZE.has(k) {
            n = n.with_a(rid);
        }
        if MODIFIER_OR_VAR.has(k) {
            let rk = self.kind(rid).unwrap_or(UNKN);
            if SIZED.has(rk) {
                n = n.or_flags(TIS).with_rkind(rk);
            }
        }
        n = Node(n.0 | u64::from(with_arg_ok(n.flags(), k)) << 56);
        if let Some(slot) = self.nodes.get_mut(i) {
            *slot = n;
        }
    }

    /// `btf_modifier_resolve` (kernel/bpf/btf.c), `btf_ptr_resolve` and
    /// `btf_var_resolve`, which differ in two steps: PTR and VAR continue from a
    /// modifier's last-resolved PTR, and a VAR must resolve to a sized type where the
    /// others may end at void, FWD or FUNC_PROTO. `k` is the vertex's kind, `next_id`
    /// its `t->type`. No profile flag changes it.
    ///
    /// `DIRECT`: as in [`Self::btf_struct_resolve`].
    #[inline(always)]
    fn btf_ref_type_resolve<const DIRECT: bool>(
        &mut self,
        vid: u32,
        k: u8,
        next_id: u32,
    ) -> VResult<bool> {
        let mut next_id = next_id;
        let nn = match self.node(next_id) {
            Some(n) if !SOURCE_ONLY.has(n.kind()) => self.turn_view(next_id, n),
            _ => return Err(self.id_fail(vid, "Invalid type_id")),
        };
        let mut nk = nn.kind();
        if self.push_unless_done_or::<DIRECT>(next_id, nn)? {
            return Ok(false);
        }
        if (k == PTR || k == VAR) && MODIFIER.has(nk) {
            // btf_type_id_resolve: the modifier is resolved (modifiers are no sinks).
            let r = self.rid(next_id);
            if let Some(rn) = self.node(r).map(|rn| self.turn_view(r, rn))
                && rn.kind() == PTR
                && self.push_unless_done_or::<DIRECT>(r, rn)?
            {
                return Ok(false);
            }
        }
        match self.tis(next_id, nn) {
            Some((r, _, _)) => next_id = r,
            None if k == VAR => return Err(self.id_fail(vid, "Invalid type_id")),
            None => {
                if nn.visit() == RESOLVED {
                    next_id = self.rid(next_id);
                    nk = self.kind(next_id).unwrap_or(UNKN);
                }
                // "typedef void new_void", "const void"...
                if nk != UNKN && nk != FWD && nk != FUNC_PROTO {
                    return Err(self.id_fail(vid, "Invalid type_id"));
                }
            }
        }
        if DIRECT {
            self.set_resolved(vid, next_id, 0);
        } else {
            self.env_stack_pop_resolved(next_id, 0);
        }
        Ok(true)
    }

    /// `btf_modifier_resolve` (kernel/bpf/btf.c): TYPEDEF, VOLATILE, CONST, RESTRICT,
    /// TYPE_TAG. No profile flag changes it.
    #[inline(always)]
    fn btf_modifier_resolve(&mut self, vid: u32, k: u8, next_id: u32) -> VResult {
        self.btf_ref_type_resolve::<false>(vid, k, next_id)
            .map(|_| ())
    }

    /// `btf_ptr_resolve` (kernel/bpf/btf.c).
    /// No profile flag changes it.
    #[inline(always)]
    fn btf_ptr_resolve(&mut self, vid: u32, next_id: u32) -> VResult {
        self.btf_ref_type_resolve::<false>(vid, PTR, next_id)
            .map(|_| ())
    }

    /// `btf_var_resolve` (kernel/bpf/btf.c).
    /// No profile flag changes it.
    #[inline(always)]
    fn btf_var_resolve(&mut self, vid: u32, next_id: u32) -> VResult {
        self.btf_ref_type_resolve::<false>(vid, VAR, next_id)
            .map(|_| ())
    }

    /// `btf_array_resolve` (kernel/bpf/btf.c): the index type, then the element type,
    /// each resolved first where needed; the index must be a regular INT, an INT
    /// element regular, and the size must fit in u32. No profile flag changes it.
    ///
    /// `DIRECT`: as in [`Self::btf_struct_resolve`].
    fn btf_array_resolve<const DIRECT: bool>(&mut self, id: u32) -> VResult<bool> {
        let a = self.data(id, 3);
        let (elem, index, nelems) = match a {
            [e, i, n] => (*e, *i, *n),
            _ => return Err(self.id_fail(id, "Invalid elem")),
        };
        let inn = match self.node(index).map(|n| self.turn_view(index, n)) {
            Some(n) if !NOSIZE.with(SOURCE_ONLY).has(n.kind()) => n,
            _ => return Err(self.id_fail(id, "Invalid index")),
        };
        if self.push_unless_done_or::<DIRECT>(index, inn)? {
            return Ok(false);
        }
        match self.tis(index, inn) {
            Some((r, _, INT)) if self.btf_type_int_is_regular(r) => {}
            _ => return Err(self.id_fail(id, "Invalid index")),
        }
        let en = match self.node(elem).map(|n| self.turn_view(elem, n)) {
            Some(n) if !NOSIZE.with(SOURCE_ONLY).has(n.kind()) => n,
            _ => return Err(self.id_fail(id, "Invalid elem")),
        };
        if self.push_unless_done_or::<DIRECT>(elem, en)? {
            return Ok(false);
        }
        let Some((eid, esize, ek)) = self.tis(elem, en) else {
            return Err(self.id_fail(id, "Invalid elem"));
        };
        if ek == INT && !self.btf_type_int_is_regular(eid) {
            return Err(self.id_fail(id, "Invalid array of int"));
        }
        if nelems != 0 && esize > u32::MAX / nelems {
            return Err(self.id_fail(id, "Array size overflows U32_MAX"));
        }
        if DIRECT {
            self.set_resolved(id, eid, esize.wrapping_mul(nelems));
        } else {
            self.env_stack_pop_resolved(eid, esize.wrapping_mul(nelems));
        }
        Ok(true)
    }

    /// `btf_struct_resolve` (kernel/bpf/btf.c): STRUCT and UNION, member by member from
    /// `next_member`; a member that needs resolving is pushed and its check made when
    /// the walk comes back. No profile flag changes it.
    ///
    /// `DIRECT`: called at the type's turn without `btf_resolve`'s walk (see
    /// [`Self::turns`]): where the walk would push a member it returns `Ok(false)`
    /// before any change, and where it would pop the type it records it resolved.
    /// `Ok(true)` when the type is resolved.
    fn btf_struct_resolve<const DIRECT: bool>(
        &mut self,
        id: u32,
        size: u32,
        next_member: u16,
    ) -> VResult<bool> {
        let (info, ms) = self.record(id);
        let kflag = btf_info_kflag(info);
        let holder = Holder { id, size, kflag };
        let mut i = next_member as usize;
        if i != 0 {
            let Some(m) = ms.get((i - 1) * 3..i * 3) else {
                return Err(self.fail_warn(EINVAL, "WARN: last member not resolved"));
            };
            let n = match self.node(m[1]) {
                Some(n) if n.visit() == RESOLVED => n,
                _ => {
                    crate::sync::warn::warn("btf_struct_resolve: last member not resolved");
                    return Err(self.fail_warn(EINVAL, "WARN: last member not resolved"));
                }
            };
            self.btf_check_member(holder, i - 1, m[1], m[2], n)?;
        }
        while let Some(m) = ms.get(i * 3..i * 3 + 3) {
            let (mt, mo) = (m[1], m[2]);
            let n = match self.node(mt).map(|n| self.turn_view(mt, n)) {
                // ARG_OK: sized, resolved or needing none, not source-only.
                Some(n) if n.flags() & ARG_OK != 0 => {
                    self.btf_check_member(holder, i, mt, mo, n)?;
                    i += 1;
                    continue;
                }
                Some(n) if !NOSIZE.with(SOURCE_ONLY).has(n.kind()) => n,
                _ => return Err(self.member_msg_fail(id, i, mt, "Invalid member")),
            };
            i += 1;
            if n.flags() & DONE == 0 && !self.sink(n.kind()) {
                if DIRECT {
                    return Ok(false);
                }
                self.env_stack_set_next_member(i);
                self.env_stack_push(mt, n.kind())?;
                return Ok(false);
            }
            self.btf_check_member(holder, i - 1, mt, mo, n)?;
        }
        if DIRECT {
            self.set_resolved(id, 0, 0);
        } else {
            self.env_stack_pop_resolved(0, 0);
        }
        Ok(true)
    }

    /// `btf_datasec_resolve` (kernel/bpf/btf.c): every entry a VAR, resolved first
    /// where needed, whose type's size fits the entry's. No profile flag changes it.
    fn btf_datasec_resolve(&mut self, id: u32, next_member: u16) -> VResult {
        self.mode = MODE_TBD;
        let vlen = btf_info_vlen(self.info(id)) as usize;
        let vs = self.data(id, vlen * 3);
        let mut i = next_member as usize;
        while let Some(e) = vs.get(i * 3..i * 3 + 3) {
            let vsi = BtfVarSecinfo {
                type_id: e[0],
                offset: e[1],
                size: e[2],
            };
            i += 1;
            if self.kind(vsi.type_id) != Some(VAR) {
                return Err(self.vsi_fail(self.type_at(id), vsi, "Not a VAR kind member"));
            }
            if !self.sink(VAR) && !self.is_resolved(vsi.type_id) {
                self.env_stack_set_next_member(i);
                return self.env_stack_push(vsi.type_id, VAR);
            }
            let Some((_, size, _)) = self.btf_type_id_size(self.st(vsi.type_id)) else {
                return Err(self.vsi_fail(self.type_at(id), vsi, "Invalid type"));
            };
            if vsi.size < size {
                return Err(self.vsi_fail(self.type_at(id), vsi, "Invalid size"));
            }
        }
        self.env_stack_pop_resolved(0, 0);
        Ok(())
    }

    /// `btf_decl_tag_resolve` (kernel/bpf/btf.c): the target is a FUNC, STRUCT, UNION,
    /// VAR or TYPEDEF (`btf_type_is_decl_tag_target`), resolved first where needed; a
    /// component index must name a member or parameter. No profile flag changes it.
    fn btf_decl_tag_resolve(&mut self, id: u32, next_id: u32) -> VResult {
        let nn = match self.node(next_id) {
            Some(n) if DECL_TAG_TARGET_KINDS.has(n.kind()) => self.turn_view(next_id, n),
            _ => return Err(self.id_fail(id, "Invalid type_id")),
        };
        let nk = nn.kind();
        if self.push_unless_done(next_id, nn)? {
            return Ok(());
        }
        let idx = self.word(id, 3) as i32;
        if idx != -1 {
            if nk == VAR || nk == TYPEDEF {
                return Err(self.id_fail(id, "Invalid component_idx"));
            }
            let vlen = if STRUCTS.has(nk) {
                btf_info_vlen(self.info(next_id))
            } else {
                // next_type is a FUNC: its prototype's parameters.
                btf_info_vlen(self.info(self.st(next_id)))
            };
            if idx as u32 >= u32::from(vlen) {
                return Err(self.id_fail(id, "Invalid component_idx"));
            }
        }
        self.env_stack_pop_resolved(next_id, 0);
        Ok(())
    }

    /// `btf_func_check` (kernel/bpf/btf.c): the FUNC's type is a FUNC_PROTO, none of
    /// whose parameters has a type but no name. No profile flag changes it.
    #[inline(always)]
    fn btf_func_check(&mut self, id: u32, proto: u32) -> VResult {
        match self.node(proto) {
            Some(p) if p.kind() == FUNC_PROTO && p.flags() & BAD_PARAM == 0 => Ok(()),
            Some(p) if p.kind() == FUNC_PROTO => Err(self.func_arg_fail(id, proto)),
            _ => Err(self.id_fail(id, "Invalid type_id")),
        }
    }

    /// `btf_func_check`'s "Invalid arg#%u": the first parameter with a type but no
    /// name.
    #[cold]
    #[inline(never)]
    fn func_arg_fail(&mut self, id: u32, proto: u32) -> Stop {
        let vlen = btf_info_vlen(self.info(proto)) as usize;
        let i = (0..vlen)
            .find(|&i| self.word(proto, 3 + 2 * i) == 0 && self.word(proto, 4 + 2 * i) != 0)
            .unwrap_or(0);
        self.arg_fail(id, i + 1)
    }

    /// `btf_verifier_log_type(env, t, "Invalid arg#%u", n)`, then -EINVAL.
    #[cold]
    #[inline(never)]
    fn arg_fail(&mut self, id: u32, n: usize) -> Stop {
        let t = self.type_at(id);
        self.log_type_impl(&t, true, Some(format_args!("Invalid arg#{n}")));
        self.fail(EINVAL, "Invalid arg#%u")
    }

    /// `btf_func_resolve` (kernel/bpf/btf.c): `btf_func_check`, then resolved to its
    /// prototype. No profile flag changes it.
    #[inline(always)]
    fn btf_func_resolve(&mut self, id: u32, proto: u32) -> VResult {
        self.btf_func_check(id, proto)?;
        self.env_stack_pop_resolved(proto, 0);
        Ok(())
    }

    /// `btf_df_resolve` (kernel/bpf/btf.c): a kind without a resolve op.
    /// No profile flag changes it.
    #[cold]
    #[inline(never)]
    fn btf_df_resolve(&mut self, id: u32) -> Stop {
        let t = self.type_at(id);
        self.log_type_impl(&t, false, Some(format_args!("Unsupported resolve")));
        self.fail(EINVAL, "Unsupported resolve")
    }

    /// The `resolve` op of the vertex's kind (`btf_type_ops(v->t)->resolve`).
    #[inline(always)]
    fn resolve_vertex(&mut self, vid: u32, next_member: u16) -> VResult {
        let Some(n) = self.node(vid) else {
            return Err(self.btf_df_resolve(vid));
        };
        match n.kind() {
            TYPEDEF | VOLATILE | CONST | RESTRICT | TYPE_TAG => {
                self.btf_modifier_resolve(vid, n.kind(), n.a())
            }
            PTR => self.btf_ptr_resolve(vid, n.a()),
            VAR => self.btf_var_resolve(vid, n.a()),
            ARRAY => self.btf_array_resolve::<false>(vid).map(|_| ()),
            STRUCT | UNION => self
                .btf_struct_resolve::<false>(vid, n.a(), next_member)
                .map(|_| ()),
            DATASEC => self.btf_datasec_resolve(vid, next_member),
            DECL_TAG => self.btf_decl_tag_resolve(vid, n.a()),
            FUNC => self.btf_func_resolve(vid, n.a()),
            _ => Err(self.btf_df_resolve(vid)),
        }
    }

    /// `btf_resolve_valid` (kernel/bpf/btf.c): the final sanity check of a resolved type.
    /// No profile flag changes it.
    #[inline(always)]
    fn btf_resolve_valid(&self, id: u32, k: u8) -> bool {
        let Some(n) = self.node(id).filter(|n| n.visit() == RESOLVED) else {
            return false;
        };
        // resolved_ids and resolved_sizes from the slot (see Node).
        let rid = if SIZED_NOT_PTR.has(k) { 0 } else { n.a() };
        let rsize = if k == ARRAY { n.a() } else { 0 };
        if STRUCTS.has(k) || k == DATASEC {
            return rid == 0 && rsize == 0;
        }
        if k == DECL_TAG || k == FUNC {
            return rid != 0 && rsize == 0;
        }
        if MODIFIER_OR_VAR.has(k) || k == PTR {
            return self
                .kind(rid)
                .is_some_and(|rk| !MODIFIER_OR_VAR.has(rk) && rk != DATASEC);
        }
        if k == ARRAY {
            let n = self.word(id, 5);
            return match self.btf_type_id_size(self.word(id, 3)) {
                Some((_, es, ek)) => !MODIFIER.has(ek) && n.wrapping_mul(es) == self.rsize(id),
                None => false,
            };
        }
        false
    }

    /// `btf_resolve` (kernel/bpf/btf.c): the depth-first walk from type `id` (kind
    /// `k`), in the kernel's order, which decides where `MAX_RESOLVE_DEPTH` and loop
    /// detection trigger. No profile flag changes it.
    #[inline(always)]
    fn btf_resolve(&mut self, id: u32, k: u8) -> VResult {
        let saved = self.log_type_id;
        self.mode = MODE_TBD;
        let mut res = self.env_stack_push(id, k);
        while res.is_ok() && self.top > 0 {
            let (vid, next_member) = self.stack[self.top - 1];
            if self.log.needed() {
                self.log_type_id = vid;
            }
            res = self.resolve_vertex(vid, next_member);
        }
        if res.is_err() {
            self.log_type_id = id;
            self.log_resolve_failure(id);
        } else if !self.btf_resolve_valid(id, k) {
            self.log_type_id = id;
            res = Err(self.id_fail(id, "Invalid resolve state"));
        }
        self.log_type_id = saved;
        // A failed resolve leaves vertices on the stack; the kernel abandons the whole
        // env at that point, and so does the caller.
        res
    }

    /// `btf_resolve`'s own lines for a depth or loop failure.
    #[cold]
    #[inline(never)]
    fn log_resolve_failure(&mut self, id: u32) {
        let t = self.type_at(id);
        if self.failed.errno == Errno::E2BIG {
            self.log_type_impl(
                &t,
                true,
                Some(format_args!(
                    "Exceeded max resolving depth:{}",
                    MAX_RESOLVE_DEPTH
                )),
            );
        } else if self.failed.errno == Errno::EEXIST {
            self.log_type_impl(&t, true, Some(format_args!("Loop detected")));
        }
    }

    /// A FUNC_PROTO's return type or parameter `aid`: there, not source-only,
    /// resolved where needed (`btf_resolve`), then sized (`btf_type_id_size`); `bad`
    /// makes the failure of the first three.
    #[inline(always)]
    fn resolve_sized(&mut self, aid: u32, bad: impl Fn(&mut Self) -> Stop) -> VResult {
        if self
            .node(aid)
            .is_some_and(|n| self.turn_view(aid, n).flags() & ARG_OK != 0)
        {
            return Ok(());
        }
        self.resolve_sized_slow(aid, bad)
    }

    /// [`Self::resolve_sized`] but for the common case, check by check.
    #[inline(never)]
    fn resolve_sized_slow(&mut self, aid: u32, bad: impl Fn(&mut Self) -> Stop) -> VResult {
        let n = match self.node(aid) {
            Some(n) if !SOURCE_ONLY.has(n.kind()) => self.turn_view(aid, n),
            _ => return Err(bad(self)),
        };
        if n.flags() & DONE == 0 {
            self.btf_resolve(aid, n.kind())?;
            return match self.btf_type_id_size(aid) {
                Some(_) => Ok(()),
                None => Err(bad(self)),
            };
        }
        match self.tis(aid, n) {
            Some(_) => Ok(()),
            None => Err(bad(self)),
        }
    }

    /// `btf_func_proto_check` (kernel/bpf/btf.c): the return type and every parameter's
    /// type resolved and sized, the parameters' names valid, a vararg only last and
    /// unnamed. No profile flag changes it.
    #[inline(never)]
    fn btf_func_proto_check(&mut self, id: u32, n: Node) -> VResult {
        let ret = self.st(id);
        if ret != 0 {
            self.resolve_sized(ret, |e| e.id_fail(id, "Invalid return type"))?;
        }
        let vlen = btf_info_vlen(self.info(id)) as usize;
        let mut ps = self.data(id, 2 * vlen);
        if ps.len() != 2 * vlen {
            return Err(self.id_fail(id, "Invalid return type"));
        }
        if let [.., name, 0] = ps {
            if *name != 0 {
                return Err(self.arg_fail(id, vlen));
            }
            ps = &ps[..ps.len() - 2];
        }
        let check_names = n.flags() & BAD_ARG_NAME != 0;
        for (i, p) in ps.chunks_exact(2).enumerate() {
            let (no, aid) = (p[0], p[1]);
            if check_names {
                self.arg_checks_before_resolve(id, i, no, aid)?;
            }
            self.resolve_sized(aid, |e| e.arg_fail(id, i + 1))?;
        }
        Ok(())
    }

    /// `btf_func_proto_check`'s tests of argument `i` before its resolve, made one by
    /// one where the metas found a refused name: the type exists and is not
    /// source-only, then the name.
    #[cold]
    #[inline(never)]
    fn arg_checks_before_resolve(&mut self, id: u32, i: usize, no: u32, aid: u32) -> VResult {
        match self.node(aid) {
            Some(n) if !SOURCE_ONLY.has(n.kind()) => {}
            _ => return Err(self.arg_fail(id, i + 1)),
        }
        if no != 0 && (!self.btf_name_offset_valid(no) || !self.ident(no)) {
            return Err(self.arg_fail(id, i + 1));
        }
        Ok(())
    }

    /// `btf_check_all_types` (kernel/bpf/btf.c): `btf_resolve` from each type in id
    /// order that needs it, and `btf_func_proto_check` of each FUNC_PROTO. No profile
    /// flag changes it.
    #[inline(never)]
    fn btf_check_all_types(&mut self) -> VResult {
        self.stage = BtfStage::CheckAllTypes;
        self.phase = Phase::CheckType;
        let work = core::mem::take(&mut self.work);
        let res = self.turns(&work);
        self.work = work;
        res
    }

    /// The turns of `btf_check_all_types` that have something to do, in id order.
    fn turns(&mut self, work: &[u32]) -> VResult {
        for &id in work {
            let Some(n) = self.node(id) else { break };
            self.cursor = id;
            self.log_type_id = id;
            match n.kind() {
                // btf_resolve of a FUNC: its one step, btf_func_resolve, never pushes,
                // and btf_resolve_valid holds after it (resolved to a FUNC_PROTO, an
                // id other than 0, size 0), so the walk is that step alone.
                FUNC if n.visit() != RESOLVED => {
                    self.btf_func_check(id, n.a())?;
                    self.set_resolved(id, n.a(), 0);
                }
                FUNC_PROTO => self.btf_func_proto_check(id, n)?,
                STRUCT | UNION | ARRAY | PTR | TYPEDEF | VOLATILE | CONST | RESTRICT | TYPE_TAG
                | VAR
                    if self.shortcuts() && n.flags() & DONE == 0 =>
                {
                    self.direct_turn(id, n)?
                }
                _ if n.flags() & DONE == 0 => self.btf_resolve(id, n.kind())?,
                _ => {}
            }
        }
        Ok(())
    }

    /// With the log off, the turn of a STRUCT, UNION, ARRAY, PTR, modifier or VAR
    /// (slot `n`) whose walk would push nothing, without the walk: `btf_resolve` would
    /// push it (leaving the mode `env_stack_push` leaves), make its checks in order
    /// (the first failing one is its failure; the walk logs nothing else), pop it
    /// resolved and test `btf_resolve_valid`, which holds by construction for a
    /// STRUCT or UNION (resolved id and size 0) and an ARRAY (the size its resolve
    /// checked, of an element `btf_type_id_size` sizes, never a modifier), and is
    /// tested for the others. Where the walk would push, nothing has changed, and
    /// the walk (`btf_resolve`) is taken.
    #[inline(always)]
    fn direct_turn(&mut self, id: u32, n: Node) -> VResult {
        let k = n.kind();
        self.mode = AFTER_PUSH[(k & 31) as usize];
        let done = match k {
            ARRAY => self.btf_array_resolve::<true>(id)?,
            STRUCT | UNION => self.btf_struct_resolve::<true>(id, n.a(), 0)?,
            _ => {
                let done = self.btf_ref_type_resolve::<true>(id, k, n.a())?;
                if done && !self.btf_resolve_valid(id, k) {
                    return Err(self.id_fail(id, "Invalid resolve state"));
                }
                done
            }
        };
        if !done {
            self.btf_resolve(id, k)?;
        }
        Ok(())
    }

    // -----------------------------------------------------------------------------
    // btf_check_type_tags
    // -----------------------------------------------------------------------------

    /// `btf_check_type_tags` (kernel/bpf/btf.c) over the modifiers in id order (its
    /// loop passes over the other types): type tags only before other modifiers, chains
    /// of at most 32. No profile flag changes it.
    #[inline(never)]
    fn btf_check_type_tags(&mut self) -> VResult {
        self.stage = BtfStage::CheckTypeTags;
        let good_id = i64::from(self.start_id()) - 1;
        let mods = core::mem::take(&mut self.mods);
        let res = self.type_tag_chains(&mods, good_id);
        self.mods = mods;
        res
    }

    /// The loop of `btf_check_type_tags` over the modifiers `mods`.
    fn type_tag_chains(&mut self, mods: &[u32], mut good_id: i64) -> VResult {
        for &i in mods {
            let Some(mut k) = self.kind(i) else {
                return Err(self.fail(EINVAL, "type tags: bad id"));
            };
            let mut chain_limit = 32;
            let mut cur_id = i;
            let mut in_tags = k == TYPE_TAG;
            while MODIFIER.has(k) {
                if chain_limit == 0 {
                    return Err(self.msg_fail(Errno::ELOOP, "Max chain length or cycle detected"));
                }
                chain_limit -= 1;
                if k == TYPE_TAG {
                    if !in_tags {
                        return Err(self.msg_fail(EINVAL, "Type tags don't precede modifiers"));
                    }
                } else {
                    in_tags = false;
                }
                if i64::from(cur_id) <= good_id {
                    break;
                }
                cur_id = self.st(cur_id);
                match self.kind(cur_id) {
                    Some(nk) => k = nk,
                    None => return Err(self.fail(EINVAL, "type tags: bad id")),
                }
            }
            good_id = i64::from(i);
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------
// header and string section (btf_parse_hdr, btf_check_sec_info, btf_parse_str_sec)
// ---------------------------------------------------------------------------------

/// A check of `btf_parse` before the type section: its message, logged alone.
fn pre_fail<L: BtfLog>(
    log: &mut L,
    stage: BtfStage,
    errno: Errno,
    m: &'static str,
) -> (Fail, BtfStage) {
    if log.needed() {
        log.write(format_args!("{m}"));
    }
    (
        Fail {
            errno,
            reason: m,
            logged: true,
        },
        stage,
    )
}

fn hdr_from(data: &[u8]) -> (BtfHeader, u32) {
    let hdr_len = rd32(data, 4);
    let copy = (hdr_len as usize).min(BTF_HEADER_SIZE).min(data.len());
    let mut b = [0u8; BTF_HEADER_SIZE];
    b[..copy].copy_from_slice(&data[..copy]);
    let h = BtfHeader {
        magic: u16::from_ne_bytes([b[0], b[1]]),
        version: b[2],
        flags: b[3],
        hdr_len: rd32(&b, 4),
        type_off: rd32(&b, 8),
        type_len: rd32(&b, 12),
        str_off: rd32(&b, 16),
        str_len: rd32(&b, 20),
    };
    (h, hdr_len)
}

type PResult = Result<(), (Fail, BtfStage)>;

/// `btf_parse_hdr` (kernel/bpf/btf.c), ending in `btf_check_sec_info`.
/// No profile flag changes it.
fn btf_parse_hdr<L: BtfLog>(b: &mut BtfData, log: &mut L) -> PResult {
    let st = BtfStage::ParseHdr;
    let size = b.data.len() as u32;
    if size < 8 {
        return Err(pre_fail(log, st, EINVAL, "hdr_len not found"));
    }
    let (hdr, hdr_len) = hdr_from(&b.data);
    if size < hdr_len {
        return Err(pre_fail(log, st, EINVAL, "btf_header not found"));
    }
    if hdr_len as usize > BTF_HEADER_SIZE
        && b.data[BTF_HEADER_SIZE..hdr_len as usize]
            .iter()
            .any(|&c| c != 0)
    {
        return Err(pre_fail(log, st, Errno::E2BIG, "Unsupported btf_header"));
    }
    b.set_hdr(hdr);
    if log.needed() {
        log.write(format_args!(
            "magic: 0x{:x}\nversion: {}\nflags: 0x{:x}\nhdr_len: {}\ntype_off: {}\ntype_len: {}\nstr_off: {}\nstr_len: {}\nbtf_total_size: {}\n",
            hdr.magic, hdr.version, hdr.flags, hdr.hdr_len, hdr.type_off, hdr.type_len,
            hdr.str_off, hdr.str_len, size
        ));
    }
    if hdr.magic != BTF_MAGIC {
        return Err(pre_fail(log, st, EINVAL, "Invalid magic"));
    }
    if hdr.version != BTF_VERSION {
        return Err(pre_fail(log, st, Errno::ENOTSUPP, "Unsupported version"));
    }
    if hdr.flags != 0 {
        return Err(pre_fail(log, st, Errno::ENOTSUPP, "Unsupported flags"));
    }
    if b.base.is_none() && size == hdr.hdr_len {
        return Err(pre_fail(log, st, EINVAL, "No data"));
    }
    btf_check_sec_info(&hdr, size, log)
}

/// `btf_check_sec_info` (kernel/bpf/btf.c): the type and string sections, sorted by the
/// kernel's int-cast comparator, fill the data after the header without gap or overlap.
/// No profile flag changes it.
fn btf_check_sec_info<L: BtfLog>(hdr: &BtfHeader, size: u32, log: &mut L) -> PResult {
    let st = BtfStage::ParseHdr;
    let mut secs = [(hdr.type_off, hdr.type_len), (hdr.str_off, hdr.str_len)];
    let cmp = |x: (u32, u32), y: (u32, u32)| -> i32 {
        let d = x.0.wrapping_sub(y.0) as i32;
        if d != 0 {
            d
        } else {
            x.1.wrapping_sub(y.1) as i32
        }
    };
    if cmp(secs[0], secs[1]) > 0 {
        secs.swap(0, 1);
    }
    let mut total: u32 = 0;
    let expected = size.wrapping_sub(hdr.hdr_len);
    for (off, len) in secs {
        if expected < off {
            return Err(pre_fail(log, st, EINVAL, "Invalid section offset"));
        }
        if total < off {
            return Err(pre_fail(log, st, EINVAL, "Unsupported section found"));
        }
        if total > off {
            return Err(pre_fail(log, st, EINVAL, "Section overlap found"));
        }
        if expected - total < len {
            return Err(pre_fail(log, st, EINVAL, "Total section length too long"));
        }
        total += len;
    }
    if expected != total {
        return Err(pre_fail(log, st, EINVAL, "Unsupported section found"));
    }
    Ok(())
}

/// `btf_parse_str_sec` (kernel/bpf/btf.c).
/// No profile flag changes it.
fn btf_parse_str_sec<L: BtfLog>(b: &mut BtfData, log: &mut L) -> PResult {
    let st = BtfStage::ParseStrSec;
    let h = b.hdr;
    let start = h.hdr_len as usize + h.str_off as usize;
    let end = start + h.str_len as usize;
    if end != b.data.len() {
        return Err(pre_fail(
            log,
            st,
            EINVAL,
            "String section is not at the end",
        ));
    }
    b.str_start = start;
    if b.base.is_some() && h.str_len == 0 {
        return Ok(());
    }
    if h.str_len == 0 || h.str_len - 1 > BTF_MAX_NAME_OFFSET || b.data[end - 1] != 0 {
        return Err(pre_fail(log, st, EINVAL, "Invalid string section"));
    }
    if b.base.is_none() && b.data[start] != 0 {
        return Err(pre_fail(log, st, EINVAL, "Invalid string section"));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------
// the drivers
// ---------------------------------------------------------------------------------

/// What the type section's passes hand back: `btf->types` and, after the resolve
/// pass, the slots (the resolved ids and sizes).
struct Accepted {
    types: Vec<u32>,
    resolved: Option<Vec<Node>>,
}

/// `btf_parse_type_sec` (kernel/bpf/btf.c) (its own checks, `btf_check_all_metas`, with
/// `resolve` `btf_check_all_types`), then `btf_check_type_tags`, over `b` whose header
/// and string section are checked. No profile flag changes it.
fn btf_check_types<L: BtfLog>(
    b: &BtfData,
    log: &mut L,
    opts: &ParseOpts,
) -> Result<Accepted, (Fail, BtfStage)> {
    let h = b.hdr;
    if h.type_off & 3 != 0 {
        return Err(pre_fail(
            log,
            BtfStage::ParseTypeSec,
            EINVAL,
            "Unaligned type_off",
        ));
    }
    if b.base.is_none() && h.type_len == 0 {
        return Err(pre_fail(
            log,
            BtfStage::ParseTypeSec,
            EINVAL,
            "No type found",
        ));
    }
    let cur0 = h.hdr_len as usize + h.type_off as usize;
    let end = cur0 + h.type_len as usize;
    let sec = b.data.get(cur0..end).unwrap_or(&[]);
    let whole = sec.len() & !3;
    // SAFETY: every bit pattern is a valid u32, and `align_to` returns only the
    // correctly aligned middle part of the slice.
    let (pre, mid, _) = unsafe { sec[..whole].align_to::<u32>() };
    let copy: Vec<u32>;
    let w: &[u32] = if pre.is_empty() {
        mid
    } else {
        copy = sec
            .chunks_exact(4)
            .map(|c| u32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        &copy
    };
    let str_end = (b.str_start + h.str_len as usize).min(b.data.len());
    let strs = b.data.get(b.str_start..str_end).unwrap_or(&[]);
    let base = b.base_data();
    let words = Words {
        data: &b.data,
        w,
        sec: cur0,
        types_end: end,
        type_len: h.type_len as usize,
        base,
        start_id: b.start_id,
        start_str_off: b.start_str_off,
        str_start: b.str_start,
        str_len: h.str_len,
        names: Names::new(strs),
    };
    if base.is_some() {
        Env::<L, true>::run(words, log, opts)
    } else {
        Env::<L, false>::run(words, log, opts)
    }
}

/// What the engine reads: the blob, its type section's words, the string section.
struct Words<'a> {
    data: &'a [u8],
    w: &'a [u32],
    sec: usize,
    types_end: usize,
    type_len: usize,
    base: Option<&'a BtfData>,
    start_id: u32,
    start_str_off: u32,
    str_start: usize,
    str_len: u32,
    names: Names<'a>,
}

impl<'a, 'l, L: BtfLog, const SPLIT: bool> Env<'a, 'l, L, SPLIT> {
    /// The three passes: `btf_check_all_metas`, with `opts.resolve`
    /// `btf_check_all_types`, then `btf_check_type_tags`.
    fn run(x: Words<'a>, log: &'l mut L, opts: &ParseOpts) -> Result<Accepted, (Fail, BtfStage)> {
        let mut env = Env::<'a, 'l, L, SPLIT> {
            log,
            data: x.data,
            w: x.w,
            sec: x.sec,
            types_end: x.types_end,
            type_len: x.type_len,
            base: x.base,
            start_id: x.start_id,
            start_str_off: x.start_str_off,
            str_start: x.str_start,
            str_len: x.str_len,
            names: x.names,
            sem: opts.sem,
            rec: Vec::new(),
            nodes: Vec::new(),
            mods: Vec::new(),
            work: Vec::new(),
            cursor: 0,
            stack: [(0, 0); MAX_RESOLVE_DEPTH],
            top: 0,
            mode: MODE_TBD,
            log_type_id: 0,
            phase: Phase::CheckMeta,
            stage: BtfStage::CheckAllMetas,
            failed: Fail {
                errno: EINVAL,
                reason: "",
                logged: true,
            },
        };
        let passes = |env: &mut Self| -> VResult {
            env.btf_check_all_metas(opts.resolve)?;
            if opts.resolve {
                env.btf_check_all_types()?;
            }
            env.btf_check_type_tags()
        };
        if passes(&mut env).is_err() {
            return Err((env.failed, env.stage));
        }
        let resolved = opts.resolve.then(|| core::mem::take(&mut env.nodes));
        Ok(Accepted {
            types: core::mem::take(&mut env.rec),
            resolved,
        })
    }
}

fn verify_with<L: BtfLog>(
    data: Box<[u8]>,
    base: Option<&BtfData>,
    opts: &ParseOpts,
    log: &mut L,
) -> Result<BtfData, (Fail, BtfStage)> {
    if data.len() > BTF_MAX_SIZE as usize && base.is_none() {
        return Err((
            Fail {
                errno: Errno::E2BIG,
                reason: "btf_size > BTF_MAX_SIZE",
                logged: false,
            },
            BtfStage::Parse,
        ));
    }
    let mut b = BtfData::new(data, base);
    btf_parse_hdr(&mut b, log)?;
    btf_parse_str_sec(&mut b, log)?;
    let acc = btf_check_types(&b, log, opts)?;
    b.types = acc.types;
    if let Some(slots) = acc.resolved {
        b.resolved = slots;
    }
    Ok(b)
}

/// Verified BTF; a split BTF's borrows its base for `'b` (the base's data is read
/// through it). [`crate::btf::Btf::new`] makes an object of it.
pub struct Verified<'b> {
    data: BtfData,
    _base: PhantomData<&'b BtfData>,
}

impl Verified<'_> {
    fn new(data: BtfData) -> Self {
        Verified {
            data,
            _base: PhantomData,
        }
    }

    /// The data, for an owner that keeps the base alive as long as the data lives.
    pub(crate) fn into_data(self) -> BtfData {
        self.data
    }
}

impl core::ops::Deref for Verified<'_> {
    type Target = BtfData;
    fn deref(&self) -> &BtfData {
        &self.data
    }
}

/// Runs the BTF verifier over `data`: what `btf_parse` (kernel/bpf/btf.c) does for
/// `BPF_BTF_LOAD` up to and including `btf_check_type_tags`; with `base` set, what
/// `btf_parse_module` does for a module's split BTF. Struct metas are built by the
/// caller (`crate::syscall::bpf_btf_load`).
///
/// At log level 0 the engine runs with [`NoLog`], at any other level with a
/// [`VerifierLog`]: the same checks in the same order, so the same verdict, errno,
/// reason, type offsets and resolved ids and sizes.
///
/// Profile flag: `btf_tag_kflag` (kind_flag allowed on TYPE_TAG and DECL_TAG).
pub fn btf_verify<'b>(
    data: Box<[u8]>,
    base: Option<&'b BtfData>,
    opts: &ParseOpts,
) -> Result<(Verified<'b>, VerifierLog), BtfParseError> {
    let err = |(f, stage): (Fail, BtfStage), log: Vec<u8>| BtfParseError {
        errno: f.errno,
        reason: f.reason,
        stage,
        logged: f.logged,
        log,
    };
    if opts.log_level == 0 {
        return match verify_with(data, base, opts, &mut NoLog) {
            Ok(b) => Ok((Verified::new(b), VerifierLog::new(0))),
            Err(e) => Err(err(e, Vec::new())),
        };
    }
    let mut log = VerifierLog::new(opts.log_level);
    match verify_with(data, base, opts, &mut log) {
        Ok(b) => Ok((Verified::new(b), log)),
        Err(e) => Err(err(e, log.into_bytes())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_cap_limit() {
        let mut c = TypesCap { size: 0 };
        let mut n = 0u32;
        while c.add(n, 0) {
            n += 1;
            if n > BTF_MAX_TYPE + 10 {
                break;
            }
        }
        assert_eq!(n, BTF_MAX_TYPE);
    }

    #[test]
    fn kind_sets_are_the_kernel_predicates() {
        use BtfKind as K;
        for k in 0..=BTF_KIND_MAX {
            let kind = BtfKind::from_u8(k).unwrap_or(K::Unkn);
            let t = |ks: &[BtfKind]| ks.contains(&kind);
            assert_eq!(
                MODIFIER.has(k),
                t(&[K::Typedef, K::Volatile, K::Const, K::Restrict, K::TypeTag])
            );
            assert_eq!(HAS_SIZE.has(k), super::super::types::has_size(kind));
            assert_eq!(
                SIZED.has(k),
                HAS_SIZE.has(k) || t(&[K::Ptr, K::Array]),
                "kind {k}"
            );
        }
    }
}
