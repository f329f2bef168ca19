//! `kptr-model check`: what the kernel does with a BPF object under a profile: the
//! BTF-load verdict, and per map the map-create verdict and the record.

use kernel_core::btf::{BtfRef, KernelBtfs};
use kernel_core::map::map_type_name;
use kernel_core::record::{BtfRecord, KptrBtf, KptrDtor};
use kernel_core::syscall::bpf_btf_load;
use kernel_core::syscall::map_create;
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
    /// The references the field holds (`btf vmlinux`, `btf <prog>`, `module m`).
    pub holds: Vec<String>,
    /// A graph root's contained struct and its node's offset in it.
    pub contains: Option<(String, u32)>,
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
    /// Why map creation failed (the rule and the culprit), when it did.
    pub why: Option<crate::why::Culprit>,
    /// Why the record failed, when it did.
    pub record_why: Option<crate::why::Culprit>,
    /// The kernel WARNs creating the map raised.
    pub warnings: Vec<&'static str>,
    /// Closing the map WARNs: its record's graph root is guarded only by a
    /// `bpf_res_spin_lock` ([`kernel_core::obj::graph_root_free_warns`]).
    pub close_warns: bool,
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
    pub btf_stage: Option<kernel_core::btf::BtfStage>,
    /// Maps (empty when BTF load failed: libbpf stops there).
    pub maps: Vec<MapReport>,
    /// Why BTF load failed (the rule and the culprit), when the model knows.
    pub btf_why: Option<crate::why::Culprit>,
    /// The kernel WARNs BTF load raised.
    pub btf_warnings: Vec<&'static str>,
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
            let contains = f.graph_root.as_ref().map(|g| {
                let d = prog_btf.data();
                let name = d
                    .type_by_id(g.value_btf_id)
                    .map_or("?", |t| d.name_by_offset(t.name_off()));
                (name.to_string(), g.node_offset)
            });
            FieldReport {
                contains,
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
        btf_why: None,
        btf_warnings: Vec::new(),
    };
    let ((loaded, why), warns) =
        crate::warns::during(|| crate::why::collect(|| bpf_btf_load(kernel, &o.btf, 1, sem)));
    rep.btf_warnings = warns;
    let btf = match loaded {
        Ok((b, _)) => b,
        Err(e) => {
            rep.btf_why = why.last.and_then(|c| {
                let opts = kernel_core::btf::ParseOpts {
                    log_level: 0,
                    resolve: true,
                    sem: *sem,
                };
                let (d, _) =
                    kernel_core::btf::btf_verify(o.btf.clone().into(), None, &opts).ok()?;
                c.culprit(&d)
            });
            rep.btf_errno = Some(e.errno);
            let line = e.message().to_string();
            // Struct-meta failures log no message of their own: the log ends with the
            // type dump.
            if !e.stage.is_verifier() {
                rep.btf_log = None;
                rep.btf_stage = Some(e.stage);
            } else {
                rep.btf_log = Some(line);
            }
            return Ok(rep);
        }
    };
    let mut created: Vec<(String, kernel_core::map::BpfMap)> = Vec::new();
    for def in o.maps.iter().cloned() {
        let ((mut r, map), warns) = crate::warns::during(|| create_map(kernel, &btf, def, sem));
        r.warnings = warns;
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
    let mut why = crate::why::Collected::default();
    let res = if inner_def.is_some() && inner_map.is_none() {
        Err(inner
            .as_ref()
            .and_then(|i| i.errno)
            .unwrap_or(Errno::EINVAL))
    } else {
        let (r, w) = crate::why::collect(|| map_create(kernel, &attr, sem));
        why = w;
        match r {
            // A map of maps without `values`: libbpf passes inner_map_fd 0, so the
            // kernel looks at this process's fd 0: EBADF when it is closed, EINVAL
            // when it is open but not a map (`__bpf_map_get`).
            Err(Errno::EBADF) if inner_def.is_none() && fd0_is_open() => Err(Errno::EINVAL),
            r => r,
        }
    };
    let d = btf.data();
    let map_why = if res.is_err() {
        why.last.as_ref().and_then(|c| c.culprit(d))
    } else {
        None
    };
    let record_why = why.record.as_ref().and_then(|c| c.culprit(d));
    let (errno, fields, record_error, modelled, close_warns) = match &res {
        Ok(m) => (
            None,
            m.record
                .as_ref()
                .map(|r| fields_of(r, btf))
                .unwrap_or_default(),
            m.record_error,
            m.modelled,
            m.record
                .as_ref()
                .is_some_and(kernel_core::obj::graph_root_free_warns),
        ),
        Err(e) => (
            Some(*e),
            Vec::new(),
            None,
            kernel_core::map::create::map_type_modelled(def.map_type),
            false,
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
        why: map_why,
        record_why: if record_error.is_some() {
            record_why
        } else {
            None
        },
        warnings: Vec::new(),
        close_warns,
    };
    (rep, created)
}

/// An errno as JSON: its name, `"errno N"` for one the model does not name, or null.
pub fn errno_json(e: Option<Errno>) -> Value {
    match e.and_then(|e| e.name()) {
        Some(n) => json!(n),
        None => e.map_or(Value::Null, |e| json!(format!("errno {}", e.raw()))),
    }
}

/// A culprit as JSON (null when none).
pub fn why_json(w: Option<&crate::why::Culprit>) -> Value {
    match w {
        None => Value::Null,
        Some(c) => json!({
            "errno": errno_json(Some(c.errno)),
            "func": c.func,
            "rule": c.rule,
            "at": c.at.iter().map(|p| json!({
                "type": p.ty, "member": p.member, "offset": p.offset,
            })).collect::<Vec<_>>(),
            "text": c.to_string(),
        }),
    }
}

/// The names of the `BPF_F_*` flags set in `flags` (unknown bits as hex).
pub fn map_flag_names(flags: u32) -> Vec<String> {
    const NAMES: [(u32, &str); 17] = [
        (1 << 0, "BPF_F_NO_PREALLOC"),
        (1 << 1, "BPF_F_NO_COMMON_LRU"),
        (1 << 2, "BPF_F_NUMA_NODE"),
        (1 << 3, "BPF_F_RDONLY"),
        (1 << 4, "BPF_F_WRONLY"),
        (1 << 5, "BPF_F_STACK_BUILD_ID"),
        (1 << 6, "BPF_F_ZERO_SEED"),
        (1 << 7, "BPF_F_RDONLY_PROG"),
        (1 << 8, "BPF_F_WRONLY_PROG"),
        (1 << 9, "BPF_F_CLONE"),
        (1 << 10, "BPF_F_MMAPABLE"),
        (1 << 11, "BPF_F_PRESERVE_ELEMS"),
        (1 << 12, "BPF_F_INNER_MAP"),
        (1 << 13, "BPF_F_LINK"),
        (1 << 14, "BPF_F_PATH_FD"),
        (1 << 15, "BPF_F_VTYPE_BTF_OBJ_FD"),
        (1 << 16, "BPF_F_TOKEN_FD"),
    ];
    let mut v: Vec<String> = NAMES
        .iter()
        .filter(|(b, _)| flags & b != 0)
        .map(|(_, n)| n.to_string())
        .collect();
    let known = NAMES.iter().fold(0, |a, (b, _)| a | b);
    if flags & !known != 0 {
        v.push(format!("{:#x}", flags & !known));
    }
    v
}

/// A field as JSON.
pub fn field_json(f: &FieldReport) -> Value {
    json!({
        "offset": f.offset, "type": f.ty, "pointee": f.pointee, "local": f.local,
        "dtor": f.dtor, "holds": f.holds,
        "contains": f.contains.as_ref().map(|(s, o)| json!({"struct": s, "node_offset": o})),
    })
}

/// A field in words: `+0    kptr_ref -> struct node_data (local) dtor ... holds [...]`.
pub fn field_text(f: &FieldReport) -> String {
    let mut s = format!("+{:<4} {}", f.offset, f.ty);
    if let Some(p) = &f.pointee {
        let kind = if f.local == Some(true) {
            "local"
        } else {
            "kernel"
        };
        s.push_str(&format!(" -> struct {p} ({kind})"));
    }
    if let Some((c, o)) = &f.contains {
        s.push_str(&format!(" contains struct {c} (node at +{o})"));
    }
    if let Some(d) = &f.dtor {
        s.push_str(&format!(" dtor {d}"));
    }
    if !f.holds.is_empty() {
        s.push_str(&format!(" holds [{}]", f.holds.join(", ")));
    }
    s
}

/// The WARN closing a map (or its inner template) raises when a graph root is guarded
/// only by a `bpf_res_spin_lock` ([`MapReport::close_warns`]).
pub fn close_warning(m: &MapReport) -> Option<&'static str> {
    (m.close_warns || m.inner.as_deref().is_some_and(|i| i.close_warns))
        .then_some("closing the map WARNs: a graph root guarded only by a bpf_res_spin_lock")
}

