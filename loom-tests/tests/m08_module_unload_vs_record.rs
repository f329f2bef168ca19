//! Scenario 8: a module unload (`delete_module`: refused while references are held,
//! else the module goes away) against a map creation whose record takes a reference on
//! the module for its destructor (`btf_try_get_module`).
//! Invariant: never both: the module unloaded and a record holding a reference on it.
//! Either the unload is refused (-EBUSY) and the record holds the module, or the record
//! fails with -ENXIO and holds nothing; all references are returned at the end.
//! Bound: `LOOM_MAX_PREEMPTIONS`. Profile v6.4 (struct metas do not parse kptrs, so
//! the program BTF itself holds no module reference).
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
        assert!(f.module.refcount() <= 0, "all returned");
        Arc::try_unwrap(f).ok().expect("joined").finish();
    });
}
