//! `kptr-model check`: what the kernel does with a BPF object under a profile: the
//! BTF-load verdict, and per map the map-create verdict and the record.

use kernel_core::btf::{BtfRef, KernelBtfs};
use kernel_core::map::{map_create, map_type_name};
use kernel_core::record::{BtfRecord, KptrBtf, KptrDtor, bpf_btf_load};
use kernel_core::{Errno, Semantics};
use serde_json::{Value, json};

use crate::elf::{LoadError, read_bpf_object_named};
use crate::maps::MapDef;

/// One recorded field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldReport {
    /// Byte offset.
    pub offset: u32,
    /// Type name (`kptr_ref`, `spin_lock`, ...).
    pub ty: &'static str,
    /// Pointee type name for kptrs.
    pub pointee: Option<String>,
    /// Program-local pointee (kptrs only).
    pub local: Option<bool>,
    /// Destructor (kptrs only): a kfunc name, `__bpf_obj_drop_impl`, or none.
    pub dtor: Option<String>,
    /// The references the field holds ("btf vmlinux", "btf <prog>", "module m").
    pub holds: Vec<String>,
}

/// One map's verdict.
#[derive(Clone, Debug)]
pub struct MapReport {
    /// The map as libbpf would create it.
    pub def: MapDef,
    /// `BPF_MAP_CREATE`'s errno, `None` on success.
    pub errno: Option<Errno>,
    /// The record's fields (empty without special fields).
    pub fields: Vec<FieldReport>,
    /// Why the record failed, if it did.
    pub record_error: Option<Errno>,
    /// Whether the map type's own checks are modelled.
    pub modelled: bool,
    /// A map-in-map's inner map (`<outer>.inner`), created first.
    pub inner: Option<Box<MapReport>>,
    /// A map-in-map's initial slots as libbpf fills them after creating it
    /// (`init_map_in_map_slots`: a `BPF_MAP_UPDATE_ELEM` each, which the kernel checks
    /// with `bpf_map_fd_get_ptr`): (index, map, errno). libbpf fails the load on the
    /// first refusal.
    pub slots: Vec<(u32, String, Option<Errno>)>,
    /// libbpf's retry without BTF after a refusal with it (`bpf_object__create_map`):
    /// `None` when there was none, else its errno (`Some(None)`: created).
    pub without_btf: Option<Option<Errno>>,
}

/// The whole answer for one object.
#[derive(Clone, Debug)]
pub struct CheckReport {
    /// Profile name.
    pub profile: &'static str,
    /// `BPF_BTF_LOAD`'s errno, `None` on success.
    pub btf_errno: Option<Errno>,
    /// The verifier's message for a refused BTF (last log line), if it logs one.
    pub btf_log: Option<String>,
    /// The kernel function that refused the BTF when it logs nothing (struct metas).
    pub btf_stage: Option<&'static str>,
    /// Maps (empty when BTF load failed: libbpf stops there).
    pub maps: Vec<MapReport>,
}

fn dtor_name(d: &KptrDtor) -> Option<String> {
    match d {
        KptrDtor::None => None,
        KptrDtor::ObjDrop => Some("__bpf_obj_drop_impl".into()),
        KptrDtor::Kfunc { name, .. } => Some(name.clone()),
    }
}

/// The fields of a record as reported.
pub fn fields_of(rec: &BtfRecord, prog_btf: &BtfRef) -> Vec<FieldReport> {
    rec.fields
        .iter()
        .map(|f| {
            let mut holds = Vec::new();
            let (pointee, local, dtor) = match &f.kptr {
                Some(k) => {
                    if let KptrBtf::Held(b) = &k.btf {
                        let name = if BtfRef::ptr_eq(b, prog_btf) {
                            "program".to_string()
                        } else {
                            b.name().to_string()
                        };
                        holds.push(format!("btf {name}"));
                    }
                    if let Some(m) = &k.module {
                        holds.push(format!("module {}", m.name()));
                    }
                    (Some(k.pointee.clone()), Some(k.local), dtor_name(&k.dtor))
                }
                None => (None, None, None),
            };
            FieldReport {
                offset: f.offset,
                ty: f.ty.name(),
                pointee,
                local,
                dtor,
                holds,
            }
        })
        .collect()
}

