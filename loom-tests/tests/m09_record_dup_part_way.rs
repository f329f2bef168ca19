//! Scenario 9: `btf_record_dup` (inner map templates, map-in-map) against the module of
//! one of its kptrs going away.
//! Invariant: the dup either succeeds with one more reference on the module and its BTF,
//! or fails with -ENXIO taking no module reference; in that case, as in the kernel, the
//! BTF reference taken for the failing field is leaked (exactly one).
//! Bound: `LOOM_MAX_PREEMPTIONS`. Profiles v6.4 and v6.18.
//! Catches: a dup whose failure path puts the failing field's BTF reference (no longer
//! the kernel's behaviour: the test asserts exactly the kernel's one leaked reference).
#![cfg(loom)]

use kernel_core::module::ModuleState;
use kernel_core::record::btf_record_dup;
use kernel_core::{Errno, Semantics};
use loom::sync::Arc;
use loom::thread;
use loom_tests::{fixture_module, module_map};

#[test]
fn record_dup_part_way() {
    dup_vs_going("m09 btf_record_dup vs module going", Semantics::V6_4);
}

/// The same on v6.18, where the program BTF's struct meta holds the module as well
/// (the counts are taken after the map's record, so the deltas are the same).
#[test]
fn record_dup_part_way_v6_18() {
    dup_vs_going("m09 v6.18 btf_record_dup vs module going", Semantics::V6_18);
}

fn dup_vs_going(name: &'static str, sem: Semantics) {
    loom_tests::model(name, move || {
        let f = Arc::new(fixture_module(sem));
        let map = module_map(&f, &sem).expect("map");
        let rec = map.record.as_ref().expect("record");
        let (btf0, mod0) = (f.mod_btf.refcount(), f.module.refcount());
        let g = Arc::clone(&f);
        // A forced unload: the module goes although references are held.
        let going = thread::spawn(move || g.module.set_state(ModuleState::Going));
        let dup = btf_record_dup(rec);
        going.join().expect("join");
        match dup {
            Ok(d) => {
                assert_eq!(
                    (f.mod_btf.refcount(), f.module.refcount()),
                    (btf0 + 1, mod0 + 1)
                );
                drop(d);
            }
            Err(e) => {
                assert_eq!(e, Errno::ENXIO);
                assert_eq!(
                    (f.mod_btf.refcount(), f.module.refcount()),
                    (btf0 + 1, mod0),
                    "one leaked BTF reference"
                );
                // Put the kernel's leaked reference so the rest can be checked freed.
                kernel_core::btf::object::btf_put_leaked_reference(&f.mod_btf);
            }
        }
        drop(map);
        Arc::try_unwrap(f).ok().expect("joined").finish();
    });
}
