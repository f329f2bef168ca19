//! `WARN_ON` sink. The kernel prints a warning and goes on; the model counts it and
//! hands it to a hook the host installs (the shim's WARN collector).

use core::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

/// A hook that receives every WARN the model raises.
pub type WarnHook = fn(&'static str);

static HOOK: AtomicPtr<()> = AtomicPtr::new(core::ptr::null_mut());
static COUNT: AtomicUsize = AtomicUsize::new(0);

/// Installs the hook that receives WARN messages (replaces any previous one).
pub fn set_warn_hook(hook: WarnHook) {
    HOOK.store(hook as *mut (), Ordering::Release);
}

/// Raises a kernel `WARN` with the kernel's message.
pub fn warn(msg: &'static str) {
    COUNT.fetch_add(1, Ordering::Relaxed);
    let p = HOOK.load(Ordering::Acquire);
    if !p.is_null() {
        // SAFETY: the only non-null value ever stored is a `WarnHook` cast by
        // `set_warn_hook`, and fn pointers round-trip through `*mut ()` on every
        // target Rust supports.
        let hook: WarnHook = unsafe { core::mem::transmute::<*mut (), WarnHook>(p) };
        hook(msg);
    }
}

/// Number of WARNs raised by this process so far.
pub fn warn_count() -> usize {
    COUNT.load(Ordering::Relaxed)
}
