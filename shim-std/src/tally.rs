//! The suite-wide tally of objects and references. A process that calls [`install`]
//! while `KPTR_TALLY_FILE` is set appends, at exit, one JSON line with its
//! [`MemTally`] to that file; [`check_file`] adds the lines up and holds the whole
//! suite to zero leaks, zero double frees and zero uses after free of allocator
//! objects, every `struct btf` freed (no BTF reference left over), no read of a freed
//! BTF, and every module dropped with no reference left on it, beyond what the tests
//! that reproduce kernel bugs acknowledge.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Once;

use kernel_core::obj::{MemTally, mem_tally};

/// The environment variable naming the tally file.
pub const TALLY_ENV: &str = "KPTR_TALLY_FILE";

/// Registers the at-exit writer once per process, if `KPTR_TALLY_FILE` is set.
pub fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if std::env::var_os(TALLY_ENV).is_some() {
            // SAFETY: `write_at_exit` is an `extern "C" fn()` that does not unwind
            // (it catches panics) and stays valid for the life of the process.
            let rc = unsafe { libc::atexit(write_at_exit) };
            if rc != 0 {
                eprintln!("kptr tally: atexit failed; this process is not tallied");
            }
        }
    });
}

fn program() -> String {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .map(|s| match s.rsplit_once('-') {
            Some((name, hash))
                if hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()) =>
            {
                name.to_string()
            }
            _ => s,
        })
        .unwrap_or_else(|| "unknown".into())
}

/// One process's line.
pub fn line(program: &str, t: &MemTally) -> String {
    serde_json::json!({
        "program": program,
        "allocators_created": t.allocators_created,
        "allocators_dropped": t.allocators_dropped,
        "allocations": t.allocations,
        "frees": t.frees,
        "leaks": t.leaks,
        "double_frees": t.double_frees,
        "uses_after_free": t.uses_after_free,
        "wild": t.wild,
        "acknowledged": t.acknowledged,
        "btfs_created": t.btfs_created,
        "btfs_freed": t.btfs_freed,
        "btfs_acknowledged": t.btfs_acknowledged,
        "btf_refs_acknowledged": t.btf_refs_acknowledged,
        "btf_uses_after_free": t.btf_uses_after_free,
        "modules_created": t.modules_created,
        "modules_dropped": t.modules_dropped,
        "module_refs_leaked": t.module_refs_leaked,
        "module_refs_acknowledged": t.module_refs_acknowledged,
    })
    .to_string()
}

extern "C" fn write_at_exit() {
    let _ = std::panic::catch_unwind(|| {
        let Some(path) = std::env::var_os(TALLY_ENV) else {
            return;
        };
        let t = mem_tally();
        let l = line(&program(), &t);
        let r = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| writeln!(f, "{l}"));
        if let Err(e) = r {
            eprintln!(
                "kptr tally: cannot append to {}: {e}",
                path.to_string_lossy()
            );
        }
    });
}

/// The suite's sums, and per program the number of processes seen.
#[derive(Debug, Default)]
pub struct Suite {
    /// Sums over every line.
    pub total: MemTally,
    /// Processes per program.
    pub programs: BTreeMap<String, usize>,
}

/// Adds up the lines of a tally file.
pub fn sum(text: &str) -> Result<Suite, String> {
    let mut s = Suite::default();
    for (i, l) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let v: serde_json::Value =
            serde_json::from_str(l).map_err(|e| format!("line {}: {e}", i + 1))?;
        let n = |k: &str| {
            v.get(k)
                .and_then(|x| x.as_u64())
                .map(|x| x as usize)
                .ok_or_else(|| format!("line {}: no number '{k}'", i + 1))
        };
        let t = &mut s.total;
        t.allocators_created += n("allocators_created")?;
        t.allocators_dropped += n("allocators_dropped")?;
        t.allocations += n("allocations")?;
        t.frees += n("frees")?;
        t.leaks += n("leaks")?;
        t.double_frees += n("double_frees")?;
        t.uses_after_free += n("uses_after_free")?;
        t.wild += n("wild")?;
        t.acknowledged += n("acknowledged")?;
        t.btfs_created += n("btfs_created")?;
        t.btfs_freed += n("btfs_freed")?;
        t.btfs_acknowledged += n("btfs_acknowledged")?;
        t.btf_refs_acknowledged += n("btf_refs_acknowledged")?;
        t.btf_uses_after_free += n("btf_uses_after_free")?;
        t.modules_created += n("modules_created")?;
        t.modules_dropped += n("modules_dropped")?;
        t.module_refs_leaked += n("module_refs_leaked")?;
        t.module_refs_acknowledged += n("module_refs_acknowledged")?;
        let p = v
            .get("program")
            .and_then(|x| x.as_str())
            .ok_or_else(|| format!("line {}: no 'program'", i + 1))?;
        *s.programs.entry(p.to_string()).or_default() += 1;
    }
    Ok(s)
}

/// Checks a suite: clean, with objects allocated, and every program in `expect`
/// reported. Returns the summary line, or what is wrong.
pub fn check(s: &Suite, expect: &[&str]) -> Result<String, String> {
    let t = &s.total;
    let summary = format!(
        "suite tally: {} processes, {} allocators ({} dropped), {} objects allocated, {} freed; \
         leaks: {}, double frees: {}, use after free: {}, wild: {} ({} acknowledged by the tests that reproduce kernel bugs); \
         BTFs: {} made, {} freed, {} left ({} acknowledged, {} leaked references put back), {} reads of a freed BTF; \
         modules: {} made ({} dropped), {} references left ({} acknowledged)",
        s.programs.values().sum::<usize>(),
        t.allocators_created,
        t.allocators_dropped,
        t.allocations,
        t.frees,
        t.leaks,
        t.double_frees,
        t.uses_after_free,
        t.wild,
        t.acknowledged,
        t.btfs_created,
        t.btfs_freed,
        t.btf_leaks(),
        t.btfs_acknowledged,
        t.btf_refs_acknowledged,
        t.btf_uses_after_free,
        t.modules_created,
        t.modules_dropped,
        t.module_refs_leaked,
        t.module_refs_acknowledged,
    );
    let missing: Vec<&str> = expect
        .iter()
        .copied()
        .filter(|p| !s.programs.contains_key(*p))
        .collect();
    if !missing.is_empty() {
        return Err(format!("{summary}\nno tally from: {}", missing.join(", ")));
    }
    if t.allocations == 0 {
        return Err(format!(
            "{summary}\nnothing was allocated: the tally saw no test"
        ));
    }
    if !t.is_clean() {
        return Err(summary);
    }
    Ok(summary)
}

/// Reads and checks a tally file.
pub fn check_file(path: &std::path::Path, expect: &[&str]) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    check(&sum(&text)?, expect)
}