/// A map's header in words: `map NAME [SECTION] (TYPE, key K, value V, ...)`.
pub fn map_header(m: &MapReport) -> String {
    let sec = if m.def.internal && m.def.kname != m.def.name {
        format!(" [{}]", m.def.name)
    } else {
        String::new()
    };
    let flags = map_flag_names(m.def.map_flags);
    format!(
        "map {}{sec} ({}, key {}, value {}, max_entries {}, flags {:#x}{})",
        m.def.kname,
        map_type_name(m.def.map_type),
        m.def.key_size,
        m.def.value_size,
        m.def.max_entries,
        m.def.map_flags,
        if flags.is_empty() {
            String::new()
        } else {
            format!(" {}", flags.join("|"))
        }
    )
}

/// The map-create verdict in words: `created`, or the errno and why.
pub fn map_verdict_text(m: &MapReport) -> String {
    let mut s = match m.errno {
        None => "created".to_string(),
        Some(e) => format!("{e}"),
    };
    if let Some(w) = &m.why {
        s.push_str(&format!(": {w}"));
    }
    if !m.modelled {
        s.push_str(" [map type checks not modelled]");
    }
    s
}

/// The record error in words, when there is one.
pub fn record_text(m: &MapReport) -> Option<String> {
    m.record_error.map(|e| {
        let mut s = format!("record: {e} (map has no special fields)");
        if let Some(w) = &m.record_why {
            s.push_str(&format!(": {w}"));
        }
        s
    })
}

