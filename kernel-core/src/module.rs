//! Kernel modules as far as special fields care: a state (coming, live, going) and a
//! reference count (`try_module_get`/`module_put`, kernel/module/main.c), and the
//! module list entry of a module's BTF (`btf_module_notify`, kernel/bpf/btf.c).

use alloc::string::String;

use crate::sync::{Arc, AtomicI32, AtomicU32, Ordering};

/// `enum module_state`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum ModuleState {
    /// `MODULE_STATE_COMING`: BTF registered, not yet `BTF_MODULE_F_LIVE`.
    Coming = 0,
    /// `MODULE_STATE_LIVE`.
    Live = 1,
    /// `MODULE_STATE_GOING`: unloading; `try_module_get` fails.
    Going = 2,
}

/// `struct module`.
pub struct Module {
    name: String,
    state: AtomicU32,
    refcnt: AtomicI32,
}

impl Module {
    /// A module in state `Coming` with no references held by others.
    pub fn new(name: &str) -> Arc<Module> {
        crate::tally::module_created();
        Arc::new(Module {
            name: String::from(name),
            state: AtomicU32::new(ModuleState::Coming as u32),
            refcnt: AtomicI32::new(0),
        })
    }

    /// The module's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The state.
    pub fn state(&self) -> ModuleState {
        match self.state.load(Ordering::Acquire) {
            0 => ModuleState::Coming,
            1 => ModuleState::Live,
            _ => ModuleState::Going,
        }
    }

    /// Moves the module to `s` (the loader's notifier chain).
    pub fn set_state(&self, s: ModuleState) {
        self.state.store(s as u32, Ordering::Release);
    }

    /// References held on the module (`module_refcount`).
    pub fn refcount(&self) -> i32 {
        self.refcnt.load(Ordering::Acquire)
    }

    /// `delete_module`: refused with -EBUSY while references are held; otherwise the
    /// module goes to `Going`.
    pub fn try_unload(&self) -> crate::KResult<()> {
        if self
            .refcnt
            .compare_exchange(0, -1, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return Err(crate::Errno::EBUSY);
        }
        self.set_state(ModuleState::Going);
        Ok(())
    }
}

impl Drop for Module {
    /// The module's last holder is gone: a reference still counted on it (a count
    /// above 0; an unloaded module sits at -1) was taken and never put, which the suite
    /// tally counts.
    fn drop(&mut self) {
        let left = self.refcnt.load(Ordering::Acquire);
        crate::tally::module_dropped(usize::try_from(left).unwrap_or(0));
    }
}

/// `try_module_get`: a reference unless the module is going away.
pub fn try_module_get(m: &Module) -> bool {
    if m.state() == ModuleState::Going {
        return false;
    }
    let mut cur = m.refcnt.load(Ordering::Acquire);
    loop {
        if cur < 0 {
            return false;
        }
        match m
            .refcnt
            .compare_exchange_weak(cur, cur + 1, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => return true,
            Err(c) => cur = c,
        }
    }
}

/// `module_put` (kernel/module/main.c): `atomic_dec_if_positive`, WARN when the count
/// was not positive (it is left unchanged, so an unloaded module's -1 stays).
pub fn module_put(m: &Module) {
    let mut cur = m.refcnt.load(Ordering::Acquire);
    loop {
        if cur <= 0 {
            crate::sync::warn::warn("module_put: refcount underflow");
            return;
        }
        match m
            .refcnt
            .compare_exchange_weak(cur, cur - 1, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => return,
            Err(c) => cur = c,
        }
    }
}
