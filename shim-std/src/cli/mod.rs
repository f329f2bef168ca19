//! The `kptr-model` command line, one module per verb. Every verb prints text, or
//! JSON with `-j` (`-p`: pretty), and exits as diff(1) and cmp(1) do: 0 when
//! everything is accepted (or nothing differs), 1 when something is refused or
//! differs, 2 on an error (errors print as `{"error": ...}` in JSON).

pub mod btf;
pub mod check;
pub mod diff;
pub mod profiles;
pub mod run;
pub mod story;
pub mod trace;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::builder::PossibleValuesParser;
use clap::{Parser, Subcommand};
use kernel_core::{Errno, Semantics};
use serde_json::Value;

pub use crate::elf::LoadError;

const PROFILES: [&str; 5] = ["v6.3", "c8e18754", "v6.4", "v6.12", "v6.18"];

const AFTER_HELP: &str = "\
Profiles: v6.3 (before c8e18754), c8e18754 (the patch as merged), v6.4, v6.12,
v6.18 (the running kernel here; the default). `kptr-model profiles` lists every
behaviour flag with the change that introduced it; --set FLAG=true|false changes one.

Exit status, as diff(1) and cmp(1):
  check    0 everything accepted (and, with --kernel, the kernel agrees), 1 something
           refused, a kernel WARN, or the kernel differs or could not be asked, 2 error
  diff     0 no difference between the profiles, 1 differences, 2 error
  btf      0 the BTF is accepted, 1 refused, 2 error
  trace    0 a clean teardown, 1 a leak, double free, use after free, WARN or a
           refused step, 2 error
  run      0 every step agrees and gives what the scenario expects, 1 not, 2 error
  profiles 0, 2 error
  (none)   the c8e18754 story: 0, 2 error";

/// What the Linux kernel does with BPF special fields and local kptrs, per kernel
/// version.
#[derive(Parser, Debug)]
#[command(name = "kptr-model", version, after_help = AFTER_HELP)]
pub struct Cli {
    /// What to do (default: the c8e18754 story on the embedded example).
    #[command(subcommand)]
    pub cmd: Option<Cmd>,
    /// JSON output, one line.
    #[arg(short = 'j', long, global = true)]
    pub json: bool,
    /// JSON output, pretty-printed.
    #[arg(short = 'p', long, global = true)]
    pub pretty: bool,
    /// Change one flag of the profile (of --to for `diff`): FLAG=true|false,
    /// repeatable. `kptr-model profiles` lists the flags.
    #[arg(long = "set", global = true, value_name = "FLAG=VALUE")]
    pub set: Vec<String>,
}

