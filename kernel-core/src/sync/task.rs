//! The calling task's own state (`current`, include/asm-generic/current.h): its
//! migrate-disable count, `current->migration_disabled` (include/linux/sched.h), and
//! `task_local!`, the one way the workspace declares per-task state.
//!
//! A task here is a thread: loom's thread under `cfg(loom)`, the host's with the `std`
//! feature. A build with neither has one task, whose count is one shared atomic.

use core::cell::Cell;

/// Declares per-task state, as `std::thread_local!` does (`static NAME: T = INIT;`,
/// read with `NAME.with(..)`): a loom thread's under `cfg(loom)`, so the models explore
/// it per thread, the host thread's with the `std` feature. Every per-task state of the
/// workspace (the migrate-disable count, the allocators' local free lists, the shim's
/// WARN and refusal collectors) is declared with it.
#[cfg(loom)]
macro_rules! task_local {
    ($(#[$a:meta])* $v:vis static $n:ident: $t:ty = const { $e:expr };) => {
        loom::thread_local! { $(#[$a])* $v static $n: $t = $e; }
    };
}
/// Declares per-task state, as `std::thread_local!` does (`static NAME: T = INIT;`,
/// read with `NAME.with(..)`): a loom thread's under `cfg(loom)`, so the models explore
/// it per thread, the host thread's with the `std` feature. Every per-task state of the
/// workspace (the migrate-disable count, the allocators' local free lists, the shim's
/// WARN and refusal collectors) is declared with it.
#[cfg(all(not(loom), feature = "std"))]
pub use std::thread_local as task_local;
#[cfg(loom)]
pub(crate) use task_local;

#[cfg(any(loom, feature = "std"))]
task_local! {
    static MIGRATION_DISABLED: Cell<usize> = const { Cell::new(0) };
}

#[cfg(any(loom, feature = "std"))]
fn with_count<R>(f: impl FnOnce(&Cell<usize>) -> R) -> R {
    MIGRATION_DISABLED.with(f)
}

#[cfg(not(any(loom, feature = "std")))]
fn with_count<R>(f: impl FnOnce(&Cell<usize>) -> R) -> R {
    use core::sync::atomic::{AtomicUsize, Ordering};
    static ONE_TASK: AtomicUsize = AtomicUsize::new(0);
    let c = Cell::new(ONE_TASK.load(Ordering::Acquire));
    let r = f(&c);
    ONE_TASK.store(c.get(), Ordering::Release);
    r
}

/// `migrate_disable` (kernel/sched/core.c): the calling task may not migrate.
pub fn migrate_disable() {
    with_count(|c| c.set(c.get() + 1));
}

/// `migrate_enable` (kernel/sched/core.c): undoes one `migrate_disable`; an enable
/// without a disable returns false (the kernel's `WARN_ON_ONCE(!p->migration_disabled)`)
/// and changes nothing.
pub fn migrate_enable() -> bool {
    with_count(|c| match c.get() {
        0 => false,
        n => {
            c.set(n - 1);
            true
        }
    })
}

/// True while the calling task has migration disabled (`is_migration_disabled`).
pub fn migration_disabled() -> bool {
    with_count(|c| c.get() > 0)
}
