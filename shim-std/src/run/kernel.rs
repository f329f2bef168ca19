//! A scenario on the running kernel: the object loaded with the installed libbpf (as
//! users load objects), each program step a `BPF_PROG_TEST_RUN` of the object's
//! `stash`/`take`/`peek`/`stash_deleted`/`timer_init` program with `struct args` as its
//! context (the socket storage's programs are UDP socket iterators: `struct args` goes
//! through their `sc_args` map and the iterator is read once), each user-space step a
//! `bpf(2)` map command; the thread pinned to CPU 0 so per-CPU values are CPU 0's.
//! Frees are not observable from a program here: the model's close summary has no
//! kernel counterpart.
//!
//! A local storage's owner `self` is made here and goes at the end: the calling
//! thread for task storage (user space names it with a pidfd, `PIDFD_THREAD`), a
//! cgroup made under the cgroup2 mount for cgroup storage (its directory's fd; the
//! programs find it with `bpf_cgroup_from_id`), a UDP socket on 127.0.0.1 for socket
//! storage (the programs find it by its cookie). `close-fd` replaces the map's fd with
//! /dev/null (`dup2`, so libbpf's own close later closes that), which drops user
//! space's last reference to the map.

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{
    BPF_NOEXIST, FILL_MAX, Scenario, Step, errno_result, outer_map, program_result, update_value,
    values_result,
};
use crate::libbpf_dl::Libbpf;
use crate::maps::MapDef;
use crate::oracle;
use crate::oracle::{MapElemCmd as Cmd, map_elem_raw_fd as map_cmd};

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
    // SAFETY: the fds come from the loaded object, which outlives every use here (it
    // is dropped after the last step); the map's own fd, which `close-fd` closes, goes
    // through `map_elem_raw_fd` instead.
    unsafe { BorrowedFd::borrow_raw(raw) }
}

/// The last OS error as an errno.
fn os_errno() -> i32 {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

/// Wraps a new fd returned by a libc call.
fn own(ret: libc::c_int) -> Result<OwnedFd, i32> {
    if ret < 0 {
        return Err(os_errno());
    }
    // SAFETY: the call just returned `ret` as a new fd owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(ret) })
}

/// A local storage owner made for the scenario (`self`).
enum Owner {
    /// The calling thread, by a pidfd.
    Task(OwnedFd),
    /// A cgroup made for the scenario: its directory's fd, id and path (removed at the
    /// end).
    Cgroup(OwnedFd, u64, PathBuf),
    /// A UDP socket and its cookie.
    Sock(OwnedFd, u64),
}

impl Owner {
    /// Makes the owner a storage map of `map_type` needs.
    fn new(map_type: u32) -> Result<Option<Owner>, String> {
        Ok(Some(match map_type {
            kernel_core::map::BPF_MAP_TYPE_TASK_STORAGE => {
                // PIDFD_THREAD (O_EXCL): a pidfd for this thread, not the process.
                // SAFETY: pidfd_open with a thread id of this process and a flag.
                let r =
                    unsafe { libc::syscall(libc::SYS_pidfd_open, libc::gettid(), libc::O_EXCL) };
                let pidfd = own(r as libc::c_int)
                    .map_err(|e| format!("pidfd_open(PIDFD_THREAD): {}", errno_result(e)))?;
                Owner::Task(pidfd)
            }
            kernel_core::map::BPF_MAP_TYPE_CGRP_STORAGE => {
                let root = cgroup2_mount().ok_or("no cgroup2 mount in /proc/self/mountinfo")?;
                static N: AtomicU64 = AtomicU64::new(0);
                let dir = root.join(format!(
                    "kptr-model-{}-{}",
                    std::process::id(),
                    N.fetch_add(1, Ordering::Relaxed)
                ));
                std::fs::create_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
                let id = std::fs::metadata(&dir).map(|m| m.ino());
                let f = std::fs::File::open(&dir);
                match (id, f) {
                    (Ok(id), Ok(f)) => Owner::Cgroup(OwnedFd::from(f), id, dir),
                    (id, f) => {
                        let _ = std::fs::remove_dir(&dir);
                        let e = id.err().or(f.err()).map(|e| e.to_string());
                        return Err(format!("{}: {}", dir.display(), e.unwrap_or_default()));
                    }
                }
            }
            kernel_core::map::BPF_MAP_TYPE_SK_STORAGE => {
                // SAFETY: a new UDP socket.
                let s = own(unsafe {
                    libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0)
                })
                .map_err(|e| format!("socket: {}", errno_result(e)))?;
                // SAFETY: sockaddr_in is plain data; zeroed then filled.
                let mut sa: libc::sockaddr_in = unsafe { std::mem::zeroed() };
                sa.sin_family = libc::AF_INET as libc::sa_family_t;
                sa.sin_addr.s_addr = u32::from_ne_bytes([127, 0, 0, 1]);
                // SAFETY: binds the socket to a valid sockaddr_in of its size.
                let r = unsafe {
                    libc::bind(
                        s.as_raw_fd(),
                        (&sa as *const libc::sockaddr_in).cast(),
                        std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
                    )
                };
                if r != 0 {
                    return Err(format!("bind: {}", errno_result(os_errno())));
                }
                let mut cookie = 0u64;
                let mut len = 8 as libc::socklen_t;
                // SAFETY: SO_COOKIE into an 8-byte buffer with its length.
                let r = unsafe {
                    libc::getsockopt(
                        s.as_raw_fd(),
                        libc::SOL_SOCKET,
                        libc::SO_COOKIE,
                        (&mut cookie as *mut u64).cast(),
                        &mut len,
                    )
                };
                if r != 0 {
                    return Err(format!("SO_COOKIE: {}", errno_result(os_errno())));
                }
                Owner::Sock(s, cookie)
            }
            _ => return Ok(None),
        }))
    }

    /// The fd user space names it with (the key of the storage map).
    fn raw(&self) -> RawFd {
        match self {
            Owner::Task(f) | Owner::Cgroup(f, ..) | Owner::Sock(f, _) => f.as_raw_fd(),
        }
    }

    /// What the programs find it by (`args->owner`).
    fn id(&self) -> u64 {
        match self {
            Owner::Task(_) => 0,
            Owner::Cgroup(_, id, _) | Owner::Sock(_, id) => *id,
        }
    }
}

