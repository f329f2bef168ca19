//! The `kptr-model` command line.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use kernel_core::btf::{BtfRef, ParseOpts, btf_get, btf_verify};
use kernel_core::{Errno, Semantics};

use crate::elf::{LoadError, is_elf, read_bpf_object};
use crate::kernel_btf::{KernelBtfSource, SYS_VMLINUX, embedded_vmlinux, read};

/// What the Linux kernel does with BPF special fields and local kptrs, per kernel
/// version.
#[derive(Parser, Debug)]
#[command(name = "kptr-model", version)]
pub struct Cli {
    /// What to do (default: `check` on the embedded c8e18754 example object).
    #[command(subcommand)]
    pub cmd: Option<Cmd>,
}

/// Subcommands.
#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Validate BTF as the kernel's verifier does and dump its types in the kernel's
    /// verifier-log style. FILE is raw BTF or a BPF ELF object (its `.BTF`, finalised
    /// as libbpf does). Without FILE: /sys/kernel/btf/vmlinux, or the embedded kernel
    /// BTF where that file is absent.
    Btf {
        /// Raw BTF or BPF ELF object.
        file: Option<PathBuf>,
        /// Base BTF for a split (module) BTF; defaults to /sys/kernel/btf/vmlinux for
        /// files under /sys/kernel/btf.
        #[arg(long)]
        base: Option<PathBuf>,
        /// Kernel profile.
        #[arg(long, default_value = "v6.18")]
        profile: String,
        /// Print only the summary line.
        #[arg(long, short)]
        quiet: bool,
    },
    /// What the kernel does with a BPF object: the BTF-load verdict, and per map the
    /// map-create verdict and the record (offset, type, pointee, local or kernel,
    /// destructor, references held). Without OBJ: the embedded c8e18754 example (built
    /// for the profile's node layout).
    Check {
        /// BPF ELF object (clang -target bpf).
        obj: Option<PathBuf>,
        /// Kernel BTF to resolve kptrs against (default /sys/kernel/btf/vmlinux and the
        /// module files beside it, or the embedded kernel BTF).
        #[arg(long)]
        vmlinux: Option<PathBuf>,
        /// Kernel profile.
        #[arg(long, default_value = "v6.18")]
        profile: String,
        /// JSON output.
        #[arg(long)]
        json: bool,
        /// Also ask the running kernel (BPF_BTF_LOAD, BPF_MAP_CREATE) and show where it
        /// differs. Objects the model sees fire a kernel WARN are not sent.
        #[arg(long)]
        kernel: bool,
    },
    /// Run the c8e18754 scenario on the run-time model (allocate a node, stash it
    /// with bpf_kptr_xchg into an array map value, close the map) and print each
    /// allocation, refcount change, destructor call, BTF get/put and free; the last
    /// line gives the counts.
    Trace {
        /// Kernel profile.
        #[arg(long, default_value = "v6.18")]
        profile: String,
        /// BPF object with the map (default: the embedded example for the profile).
        obj: Option<PathBuf>,
        /// Also write who owns what as a Graphviz graph to FILE.
        #[arg(long)]
        dot: Option<PathBuf>,
    },
    /// Run a run-time scenario (tests/scenarios/README.md: map operations and program
    /// steps on one map of a BPF object) on the model and, with --kernel, on the
    /// running kernel, one observation per step side by side. Exit status: 0 when
    /// every step agrees (and gives what the scenario expects), 1 when one does not,
    /// 2 on an error (a bad scenario, an object that cannot be loaded).
    Run {
        /// The scenario file.
        scenario: PathBuf,
        /// Kernel profile for the model.
        #[arg(long, default_value = "v6.18")]
        profile: String,
        /// Also run it on the running kernel (BPF_PROG_TEST_RUN, bpf(2) map commands).
        #[arg(long)]
        kernel: bool,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// What changes for an object between two profiles. Without OBJ: the embedded
    /// example built for the --from profile's node layout.
    Diff {
        /// The older profile.
        #[arg(long)]
        from: String,
        /// The newer profile.
        #[arg(long)]
        to: String,
        /// BPF ELF object; default the embedded c8e18754 example.
        obj: Option<PathBuf>,
        /// Kernel BTF, as for `check`.
        #[arg(long)]
        vmlinux: Option<PathBuf>,
    },
}

