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
    /// What to do (default: `btf` on this machine's kernel BTF).
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
    let cmd = cli.cmd.unwrap_or(Cmd::Btf {
        file: None,
        base: None,
        profile: "v6.18".into(),
        quiet: false,
    });
    let res = match cmd {
        Cmd::Btf {
            file,
            base,
            profile: p,
            quiet,
        } => profile(&p).and_then(|sem| cmd_btf(file.as_deref(), base.as_deref(), sem, quiet, out)),
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
    let (btf, log) = btf_verify(
        data.into_boxed_slice(),
        base_ref.as_ref().map(btf_get),
        &opts,
    )
    .map_err(|e| {
        if !quiet {
            let _ = out.write_all(e.log.as_bytes());
            let _ = writeln!(out);
        }
        LoadError {
            errno: e.errno,
            reason: e.message().to_string(),
        }
    })?;
    if !quiet {
        out.write_all(log.as_str().as_bytes()).map_err(io_err)?;
    }
    let src = match what {
        KernelBtfSource::File(f) => f,
        KernelBtfSource::Embedded => "embedded kernel BTF".into(),
    };
    writeln!(
        out,
        "{src}: ok ({}): types: {}, strings: {} bytes",
        sem.name,
        btf.nr_types_local() - u32::from(btf.base().is_none()),
        btf.header().str_len
    )
    .map_err(io_err)?;
    Ok(())
}
