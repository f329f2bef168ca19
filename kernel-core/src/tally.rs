//! The process-wide tally of every [`BpfMemAlloc`](crate::obj::BpfMemAlloc), every `struct
//! btf` and every module: what each allocator allocated, freed, leaked and saw misused,
//! added up when it is dropped; how many BTF objects were made and freed, and every read
//! of a freed one; how many module references were left when a module went. A whole
//! test suite can so be held to zero leaks, zero double frees and zero references left
//! over, objects and references alike.
//!
//! A test that provokes a leak or a fault on purpose (a kernel bug it reproduces)
//! acknowledges what it has asserted: objects with
//! [`BpfMemAlloc::acknowledge`](crate::obj::BpfMemAlloc::acknowledge); a BTF reference the
//! kernel leaks by putting it back with
//! [`btf_put_leaked_reference`](crate::btf::object::btf_put_leaked_reference) once
//! asserted; BTF objects that stay (a reference cycle the kernel makes) with
//! [`acknowledge_btfs`]; reads of a freed BTF with [`acknowledge_btf_uses_after_free`];
//! module references with [`acknowledge_module_refs`]. Only what goes beyond them is
//! tallied as unexpected. The counters are plain atomics, outside what the loom models
//! explore.

use core::sync::atomic::{AtomicUsize, Ordering};

static CREATED: AtomicUsize = AtomicUsize::new(0);
static DROPPED: AtomicUsize = AtomicUsize::new(0);
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);
static FREES: AtomicUsize = AtomicUsize::new(0);
static LEAKS: AtomicUsize = AtomicUsize::new(0);
static DOUBLE_FREES: AtomicUsize = AtomicUsize::new(0);
static USES_AFTER_FREE: AtomicUsize = AtomicUsize::new(0);
static WILD: AtomicUsize = AtomicUsize::new(0);
static ACKNOWLEDGED: AtomicUsize = AtomicUsize::new(0);
static BTFS_CREATED: AtomicUsize = AtomicUsize::new(0);
static BTFS_FREED: AtomicUsize = AtomicUsize::new(0);
static BTFS_ACKNOWLEDGED: AtomicUsize = AtomicUsize::new(0);
static BTF_REFS_ACKNOWLEDGED: AtomicUsize = AtomicUsize::new(0);
static BTF_USES_AFTER_FREE: AtomicUsize = AtomicUsize::new(0);
static BTF_USES_ACKNOWLEDGED: AtomicUsize = AtomicUsize::new(0);
static MODULES_CREATED: AtomicUsize = AtomicUsize::new(0);
static MODULES_DROPPED: AtomicUsize = AtomicUsize::new(0);
static MODULE_REFS_LEFT: AtomicUsize = AtomicUsize::new(0);
static MODULE_REFS_ACKNOWLEDGED: AtomicUsize = AtomicUsize::new(0);

/// The sums over every allocator, BTF and module of this process.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemTally {
    /// Allocators created.
    pub allocators_created: usize,
    /// Allocators dropped (fewer than created: an allocator itself leaked, with
    /// whatever it still held, e.g. RCU callbacks that never ran).
    pub allocators_dropped: usize,
    /// Objects allocated.
    pub allocations: usize,
    /// Objects freed.
    pub frees: usize,
    /// Objects live when their allocator was dropped, not acknowledged.
    pub leaks: usize,
    /// Double frees, not acknowledged.
    pub double_frees: usize,
    /// Uses after free, not acknowledged.
    pub uses_after_free: usize,
    /// Frees or uses of addresses never handed out, not acknowledged.
    pub wild: usize,
    /// Leaks and faults acknowledged by the tests that provoked them.
    pub acknowledged: usize,
    /// `struct btf` objects made (`btf_parse`, vmlinux, modules).
    pub btfs_created: usize,
    /// `struct btf` objects freed (their last `btf_put` and, once published, the RCU
    /// free that follows it).
    pub btfs_freed: usize,
    /// BTF objects a test expects to stay (a reference cycle of the kernel's).
    pub btfs_acknowledged: usize,
    /// BTF references the kernel leaks that a test asserted and put back.
    pub btf_refs_acknowledged: usize,
    /// Reads of a freed BTF through an unreferenced pointer, not acknowledged.
    pub btf_uses_after_free: usize,
    /// Modules made.
    pub modules_created: usize,
    /// Modules dropped (their last holder gone).
    pub modules_dropped: usize,
    /// References still held on a module when it was dropped, not acknowledged.
    pub module_refs_leaked: usize,
    /// Module references acknowledged (as leaked by the kernel) by the tests.
    pub module_refs_acknowledged: usize,
}

impl MemTally {
    /// BTF objects neither freed nor acknowledged: leaked references keep them.
    pub fn btf_leaks(&self) -> usize {
        self.btfs_created
            .saturating_sub(self.btfs_freed)
            .saturating_sub(self.btfs_acknowledged)
    }