/// Runs BTF load and every map's creation for `obj` (ELF bytes read from memory, no
/// file name) under `sem`. See [`check_object_named`].
pub fn check_object(
    kernel: &KernelBtfs,
    obj: &[u8],
    sem: &Semantics,
) -> Result<CheckReport, LoadError> {
    check_object_named(kernel, obj, "", sem)
}

/// Runs BTF load and every map's creation for `obj` (ELF bytes) under `sem`, on the
/// BTF and maps libbpf would prepare for an object named `obj_name`
/// ([`crate::libbpf::object_name`] of its path).
pub fn check_object_named(
    kernel: &KernelBtfs,
    obj: &[u8],
    obj_name: &str,
    sem: &Semantics,
) -> Result<CheckReport, LoadError> {
    let o = read_bpf_object_named(obj, obj_name)?;
    let mut rep = CheckReport {
        profile: sem.name,
        btf_errno: None,
        btf_log: None,
        btf_stage: None,
        maps: Vec::new(),
    };
    let btf = match bpf_btf_load(kernel, &o.btf, 1, sem) {
        Ok((b, _)) => b,
        Err(e) => {
            rep.btf_errno = Some(e.errno);
            let line = e.message().to_string();
            // Struct-meta failures log no message of their own: the log ends with the
            // type dump.
            if e.reason.starts_with("btf_") {
                rep.btf_log = None;
                rep.btf_stage = Some(e.reason);
            } else {
                rep.btf_log = Some(line);
            }
            return Ok(rep);
        }
    };
    let mut created: Vec<(String, kernel_core::map::BpfMap)> = Vec::new();
    for def in o.maps.iter().cloned() {
        let (mut r, map) = create_map(kernel, &btf, def, sem);
        if let Some(outer) = &map {
            r.slots = init_map_in_map_slots(outer, &r.def, &created, sem);
        }
        if let Some(m) = map {
            created.push((r.def.libbpf_name().to_string(), m));
        }
        rep.maps.push(r);
    }
    Ok(rep)
}

/// Whether this process has a file open at fd 0 (never a BPF map here).
fn fd0_is_open() -> bool {
    // SAFETY: F_GETFD on a descriptor number only reads the process's fd table.
    unsafe { libc::fcntl(0, libc::F_GETFD) >= 0 }
}

/// libbpf's `init_map_in_map_slots`: each initial slot's map stored into `outer` as
/// the kernel's map-in-map update checks it (`bpf_fd_array_map_update_elem`: an index
/// past `max_entries` is E2BIG; then `bpf_map_fd_get_ptr`).
fn init_map_in_map_slots(
    outer: &kernel_core::map::BpfMap,
    def: &MapDef,
    created: &[(String, kernel_core::map::BpfMap)],
    sem: &Semantics,
) -> Vec<(u32, String, Option<Errno>)> {
    let mut out = Vec::new();
    for (i, slot) in def.init_slots.iter().enumerate() {
        let Some(name) = slot else { continue };
        let target = created.iter().find(|(n, _)| n == name).map(|(_, m)| m);
        let r = if def.map_type == 12 && i as u64 >= u64::from(def.max_entries) {
            Err(Errno::E2BIG)
        } else {
            kernel_core::map::map_in_map::bpf_map_fd_get_ptr(outer, target, sem)
        };
        let failed = r.is_err();
        out.push((i as u32, name.clone(), r.err()));
        if failed {
            break;
        }
    }
    out
}