/// The c8e18754 example (`tests/fixtures/bpf/c8e18754_example.c`), compiled with the
/// node layouts of v6.4 and later.
pub const EMBEDDED_EXAMPLE: &[u8] = include_bytes!("../../tests/fixtures/obj/c8e18754_example.o");
/// The same example with the node layouts of v6.3 and c8e18754 itself
/// (`c8e18754_example_v63.c`: `bpf_rb_node` of 24 bytes).
pub const EMBEDDED_EXAMPLE_V63: &[u8] =
    include_bytes!("../../tests/fixtures/obj/c8e18754_example_v63.o");

/// The embedded example built for `sem`'s node layout.
pub fn embedded_example(sem: &Semantics) -> (&'static str, &'static [u8]) {
    if sem.refcount {
        ("c8e18754_example.o (embedded)", EMBEDDED_EXAMPLE)
    } else {
        (
            "c8e18754_example_v63.o (embedded, pre-v6.4 node layout)",
            EMBEDDED_EXAMPLE_V63,
        )
    }
}

fn profile(name: &str) -> Result<Semantics, LoadError> {
    Semantics::by_name(name).ok_or_else(|| LoadError {
        errno: Errno::EINVAL,
        reason: format!(
            "unknown profile {name:?} (known: {})",
            Semantics::ALL.map(|s| s.name).join(", ")
        ),
    })
}

/// Runs the command line; errors print as `ERRNO: reason` and exit non-zero.
pub fn main_with(cli: Cli, out: &mut dyn Write) -> ExitCode {
    let cmd = cli.cmd.unwrap_or(Cmd::Check {
        obj: None,
        vmlinux: None,
        profile: "v6.18".into(),
        json: false,
        kernel: false,
    });
    if let Cmd::Run {
        scenario,
        profile: p,
        kernel,
        json,
    } = &cmd
    {
        return match profile(p).and_then(|sem| cmd_run(scenario, sem, *kernel, *json, out)) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::from(1),
            Err(e) => {
                let _ = out.flush();
                if *json {
                    let _ = writeln!(
                        out,
                        "{}",
                        serde_json::json!({"error": format!("{}: {}", e.errno, e.reason)})
                    );
                } else {
                    eprintln!("kptr-model: {}: {}", e.errno, e.reason);
                }
                ExitCode::from(2)
            }
        };
    }
    let res = match cmd {
        Cmd::Run { .. } => Ok(()),
        Cmd::Btf {
            file,
            base,
            profile: p,
            quiet,
        } => profile(&p).and_then(|sem| cmd_btf(file.as_deref(), base.as_deref(), sem, quiet, out)),
        Cmd::Check {
            obj,
            vmlinux,
            profile: p,
            json,
            kernel,
        } => profile(&p).and_then(|sem| {
            cmd_check(obj.as_deref(), vmlinux.as_deref(), sem, json, out)?;
            if kernel {
                cmd_check_kernel(obj.as_deref(), sem, out)?;
            }
            Ok(())
        }),
        Cmd::Trace {
            profile: p,
            obj,
            dot,
        } => profile(&p).and_then(|sem| cmd_trace(obj.as_deref(), dot.as_deref(), sem, out)),
        Cmd::Diff {
            from,
            to,
            obj,
            vmlinux,
        } => profile(&from)
            .and_then(|a| profile(&to).map(|b| (a, b)))
            .and_then(|(a, b)| cmd_diff(obj.as_deref(), vmlinux.as_deref(), a, b, out)),
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.reason.contains("Broken pipe") => ExitCode::SUCCESS,
        Err(e) => {
            let _ = out.flush();
            eprintln!("kptr-model: {}: {}", e.errno, e.reason);
            ExitCode::FAILURE
        }
    }
}

fn io_err(e: std::io::Error) -> LoadError {
    LoadError {
        errno: Errno::EIO,
        reason: e.to_string(),
    }
}

