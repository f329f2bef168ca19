//! A module's state and reference count (`try_module_get`, `module_put`,
//! `delete_module`; kernel/module/main.c) and what the suite tally learns when a module
//! goes with a reference still counted on it.

use kernel_core::Errno;
use kernel_core::module::{Module, ModuleState, module_put, try_module_get};
use kernel_core::obj::tally::{acknowledge_module_refs, mem_tally};
use kernel_core::sync::warn::warn_count;

/// The tally is process-wide: the tests of this binary that read it take turns.
static TALLY: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn a_module_keeps_its_name_and_walks_its_states() {
    let _t = TALLY.lock().unwrap_or_else(|e| e.into_inner());
    let m = Module::new("nf_conntrack");
    assert_eq!(m.name(), "nf_conntrack");
    assert_eq!(m.state(), ModuleState::Coming, "a new module is coming");
    assert_eq!(m.refcount(), 0);
    m.set_state(ModuleState::Live);
    assert_eq!(m.state(), ModuleState::Live);
    m.set_state(ModuleState::Coming);
    assert_eq!(m.state(), ModuleState::Coming);
    m.set_state(ModuleState::Going);
    assert_eq!(m.state(), ModuleState::Going);
}

#[test]
fn delete_module_is_refused_while_a_reference_is_held() {
    let _t = TALLY.lock().unwrap_or_else(|e| e.into_inner());
    let m = Module::new("bpf_testmod");
    m.set_state(ModuleState::Live);
    assert!(try_module_get(&m));
    assert!(try_module_get(&m));
    assert_eq!(m.refcount(), 2);
    assert_eq!(m.try_unload(), Err(Errno::EBUSY));
    assert_eq!(
        m.state(),
        ModuleState::Live,
        "a refused unload leaves it live"
    );
    module_put(&m);
    assert_eq!(m.try_unload(), Err(Errno::EBUSY));
    module_put(&m);
    assert_eq!(m.refcount(), 0);
    assert_eq!(m.try_unload(), Ok(()));
    assert_eq!(m.state(), ModuleState::Going);
    assert_eq!(m.refcount(), -1, "an unloaded module's count sits at -1");
    assert!(!try_module_get(&m), "no reference to a going module");
    // A concurrent getter that read the state before the unload still finds -1.
    m.set_state(ModuleState::Live);
    assert!(
        !try_module_get(&m),
        "the count refuses what the state let through"
    );
    let warns = warn_count();
    module_put(&m);
    assert!(warn_count() > warns, "a put on an unloaded module WARNs");
    assert_eq!(m.refcount(), -1, "and leaves the count as it was");
    assert_eq!(m.try_unload(), Err(Errno::EBUSY), "unloaded once only");
}

#[test]
fn a_module_dropped_with_a_reference_is_tallied() {
    let _t = TALLY.lock().unwrap_or_else(|e| e.into_inner());
    let t0 = mem_tally();
    let m = Module::new("leaky");
    m.set_state(ModuleState::Live);
    assert!(try_module_get(&m));
    assert!(try_module_get(&m));
    module_put(&m);
    drop(m);
    let t1 = mem_tally();
    assert_eq!(t1.modules_created, t0.modules_created + 1);
    assert_eq!(t1.modules_dropped, t0.modules_dropped + 1);
    assert_eq!(t1.module_refs_leaked, t0.module_refs_leaked + 1);
    // The reference was left on purpose.
    acknowledge_module_refs(1);
    assert_eq!(mem_tally().module_refs_leaked, t0.module_refs_leaked);

    let m = Module::new("unloaded");
    assert_eq!(m.try_unload(), Ok(()));
    drop(m);
    let t2 = mem_tally();
    assert_eq!(t2.modules_dropped, t0.modules_dropped + 2);
    assert_eq!(
        t2.module_refs_leaked, t0.module_refs_leaked,
        "an unloaded module's -1 is no reference"
    );
}