/// `bpf_object__create_map` on the model: a map-in-map's inner map first (libbpf
/// creates it, passes its fd as `inner_map_fd`, then closes it), each map retried
/// without BTF when the kernel refuses it with BTF, as libbpf retries. The report
/// gives the verdict with BTF (what the object asks for).
fn create_map(
    kernel: &KernelBtfs,
    btf: &BtfRef,
    def: MapDef,
    sem: &Semantics,
) -> (MapReport, Option<kernel_core::map::BpfMap>) {
    let inner = def
        .inner
        .as_deref()
        .map(|i| Box::new(create_map(kernel, btf, i.clone(), sem).0));
    let name = def.kernel_name();
    let inner_def = def.inner.as_deref();
    // The inner map as libbpf ends up creating it (with BTF, or without after a
    // refusal); none when even that fails (libbpf then fails the outer map).
    let inner_map = inner_def.and_then(|i| {
        let iname = i.kernel_name();
        map_create(kernel, &i.attr(btf, &iname), sem)
            .or_else(|_| {
                let mut plain = i.attr(btf, &iname);
                plain.btf_key_type_id = 0;
                plain.btf_value_type_id = 0;
                plain.btf = None;
                map_create(kernel, &plain, sem)
            })
            .ok()
    });
    let mut attr = def.attr(btf, &name);
    attr.inner_map = inner_map.as_ref();
    let res = if inner_def.is_some() && inner_map.is_none() {
        Err(inner
            .as_ref()
            .and_then(|i| i.errno)
            .unwrap_or(Errno::EINVAL))
    } else {
        match map_create(kernel, &attr, sem) {
            // A map of maps without `values`: libbpf passes inner_map_fd 0, so the
            // kernel looks at this process's fd 0: EBADF when it is closed, EINVAL
            // when it is open but not a map (`__bpf_map_get`).
            Err(Errno::EBADF) if inner_def.is_none() && fd0_is_open() => Err(Errno::EINVAL),
            r => r,
        }
    };
    let (errno, fields, record_error, modelled) = match &res {
        Ok(m) => (
            None,
            m.record
                .as_ref()
                .map(|r| fields_of(r, btf))
                .unwrap_or_default(),
            m.record_error,
            m.modelled,
        ),
        Err(e) => (
            Some(*e),
            Vec::new(),
            None,
            kernel_core::map::create::map_type_modelled(def.map_type),
        ),
    };
    // libbpf retries a map refused with BTF without it; that map has no record.
    let mut created = res.ok();
    let mut without_btf = None;
    if errno.is_some() && (def.btf_key_type_id != 0 || def.btf_value_type_id != 0) {
        let mut plain = def.attr(btf, &name);
        plain.inner_map = inner_map.as_ref();
        plain.btf = None;
        plain.btf_key_type_id = 0;
        plain.btf_value_type_id = 0;
        let r = map_create(kernel, &plain, sem);
        without_btf = Some(r.as_ref().err().copied());
        created = r.ok();
    }
    let rep = MapReport {
        def,
        errno,
        fields,
        record_error,
        modelled,
        inner,
        slots: Vec::new(),
        without_btf,
    };
    (rep, created)
}

fn errno_json(e: Option<Errno>) -> Value {
    match e.and_then(|e| e.name()) {
        Some(n) => json!(n),
        None => e.map_or(Value::Null, |e| json!(format!("errno {}", e.raw()))),
    }
}

fn map_json(m: &MapReport) -> Value {
    json!({
        "name": m.def.kname,
        "section": m.def.internal.then_some(&m.def.name),
        "type": map_type_name(m.def.map_type),
        "key_size": m.def.key_size,
        "value_size": m.def.value_size,
        "max_entries": m.def.max_entries,
        "map_flags": m.def.map_flags,
        "map_create": {"ok": m.errno.is_none(), "errno": errno_json(m.errno)},
        "fields": m.fields.iter().map(|f| json!({
            "offset": f.offset, "type": f.ty, "pointee": f.pointee, "local": f.local,
            "dtor": f.dtor, "holds": f.holds,
        })).collect::<Vec<_>>(),
        "record_error": errno_json(m.record_error),
        "modelled": m.modelled,
        "inner": m.inner.as_deref().map(map_json),
        "slots": m.slots.iter().map(|(i, n, e)| json!({
            "index": i, "map": n, "ok": e.is_none(), "errno": errno_json(*e),
        })).collect::<Vec<_>>(),
    })
}