/// `kptr-model btf`.
pub fn cmd_btf(
    file: Option<&Path>,
    base: Option<&Path>,
    sem: Semantics,
    quiet: bool,
    out: &mut dyn Write,
) -> Result<(), LoadError> {
    let (what, data) = match file {
        Some(p) => (KernelBtfSource::File(p.display().to_string()), read(p)?),
        None if Path::new(SYS_VMLINUX).exists() => (
            KernelBtfSource::File(SYS_VMLINUX.into()),
            read(Path::new(SYS_VMLINUX))?,
        ),
        None => (KernelBtfSource::Embedded, embedded_vmlinux()),
    };
    let data = if is_elf(&data) {
        read_bpf_object(&data)?.btf
    } else {
        data
    };
    let base_path = match (base, file) {
        (Some(b), _) => Some(b.to_path_buf()),
        (None, Some(f))
            if f.parent() == Some(Path::new("/sys/kernel/btf")) && f != Path::new(SYS_VMLINUX) =>
        {
            Some(PathBuf::from(SYS_VMLINUX))
        }
        _ => None,
    };
    let opts = ParseOpts {
        log_level: if quiet { 0 } else { 1 },
        resolve: true,
        sem,
    };
    let base_ref: Option<BtfRef> = match &base_path {
        Some(bp) => {
            let bd = read(bp)?;
            let b = btf_verify(
                bd.into_boxed_slice(),
                None,
                &ParseOpts {
                    log_level: 0,
                    ..opts
                },
            )
            .map_err(|e| LoadError {
                errno: e.errno,
                reason: format!("base BTF {}: {}", bp.display(), e.message()),
            })?;
            Some(kernel_core::btf::Btf::new(
                b.0,
                "vmlinux",
                kernel_core::btf::BtfOrigin::Kernel,
            ))
        }
        None => None,
    };
    let verify = |level: u32| {
        btf_verify(
            data.clone().into_boxed_slice(),
            base_ref.as_ref().map(btf_get),
            &ParseOpts {
                log_level: level,
                ..opts
            },
        )
    };
    let (btf, log) = match verify(opts.log_level) {
        Ok(x) => x,
        Err(e) => {
            if !quiet {
                let _ = out.write_all(&e.log);
                let _ = writeln!(out);
            }
            // A quiet run keeps no log: verify again with one for the kernel's message.
            let msg = match verify(1) {
                Err(e1) => e1.message().to_string(),
                Ok(_) => e.message().to_string(),
            };
            return Err(LoadError {
                errno: e.errno,
                reason: msg,
            });
        }
    };
    if !quiet {
        out.write_all(log.as_bytes()).map_err(io_err)?;
    }
    let src = match &what {
        KernelBtfSource::File(f) => f.clone(),
        KernelBtfSource::Embedded => "embedded kernel BTF".into(),
    };
    // Kernel BTF (vmlinux, modules: a file under /sys/kernel/btf, the embedded one, or
    // split BTF given a base) is parsed by btf_parse_vmlinux/btf_parse_module, which
    // run no struct-meta pass; anything else is program BTF, which BPF_BTF_LOAD also
    // gives to btf_parse_struct_metas and its fix-ups.
    let kernel_btf = matches!(what, KernelBtfSource::Embedded)
        || base_path.is_some()
        || file.is_some_and(|f| f.starts_with("/sys/kernel/btf"));
    let checked = if kernel_btf {
        "btf_parse; kernel BTF has no struct-meta pass"
    } else {
        let (kernel, _) = crate::kernel_btf::load_kernel_btfs(None, false, sem)?;
        if let Err(e) = kernel_core::record::bpf_btf_load(&kernel, &data, 0, &sem) {
            return Err(LoadError {
                errno: e.errno,
                reason: format!(
                    "btf_parse accepts the BTF, then BPF_BTF_LOAD's struct-meta pass refuses it in {} (the kernel logs no message of its own)",
                    e.reason
                ),
            });
        }
        "BPF_BTF_LOAD: btf_parse and the struct-meta pass"
    };
    writeln!(
        out,
        "{src}: ok ({}): types: {}, strings: {} bytes ({checked})",
        sem.name,
        btf.nr_types_local() - u32::from(btf.base().is_none()),
        btf.header().str_len
    )
    .map_err(io_err)?;
    Ok(())
}

