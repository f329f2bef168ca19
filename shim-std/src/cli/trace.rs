//! `kptr-model trace`: the stash-and-close scenario's events, objects named in the
//! order they appear (`obj#1` from the BPF allocator, `kobj#1` a kernel object,
//! `btf#program`, `btf#vmlinux`), so two runs print the same bytes.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;
use std::thread::ThreadId;

use kernel_core::Semantics;
use kernel_core::trace::Event;
use serde_json::{Value, json};

use super::{LoadError, Output, error, object_bytes};

/// Kernel objects' addresses start here (`BpfRuntime::kernel_obj_new`).
const KOBJ_BASE: u64 = 0xffff_8880_0000_0000;

/// One trace line: its kind, its text, its JSON.
#[derive(Clone, Debug)]
pub struct TraceLine {
    /// `alloc`, `free`, `refcount`, `dtor`, `obj_drop`, `xchg`, `btf`, `map`, `migrate`.
    pub kind: &'static str,
    /// The line.
    pub text: String,
    /// The event as JSON.
    pub json: Value,
}

struct State {
    thread: Option<ThreadId>,
    names: BTreeMap<u64, String>,
    objs: usize,
    kobjs: usize,
    lines: Vec<TraceLine>,
}

static STATE: Mutex<State> = Mutex::new(State {
    thread: None,
    names: BTreeMap::new(),
    objs: 0,
    kobjs: 0,
    lines: Vec::new(),
});

/// Serialises traces: the model's trace hook is one per process.
static RUN: Mutex<()> = Mutex::new(());

impl State {
    fn name(&mut self, addr: u64) -> String {
        if addr == 0 {
            return "NULL".into();
        }
        if let Some(n) = self.names.get(&addr) {
            return n.clone();
        }
        let n = if addr >= KOBJ_BASE {
            self.kobjs += 1;
            format!("kobj#{}", self.kobjs)
        } else {
            self.objs += 1;
            format!("obj#{}", self.objs)
        };
        self.names.insert(addr, n.clone());
        n
    }
}

fn btf_name(name: &str) -> String {
    if name.is_empty() {
        "btf#program".into()
    } else {
        format!("btf#{name}")
    }
}

fn hook(ev: &Event<'_>) {
    let Ok(mut st) = STATE.lock() else { return };
    if st.thread != Some(std::thread::current().id()) {
        return;
    }
    let line = match *ev {
        Event::Alloc { addr, ty, size } => {
            let n = st.name(addr);
            TraceLine {
                kind: "alloc",
                text: format!("alloc    {n} {ty} ({size} bytes)"),
                json: json!({"event": "alloc", "obj": n, "type": ty, "size": size}),
            }
        }
        Event::Free { addr, ty, rcu } => {
            let n = st.name(addr);
            let after = if rcu {
                " (after an RCU grace period)"
            } else {
                ""
            };
            TraceLine {
                kind: "free",
                text: format!("free     {n} {ty}{after}"),
                json: json!({"event": "free", "obj": n, "type": ty, "rcu": rcu}),
            }
        }
        Event::Ref { what, addr, now } => {
            let n = st.name(addr);
            TraceLine {
                kind: "refcount",
                text: format!("refcount {n} ({what}) -> {now}"),
                json: json!({"event": "refcount", "obj": n, "what": what, "now": now}),
            }
        }
        Event::Dtor { name, addr } => {
            let n = st.name(addr);
            TraceLine {
                kind: "dtor",
                text: format!("dtor     {name}({n})"),
                json: json!({"event": "dtor", "dtor": name, "obj": n}),
            }
        }
        Event::ObjDrop { addr } => {
            let n = st.name(addr);
            TraceLine {
                kind: "obj_drop",
                text: format!("obj_drop __bpf_obj_drop_impl({n})"),
                json: json!({"event": "obj_drop", "obj": n}),
            }
        }
        Event::Xchg { off, old, new } => {
            let (o, n) = (st.name(old), st.name(new));
            TraceLine {
                kind: "xchg",
                text: format!("xchg     value+{off}: {o} -> {n}"),
                json: json!({"event": "xchg", "offset": off, "old": o, "new": n}),
            }
        }
        Event::Btf { name, now, .. } => {
            let n = btf_name(name);
            TraceLine {
                kind: "btf",
                text: format!("btf      {n} refcount -> {now}"),
                json: json!({"event": "btf", "btf": n, "now": now}),
            }
        }
        Event::Map { what } => TraceLine {
            kind: "map",
            text: format!("map      {what}"),
            json: json!({"event": "map", "what": what}),
        },
        Event::Migrate { disable, site } => {
            let f = if disable {
                "migrate_disable"
            } else {
                "migrate_enable"
            };
            let at = if site.is_empty() {
                String::new()
            } else {
                format!(" in {site}")
            };
            TraceLine {
                kind: "migrate",
                text: format!("migrate  {f}{at}"),
                json: json!({"event": "migrate", "call": f, "site": site}),
            }
        }
    };
    st.lines.push(line);
}