/// Subcommands.
#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Validate BTF as the kernel's verifier does and print the kernel's verifier log.
    /// FILE is raw BTF or a BPF ELF object (its `.BTF`, prepared as libbpf does).
    /// Without FILE: /sys/kernel/btf/vmlinux, or the embedded kernel BTF where that
    /// file is absent.
    Btf {
        /// Raw BTF or BPF ELF object.
        file: Option<PathBuf>,
        /// Base BTF for a split (module) BTF; defaults to /sys/kernel/btf/vmlinux for
        /// files under /sys/kernel/btf.
        #[arg(long)]
        base: Option<PathBuf>,
        /// Kernel profile.
        #[arg(long, default_value = "v6.18", value_parser = PossibleValuesParser::new(PROFILES))]
        profile: String,
        /// Print only the summary line.
        #[arg(long, short)]
        quiet: bool,
    },
    /// What the kernel does with BPF objects: the BTF-load verdict, and per map the
    /// map-create verdict and the record (offset, type, pointee, local or kernel,
    /// destructor, references held, a graph root's contained struct), why anything is
    /// refused, and the kernel WARNs. Several objects print one table. Without OBJ:
    /// the embedded c8e18754 example (built for the profile's node layout).
    Check {
        /// BPF ELF objects (clang -target bpf).
        objs: Vec<PathBuf>,
        /// Kernel BTF to resolve kptrs against (default /sys/kernel/btf/vmlinux and the
        /// module files beside it, or the embedded kernel BTF).
        #[arg(long)]
        vmlinux: Option<PathBuf>,
        /// Kernel profile.
        #[arg(long, default_value = "v6.18", value_parser = PossibleValuesParser::new(PROFILES))]
        profile: String,
        /// Also ask the running kernel (BPF_BTF_LOAD, BPF_MAP_CREATE, verifier probes
        /// of every field) and show where it differs. Objects the model sees fire a
        /// kernel WARN are not sent. Only with the running kernel's profile (v6.18).
        #[arg(long)]
        kernel: bool,
    },
    /// What changes for an object between two profiles: the BTF-load verdict, then
    /// per map (by name) and per field (by offset). Without OBJ: the embedded example,
    /// built for each profile's node layout.
    Diff {
        /// The older profile.
        #[arg(long, default_value = "v6.18", value_parser = PossibleValuesParser::new(PROFILES))]
        from: String,
        /// The newer profile (default: --from; with --set, the proposed change).
        #[arg(long, value_parser = PossibleValuesParser::new(PROFILES))]
        to: Option<String>,
        /// BPF ELF object; default the embedded c8e18754 example.
        obj: Option<PathBuf>,
        /// Kernel BTF, as for `check`.
        #[arg(long)]
        vmlinux: Option<PathBuf>,
    },
    /// Run the c8e18754 scenario on the run-time model (allocate an object, stash it
    /// with bpf_kptr_xchg into a map value, close the map) and print each allocation,
    /// refcount change, destructor call, BTF get/put, migrate toggle and free, with
    /// objects named in allocation order (obj#1, btf#program); the last lines give
    /// the counts.
    Trace {
        /// Kernel profile.
        #[arg(long, default_value = "v6.18", value_parser = PossibleValuesParser::new(PROFILES))]
        profile: String,
        /// BPF object with the map (default: the embedded example for the profile).
        obj: Option<PathBuf>,
        /// The map to stash into (default: the first map with a referenced kptr).
        #[arg(long)]
        map: Option<String>,
        /// Also write who owns what as a Graphviz graph to FILE.
        #[arg(long)]
        dot: Option<PathBuf>,
    },
    /// Run a run-time scenario (tests/scenarios/README.md: map operations and program
    /// steps on one map of a BPF object) on the model and, with --kernel, on the
    /// running kernel, one observation per step side by side.
    Run {
        /// The scenario file.
        scenario: PathBuf,
        /// Kernel profile for the model.
        #[arg(long, default_value = "v6.18", value_parser = PossibleValuesParser::new(PROFILES))]
        profile: String,
        /// Also run it on the running kernel (BPF_PROG_TEST_RUN, bpf(2) map commands).
        #[arg(long)]
        kernel: bool,
    },
    /// Every behaviour flag of the profiles: its value in each profile and the change
    /// that introduced it.
    Profiles {
        /// With --set: the profile the changed column starts from.
        #[arg(long, default_value = "v6.18", value_parser = PossibleValuesParser::new(PROFILES))]
        profile: String,
    },
}

/// What a verb produced: its text, its JSON document and its exit status (0
/// accepted or the same, 1 refused or different, 2 an error in part of the input).
#[derive(Debug, Clone)]
pub struct Output {
    /// The text output.
    pub text: String,
    /// The JSON document.
    pub json: Value,
    /// The exit status.
    pub status: u8,
}

/// The c8e18754 example (`tests/fixtures/bpf/c8e18754_example.c`), compiled with the
/// node layouts of v6.4 and later.
pub const EMBEDDED_EXAMPLE: &[u8] =
    include_bytes!("../../../tests/fixtures/obj/c8e18754_example.o");
/// The same example with the node layouts of v6.3 and c8e18754 itself
/// (`c8e18754_example_v63.c`: `bpf_rb_node` of 24 bytes).
pub const EMBEDDED_EXAMPLE_V63: &[u8] =
    include_bytes!("../../../tests/fixtures/obj/c8e18754_example_v63.o");

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