    /// True if nothing unexpected happened, every allocator and every module was
    /// dropped, and every BTF freed.
    pub fn is_clean(&self) -> bool {
        self.allocators_created == self.allocators_dropped
            && self.leaks == 0
            && self.double_frees == 0
            && self.uses_after_free == 0
            && self.wild == 0
            && self.btf_leaks() == 0
            && self.btf_uses_after_free == 0
            && self.modules_created == self.modules_dropped
            && self.module_refs_leaked == 0
    }
}

/// The tally so far.
pub fn mem_tally() -> MemTally {
    let l = |a: &AtomicUsize| a.load(Ordering::Relaxed);
    MemTally {
        allocators_created: l(&CREATED),
        allocators_dropped: l(&DROPPED),
        allocations: l(&ALLOCATIONS),
        frees: l(&FREES),
        leaks: l(&LEAKS),
        double_frees: l(&DOUBLE_FREES),
        uses_after_free: l(&USES_AFTER_FREE),
        wild: l(&WILD),
        acknowledged: l(&ACKNOWLEDGED),
        btfs_created: l(&BTFS_CREATED),
        btfs_freed: l(&BTFS_FREED),
        btfs_acknowledged: l(&BTFS_ACKNOWLEDGED),
        btf_refs_acknowledged: l(&BTF_REFS_ACKNOWLEDGED),
        btf_uses_after_free: l(&BTF_USES_AFTER_FREE).saturating_sub(l(&BTF_USES_ACKNOWLEDGED)),
        modules_created: l(&MODULES_CREATED),
        modules_dropped: l(&MODULES_DROPPED),
        module_refs_leaked: l(&MODULE_REFS_LEFT).saturating_sub(l(&MODULE_REFS_ACKNOWLEDGED)),
        module_refs_acknowledged: l(&MODULE_REFS_ACKNOWLEDGED),
    }
}

/// Reads of a freed BTF seen so far in this process, acknowledged or not (a model
/// compares it before and after an execution).
pub fn btf_uses_after_free_seen() -> usize {
    BTF_USES_AFTER_FREE.load(Ordering::Relaxed)
}

/// `n` BTF objects are expected to stay: a reference cycle the kernel makes (the
/// program-BTF self-reference of v6.4 to v6.11), asserted by the test.
pub fn acknowledge_btfs(n: usize) {
    BTFS_ACKNOWLEDGED.fetch_add(n, Ordering::Relaxed);
}

/// `n` reads of a freed BTF were the kernel's (a profile's bug a test reproduces).
pub fn acknowledge_btf_uses_after_free(n: usize) {
    BTF_USES_ACKNOWLEDGED.fetch_add(n, Ordering::Relaxed);
}

/// `n` module references are the kernel's leak, asserted by the test.
pub fn acknowledge_module_refs(n: usize) {
    MODULE_REFS_ACKNOWLEDGED.fetch_add(n, Ordering::Relaxed);
}

pub(crate) fn created() {
    CREATED.fetch_add(1, Ordering::Relaxed);
}

/// One dropped allocator's figures; `unexpected` holds (leaks, double frees, uses
/// after free, wild) beyond what was acknowledged.
pub(crate) fn dropped(
    allocations: usize,
    frees: usize,
    unexpected: [usize; 4],
    acknowledged: usize,
) {
    DROPPED.fetch_add(1, Ordering::Relaxed);
    ALLOCATIONS.fetch_add(allocations, Ordering::Relaxed);
    FREES.fetch_add(frees, Ordering::Relaxed);
    LEAKS.fetch_add(unexpected[0], Ordering::Relaxed);
    DOUBLE_FREES.fetch_add(unexpected[1], Ordering::Relaxed);
    USES_AFTER_FREE.fetch_add(unexpected[2], Ordering::Relaxed);
    WILD.fetch_add(unexpected[3], Ordering::Relaxed);
    ACKNOWLEDGED.fetch_add(acknowledged, Ordering::Relaxed);
}

/// A `struct btf` was made.
pub(crate) fn btf_created() {
    BTFS_CREATED.fetch_add(1, Ordering::Relaxed);
}

/// A `struct btf` was freed.
pub(crate) fn btf_freed() {
    BTFS_FREED.fetch_add(1, Ordering::Relaxed);
}

/// A BTF reference the kernel leaked was put back by the test that asserted it.
pub(crate) fn btf_ref_acknowledged() {
    BTF_REFS_ACKNOWLEDGED.fetch_add(1, Ordering::Relaxed);
}

/// A read of a freed BTF, already reported by the caller (a WARN).
pub(crate) fn btf_use_after_free_counted() {
    BTF_USES_AFTER_FREE.fetch_add(1, Ordering::Relaxed);
}

