//! The running kernel beside the model (`check --kernel`): the object's BTF as libbpf
//! prepares it through `BPF_BTF_LOAD`, every map as libbpf creates it through
//! `BPF_MAP_CREATE` (a map-in-map's inner template first, its fd passed as
//! `inner_map_fd`), and every field of every created map judged by verifier probes
//! ([`crate::field_probe`]). Compared with the `v6.18` profile, the running kernel's.
//! Nothing is sent when the model raises a kernel WARN for the object, nor is a map
//! whose graph root is guarded only by a `bpf_res_spin_lock` created (closing it
//! WARNs).

use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use kernel_core::btf::KernelBtfs;
use kernel_core::{Errno, Semantics};

use crate::check::{MapReport, check_object_named};
use crate::elf::{LoadError, read_bpf_object_named};
use crate::field_probe::{FieldJudgement, InnerMap, ProbeTarget, Status, judge_fields};
use crate::oracle::{self, MapCreate};

/// A verdict of the kernel against the model's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Same errno (or both accept).
    Same,
    /// Different.
    Differs,
    /// Not compared, for a reason of this machine rather than of the object.
    NotCompared(String),
    /// Not sent to the kernel (it would WARN).
    NotSent(String),
}

/// One map (or a map-in-map's inner template).
#[derive(Debug)]
pub struct MapComparison {
    /// libbpf's name for it (the kernel's, as `bpftool map list` shows it).
    pub name: String,
    /// The inner template of a map-in-map.
    pub inner: bool,
    /// The model's `BPF_MAP_CREATE` errno.
    pub model: Option<Errno>,
    /// The kernel's.
    pub kernel: Option<i32>,
    /// Map creation compared.
    pub verdict: Verdict,
    /// The fields, when the kernel created the map (for a map-in-map: its inner
    /// template's, as a program reaches them through the outer map).
    pub fields: Option<FieldJudgement>,
    /// A map-in-map's initial slots: (index, map, the model's errno, the kernel's).
    pub slots: Vec<(u32, String, Option<Errno>, Option<i32>)>,
}

/// The whole comparison for one object.
#[derive(Debug)]
pub struct KernelComparison {
    /// Why nothing was asked, if nothing was.
    pub not_asked: Option<String>,
    /// The model's and the kernel's `BPF_BTF_LOAD` errnos.
    pub btf: (Option<Errno>, Option<i32>),
    /// Every map, in libbpf's order.
    pub maps: Vec<MapComparison>,
}

fn errno_str(e: Option<i32>) -> String {
    e.map_or("ok".to_string(), |e| Errno::from_raw(e).to_string())
}

impl KernelComparison {
    /// Lines for people, each ending in the verdict.
    pub fn lines(&self) -> Vec<String> {
        if let Some(r) = &self.not_asked {
            return vec![format!("kernel: not asked: {r}")];
        }
        let mut v = vec![format!(
            "kernel: BTF load {} ({})",
            errno_str(self.btf.1),
            if self.btf_same() {
                "same as the model"
            } else {
                "DIFFERS from the model"
            }
        )];
        for m in &self.maps {
            let created = m
                .kernel
                .map_or("created".to_string(), |e| Errno::from_raw(e).to_string());
            let what = if m.inner { "inner map" } else { "map" };
            let verdict = match &m.verdict {
                Verdict::Same => "same as the model".to_string(),
                Verdict::Differs => "DIFFERS from the model".to_string(),
                Verdict::NotCompared(r) => format!("not compared: {r}"),
                Verdict::NotSent(r) => {
                    v.push(format!("kernel: {what} {} not created: {r}", m.name));
                    continue;
                }
            };
            v.push(format!("kernel: {what} {} {created} ({verdict})", m.name));
            if let Some(j) = &m.fields {
                for l in j.lines() {
                    v.push(format!("kernel:   {l}"));
                }
            }
            for (i, n, me, ke) in &m.slots {
                let same = *ke == me.map(|e| e.raw());
                v.push(format!(
                    "kernel:   slot [{i}] = map {n}: {} ({})",
                    errno_str(*ke),
                    if same {
                        "same as the model"
                    } else {
                        "DIFFERS from the model"
                    }
                ));
            }
        }
        v.push(format!(
            "kernel: {} fields judged, {} the same; {} differences",
            self.fields_judged(),
            self.fields_judged() - self.field_differences(),
            self.differences()
        ));
        v
    }

