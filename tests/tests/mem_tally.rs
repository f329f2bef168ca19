//! The process-wide allocator tally: a dropped allocator adds its leaks and faults,
//! acknowledged ones apart; an allocator kept alive is seen as not dropped. One test
//! function, so no other test of this binary moves the counters meanwhile.

use kernel_core::obj::{BpfMemAlloc, FaultKind, mem_tally};
use kernel_core::sync::{Arc, Rcu};
use shim_std::tally::{check, line, sum};

#[test]
fn the_tally_counts_what_each_allocator_leaked_and_misused() {
    let t0 = mem_tally();
    let rcu = Arc::new(Rcu::new());

    // Clean: one object allocated and freed.
    let m = BpfMemAlloc::new(Arc::clone(&rcu));
    let a = m.alloc("node", 16, false).expect("alloc");
    m.free(a);
    drop(m);
    let t1 = mem_tally();
    assert_eq!(t1.allocators_dropped - t0.allocators_dropped, 1);
    assert_eq!(t1.allocations - t0.allocations, 1);
    assert_eq!(t1.frees - t0.frees, 1);
    assert_eq!((t1.leaks, t1.double_frees), (t0.leaks, t0.double_frees));

    // A leak, a double free and a use after free, unacknowledged.
    let m = BpfMemAlloc::new(Arc::clone(&rcu));
    let a = m.alloc("node", 16, false).expect("alloc");
    let b = m.alloc("node", 16, false).expect("alloc");
    m.free(b);
    m.free(b);
    assert!(m.get(b).is_none());
    let _ = a;
    drop(m);
    let t2 = mem_tally();
    assert_eq!(t2.leaks - t1.leaks, 1);
    assert_eq!(t2.double_frees - t1.double_frees, 1);
    assert_eq!(t2.uses_after_free - t1.uses_after_free, 1);
    assert!(!t2.is_clean());

    // The same, acknowledged: nothing unexpected, three acknowledged; a fault after
    // the acknowledgement is counted again.
    let m = BpfMemAlloc::new(Arc::clone(&rcu));
    let _a = m.alloc("node", 16, false).expect("alloc");
    let b = m.alloc("node", 16, false).expect("alloc");
    m.free(b);
    m.free(b);
    assert!(m.get(b).is_none());
    m.acknowledge(&["node"], &[FaultKind::DoubleFree, FaultKind::UseAfterFree])
        .expect("the leak, the double free, the use after free");
    m.free(b);
    drop(m);
    let t3 = mem_tally();
    assert_eq!(t3.leaks - t2.leaks, 0);
    assert_eq!(t3.double_frees - t2.double_frees, 1);
    assert_eq!(t3.uses_after_free - t2.uses_after_free, 0);
    assert_eq!(t3.acknowledged - t2.acknowledged, 3);

    // Acknowledging is per object: an acknowledged leak freed later, and another
    // object leaked instead, is one unexpected leak.
    let m = BpfMemAlloc::new(Arc::clone(&rcu));
    let a = m.alloc("node", 16, false).expect("alloc");
    m.acknowledge(&["node"], &[]).expect("the leak");
    m.free(a);
    let _b = m.alloc("node", 16, false).expect("alloc");
    drop(m);
    let t3b = mem_tally();
    assert_eq!(t3b.leaks - t3.leaks, 1);
    assert_eq!(t3b.acknowledged - t3.acknowledged, 0);

    // An allocator never dropped (kept alive by a pending RCU callback of its own).
    let m = BpfMemAlloc::new(Arc::clone(&rcu));
    let a = m.alloc("node", 16, false).expect("alloc");
    BpfMemAlloc::free_rcu(&m, a);
    drop(m);
    let t4 = mem_tally();
    assert_eq!(t4.allocators_created - t4.allocators_dropped, 1);
    rcu.rcu_barrier();
    let t5 = mem_tally();
    assert_eq!(t5.allocators_created, t5.allocators_dropped);
    assert_eq!(t5.leaks, t4.leaks);

    // The file side: lines add up; a leak, a missing program or an empty suite fail.
    let clean = line("a", &t1);
    let s = sum(&format!("{clean}\n{clean}\n")).expect("parses");
    assert_eq!(s.total.allocations, 2 * t1.allocations);
    assert_eq!(s.programs.get("a"), Some(&2));
    let t1_clean_part = kernel_core::obj::MemTally {
        leaks: 0,
        double_frees: 0,
        uses_after_free: 0,
        wild: 0,
        ..t1
    };
    let ok = line("a", &t1_clean_part);
    assert!(check(&sum(&ok).expect("parses"), &["a"]).is_ok());
    assert!(check(&sum(&ok).expect("parses"), &["a", "b"]).is_err());
    assert!(check(&sum(&line("a", &t2)).expect("parses"), &["a"]).is_err());
    let empty = kernel_core::obj::MemTally::default();
    assert!(check(&sum(&line("a", &empty)).expect("parses"), &["a"]).is_err());
    assert!(sum("{\"program\":\"a\"}").is_err());
    assert!(sum("not json").is_err());
}
