//! Why the model refused: `kernel-core`'s [`kernel_core::why`] reports, collected on
//! the calling thread and put in words with the program BTF's names (struct, member,
//! offset, rule).

use std::cell::RefCell;

use kernel_core::Errno;
use kernel_core::btf::BtfData;
use kernel_core::btf::uapi::BtfKind;
use kernel_core::why::{Why, set_why_hook};

/// One report, owned.
#[derive(Clone, Debug)]
enum Report {
    Rule {
        errno: Errno,
        func: &'static str,
        type_id: u32,
        offset: Option<u32>,
        rule: String,
    },
    Within {
        type_id: u32,
        member: Option<u32>,
        offset: Option<u32>,
    },
}

/// A refusal's chain: the rule first, then the types it happened in, innermost first.
#[derive(Clone, Debug, Default)]
pub struct Chain(Vec<Report>);

#[derive(Default)]
struct Collector {
    current: Chain,
    kept: Option<Chain>,
}

kernel_core::sync::task::task_local! {
    static COLLECTOR: RefCell<Option<Collector>> = const { RefCell::new(None) };
}

fn hook(w: &Why<'_>) {
    COLLECTOR.with(|c| {
        let mut c = c.borrow_mut();
        let Some(c) = c.as_mut() else { return };
        match *w {
            Why::Rule {
                errno,
                func,
                type_id,
                offset,
                rule,
            } => {
                c.current = Chain(vec![Report::Rule {
                    errno,
                    func,
                    type_id,
                    offset,
                    rule: rule.to_string(),
                }]);
            }
            Why::Within {
                type_id,
                member,
                offset,
            } => c.current.0.push(Report::Within {
                type_id,
                member,
                offset,
            }),
            Why::RecordKept => c.kept = Some(std::mem::take(&mut c.current)),
        }
    });
}

/// What one call reported: the last refusal, and the record error `map_check_btf`
/// kept (the map was created without special fields).
#[derive(Clone, Debug, Default)]
pub struct Collected {
    /// The refusal that failed the call, if it failed.
    pub last: Option<Chain>,
    /// The record error's refusal.
    pub record: Option<Chain>,
}

/// Runs `f` with this thread's refusals collected.
pub fn collect<R>(f: impl FnOnce() -> R) -> (R, Collected) {
    set_why_hook(Some(hook));
    let outer = COLLECTOR.with(|c| c.borrow_mut().replace(Collector::default()));
    let r = f();
    let mine = COLLECTOR.with(|c| std::mem::replace(&mut *c.borrow_mut(), outer));
    let col = mine.map_or_else(Collected::default, |m| Collected {
        last: (!m.current.0.is_empty()).then_some(m.current),
        record: m.kept.filter(|k| !k.0.is_empty()),
    });
    (r, col)
}

/// One place of a culprit: a type, and the member at an offset in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Place {
    /// `struct map_value`, `DATASEC .bss`, ...
    pub ty: String,
    /// The member (a path such as `inner.task` or `slots[2]`), when known.
    pub member: Option<String>,
    /// The byte offset in `ty`, when known.
    pub offset: Option<u32>,
}

/// A refusal in words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Culprit {
    /// The errno.
    pub errno: Errno,
    /// The kernel function whose check refused.
    pub func: &'static str,
    /// The rule, with the names involved.
    pub rule: String,
    /// Where, outermost first.
    pub at: Vec<Place>,
}

impl std::fmt::Display for Culprit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, p) in self.at.iter().enumerate() {
            if i > 0 {
                f.write_str(" > ")?;
            }
            f.write_str(&p.ty)?;
            match (&p.member, p.offset) {
                (Some(m), Some(o)) => write!(f, ", member {m} (+{o})")?,
                (Some(m), None) => write!(f, ", member {m}")?,
                (None, Some(o)) => write!(f, " (+{o})")?,
                (None, None) => {}
            }
        }
        if !self.at.is_empty() {
            f.write_str(": ")?;
        }
        write!(f, "{} [{}]", self.rule, self.func)
    }
}

/// `struct name`, `union name`, `DATASEC name`, ...
fn type_label(d: &BtfData, id: u32) -> String {
    let Some(t) = d.type_by_id(id) else {
        return format!("type [{id}]");
    };
    let name = d.name_by_offset(t.name_off());
    match t.kind() {
        BtfKind::Struct => format!("struct {name}"),
        BtfKind::Union => format!("union {name}"),
        BtfKind::Datasec => format!("DATASEC {name}"),
        k => format!("{} {name}", k.as_str()),
    }
}