/// (what to call it, libbpf's object name, the bytes).
fn object_bytes(
    obj: Option<&Path>,
    sem: &Semantics,
) -> Result<(String, String, Vec<u8>), LoadError> {
    match obj {
        Some(p) => {
            let shown = p.display().to_string();
            let name = crate::libbpf::object_name(&shown);
            Ok((shown, name, read(p)?))
        }
        None => {
            let (n, b) = embedded_example(sem);
            let file = if sem.refcount {
                "c8e18754_example.o"
            } else {
                "c8e18754_example_v63.o"
            };
            Ok((n.into(), crate::libbpf::object_name(file), b.to_vec()))
        }
    }
}

/// `kptr-model check`.
pub fn cmd_check(
    obj: Option<&Path>,
    vmlinux: Option<&Path>,
    sem: Semantics,
    json: bool,
    out: &mut dyn Write,
) -> Result<(), LoadError> {
    let (name, oname, bytes) = object_bytes(obj, &sem)?;
    let (kernel, src) = crate::kernel_btf::load_kernel_btfs(vmlinux, false, sem)?;
    let rep = crate::check::check_object_named(&kernel, &bytes, &oname, &sem)?;
    if json {
        let mut v = rep.to_json();
        v["object"] = serde_json::json!(name);
        v["kernel_btf"] = serde_json::json!(match src {
            KernelBtfSource::File(f) => f,
            KernelBtfSource::Embedded => "embedded".into(),
        });
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&v).unwrap_or_default()
        )
        .map_err(io_err)?;
    } else {
        let kb = match src {
            KernelBtfSource::File(f) => f,
            KernelBtfSource::Embedded => "embedded kernel BTF".into(),
        };
        writeln!(out, "{name} (kernel BTF: {kb})").map_err(io_err)?;
        out.write_all(rep.to_text().as_bytes()).map_err(io_err)?;
    }
    Ok(())
}

/// `kptr-model diff`: the two reports, and the lines that differ.
pub fn cmd_diff(
    obj: Option<&Path>,
    vmlinux: Option<&Path>,
    a: Semantics,
    b: Semantics,
    out: &mut dyn Write,
) -> Result<(), LoadError> {
    let (name, oname, bytes) = object_bytes(obj, &a)?;
    let (ka, _) = crate::kernel_btf::load_kernel_btfs(vmlinux, false, a)?;
    let (kb, _) = crate::kernel_btf::load_kernel_btfs(vmlinux, false, b)?;
    let ra = crate::check::check_object_named(&ka, &bytes, &oname, &a)?.to_text();
    let rb = crate::check::check_object_named(&kb, &bytes, &oname, &b)?.to_text();
    let strip = |s: &str| {
        s.replace(&format!("({})", a.name), "")
            .replace(&format!("({})", b.name), "")
    };
    let la: Vec<String> = ra.lines().map(strip).collect();
    let lb: Vec<String> = rb.lines().map(strip).collect();
    writeln!(out, "{name}: {} -> {}", a.name, b.name).map_err(io_err)?;
    let mut changed = 0;
    for l in &la {
        if !lb.contains(l) {
            writeln!(out, "- {l}").map_err(io_err)?;
            changed += 1;
        }
    }
    for l in &lb {
        if !la.contains(l) {
            writeln!(out, "+ {l}").map_err(io_err)?;
            changed += 1;
        }
    }
    if changed == 0 {
        writeln!(out, "(no difference)").map_err(io_err)?;
    }
    Ok(())
}

static TRACE: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

