//! A scenario on the running kernel: the object loaded with the installed libbpf (as
//! users load objects), each program step a `BPF_PROG_TEST_RUN` of the object's
//! `stash`/`take`/`peek` program with `struct args` as its context, each user-space step
//! a `bpf(2)` map command; the thread pinned to CPU 0 so per-CPU values are CPU 0's.
//! Frees are not observable from a program here: the model's close summary has no
//! kernel counterpart.

use std::os::fd::{BorrowedFd, RawFd};

use super::{BPF_NOEXIST, FILL_MAX, Scenario, Step, errno_result, program_result};
use crate::libbpf_dl::Libbpf;
use crate::maps::MapDef;
use crate::oracle;

/// The possible CPUs (`/sys/devices/system/cpu/possible`), for per-CPU values.
fn possible_cpus() -> usize {
    std::fs::read_to_string("/sys/devices/system/cpu/possible")
        .ok()
        .and_then(|s| {
            let last = s.trim().rsplit(['-', ',']).next()?.parse::<usize>().ok()?;
            Some(last + 1)
        })
        .unwrap_or(1)
}

/// Pins the calling thread to CPU 0 until dropped (then restores its mask).
struct PinCpu0(Option<libc::cpu_set_t>);

impl PinCpu0 {
    fn new() -> PinCpu0 {
        // SAFETY: cpu_set_t is plain data; zeroed is the empty set.
        let mut old: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        // SAFETY: the calling thread's mask into a buffer of the right size.
        let got =
            unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut old) };
        // SAFETY: as above.
        let mut one: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        // SAFETY: CPU 0 is within the set's bounds.
        unsafe { libc::CPU_SET(0, &mut one) };
        // SAFETY: sets the calling thread's mask from a valid set.
        unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &one) };
        PinCpu0((got == 0).then_some(old))
    }
}

impl Drop for PinCpu0 {
    fn drop(&mut self) {
        if let Some(old) = &self.0 {
            // SAFETY: restores the calling thread's own earlier mask.
            unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), old) };
        }
    }
}

fn fd(raw: RawFd) -> BorrowedFd<'static> {
    // SAFETY: the fds come from the loaded object, which outlives every use here (the
    // object is dropped after the last step).
    unsafe { BorrowedFd::borrow_raw(raw) }
}

/// Runs `sc` on the running kernel; `Err` says why the kernel was not asked.
pub fn run_kernel(sc: &Scenario, def: &MapDef) -> Result<Vec<String>, String> {
    if let Some(r) = oracle::unavailable_reason() {
        return Err(r);
    }
    let lib = Libbpf::open()?;
    let obj = lib.load(&sc.object.display().to_string()).map_err(|e| {
        format!(
            "libbpf cannot load {}: {}",
            sc.object.display(),
            errno_result(e)
        )
    })?;
    let map = obj
        .map_fd(&sc.map)
        .ok_or_else(|| format!("libbpf created no map {:?}", sc.map))?;
    let progs: Vec<Option<RawFd>> = ["stash", "take", "peek", "stash_deleted"]
        .iter()
        .map(|p| obj.prog_fd(p))
        .collect();
    let _pin = PinCpu0::new();
    let percpu = matches!(def.map_type, 5 | 6 | 10);
    let vsize = if percpu {
        def.value_size.div_ceil(8) as usize * 8 * possible_cpus()
    } else {
        def.value_size as usize
    };
    let zero = vec![0u8; vsize];
    let res = |r: Result<(), i32>| r.map_or_else(errno_result, |()| "ok".to_string());
    let mut out = Vec::new();
    for l in &sc.lines {
        let r = match l.step {
            Step::Stash(key, id) => run_prog(progs[0], &l.step, key, id),
            Step::Take(key) => run_prog(progs[1], &l.step, key, 0),
            Step::Peek(key) => run_prog(progs[2], &l.step, key, 0),
            Step::StashDeleted(key, id) => run_prog(progs[3], &l.step, key, id),
            Step::Update(key, flags) => res(oracle::map_update_elem(
                fd(map),
                &key.to_ne_bytes(),
                &zero,
                flags,
            )),
            Step::Delete(key) => res(oracle::map_delete_elem(fd(map), &key.to_ne_bytes())),
            Step::Lookup(key) => {
                let mut v = vec![0u8; vsize];
                match oracle::map_lookup_elem(fd(map), &key.to_ne_bytes(), &mut v) {
                    Ok(()) => "present".into(),
                    Err(e) => errno_result(e),
                }
            }
            Step::Fill(first) => {
                let mut r = format!("filled {FILL_MAX}");
                for n in 0..FILL_MAX {
                    let k = first.saturating_add(n);
                    if let Err(e) =
                        oracle::map_update_elem(fd(map), &k.to_ne_bytes(), &zero, BPF_NOEXIST)
                    {
                        r = format!("filled {n}, then {}", errno_result(e));
                        break;
                    }
                }
                r
            }
        };
        out.push(r);
    }
    drop(obj);
    Ok(out)
}

/// One program run: `struct args { u32 key; u32 pad; u64 id; s64 ret; }`.
fn run_prog(prog: Option<RawFd>, st: &Step, key: u32, id: u64) -> String {
    let Some(p) = prog else {
        return "the object has no such program".into();
    };
    let mut ctx = [0u8; 24];
    ctx[..4].copy_from_slice(&key.to_ne_bytes());
    ctx[8..16].copy_from_slice(&id.to_ne_bytes());
    match oracle::prog_test_run_ctx(fd(p), &mut ctx) {
        Ok(_) => {
            let mut r = [0u8; 8];
            r.copy_from_slice(&ctx[16..24]);
            program_result(st, i64::from_ne_bytes(r))
        }
        Err(e) => format!("BPF_PROG_TEST_RUN: {}", errno_result(e)),
    }
}