/// The member path at byte `off` of type `id` (through nested structs and arrays).
pub fn member_path(d: &BtfData, id: u32, off: u32) -> Option<String> {
    let (t, _, _) = d.type_id_size(id)?;
    match t.kind() {
        // The kernel's special structs (`bpf_list_head`, ...) are leaves.
        BtfKind::Struct if d.name_by_offset(t.name_off()).starts_with("bpf_") => None,
        BtfKind::Struct | BtfKind::Union => {
            for m in t.members() {
                let start = t.member_bit_offset(&m) / 8;
                let size = d.type_id_size(m.type_id).map_or(0, |x| x.2);
                if off >= start && off < start.saturating_add(size.max(1)) {
                    let name = d.name_by_offset(m.name_off);
                    return Some(match member_path(d, m.type_id, off - start) {
                        Some(rest) if rest.starts_with('[') => format!("{name}{rest}"),
                        Some(rest) => format!("{name}.{rest}"),
                        None => name.to_string(),
                    });
                }
            }
            None
        }
        BtfKind::Array => {
            let (elem, _, n) = t.array();
            let es = d.type_id_size(elem).map_or(0, |x| x.2);
            if es == 0 || off / es >= n {
                return None;
            }
            let i = off / es;
            Some(match member_path(d, elem, off - i * es) {
                Some(rest) if rest.starts_with('[') => format!("[{i}]{rest}"),
                Some(rest) => format!("[{i}].{rest}"),
                None => format!("[{i}]"),
            })
        }
        BtfKind::Datasec => (0..t.vlen()).find_map(|i| {
            let v = t.var_secinfo(i);
            if off < v.offset || off >= v.offset.saturating_add(v.size.max(1)) {
                return None;
            }
            let var = d.type_by_id(v.type_id)?;
            let name = d.name_by_offset(var.name_off());
            Some(match member_path(d, var.type_id(), off - v.offset) {
                Some(rest) if rest.starts_with('[') => format!("{name}{rest}"),
                Some(rest) => format!("{name}.{rest}"),
                None => name.to_string(),
            })
        }),
        _ => None,
    }
}

/// The name of member `i` of type `id` (a struct member or a DATASEC variable).
fn member_name(d: &BtfData, id: u32, i: u32) -> Option<String> {
    let t = d.type_by_id(id)?;
    let i = u16::try_from(i).ok()?;
    if i >= t.vlen() {
        return None;
    }
    match t.kind() {
        BtfKind::Struct | BtfKind::Union => Some(d.name_by_offset(t.member(i).name_off).into()),
        BtfKind::Datasec => {
            let v = d.type_by_id(t.var_secinfo(i).type_id)?;
            Some(d.name_by_offset(v.name_off()).into())
        }
        _ => None,
    }
}

impl Chain {
    /// The chain in words, names from `d` (the program BTF).
    pub fn culprit(&self, d: &BtfData) -> Option<Culprit> {
        let Some(Report::Rule {
            errno,
            func,
            type_id,
            offset,
            rule,
        }) = self.0.first()
        else {
            return None;
        };
        let mut at: Vec<Place> = self.0[1..]
            .iter()
            .filter_map(|r| match *r {
                Report::Within {
                    type_id,
                    member,
                    offset,
                } => Some(Place {
                    ty: type_label(d, type_id),
                    member: member
                        .and_then(|m| member_name(d, type_id, m))
                        .or_else(|| offset.and_then(|o| member_path(d, type_id, o))),
                    offset,
                }),
                Report::Rule { .. } => None,
            })
            .collect();
        // A rule with a place of its own (a value type and an offset) and no frame
        // around it names that place.
        if at.is_empty() && *type_id != 0 {
            at.push(Place {
                ty: type_label(d, *type_id),
                member: offset.and_then(|o| member_path(d, *type_id, o)),
                offset: *offset,
            });
        }
        at.reverse();
        // Frames of one type (a struct meta around its own field) say one place: keep
        // the one that names the member.
        at.dedup_by(|later, kept| {
            if later.ty != kept.ty {
                return false;
            }
            if kept.member.is_none() && kept.offset.is_none() {
                *kept = later.clone();
            }
            true
        });
        Some(Culprit {
            errno: *errno,
            func,
            rule: rule.clone(),
            at,
        })
    }
}
