use kernel_core::btf::*;
use kernel_core::Semantics;
#[test]
fn vmlinux_loads() {
    let data = std::fs::read("/sys/kernel/btf/vmlinux").unwrap();
    let t = std::time::Instant::now();
    let r = btf_parse(&data, 0, Semantics::V6_18);
    eprintln!("{:?}", t.elapsed());
    match r {
        Ok(b) => eprintln!("types {}", b.data().nr_types()),
        Err(e) => { let l=e.log.len(); panic!("{} {}", e, &e.log[l.saturating_sub(2000)..]) },
    }
    let r = btf_parse(&data, 1, Semantics::V6_18);
    match r { Ok(_) => {}, Err(e) => { let l=e.log.len(); panic!("{} {}", e, &e.log[l.saturating_sub(2000)..]) } }
}
