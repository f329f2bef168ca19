//! Scenario 15, three actors around a module whose type a map's referenced kptr
//! points to (its record holds the module and the module's BTF): the module's unload
//! (`delete_module`: refused with -EBUSY while references are held, else the module is
//! going), a map-in-map creation that takes the map as its inner map template
//! (`bpf_map_meta_alloc` -> `btf_record_dup`: `btf_get` of the module's BTF, then
//! `try_module_get`; its template is freed later, `bpf_map_meta_free`), and the map's
//! own free (user space closes it: `bpf_map_free` -> `btf_record_free`: `module_put`,
//! `btf_put`). The creation holds the inner map through its fd while it copies.
//! Invariant (v6.4: the program BTF holds no module reference): the inner map's record
//! holds the module while the dup copies it, so the dup always succeeds and a template
//! never holds a module that is going (checked while it holds it); the unload succeeds
//! only once the map and the template are both freed (both outcomes are seen); at the
//! end the module's count is 0 (refused) or -1 (unloaded), the module BTF's count is
//! back where it was less the map's reference, and no WARN (`module_put` underflow).
//! (A dup that fails part way needs a forced unload: m09 and m19.)
//! Invariant (v6.18: the program BTF's struct meta holds the module too): the unload
//! is refused in every execution and the dup always succeeds.
//! Bound: `LOOM_MAX_PREEMPTIONS`, 3 in CI (finishes; README table); its faults are caught at 2.
//! Catches: the unload checking the count and marking the module going in two steps
//! (a template then holds an unloaded module: `module_put` underflows), a
//! `try_module_get` that does not refuse a going module's count, a `module_put` that
//! does not put, and a dup whose failure path puts the failing field's BTF reference
//! or keeps a module reference.
#![cfg(loom)]

use kernel_core::map::{bpf_map_meta_alloc, bpf_map_meta_free};
use kernel_core::module::ModuleState;
use kernel_core::{Errno, Semantics};
use loom::sync::Arc;
use loom::thread;
use loom_tests::{Fault, fixture_module, module_map, warns};

/// (unloaded, dup succeeded) of one execution.
fn scenario(sem: Semantics) -> (bool, bool) {
    let f = Arc::new(fixture_module(sem));
    let map = Arc::new(module_map(&f, &sem).expect("map"));
    let (btf0, mod0) = (f.mod_btf.refcount(), f.module.refcount());
    let g = Arc::clone(&f);
    let unload = thread::spawn(move || g.module.try_unload());
    let (g, inner) = (Arc::clone(&f), Arc::clone(&map));
    let outer = thread::spawn(move || {
        let t = bpf_map_meta_alloc(Some(&inner));
        drop(inner);
        match t {
            Ok(t) => {
                assert_ne!(g.module.state(), ModuleState::Going, "held while going");
                bpf_map_meta_free(t);
                true
            }
            Err(e) => {
                assert_eq!(e, Errno::ENXIO);
                assert_eq!(g.module.state(), ModuleState::Going);
                false
            }
        }
    });
    // User space closes the map: its record goes.
    drop(map);
    let unloaded = unload.join().expect("unload");
    let dup_ok = outer.join().expect("outer");
    match unloaded {
        Ok(()) => assert_eq!(f.module.refcount(), -1, "unloaded"),
        Err(e) => {
            assert_eq!(e, Errno::EBUSY);
            assert_eq!(f.module.refcount(), mod0 - 1, "every reference returned");
        }
    }
    let leaked = if dup_ok { 0 } else { 1 };
    assert_eq!(
        f.mod_btf.refcount(),
        btf0 - 1 + leaked,
        "the module BTF: the map's reference put, the kernel's leak on a failed dup"
    );
    if !dup_ok {
        kernel_core::btf::object::btf_put_leaked_reference(&f.mod_btf);
    }
    assert_eq!(warns(), Vec::<Fault>::new());
    Arc::try_unwrap(f).ok().expect("joined").finish();
    (unloaded.is_ok(), dup_ok)
}

#[test]
fn unload_vs_meta_alloc_vs_map_free_v6_4() {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(std::collections::BTreeSet::new()));
    let s2 = std::sync::Arc::clone(&seen);
    loom_tests::model(
        "m15 unload vs bpf_map_meta_alloc vs map free (v6.4)",
        move || {
            let r = scenario(Semantics::V6_4);
            if let Ok(mut s) = s2.lock() {
                s.insert(r);
            }
        },
    );
    let seen = seen.lock().map(|s| s.clone()).unwrap_or_default();
    // Refused while the map or the template held the module; unloaded once both were
    // freed. The dup never fails: the inner map holds the module while it is copied.
    assert!(seen.iter().all(|&(_, dup_ok)| dup_ok), "{seen:?}");
    for want in [(false, true), (true, true)] {
        assert!(
            seen.contains(&want),
            "(unloaded, dup ok) {want:?} never seen: {seen:?}"
        );
    }
}

#[test]
fn unload_vs_meta_alloc_vs_map_free_v6_18_always_refused() {
    loom_tests::model(
        "m15 unload vs bpf_map_meta_alloc vs map free (v6.18)",
        || {
            assert_eq!(scenario(Semantics::V6_18), (false, true));
        },
    );
}
