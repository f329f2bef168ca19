//! Scenario 8: a module unload (`delete_module`: refused while references are held,
//! else the module goes away) against a map creation whose record takes a reference on
//! the module for its destructor (`btf_try_get_module`).
//! Invariant: never both: the module unloaded and a record holding a reference on it.
//! Either the unload is refused (-EBUSY) and the record holds the module, or the record
//! fails with -ENXIO and holds nothing; all references are returned at the end.
//! Bound: `LOOM_MAX_PREEMPTIONS`. Profile v6.4 (struct metas do not parse kptrs, so
//! the program BTF itself holds no module reference); a second model runs v6.18, where
//! they do and the unload is always refused.
//! Catches: the unload checking the module's count and then marking it going in two
//! steps instead of one compare-and-exchange (a record then holds an unloaded module).
#![cfg(loom)]

use kernel_core::module::ModuleState;
use kernel_core::{Errno, Semantics};
use loom::sync::Arc;
use loom::thread;
use loom_tests::{fixture_module, module_map};

#[test]
fn module_unload_vs_record() {
    loom_tests::model("m08 module unload vs record with a module dtor", || {
        let sem = Semantics::V6_4;
        let f = Arc::new(fixture_module(sem));
        let g = Arc::clone(&f);
        let unload = thread::spawn(move || g.module.try_unload());
        let map = module_map(&f, &sem).expect("map created either way");
        let unloaded = unload.join().expect("join");
        match (&unloaded, &map.record_error) {
            (Ok(()), Some(Errno::ENXIO)) => assert_eq!(f.module.state(), ModuleState::Going),
            (Err(Errno::EBUSY), None) => {
                assert_eq!(f.module.refcount(), 1, "the record's reference")
            }
            other => panic!("unload {:?} with record {:?}", other.0, other.1),
        }
        drop(map);
        // An unloaded module sits at -1; a refused unload leaves the count at 0.
        let expect = if unloaded.is_ok() { -1 } else { 0 };
        assert_eq!(f.module.refcount(), expect, "all returned");
        Arc::try_unwrap(f).ok().expect("joined").finish();
    });
}

/// The other direction: from v6.10 the program BTF's struct metas parse kptrs too, so
/// loading the program BTF already holds the module. The unload is refused in every
/// interleaving, the map's record takes a second reference, and both are returned.
#[test]
fn module_unload_vs_record_v6_18_program_btf_holds_the_module() {
    loom_tests::model("m08 v6.18: the program BTF holds the module", || {
        let sem = Semantics::V6_18;
        let f = Arc::new(fixture_module(sem));
        assert_eq!(f.module.refcount(), 1, "the struct meta's reference");
        let g = Arc::clone(&f);
        let unload = thread::spawn(move || g.module.try_unload());
        let map = module_map(&f, &sem).expect("map");
        assert_eq!(unload.join().expect("join"), Err(Errno::EBUSY));
        assert_eq!(map.record_error, None);
        assert_eq!(f.module.refcount(), 2, "struct meta and map record");
        drop(map);
        assert_eq!(f.module.refcount(), 1);
        Arc::try_unwrap(f).ok().expect("joined").finish();
    });
}