fn trace_hook(ev: &kernel_core::trace::Event<'_>) {
    use kernel_core::trace::Event::*;
    let line = match *ev {
        Alloc { addr, ty, size } => format!("alloc    {ty} @{addr:#x} ({size} bytes)"),
        Free { addr, ty, rcu } => format!(
            "free     {ty} @{addr:#x}{}",
            if rcu {
                " (after an RCU grace period)"
            } else {
                ""
            }
        ),
        Ref { what, addr, now } => format!("refcount {what} @{addr:#x} -> {now}"),
        Dtor { name, addr } => format!("dtor     {name}({addr:#x})"),
        ObjDrop { addr } => format!("obj_drop __bpf_obj_drop_impl({addr:#x})"),
        Xchg { off, old, new } => format!("xchg     value+{off}: {old:#x} -> {new:#x}"),
        Btf { name, addr, now } => format!(
            "btf      {} @{addr:#x} refcount -> {now}",
            if name.is_empty() { "program BTF" } else { name }
        ),
        Map { what } => format!("map      {what}"),
        Migrate { disable, site } => format!(
            "migrate  {}{}",
            if disable {
                "migrate_disable"
            } else {
                "migrate_enable"
            },
            if site.is_empty() {
                String::new()
            } else {
                format!(" in {site}")
            }
        ),
    };
    if let Ok(mut g) = TRACE.lock() {
        g.push(line);
    }
}

/// `kptr-model trace`.
pub fn cmd_trace(
    obj: Option<&Path>,
    dot: Option<&Path>,
    sem: Semantics,
    out: &mut dyn Write,
) -> Result<(), LoadError> {
    let (name, _, bytes) = object_bytes(obj, &sem)?;
    let (kernel, _) = crate::kernel_btf::load_kernel_btfs(None, false, sem)?;
    if let Ok(mut g) = TRACE.lock() {
        g.clear();
    }
    crate::warns::install();
    let _ = crate::warns::take();
    kernel_core::trace::set_trace_hook(Some(trace_hook));
    let res = crate::scenario::c8e18754_example(kernel, &bytes, sem);
    kernel_core::trace::set_trace_hook(None);
    let warns = crate::warns::take();
    let o = res?;
    writeln!(out, "trace of {name} under {}", sem.name).map_err(io_err)?;
    let lines = TRACE.lock().map(|g| g.clone()).unwrap_or_default();
    for l in lines {
        writeln!(out, "  {l}").map_err(io_err)?;
    }
    if let Some(r) = &o.refused {
        writeln!(out, "refused: {r}").map_err(io_err)?;
    }
    for w in &warns {
        writeln!(out, "WARN: {w}").map_err(io_err)?;
    }
    if let Some(p) = dot {
        std::fs::write(p, &o.dot).map_err(io_err)?;
    }
    writeln!(
        out,
        "program BTF refcount: {} before the map, {} after; allocations: {}, frees: {}",
        o.prog_btf_refs.0, o.prog_btf_refs.1, o.allocs, o.frees
    )
    .map_err(io_err)?;
    writeln!(
        out,
        "leaks: {}, double frees: {}, use after free: {}",
        o.leaks, o.double_frees, o.use_after_free
    )
    .map_err(io_err)?;
    Ok(())
}