impl Drop for Owner {
    fn drop(&mut self) {
        if let Owner::Cgroup(_, _, dir) = self {
            let _ = std::fs::remove_dir(&*dir);
        }
    }
}

/// The cgroup2 mount point.
fn cgroup2_mount() -> Option<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines().find_map(|l| {
        let (pre, post) = l.split_once(" - ")?;
        (post.split_whitespace().next()? == "cgroup2")
            .then(|| pre.split_whitespace().nth(4).map(PathBuf::from))?
    })
}

/// How the programs run.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Runner {
    /// `BPF_PROG_TEST_RUN` of a SEC("syscall") program, `struct args` the context.
    Syscall,
    /// An iterator program read once, `struct args` in the `sc_args` map (fd).
    Iter(RawFd),
}

/// Runs `sc` on the running kernel; `Err` says why the kernel was not asked.
pub fn run_kernel(sc: &Scenario, def: &MapDef) -> Result<Vec<String>, String> {
    if let Some(r) = oracle::unavailable_reason() {
        return Err(r);
    }
    // The map of maps holding the scenario's map, as the model finds it.
    let outer_name = crate::kernel_btf::read(&sc.object)
        .ok()
        .and_then(|b| {
            let oname = crate::libbpf::object_name(&sc.object.display().to_string());
            crate::elf::read_bpf_object_named(&b, &oname).ok()
        })
        .and_then(|o| outer_map(&o.maps, &sc.map))
        .map(|m| m.libbpf_name().to_string());
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
    let outer = match &outer_name {
        Some(n) => Some(
            obj.map_fd(n)
                .ok_or_else(|| format!("libbpf created no map {n:?}"))?,
        ),
        None => None,
    };
    let runner = match obj.map_fd("sc_args") {
        Some(a) => Runner::Iter(a),
        None => Runner::Syscall,
    };
    let progs: Vec<Option<RawFd>> = ["stash", "take", "peek", "stash_deleted", "timer_init"]
        .iter()
        .map(|p| obj.prog_fd(p))
        .collect();
    let mut owner = Owner::new(def.map_type)?;
    let _pin = PinCpu0::new();
    let percpu = matches!(def.map_type, 5 | 6 | 10);
    let slice = if percpu {
        def.value_size.div_ceil(8) as usize * 8
    } else {
        def.value_size as usize
    };
    let vsize = if percpu {
        slice * possible_cpus()
    } else {
        def.value_size as usize
    };
    let zero = vec![0u8; vsize];
    let res = |r: Result<(), i32>| r.map_or_else(errno_result, |()| "ok".to_string());
    // The map's fd, -1 once closed (the kernel answers EBADF).
    let mut map_fd = map;
    let mut out = Vec::new();
    for l in &sc.lines {
        let owner_id = owner.as_ref().map_or(0, Owner::id);
        // The key user space passes: the key, or the owner's fd (-1 once it went).
        let ukey = |k: u32| -> [u8; 4] {
            match (&owner, k) {
                (Some(o), super::OWNER_SELF) => o.raw().to_ne_bytes(),
                (None, super::OWNER_SELF) => (-1i32).to_ne_bytes(),
                (_, k) => k.to_ne_bytes(),
            }
        };
        let run = |p: usize, st: &Step, key: u32, id: u64| {
            run_prog(runner, progs[p], st, key, id, owner_id)
        };
        let r = match &l.step {
            Step::Stash(key, id) => run(0, &l.step, *key, *id),
            Step::Take(key) => run(1, &l.step, *key, 0),
            Step::Peek(key) => run(2, &l.step, *key, 0),
            Step::StashDeleted(key, id) => run(3, &l.step, *key, *id),
            Step::TimerInit(key) => run(4, &l.step, *key, 0),
            Step::Update(key, flags, data) => res(map_cmd(
                Cmd::Update,
                map_fd,
                &ukey(*key),
                &mut update_value(vsize, slice, data),
                *flags,
            )),
            Step::Delete(key) => res(map_cmd(Cmd::Delete, map_fd, &ukey(*key), &mut [], 0)),
            Step::Lookup(key) => {
                let mut v = vec![0u8; vsize];
                match map_cmd(Cmd::Lookup, map_fd, &ukey(*key), &mut v, 0) {
                    Ok(()) => "present".into(),
                    Err(e) => errno_result(e),
                }
            }
            Step::Values(key, flags) => {
                let mut v = vec![0u8; vsize];
                match map_cmd(Cmd::Lookup, map_fd, &ukey(*key), &mut v, *flags) {
                    Ok(()) => values_result(&v, slice, kernel_core::map::runtime::NR_CPUS),
                    Err(e) => errno_result(e),
                }
            }
            Step::Fill(first) => {
                let mut r = format!("filled {FILL_MAX}");
                for n in 0..FILL_MAX {
                    let k = first.saturating_add(n);
                    if let Err(e) = map_cmd(
                        Cmd::Update,
                        map_fd,
                        &k.to_ne_bytes(),
                        &mut zero.clone(),
                        BPF_NOEXIST,
                    ) {
                        r = format!("filled {n}, then {}", errno_result(e));
                        break;
                    }
                }
                r
            }
            Step::CloseFd => {
                if map_fd < 0 {
                    errno_result(libc::EBADF)
                } else {
                    match close_by_dup2(map_fd) {
                        Ok(()) => {
                            map_fd = -1;
                            "closed".into()
                        }
                        Err(e) => format!("dup2: {}", errno_result(e)),
                    }
                }
            }
            Step::OuterDelete(k) => match outer {
                Some(o) => res(oracle::map_delete_elem(fd(o), &k.to_ne_bytes())),
                None => errno_result(libc::EBADF),
            },
            Step::OuterUpdate(k) => match outer {
                Some(o) => res(oracle::map_update_elem(
                    fd(o),
                    &k.to_ne_bytes(),
                    &map_fd.to_ne_bytes(),
                    0,
                )),
                None => errno_result(libc::EBADF),
            },
            Step::OwnerFree => match &owner {
                Some(Owner::Task(_)) => "the task owner cannot go".into(),
                Some(_) => {
                    // Closing the socket, removing the cgroup (Owner's drop).
                    owner = None;
                    "freed".into()
                }
                None => errno_result(libc::EBADF),
            },
        };
        out.push(r);
    }
    drop(obj);
    drop(owner);
    Ok(out)
}