/// An error with this errno and reason.
pub fn error(errno: Errno, reason: impl Into<String>) -> LoadError {
    LoadError {
        errno,
        reason: reason.into(),
    }
}

/// A usage error (EINVAL).
fn usage(reason: impl Into<String>) -> LoadError {
    error(Errno::EINVAL, reason)
}

/// The named profile with `--set` changes applied; a changed profile is named
/// `P+flag=value,...`.
pub fn semantics(name: &str, set: &[String]) -> Result<Semantics, LoadError> {
    let mut sem = Semantics::by_name(name).ok_or_else(|| {
        usage(format!(
            "unknown profile {name:?} (known: {})",
            Semantics::ALL.map(|s| s.name).join(", ")
        ))
    })?;
    if set.is_empty() {
        return Ok(sem);
    }
    for s in set {
        let Some((flag, value)) = s.split_once('=') else {
            return Err(usage(format!(
                "--set {s}: expected FLAG=true or FLAG=false"
            )));
        };
        let value = match value {
            "true" | "1" | "yes" => true,
            "false" | "0" | "no" => false,
            v => {
                return Err(usage(format!("--set {s}: {v:?} is not true or false")));
            }
        };
        let Some(f) = Semantics::flag(flag) else {
            return Err(usage(format!(
                "--set {s}: no flag {flag:?} (`kptr-model profiles` lists them)"
            )));
        };
        (f.set)(&mut sem, value);
    }
    // The profile's name says what was changed; a CLI run leaks this one string.
    let name = format!("{name}+{}", set.join(","));
    sem.name = Box::leak(name.into_boxed_str());
    Ok(sem)
}

/// True when `sem` behaves exactly as the running kernel's profile (v6.18).
pub fn is_running_kernel(sem: &Semantics) -> bool {
    sem.same_flags(&Semantics::V6_18)
}

/// `EM_BPF`.
const EM_BPF: u16 = 247;

/// Checks that `data` is a little-endian 64-bit BPF ELF object, naming what it is
/// otherwise.
pub fn check_bpf_elf(path: &str, data: &[u8]) -> Result<(), LoadError> {
    if !crate::elf::is_elf(data) {
        return Err(usage(format!(
            "{path}: not a BPF object: not an ELF file (a BPF object is what `clang -target bpf -c` writes)"
        )));
    }
    let class = data.get(4).copied().unwrap_or(0);
    let endian = data.get(5).copied().unwrap_or(0);
    let machine = match (endian, data.get(18..20)) {
        (2, Some(m)) => u16::from_be_bytes([m[0], m[1]]),
        (_, Some(m)) => u16::from_le_bytes([m[0], m[1]]),
        (_, None) => 0,
    };
    if machine != EM_BPF {
        let what = match machine {
            3 => "x86 (EM_386)".to_string(),
            62 => "x86-64 (EM_X86_64)".to_string(),
            40 => "ARM (EM_ARM)".to_string(),
            183 => "AArch64 (EM_AARCH64)".to_string(),
            243 => "RISC-V (EM_RISCV)".to_string(),
            m => format!("e_machine {m}"),
        };
        return Err(usage(format!(
            "{path}: not a BPF object: an ELF file for {what}, not EM_BPF (247)"
        )));
    }
    if class != 2 {
        return Err(usage(format!(
            "{path}: a 32-bit ELF BPF object: BPF objects are ELF64"
        )));
    }
    if endian != 1 {
        return Err(usage(format!(
            "{path}: a big-endian BPF object (clang -target bpfeb): this kernel and libbpf read little-endian objects (-target bpf or bpfel)"
        )));
    }
    Ok(())
}

/// Reads a file, naming the path in every error (a directory is not read).
pub fn read_file(p: &Path) -> Result<Vec<u8>, LoadError> {
    if p.is_dir() {
        return Err(usage(format!(
            "{}: is a directory, not a file",
            p.display()
        )));
    }
    crate::kernel_btf::read(p)
}

