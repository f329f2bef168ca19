//! Why a check refused: the rule, and where in the BTF it applied. The kernel logs no
//! message for most of these (`btf_parse_fields`, struct metas, `map_check_btf`); the
//! model reports each refusal to a hook the host installs, so a person sees the
//! struct, member and offset. Without a hook a refusal costs a load and a branch.

use core::sync::atomic::{AtomicPtr, Ordering};

use alloc::string::String;

use crate::errno::Errno;

/// One report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Why<'a> {
    /// A check refused: the start of a chain.
    Rule {
        /// The errno returned.
        errno: Errno,
        /// The kernel function whose check refused.
        func: &'static str,
        /// The program-BTF type the rule is about (0: none).
        type_id: u32,
        /// The byte offset in that type the rule is about, if one.
        offset: Option<u32>,
        /// The rule, with the names involved.
        rule: &'a str,
    },
    /// The refusal reported before happened inside type `type_id` (program BTF): in
    /// its member `member` (index), at byte `offset`, when known.
    Within {
        /// The containing type.
        type_id: u32,
        /// The member's (or DATASEC variable's) index.
        member: Option<u32>,
        /// Its byte offset.
        offset: Option<u32>,
    },
    /// `map_check_btf` kept the record error reported before: the map is created
    /// without special fields.
    RecordKept,
}

/// The hook type.
pub type WhyHook = fn(&Why<'_>);

static HOOK: AtomicPtr<()> = AtomicPtr::new(core::ptr::null_mut());

/// Installs the hook (replaces any previous one).
pub fn set_why_hook(h: Option<WhyHook>) {
    let p = h.map_or(core::ptr::null_mut(), |f| f as *mut ());
    HOOK.store(p, Ordering::Release);
}

fn emit(w: Why<'_>) {
    let p = HOOK.load(Ordering::Acquire);
    if !p.is_null() {
        // SAFETY: only `set_why_hook` stores non-null values, and those are `WhyHook`
        // fn pointers cast to `*mut ()`.
        let f: WhyHook = unsafe { core::mem::transmute::<*mut (), WhyHook>(p) };
        f(&w);
    }
}

/// True when a hook is installed.
#[inline]
pub fn enabled() -> bool {
    !HOOK.load(Ordering::Acquire).is_null()
}

/// Reports that `func`'s rule refused with `errno`, and returns `errno`. `rule` is
/// only called when a hook is installed.
pub fn refuse(
    errno: Errno,
    func: &'static str,
    type_id: u32,
    offset: Option<u32>,
    rule: impl FnOnce() -> String,
) -> Errno {
    if enabled() {
        let r = rule();
        emit(Why::Rule {
            errno,
            func,
            type_id,
            offset,
            rule: &r,
        });
    }
    errno
}

/// Reports that the refusal just reported happened inside `type_id`, and returns
/// `errno` (for `map_err`).
pub fn within(errno: Errno, type_id: u32, member: Option<u32>, offset: Option<u32>) -> Errno {
    if enabled() {
        emit(Why::Within {
            type_id,
            member,
            offset,
        });
    }
    errno
}

/// Reports that `map_check_btf` kept the record error just reported.
pub fn record_kept() {
    if enabled() {
        emit(Why::RecordKept);
    }
}