/// Replaces `raw` with /dev/null: the map's file loses this fd (user space's last
/// reference to it goes) while the number stays taken.
fn close_by_dup2(raw: RawFd) -> Result<(), i32> {
    let null =
        std::fs::File::open("/dev/null").map_err(|e| e.raw_os_error().unwrap_or(libc::EIO))?;
    // SAFETY: dup2 of an open fd onto `raw`, an fd of the loaded object that stays
    // open (now on /dev/null) until libbpf closes it.
    if unsafe { libc::dup2(null.as_raw_fd(), raw) } < 0 {
        return Err(os_errno());
    }
    Ok(())
}

/// One program run with `struct args { u32 key; u32 pad; u64 id; s64 ret; u64 owner; }`:
/// a test run of a syscall program, or an iterator read once with the args in its map
/// (`ret` -ENOENT until the program finds the owner).
fn run_prog(
    runner: Runner,
    prog: Option<RawFd>,
    st: &Step,
    key: u32,
    id: u64,
    owner: u64,
) -> String {
    let Some(p) = prog else {
        return "the object has no such program".into();
    };
    let mut ctx = [0u8; 32];
    ctx[..4].copy_from_slice(&key.to_ne_bytes());
    ctx[8..16].copy_from_slice(&id.to_ne_bytes());
    ctx[24..32].copy_from_slice(&owner.to_ne_bytes());
    let ret = |ctx: &[u8; 32]| {
        let mut r = [0u8; 8];
        r.copy_from_slice(&ctx[16..24]);
        program_result(st, i64::from_ne_bytes(r))
    };
    match runner {
        Runner::Syscall => match oracle::prog_test_run_ctx(fd(p), &mut ctx) {
            Ok(_) => ret(&ctx),
            Err(e) => format!("BPF_PROG_TEST_RUN: {}", errno_result(e)),
        },
        Runner::Iter(args) => {
            ctx[16..24].copy_from_slice(&(-i64::from(libc::ENOENT)).to_ne_bytes());
            let zero = 0u32.to_ne_bytes();
            if let Err(e) = oracle::map_update_elem(fd(args), &zero, &ctx, 0) {
                return format!("sc_args: {}", errno_result(e));
            }
            if let Err(e) = oracle::run_iter(fd(p)) {
                return format!("iterator: {}", errno_result(e));
            }
            if let Err(e) = oracle::map_lookup_elem(fd(args), &zero, &mut ctx) {
                return format!("sc_args: {}", errno_result(e));
            }
            ret(&ctx)
        }
    }
}
