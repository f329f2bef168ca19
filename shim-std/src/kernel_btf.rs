//! This machine's kernel BTF (`/sys/kernel/btf/vmlinux` and the module files beside
//! it), or a small kernel BTF built into the binary where that file is absent.

use std::path::Path;

use kernel_core::Semantics;
use kernel_core::btf::builder::BtfBuilder;
use kernel_core::btf::uapi::BTF_INT_SIGNED;
use kernel_core::btf::{BtfIdr, BtfRef, KernelBtfs, btf_parse_module, btf_parse_vmlinux};
use kernel_core::sync::{Arc, Rcu};

use crate::elf::LoadError;

/// Where the kernel BTF came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelBtfSource {
    /// A file (normally `/sys/kernel/btf/vmlinux`).
    File(String),
    /// The small BTF built into this binary.
    Embedded,
}

/// `/sys/kernel/btf/vmlinux`.
pub const SYS_VMLINUX: &str = "/sys/kernel/btf/vmlinux";

/// A small kernel BTF for machines without `/sys/kernel/btf/vmlinux`: the kernel
/// structs local-kptr examples point at, and their destructor kfuncs, as vmlinux
/// describes them (names, kinds, sizes), with only a few members each.
pub fn embedded_vmlinux() -> Vec<u8> {
    let mut b = BtfBuilder::new();
    let int = b.int("int", 4, BTF_INT_SIGNED, 32);
    let long = b.int("long", 8, BTF_INT_SIGNED, 64);
    let void_ptr = b.ptr(0);
    let mut structs = Vec::new();
    for (name, size) in [
        ("task_struct", 9792u32),
        ("cgroup", 2048),
        ("bpf_cpumask", 24),
        ("prog_test_ref_kfunc", 32),
        ("prog_test_member", 16),
        ("bpf_crypto_ctx", 48),
        ("bpf_spin_lock", 4),
        ("bpf_res_spin_lock", 8),
        ("bpf_timer", 16),
        ("bpf_wq", 16),
        ("bpf_task_work", 16),
        ("bpf_list_head", 16),
        ("bpf_list_node", 24),
        ("bpf_rb_root", 16),
        ("bpf_rb_node", 32),
        ("bpf_refcount", 4),
    ] {
        let id = b.struct_(name, size, &[("__x", int, 0)]);
        structs.push((name, id));
    }
    let _ = long;
    let proto = b.func_proto(0, &[("p", void_ptr)]);
    for dtor in [
        "bpf_task_release_dtor",
        "bpf_cgroup_release_dtor",
        "bpf_cpumask_release_dtor",
        "bpf_crypto_ctx_release_dtor",
        "bpf_kfunc_call_test_release_dtor",
        "bpf_kfunc_call_memb_release_dtor",
        // The release kfuncs the older profiles register as destructors.
        "bpf_task_release",
        "bpf_cgroup_release",
        "bpf_cpumask_release",
        "bpf_kfunc_call_test_release",
        "bpf_kfunc_call_memb_release",
    ] {
        b.func(dtor, proto, 1);
    }
    b.build()
}

/// Loads the kernel BTFs: `vmlinux` (or the embedded BTF when `path` is `None` and
/// `/sys/kernel/btf/vmlinux` is absent) and every module BTF file beside it. `full`
/// runs the resolve pass on them too.
pub fn load_kernel_btfs(
    path: Option<&Path>,
    full: bool,
    sem: Semantics,
) -> Result<(KernelBtfs, KernelBtfSource), LoadError> {
    let rcu = Arc::new(Rcu::new());
    let idr = BtfIdr::new(rcu);
    let (data, src) = match path {
        Some(p) => (read(p)?, KernelBtfSource::File(p.display().to_string())),
        None if Path::new(SYS_VMLINUX).exists() => (
            read(Path::new(SYS_VMLINUX))?,
            KernelBtfSource::File(SYS_VMLINUX.into()),
        ),
        None => (embedded_vmlinux(), KernelBtfSource::Embedded),
    };
    // The kernel BTF is this machine's (or the embedded one): read it with the
    // verifier flags that accept it, whatever profile the program side is judged by.
    let ksem = Semantics {
        btf_tag_kflag: true,
        ..sem
    };
    let vmlinux = btf_parse_vmlinux(&data, full, ksem).map_err(|e| LoadError {
        errno: e.errno,
        reason: format!("vmlinux BTF: {}", e.message()),
    })?;
    let modules = match &src {
        KernelBtfSource::File(f) => module_files(Path::new(f)),
        KernelBtfSource::Embedded => Vec::new(),
    };
    let k = KernelBtfs::new(idr, Some(vmlinux)).map_err(|e| LoadError {
        errno: e,
        reason: "cannot publish vmlinux BTF".into(),
    })?;
    for (name, p) in modules {
        let d = read(&p)?;
        let base: &BtfRef = k.vmlinux().ok_or_else(|| LoadError {
            errno: kernel_core::Errno::EINVAL,
            reason: "no vmlinux".into(),
        })?;
        let m = btf_parse_module(&name, &d, base, full, ksem).map_err(|e| LoadError {
            errno: e.errno,
            reason: format!("module {name} BTF: {}", e.message()),
        })?;
        k.add_module(m, kernel_core::module::Module::new(&name))
            .and_then(|_| k.module_live(&name))
            .map_err(|e| LoadError {
                errno: e,
                reason: format!("cannot publish module {name} BTF"),
            })?;
    }
    kernel_core::btf::dtors::register_kernel_dtors(&k, &sem);
    Ok((k, src))
}

fn module_files(vmlinux: &Path) -> Vec<(String, std::path::PathBuf)> {
    let Some(dir) = vmlinux.parent() else {
        return Vec::new();
    };
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<_> = rd
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name() != "vmlinux" && e.path().is_file())
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .filter(|(n, _)| dir == Path::new("/sys/kernel/btf") || n.ends_with(".btf"))
        .collect();
    v.sort();
    v
}

/// Reads a file, mapping I/O errors to errnos.
pub fn read(p: &Path) -> Result<Vec<u8>, LoadError> {
    std::fs::read(p).map_err(|e| LoadError {
        errno: kernel_core::Errno::from_raw(e.raw_os_error().unwrap_or(5)),
        reason: format!("{}: {e}", p.display()),
    })
}