    /// The kernel's BTF-load verdict equals the model's.
    pub fn btf_same(&self) -> bool {
        self.btf.1 == self.btf.0.map(|e| e.raw())
    }

    /// Fields the kernel judged (the model's fields and those only the kernel has).
    pub fn fields_judged(&self) -> usize {
        self.maps
            .iter()
            .filter_map(|m| m.fields.as_ref())
            .filter(|j| j.is_judged())
            .map(|j| j.fields.len() + j.kernel_only.len())
            .sum()
    }

    fn field_differences(&self) -> usize {
        self.maps
            .iter()
            .filter_map(|m| m.fields.as_ref())
            .filter(|j| j.is_judged())
            .map(|j| j.differences().len())
            .sum()
    }

    /// Every difference: BTF load, map creation, fields, and probes the verifier
    /// refused for a reason the probe does not know.
    pub fn differences(&self) -> usize {
        usize::from(self.not_asked.is_none() && !self.btf_same())
            + self
                .maps
                .iter()
                .filter(|m| m.verdict == Verdict::Differs)
                .count()
            + self
                .maps
                .iter()
                .flat_map(|m| &m.slots)
                .filter(|(_, _, me, ke)| *ke != me.map(|e| e.raw()))
                .count()
            + self.field_differences()
            + self
                .maps
                .iter()
                .filter_map(|m| m.fields.as_ref())
                .filter(|j| matches!(j.status, Status::ProbeError(_)))
                .count()
    }
}

/// Asks the running kernel about object `obj` (libbpf name `obj_name`), beside the
/// model's `v6.18` verdicts computed over `kernel`.
pub fn compare_with_kernel(
    kernel: &KernelBtfs,
    obj: &[u8],
    obj_name: &str,
) -> Result<KernelComparison, LoadError> {
    let sem = Semantics::V6_18;
    let mut cmp = KernelComparison {
        not_asked: None,
        btf: (None, None),
        maps: Vec::new(),
    };
    if let Some(r) = oracle::unavailable_reason() {
        cmp.not_asked = Some(r);
        return Ok(cmp);
    }
    let warns = kernel_core::sync::warn::warn_count();
    let model = check_object_named(kernel, obj, obj_name, &sem)?;
    if kernel_core::sync::warn::warn_count() != warns {
        cmp.not_asked = Some(
            "the model raised a kernel WARN for this object; the running kernel would WARN and taint"
                .into(),
        );
        return Ok(cmp);
    }
    let o = read_bpf_object_named(obj, obj_name)?;
    cmp.btf = (model.btf_errno, oracle::btf_load(&o.btf).errno);
    let Ok(fd) = oracle::btf_load_fd(&o.btf) else {
        return Ok(cmp);
    };
    // The model's BTF of the object, for the probes (a uptr pointee's size).
    let model_btf = kernel_core::syscall::bpf_btf_load(kernel, &o.btf, 0, &sem)
        .ok()
        .map(|(b, _)| b);
    let arena_policy = oracle::arena_refused();
    // The kernel's maps by libbpf's name, kept open for the initial slots.
    let mut fds: Vec<(String, OwnedFd)> = Vec::new();
    for m in &model.maps {
        let kfd = compare_map(
            &mut cmp,
            m,
            fd.as_fd(),
            model_btf.as_ref(),
            arena_policy.as_deref(),
        );
        if let Some(kfd) = kfd {
            if let Some(c) = cmp.maps.last_mut() {
                c.slots = m
                    .slots
                    .iter()
                    .map(|(i, n, me)| {
                        let target = fds.iter().find(|(fname, _)| fname == n);
                        let ke = match target {
                            Some((_, t)) => oracle::map_update_elem(
                                kfd.as_fd(),
                                &i.to_ne_bytes(),
                                &(t.as_raw_fd() as u32).to_ne_bytes(),
                                0,
                            )
                            .err(),
                            None => Some(Errno::EBADF.raw()),
                        };
                        (*i, n.clone(), *me, ke)
                    })
                    .collect();
            }
            fds.push((m.def.libbpf_name().to_string(), kfd));
        }
    }
    Ok(cmp)
}

