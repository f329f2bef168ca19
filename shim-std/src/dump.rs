//! Types as JSON, in the shape `bpftool -j btf dump file` prints, so a test (or a
//! user) can compare the model's reading of a blob with bpftool's type for type.

use kernel_core::btf::uapi::*;
use kernel_core::btf::{BtfData, TypeRef};
use serde_json::{Value, json};

fn int_encoding(d: u32) -> &'static str {
    match btf_int_encoding(d) {
        0 => "(none)",
        BTF_INT_SIGNED => "SIGNED",
        BTF_INT_CHAR => "CHAR",
        BTF_INT_BOOL => "BOOL",
        _ => "UNKN",
    }
}

/// One type as bpftool's JSON object.
pub fn type_json(d: &BtfData, t: &TypeRef<'_>) -> Value {
    let name = d.name_by_offset(t.name_off());
    let mut v = json!({"id": t.id(), "kind": t.kind().as_str(), "name": name});
    let Some(o) = v.as_object_mut() else {
        return v;
    };
    match t.kind() {
        BtfKind::Int => {
            let x = t.int_data();
            o.insert("size".into(), json!(t.size()));
            o.insert("bits_offset".into(), json!(btf_int_offset(x)));
            o.insert("nr_bits".into(), json!(btf_int_bits(x)));
            o.insert("encoding".into(), json!(int_encoding(x)));
        }
        BtfKind::Ptr
        | BtfKind::Typedef
        | BtfKind::Volatile
        | BtfKind::Const
        | BtfKind::Restrict
        | BtfKind::TypeTag => {
            o.insert("type_id".into(), json!(t.type_id()));
        }
        BtfKind::Array => {
            let (ty, idx, n) = t.array();
            o.insert("type_id".into(), json!(ty));
            o.insert("index_type_id".into(), json!(idx));
            o.insert("nr_elems".into(), json!(n));
        }
        BtfKind::Struct | BtfKind::Union => {
            o.insert("size".into(), json!(t.size()));
            o.insert("vlen".into(), json!(t.vlen()));
            let ms: Vec<Value> = t
                .members()
                .map(|m| {
                    let mut mv = json!({
                        "name": d.name_by_offset(m.name_off),
                        "type_id": m.type_id,
                        "bits_offset": t.member_bit_offset(&m),
                    });
                    let bf = t.member_bitfield_size(&m);
                    if bf != 0
                        && let Some(mo) = mv.as_object_mut()
                    {
                        mo.insert("bitfield_size".into(), json!(bf));
                    }
                    mv
                })
                .collect();
            o.insert("members".into(), Value::Array(ms));
        }
        BtfKind::Enum | BtfKind::Enum64 => {
            let signed = t.kflag();
            o.insert(
                "encoding".into(),
                json!(if signed { "SIGNED" } else { "UNSIGNED" }),
            );
            o.insert("size".into(), json!(t.size()));
            o.insert("vlen".into(), json!(t.vlen()));
            let vals: Vec<Value> = (0..t.vlen())
                .map(|i| {
                    let (no, val) = if t.kind() == BtfKind::Enum {
                        let (no, v) = t.enum_val(i);
                        (no, if signed { json!(v) } else { json!(v as u32) })
                    } else {
                        let (no, v) = t.enum64_val(i);
                        (no, if signed { json!(v as i64) } else { json!(v) })
                    };
                    json!({"name": d.name_by_offset(no), "val": val})
                })
                .collect();
            o.insert("values".into(), Value::Array(vals));
        }
        BtfKind::Fwd => {
            o.insert(
                "fwd_kind".into(),
                json!(if t.kflag() { "union" } else { "struct" }),
            );
        }
        BtfKind::FuncProto => {
            o.insert("ret_type_id".into(), json!(t.type_id()));
            o.insert("vlen".into(), json!(t.vlen()));
            let ps: Vec<Value> = (0..t.vlen())
                .map(|i| {
                    let (no, ty) = t.param(i);
                    json!({"name": d.name_by_offset(no), "type_id": ty})
                })
                .collect();
            o.insert("params".into(), Value::Array(ps));
        }
        BtfKind::Func => {
            o.insert("type_id".into(), json!(t.type_id()));
            let l = match t.vlen() {
                0 => "static",
                1 => "global",
                2 => "extern",
                _ => "(unknown)",
            };
            o.insert("linkage".into(), json!(l));
        }
        BtfKind::Var => {
            o.insert("type_id".into(), json!(t.type_id()));
            let l = match t.var_linkage() {
                0 => "static",
                1 => "global",
                2 => "extern",
                _ => "(unknown)",
            };
            o.insert("linkage".into(), json!(l));
        }
        BtfKind::Datasec => {
            o.insert("size".into(), json!(t.size()));
            o.insert("vlen".into(), json!(t.vlen()));
            let vs: Vec<Value> = (0..t.vlen())
                .map(|i| {
                    let s = t.var_secinfo(i);
                    json!({"type_id": s.type_id, "offset": s.offset, "size": s.size})
                })
                .collect();
            o.insert("vars".into(), Value::Array(vs));
        }
        BtfKind::Float => {
            o.insert("size".into(), json!(t.size()));
        }
        BtfKind::DeclTag => {
            o.insert("type_id".into(), json!(t.type_id()));
            o.insert("component_idx".into(), json!(t.decl_tag_component_idx()));
        }
        BtfKind::Unkn => {}
    }
    v
}

/// Every type of `d`'s own level, as bpftool's `{"types": [...]}`.
pub fn types_json(d: &BtfData) -> Value {
    json!({"types": d.local_types().map(|t| type_json(d, &t)).collect::<Vec<_>>()})
}