/// Reads a BPF object file and checks that it is one.
pub fn read_object(p: &Path) -> Result<Vec<u8>, LoadError> {
    let data = read_file(p)?;
    check_bpf_elf(&p.display().to_string(), &data)?;
    Ok(data)
}

/// (what to call it, libbpf's object name, the bytes): OBJ, or the embedded example
/// built for `sem`.
pub fn object_bytes(
    obj: Option<&Path>,
    sem: &Semantics,
) -> Result<(String, String, Vec<u8>), LoadError> {
    match obj {
        Some(p) => {
            let shown = p.display().to_string();
            let name = crate::libbpf::object_name(&shown);
            Ok((shown, name, read_object(p)?))
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

/// The kernel BTF's source in words.
pub fn kernel_btf_name(src: &crate::kernel_btf::KernelBtfSource, json: bool) -> String {
    match src {
        crate::kernel_btf::KernelBtfSource::File(f) => f.clone(),
        crate::kernel_btf::KernelBtfSource::Embedded if json => "embedded".into(),
        crate::kernel_btf::KernelBtfSource::Embedded => "embedded kernel BTF".into(),
    }
}

/// Runs one command line to its [`Output`].
pub fn run(cli: Cli) -> Result<Output, LoadError> {
    let set = &cli.set;
    match cli.cmd {
        None => story::cmd_story(set),
        Some(Cmd::Btf {
            file,
            base,
            profile,
            quiet,
        }) => btf::cmd_btf(
            file.as_deref(),
            base.as_deref(),
            semantics(&profile, set)?,
            quiet,
        ),
        Some(Cmd::Check {
            objs,
            vmlinux,
            profile,
            kernel,
        }) => check::cmd_check(&objs, vmlinux.as_deref(), semantics(&profile, set)?, kernel),
        Some(Cmd::Diff {
            from,
            to,
            obj,
            vmlinux,
        }) => {
            let a = semantics(&from, &[])?;
            let b = semantics(to.as_deref().unwrap_or(&from), set)?;
            diff::cmd_diff(obj.as_deref(), vmlinux.as_deref(), a, b)
        }
        Some(Cmd::Trace {
            profile,
            obj,
            map,
            dot,
        }) => trace::cmd_trace(
            obj.as_deref(),
            map.as_deref(),
            dot.as_deref(),
            semantics(&profile, set)?,
        ),
        Some(Cmd::Run {
            scenario,
            profile,
            kernel,
        }) => run::cmd_run(&scenario, semantics(&profile, set)?, kernel),
        Some(Cmd::Profiles { profile }) => {
            let changed = if set.is_empty() {
                None
            } else {
                Some(semantics(&profile, set)?)
            };
            Ok(profiles::cmd_profiles(changed))
        }
    }
}

/// An error in words: `ERRNO: reason`, or the reason alone for an errno without a
/// name (an I/O error's reason already says it).
pub fn error_text(e: &LoadError) -> String {
    match e.errno.name() {
        Some(n) => format!("{n}: {}", e.reason),
        None => e.reason.clone(),
    }
}

/// Runs the command line and prints its output to `out` (errors to stderr, or as
/// `{"error": ...}` to `out` in JSON); the exit status as diff(1).
pub fn main_with(cli: Cli, out: &mut dyn Write) -> ExitCode {
    let (json, pretty) = (cli.json || cli.pretty, cli.pretty);
    let res = run(cli);
    let (doc, text, code) = match res {
        Ok(o) => (o.json, o.text, o.status),
        Err(e) => {
            let msg = error_text(&e);
            if !json {
                let _ = out.flush();
                eprintln!("kptr-model: {msg}");
                return ExitCode::from(2);
            }
            (serde_json::json!({ "error": msg }), String::new(), 2)
        }
    };
    let written = if json {
        let s = if pretty {
            serde_json::to_string_pretty(&doc)
        } else {
            serde_json::to_string(&doc)
        };
        writeln!(out, "{}", s.unwrap_or_default())
    } else {
        out.write_all(text.as_bytes())
    };
    let _ = written.and_then(|()| out.flush());
    ExitCode::from(code)
}