/// Compares one map (and its inner template); the kernel's map fd when it created it.
fn compare_map(
    cmp: &mut KernelComparison,
    m: &MapReport,
    btf_fd: std::os::fd::BorrowedFd<'_>,
    model_btf: Option<&kernel_core::btf::BtfRef>,
    arena_policy: Option<&str>,
) -> Option<OwnedFd> {
    if crate::check::close_warning(m).is_some() {
        cmp.maps.push(MapComparison {
            name: m.def.kname.clone(),
            inner: false,
            model: m.errno,
            kernel: None,
            verdict: Verdict::NotSent("closing it would WARN".into()),
            fields: None,
            slots: Vec::new(),
        });
        return None;
    }
    // A map-in-map's inner template first, as libbpf creates it (retried without BTF
    // when refused with it), then the outer map with its fd.
    let mut inner_fd: Option<OwnedFd> = None;
    if let (Some(idef), Some(irep)) = (&m.def.inner, &m.inner) {
        let iname = idef.kernel_name();
        let req = idef.oracle_request(btf_fd, &iname);
        let kr = oracle::map_create(&req);
        let kerr = kr.as_ref().err().copied();
        cmp.maps.push(MapComparison {
            name: idef.kname.clone(),
            inner: true,
            model: irep.errno,
            kernel: kerr,
            verdict: if kerr == irep.errno.map(|e| e.raw()) {
                Verdict::Same
            } else {
                Verdict::Differs
            },
            fields: None,
            slots: Vec::new(),
        });
        inner_fd = kr.ok().or_else(|| {
            let plain = MapCreate {
                btf_fd: None,
                btf_key_type_id: 0,
                btf_value_type_id: 0,
                ..req
            };
            oracle::map_create(&plain).ok()
        });
    }
    let kname = m.def.kernel_name();
    let kr = oracle::map_create_with_inner(
        &m.def.oracle_request(btf_fd, &kname),
        inner_fd.as_ref().map(|f| f.as_fd()),
    );
    let kerr = kr.as_ref().err().copied();
    let machine = m.def.map_type == kernel_core::map::BPF_MAP_TYPE_ARENA
        && kerr == Some(Errno::EPERM.raw())
        && arena_policy.is_some();
    let verdict = if kerr == m.errno.map(|e| e.raw()) {
        Verdict::Same
    } else if machine {
        Verdict::NotCompared(arena_policy.unwrap_or_default().to_string())
    } else {
        Verdict::Differs
    };
    let fields = match (&kr, m.errno) {
        (Ok(mfd), None) => {
            let target = ProbeTarget {
                prog_btf: model_btf.map(|b| b.data()),
                btf_fd: Some(btf_fd),
                inner: m.def.inner.as_deref().map(|i| InnerMap {
                    map_type: i.map_type,
                    key_size: i.key_size,
                    value_size: i.value_size,
                    map_flags: i.map_flags,
                }),
                ..ProbeTarget::from_def(mfd.as_fd(), &m.def)
            };
            let model_fields = if m.def.inner.is_some() {
                m.inner.as_deref().map_or(&[][..], |i| i.fields.as_slice())
            } else {
                &m.fields
            };
            Some(judge_fields(&target, model_fields))
        }
        _ => None,
    };
    cmp.maps.push(MapComparison {
        name: m.def.kname.clone(),
        inner: false,
        model: m.errno,
        kernel: kerr,
        verdict,
        fields,
        slots: Vec::new(),
    });
    kr.ok()
}