/// A map as JSON (the shape of `check --json`'s `maps`).
pub fn map_json(m: &MapReport) -> Value {
    let mut warnings: Vec<&str> = m.warnings.clone();
    warnings.extend(close_warning(m));
    json!({
        "name": m.def.kname,
        "section": m.def.internal.then_some(&m.def.name),
        "type": map_type_name(m.def.map_type),
        "key_size": m.def.key_size,
        "value_size": m.def.value_size,
        "max_entries": m.def.max_entries,
        "map_flags": m.def.map_flags,
        "flags": map_flag_names(m.def.map_flags),
        "map_create": {"ok": m.errno.is_none(), "errno": errno_json(m.errno), "why": why_json(m.why.as_ref())},
        "fields": m.fields.iter().map(field_json).collect::<Vec<_>>(),
        "record_error": errno_json(m.record_error),
        "record_why": why_json(m.record_why.as_ref()),
        "modelled": m.modelled,
        "warnings": warnings,
        "inner": m.inner.as_deref().map(map_json),
        "slots": m.slots.iter().map(|(i, n, e)| json!({
            "index": i, "map": n, "ok": e.is_none(), "errno": errno_json(*e),
        })).collect::<Vec<_>>(),
    })
}

fn map_text(s: &mut String, m: &MapReport, indent: &str, label: &str) {
    s.push_str(&format!(
        "{indent}{label}{}: {}\n",
        map_header(m),
        map_verdict_text(m)
    ));
    if let Some(r) = record_text(m) {
        s.push_str(&format!("{indent}  {r}\n"));
    }
    if matches!(m.def.map_type, 12 | 13) && m.def.inner.is_none() {
        s.push_str(&format!(
            "{indent}  no inner map: the definition has no `__array(values, ...)`, so libbpf passes inner_map_fd 0 (EBADF where fd 0 is closed, EINVAL where it is not a map)\n"
        ));
    }
    for f in &m.fields {
        s.push_str(&format!("{indent}  {}\n", field_text(f)));
    }
    for w in m.warnings.iter().copied().chain(close_warning(m)) {
        s.push_str(&format!("{indent}  kernel WARN: {w}\n"));
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

impl MapReport {
    /// True when the kernel refuses something of this map: its creation, its record
    /// (the map is created without its special fields), a preset slot, its inner map.
    pub fn refused(&self) -> bool {
        self.errno.is_some()
            || self.record_error.is_some()
            || self.slots.iter().any(|s| s.2.is_some())
            || self.inner.as_deref().is_some_and(MapReport::refused)
    }

    /// Every kernel WARN of this map (and its inner map): at creation, and at close.
    pub fn all_warnings(&self) -> Vec<&'static str> {
        let mut v = self.warnings.clone();
        v.extend(close_warning(self));
        if let Some(i) = &self.inner {
            v.extend(i.all_warnings());
        }
        v
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

    /// Every kernel WARN the object raises: BTF load, map creation, map close.
    pub fn warnings(&self) -> Vec<&'static str> {
        let mut v = self.btf_warnings.clone();
        for m in &self.maps {
            v.extend(m.all_warnings());
        }
        v
    }

    /// True when the kernel accepts everything: BTF load, every map, every record
    /// and slot, and nothing WARNs.
    pub fn accepted(&self) -> bool {
        self.btf_errno.is_none()
            && !self.maps.iter().any(MapReport::refused)
            && self.warnings().is_empty()
    }

    /// The BTF-load verdict in words: `ok`, or the errno, the log's message and why.
    pub fn btf_text(&self) -> String {
        let mut s = match self.btf_errno {
            None => "ok".to_string(),
            Some(e) => format!("{e}"),
        };
        if let Some(l) = &self.btf_log {
            s.push_str(&format!(": {l}"));
        }
        if let Some(st) = self.btf_stage {
            s.push_str(&format!(
                " (refused by {}; the kernel logs no message)",
                st.name()
            ));
        }
        if let Some(w) = &self.btf_why {
            s.push_str(&format!(": {w}"));
        }
        s
    }

    /// The JSON shape of `kptr-model check --json`.
    pub fn to_json(&self) -> Value {
        json!({
            "profile": self.profile,
            "btf_load": {
                "ok": self.btf_errno.is_none(), "errno": errno_json(self.btf_errno),
                "log": self.btf_log, "stage": self.btf_stage.map(|s| s.name()),
                "why": why_json(self.btf_why.as_ref()), "warnings": self.btf_warnings,
            },
            "maps": self.maps.iter().map(map_json).collect::<Vec<_>>(),
            "warnings": self.warnings(),
            "accepted": self.accepted(),
        })
    }

    /// Human-readable text.
    pub fn to_text(&self) -> String {
        let mut s = format!("BTF load ({}): {}\n", self.profile, self.btf_text());
        for w in &self.btf_warnings {
            s.push_str(&format!("  kernel WARN: {w}\n"));
        }
        for m in &self.maps {
            map_text(&mut s, m, "", "");
        }
        s
    }
}