fn map_text(s: &mut String, m: &MapReport, indent: &str, label: &str) {
    let sec = if m.def.internal && m.def.kname != m.def.name {
        format!(" [{}]", m.def.name)
    } else {
        String::new()
    };
    s.push_str(&format!(
        "{indent}{label}map {}{sec} ({}, key {}, value {}, max_entries {}, flags {:#x}): ",
        m.def.kname,
        map_type_name(m.def.map_type),
        m.def.key_size,
        m.def.value_size,
        m.def.max_entries,
        m.def.map_flags
    ));
    match m.errno {
        None => s.push_str("created"),
        Some(e) => s.push_str(&format!("{e}")),
    }
    if !m.modelled {
        s.push_str(" [map type checks not modelled]");
    }
    s.push('\n');
    if let Some(e) = m.record_error {
        s.push_str(&format!(
            "{indent}  record: {e} (map has no special fields)\n"
        ));
    }
    if matches!(m.def.map_type, 12 | 13) && m.def.inner.is_none() {
        s.push_str(&format!(
            "{indent}  no inner map: the definition has no `__array(values, ...)`, so libbpf passes inner_map_fd 0 (EBADF where fd 0 is closed, EINVAL where it is not a map)\n"
        ));
    }
    for f in &m.fields {
        s.push_str(&format!("{indent}  +{:<4} {}", f.offset, f.ty));
        if let Some(p) = &f.pointee {
            let kind = if f.local == Some(true) {
                "local"
            } else {
                "kernel"
            };
            s.push_str(&format!(" -> struct {p} ({kind})"));
        }
        if let Some(d) = &f.dtor {
            s.push_str(&format!(" dtor {d}"));
        }
        if !f.holds.is_empty() {
            s.push_str(&format!(" holds [{}]", f.holds.join(", ")));
        }
        s.push('\n');
    }
    if let Some(i) = &m.inner {
        map_text(s, i, &format!("{indent}  "), "inner ");
    }
    for (i, n, e) in &m.slots {
        match e {
            None => s.push_str(&format!("{indent}  slot [{i}] = map {n}: stored\n")),
            Some(e) => s.push_str(&format!(
                "{indent}  slot [{i}] = map {n}: {e} (the update libbpf makes is refused; libbpf fails the load)\n"
            )),
        }
    }
}

impl CheckReport {
    /// The errno `bpf_object__load` fails with, as libbpf goes: the first map it cannot
    /// create even without BTF, or the first initial slot of a map of maps the kernel
    /// refuses. `None` when libbpf creates every map (BTF load failing is not fatal
    /// to libbpf: it goes on without BTF, which this report does not follow).
    pub fn libbpf_load_errno(&self) -> Option<Errno> {
        self.maps.iter().find_map(|m| {
            let create = match (m.errno, m.without_btf) {
                (None, _) => None,
                (Some(_), Some(again)) => again,
                (Some(e), None) => Some(e),
            };
            create.or_else(|| m.slots.iter().find_map(|s| s.2))
        })
    }

    /// The JSON shape of `kptr-model check --json`.
    pub fn to_json(&self) -> Value {
        json!({
            "profile": self.profile,
            "btf_load": {"ok": self.btf_errno.is_none(), "errno": errno_json(self.btf_errno), "log": self.btf_log},
            "maps": self.maps.iter().map(map_json).collect::<Vec<_>>(),
        })
    }

    /// Human-readable text.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        match self.btf_errno {
            None => s.push_str(&format!("BTF load ({}): ok\n", self.profile)),
            Some(e) => {
                s.push_str(&format!("BTF load ({}): {e}", self.profile));
                if let Some(l) = &self.btf_log {
                    s.push_str(&format!(": {l}"));
                }
                if let Some(st) = self.btf_stage {
                    s.push_str(&format!(" (refused by {st}; the kernel logs no message)"));
                }
                s.push('\n');
            }
        }
        for m in &self.maps {
            map_text(&mut s, m, "", "");
        }
        s
    }
}