/// A dropped allocator's reads of a freed BTF (its runtime's), `acked` of them
/// acknowledged by the test (counted with the acknowledged leaks and faults too).
pub(crate) fn btf_uses_after_free_dropped(seen: usize, acked: usize) {
    BTF_USES_AFTER_FREE.fetch_add(seen, Ordering::Relaxed);
    BTF_USES_ACKNOWLEDGED.fetch_add(acked, Ordering::Relaxed);
    ACKNOWLEDGED.fetch_add(acked, Ordering::Relaxed);
}

/// A read of a freed BTF where no runtime is at hand (`btf_record_free`): a WARN with
/// the kernel function's name, and counted.
pub(crate) fn btf_use_after_free(site: &'static str) {
    btf_use_after_free_counted();
    crate::sync::warn::warn(site);
}

/// A module was made.
pub(crate) fn module_created() {
    MODULES_CREATED.fetch_add(1, Ordering::Relaxed);
}

/// A module was dropped with `refs` references still held on it.
pub(crate) fn module_dropped(refs: usize) {
    MODULES_DROPPED.fetch_add(1, Ordering::Relaxed);
    MODULE_REFS_LEFT.fetch_add(refs, Ordering::Relaxed);
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_tally_is_clean_only_with_nothing_unexpected() {
        let clean = MemTally {
            allocators_created: 2,
            allocators_dropped: 2,
            allocations: 5,
            frees: 4,
            acknowledged: 1,
            btfs_created: 3,
            btfs_freed: 2,
            btfs_acknowledged: 1,
            modules_created: 1,
            modules_dropped: 1,
            module_refs_acknowledged: 1,
            ..MemTally::default()
        };
        assert!(clean.is_clean());
        assert_eq!(clean.btf_leaks(), 0);
        assert_eq!(
            MemTally {
                btfs_freed: 0,
                ..clean
            }
            .btf_leaks(),
            2
        );
        for (what, t) in [
            (
                "an allocator not dropped",
                MemTally {
                    allocators_dropped: 1,
                    ..clean
                },
            ),
            ("a leak", MemTally { leaks: 1, ..clean }),
            (
                "a double free",
                MemTally {
                    double_frees: 1,
                    ..clean
                },
            ),
            (
                "a use after free",
                MemTally {
                    uses_after_free: 1,
                    ..clean
                },
            ),
            ("a wild free", MemTally { wild: 1, ..clean }),
            (
                "a BTF not freed",
                MemTally {
                    btfs_freed: 1,
                    ..clean
                },
            ),
            (
                "a read of a freed BTF",
                MemTally {
                    btf_uses_after_free: 1,
                    ..clean
                },
            ),
            (
                "a module not dropped",
                MemTally {
                    modules_dropped: 0,
                    ..clean
                },
            ),
            (
                "a module reference left",
                MemTally {
                    module_refs_leaked: 1,
                    ..clean
                },
            ),
        ] {
            assert!(!t.is_clean(), "{what}");
        }
    }

    /// Each counter moves by what it is told; the calls are balanced (everything made
    /// is dropped or acknowledged), so the process's tally stays clean.
    #[test]
    fn each_counter_moves_by_what_it_is_told() {
        let b = mem_tally();
        created();
        dropped(3, 3, [0; 4], 0);
        btf_created();
        btf_freed();
        btf_created();
        acknowledge_btfs(1);
        btf_ref_acknowledged();
        module_created();
        module_dropped(1);
        acknowledge_module_refs(1);
        let a = mem_tally();
        assert!(a.allocators_created > b.allocators_created);
        assert!(a.allocators_dropped > b.allocators_dropped);
        assert!(a.allocations >= b.allocations + 3 && a.frees >= b.frees + 3);
        assert!(a.btfs_created >= b.btfs_created + 2);
        assert!(a.btfs_freed > b.btfs_freed);
        assert!(a.btfs_acknowledged > b.btfs_acknowledged);
        assert!(a.btf_refs_acknowledged > b.btf_refs_acknowledged);
        assert!(a.modules_created > b.modules_created && a.modules_dropped > b.modules_dropped);
        assert!(a.module_refs_acknowledged > b.module_refs_acknowledged);
        assert_eq!(a.module_refs_leaked, b.module_refs_leaked);
    }

    /// Reads of a freed BTF are counted where they happen and when an allocator whose
    /// runtime saw them is dropped; acknowledged ones are not unexpected. Balanced, so
    /// the process's tally stays as it was.
    #[test]
    fn reads_of_a_freed_btf_are_counted_and_acknowledged() {
        let seen = btf_uses_after_free_seen();
        let before = mem_tally();
        btf_use_after_free("tally unit test: a read of a freed BTF");
        acknowledge_btf_uses_after_free(1);
        btf_uses_after_free_dropped(2, 2);
        assert!(btf_uses_after_free_seen() >= seen + 3);
        let after = mem_tally();
        assert!(after.acknowledged >= before.acknowledged + 2);
        assert_eq!(after.btf_uses_after_free, before.btf_uses_after_free);
    }
}
