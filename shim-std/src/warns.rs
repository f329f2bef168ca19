//! The WARN collector: every kernel `WARN` the model raises (refcount saturation,
//! verifier-bug checks, teardown WARNs) is kept in order, for the CLI and for tests.

use std::sync::Mutex;

static WARNS: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());

kernel_core::sync::task::task_local! {
    static MINE: std::cell::RefCell<Vec<&'static str>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn hook(msg: &'static str) {
    if let Ok(mut g) = WARNS.lock() {
        g.push(msg);
    }
    MINE.with(|m| m.borrow_mut().push(msg));
}

/// Runs `f` and returns the WARNs this thread raised meanwhile (installs the
/// collector).
pub fn during<R>(f: impl FnOnce() -> R) -> (R, Vec<&'static str>) {
    install();
    let before = MINE.with(|m| std::mem::take(&mut *m.borrow_mut()));
    let r = f();
    let got = MINE.with(|m| std::mem::replace(&mut *m.borrow_mut(), before));
    (r, got)
}

/// Installs the collector as `kernel-core`'s WARN hook.
pub fn install() {
    kernel_core::sync::warn::set_warn_hook(hook);
}

/// Takes the WARNs collected so far (process-wide, in order).
pub fn take() -> Vec<&'static str> {
    WARNS
        .lock()
        .map(|mut g| std::mem::take(&mut *g))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #[test]
    fn collects_in_order() {
        super::install();
        let _ = super::take();
        kernel_core::sync::warn::warn("first");
        kernel_core::sync::warn::warn("second");
        let got = super::take();
        let ours: Vec<_> = got
            .into_iter()
            .filter(|w| *w == "first" || *w == "second")
            .collect();
        assert_eq!(ours, ["first", "second"]);
    }
}