/// The scenario's events and outcome.
#[derive(Debug, Clone)]
pub struct Trace {
    /// The object's name.
    pub object: String,
    /// The lines, in order.
    pub lines: Vec<TraceLine>,
    /// The outcome.
    pub outcome: crate::scenario::Outcome,
}

/// Runs the scenario with the trace hook installed (one trace at a time per process).
pub fn trace(obj: Option<&Path>, map: Option<&str>, sem: Semantics) -> Result<Trace, LoadError> {
    let (name, _, bytes) = object_bytes(obj, &sem)?;
    let (kernel, _) = crate::kernel_btf::load_kernel_btfs(None, false, sem)?;
    let _one = RUN
        .lock()
        .map_err(|_| error(kernel_core::Errno::EBUSY, "trace lock"))?;
    if let Ok(mut st) = STATE.lock() {
        st.thread = Some(std::thread::current().id());
        st.names.clear();
        st.objs = 0;
        st.kobjs = 0;
        st.lines.clear();
    }
    kernel_core::trace::set_trace_hook(Some(hook));
    let res = crate::scenario::stash_and_close(kernel, &bytes, sem, map);
    kernel_core::trace::set_trace_hook(None);
    let lines = STATE
        .lock()
        .map(|mut g| {
            g.thread = None;
            std::mem::take(&mut g.lines)
        })
        .unwrap_or_default();
    Ok(Trace {
        object: name,
        lines,
        outcome: res?,
    })
}

impl Trace {
    /// Lines of `kind`.
    pub fn count(&self, kind: &str) -> usize {
        self.lines.iter().filter(|l| l.kind == kind).count()
    }

    /// True when the teardown is clean: nothing refused, leaked, freed twice or used
    /// after free, no WARN.
    pub fn clean(&self) -> bool {
        let o = &self.outcome;
        o.refused.is_none()
            && o.leaks == 0
            && o.double_frees == 0
            && o.use_after_free == 0
            && o.warnings.is_empty()
    }

    /// The summary line of counts (each matches the lines above it).
    pub fn counts_line(&self) -> String {
        let o = &self.outcome;
        format!(
            "objects: {} allocated, {} freed; leaks: {}, double frees: {}, use after free: {}",
            o.allocs, o.frees, o.leaks, o.double_frees, o.use_after_free
        )
    }
}

/// `kptr-model trace`.
pub fn cmd_trace(
    obj: Option<&Path>,
    map: Option<&str>,
    dot: Option<&Path>,
    sem: Semantics,
) -> Result<Output, LoadError> {
    let t = trace(obj, map, sem)?;
    let o = &t.outcome;
    if let Some(p) = dot {
        std::fs::write(p, &o.dot).map_err(|e| {
            error(
                kernel_core::Errno::EIO,
                format!("--dot {}: {e}", p.display()),
            )
        })?;
    }
    let mut text = format!("trace of {} (map {}) under {}\n", t.object, o.map, sem.name);
    for l in &t.lines {
        text.push_str(&format!("  {}\n", l.text));
    }
    if let Some(r) = &o.refused {
        text.push_str(&format!("refused: {r}\n"));
    }
    for w in &o.warnings {
        text.push_str(&format!("kernel WARN: {w}\n"));
    }
    // The allocator's counts are the alloc and free lines' counts.
    let (alloc_lines, free_lines) = (t.count("alloc"), t.count("free"));
    if (alloc_lines, free_lines) != (o.allocs, o.frees) {
        text.push_str(&format!(
            "note: {alloc_lines} alloc and {free_lines} free lines, but the allocator counts {} and {}\n",
            o.allocs, o.frees
        ));
    }
    text.push_str(&format!(
        "btf#program refcount: {} before the map, {} after its close (the loader's own reference, put last)\n",
        o.prog_btf_refs.0, o.prog_btf_refs.1
    ));
    text.push_str(&t.counts_line());
    text.push('\n');
    Ok(Output {
        json: json!({
            "object": t.object,
            "map": o.map,
            "profile": sem.name,
            "events": t.lines.iter().map(|l| l.json.clone()).collect::<Vec<_>>(),
            "refused": o.refused,
            "warnings": o.warnings,
            "summary": {
                "allocated": o.allocs, "freed": o.frees, "leaks": o.leaks,
                "double_frees": o.double_frees, "use_after_free": o.use_after_free,
                "prog_btf_refcount": {"before": o.prog_btf_refs.0, "after": o.prog_btf_refs.1},
                "alloc_lines": alloc_lines, "free_lines": free_lines,
            },
            "clean": t.clean(),
        }),
        status: u8::from(!t.clean()),
        text,
    })
}