/// `kptr-model run`: the scenario on the model (and the kernel); `Ok(true)` when every
/// step agrees and gives what the scenario expects.
pub fn cmd_run(
    path: &Path,
    sem: Semantics,
    kernel: bool,
    json: bool,
    out: &mut dyn Write,
) -> Result<bool, LoadError> {
    let sc = crate::run::load(path)?;
    let warns = kernel_core::sync::warn::warn_count();
    let model = crate::run::model::run_model(&sc, sem)?;
    let warned = kernel_core::sync::warn::warn_count() != warns || !model.close.warnings.is_empty();
    let kern: Option<Result<Vec<String>, String>> = kernel.then(|| {
        if warned {
            Err("the model raised a kernel WARN for this scenario; the running kernel would WARN and taint".into())
        } else if sem.name != Semantics::V6_18.name {
            Err(format!("the running kernel is v6.18, not {}", sem.name))
        } else {
            crate::run::kernel::run_kernel(&sc, &model.def)
        }
    });
    let kres = kern.as_ref().and_then(|k| k.as_ref().ok());
    let steps: Vec<crate::run::Observed> = sc
        .lines
        .iter()
        .enumerate()
        .map(|(i, l)| crate::run::Observed {
            line: l.clone(),
            model: model.results.get(i).cloned().unwrap_or_default(),
            kernel: kres.and_then(|k| k.get(i).cloned()),
        })
        .collect();
    let c = &model.close;
    let clean =
        c.leaks == sc.leaks && c.double_frees == 0 && c.use_after_free == 0 && c.null_derefs == 0;
    let agree = clean && steps.iter().all(|o| o.same() && o.as_expected());
    if json {
        let v = serde_json::json!({
            "scenario": path.display().to_string(),
            "object": sc.object.display().to_string(),
            "map": sc.map,
            "profile": sem.name,
            "kernel": match &kern {
                None => serde_json::json!({"asked": false, "reason": null}),
                Some(Ok(_)) => serde_json::json!({"asked": true, "reason": null}),
                Some(Err(r)) => serde_json::json!({"asked": false, "reason": r}),
            },
            "steps": steps.iter().map(|o| serde_json::json!({
                "line": o.line.no, "step": o.line.text, "model": o.model, "kernel": o.kernel,
                "same": o.same(), "expect": o.line.expect, "as_expected": o.as_expected(),
            })).collect::<Vec<_>>(),
            "model_close": {
                "allocs": c.allocs, "frees": c.frees, "leaks": c.leaks,
                "double_frees": c.double_frees, "use_after_free": c.use_after_free,
                "null_derefs": c.null_derefs, "warnings": c.warnings,
                "expected_leaks": sc.leaks,
            },
            "agree": agree,
        });
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&v).unwrap_or_default()
        )
        .map_err(io_err)?;
        return Ok(agree);
    }
    writeln!(
        out,
        "scenario {} (object {}, map {}, profile {})",
        path.display(),
        sc.object.display(),
        sc.map,
        sem.name
    )
    .map_err(io_err)?;
    for o in &steps {
        let mut l = format!(
            "{:>4}  {:<22} model: {:<14}",
            o.line.no, o.line.text, o.model
        );
        if let Some(k) = &o.kernel {
            l += &format!(
                " kernel: {:<14} {}",
                k,
                if o.same() { "same" } else { "DIFFERS" }
            );
        }
        if !o.as_expected() {
            l += &format!(
                "  EXPECTED {}",
                o.line.expect.as_deref().unwrap_or_default()
            );
        }
        writeln!(out, "{}", l.trim_end()).map_err(io_err)?;
    }
    writeln!(
        out,
        "model: map closed: {} objects allocated, {} freed; leaks: {}, double frees: {}, use after free: {}, NULL dereferences: {}",
        c.allocs, c.frees, c.leaks, c.double_frees, c.use_after_free, c.null_derefs
    )
    .map_err(io_err)?;
    if c.leaks != sc.leaks {
        writeln!(
            out,
            "model: EXPECTED {} objects left after the close (`leaks` line), found {}",
            sc.leaks, c.leaks
        )
        .map_err(io_err)?;
    }
    for w in &c.warnings {
        writeln!(out, "model: WARN: {w}").map_err(io_err)?;
    }
    match &kern {
        None => {}
        Some(Ok(_)) => {
            let differ = steps.iter().filter(|o| !o.same()).count();
            writeln!(
                out,
                "kernel: {} steps, {} the same, {differ} differ; frees are not observable from a program here: the close is the model's alone",
                steps.len(),
                steps.len() - differ
            )
            .map_err(io_err)?;
        }
        Some(Err(r)) => writeln!(out, "kernel: not asked: {r}").map_err(io_err)?,
    }
    if kernel && !matches!(kern, Some(Ok(_))) {
        return Ok(false);
    }
    Ok(agree)
}

/// `kptr-model check --kernel`: the running kernel's verdicts beside the model's
/// ([`crate::compare::compare_with_kernel`]).
pub fn cmd_check_kernel(
    obj: Option<&Path>,
    sem: Semantics,
    out: &mut dyn Write,
) -> Result<(), LoadError> {
    let (_, oname, bytes) = object_bytes(obj, &sem)?;
    if sem.name != Semantics::V6_18.name {
        writeln!(
            out,
            "kernel: the running kernel is judged against the v6.18 profile"
        )
        .map_err(io_err)?;
    }
    let (kernel, _) = crate::kernel_btf::load_kernel_btfs(None, false, Semantics::V6_18)?;
    let cmp = crate::compare::compare_with_kernel(&kernel, &bytes, &oname)?;
    for l in cmp.lines() {
        writeln!(out, "{l}").map_err(io_err)?;
    }
    Ok(())
}
