//! Scenario 19: `btf_record_dup` of a record with two referenced kptrs into two
//! modules' types (`a_obj` of `moda` at offset 0, `b_obj` of `modb` at 8), as
//! `bpf_map_meta_alloc` copies an inner map's record, while `modb` is forced to go
//! (`delete_module` with O_TRUNC: it goes although references are held).
//! Invariant (v6.4 and v6.18): the dup either succeeds holding one more reference on
//! each module and each module's BTF, or fails part way with -ENXIO, having taken
//! `moda`'s references and `modb`'s BTF reference first: the kernel's error path
//! (`btf_record_free` of the partial copy, whose `cnt` counts only the finished
//! fields) puts `moda`'s module and BTF references and leaks exactly the one `modb` BTF
//! reference taken for the failing field. Both outcomes are seen; no WARN.
//! Bound: `LOOM_MAX_PREEMPTIONS`, 3 in CI (finishes; README table); its faults are caught at 2.
//! Catches: a dup whose failure path keeps what it took for the fields before the
//! failing one (every other dup model has one kptr field, where that cannot show), and
//! one that puts the failing field's BTF reference (no longer the kernel's leak).
#![cfg(loom)]

use kernel_core::module::ModuleState;
use kernel_core::record::btf_record_dup;
use kernel_core::{Errno, Semantics};
use loom::sync::Arc;
use loom::thread;
use loom_tests::{Fault, fixture_two_modules, warns};

fn dup_part_way(sem: Semantics) {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(std::collections::BTreeSet::new()));
    let s2 = std::sync::Arc::clone(&seen);
    let name = format!(
        "m19 btf_record_dup of two module kptrs vs modb going ({})",
        sem.name
    );
    loom_tests::model(&name, move || {
        let f = Arc::new(fixture_two_modules(sem));
        let map = f.map(&sem).expect("map");
        let rec = map.record.as_ref().expect("record");
        assert_eq!(rec.fields.len(), 2);
        let before = f.counts();
        let g = Arc::clone(&f);
        let going = thread::spawn(move || g.modules[1].set_state(ModuleState::Going));
        let dup = btf_record_dup(rec);
        going.join().expect("join");
        let [(a_btf, a_mod), (b_btf, b_mod)] = before;
        let ok = match dup {
            Ok(d) => {
                assert_eq!(f.counts(), [(a_btf + 1, a_mod + 1), (b_btf + 1, b_mod + 1)]);
                drop(d);
                true
            }
            Err(e) => {
                assert_eq!(e, Errno::ENXIO);
                assert_eq!(
                    f.counts(),
                    [(a_btf, a_mod), (b_btf + 1, b_mod)],
                    "moda's references put back, modb's BTF reference leaked"
                );
                kernel_core::btf::object::btf_put_leaked_reference(&f.mod_btfs[1]);
                false
            }
        };
        assert_eq!(f.counts(), before, "all returned");
        assert_eq!(warns(), Vec::<Fault>::new());
        drop(map);
        Arc::try_unwrap(f).ok().expect("joined").finish();
        if let Ok(mut s) = s2.lock() {
            s.insert(ok);
        }
    });
    let seen = seen.lock().map(|s| s.clone()).unwrap_or_default();
    assert!(
        seen.contains(&true) && seen.contains(&false),
        "{name}: {seen:?}"
    );
}

#[test]
fn record_dup_several_kptrs_v6_4() {
    dup_part_way(Semantics::V6_4);
}

#[test]
fn record_dup_several_kptrs_v6_18() {
    dup_part_way(Semantics::V6_18);
}
