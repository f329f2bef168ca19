//! BTF blobs for the kernel-as-judge test and the mutation test: each a name and the
//! bytes, valid ones and ones that break one rule of the kernel's verifier.

use kernel_core::btf::builder::BtfBuilder;
use kernel_core::btf::uapi::*;

/// A named blob.
pub struct Blob {
    /// What it tests.
    pub name: &'static str,
    /// The bytes.
    pub bytes: Vec<u8>,
}

fn b() -> (BtfBuilder, u32) {
    let mut b = BtfBuilder::new();
    let int = b.int("int", 4, BTF_INT_SIGNED, 32);
    (b, int)
}

fn one(name: &'static str, f: impl FnOnce(&mut BtfBuilder, u32)) -> Blob {
    let (mut bb, int) = b();
    f(&mut bb, int);
    Blob {
        name,
        bytes: bb.build(),
    }
}

fn hdr(name: &'static str, edit: impl FnOnce(&mut BtfHeader)) -> Blob {
    let (bb, _) = b();
    Blob {
        name,
        bytes: bb.build_with(edit),
    }
}

/// Every kind, valid: the blob the mutation test starts from.
pub fn all_kinds() -> Vec<u8> {
    let (mut b, int) = b();
    let uchar = b.int("unsigned char", 1, 0, 8);
    let ptr = b.ptr(int);
    let arr = b.array(int, int, 4);
    let fwd = b.fwd("later", false);
    let pfwd = b.ptr(fwd);
    let st = b.struct_(
        "node",
        32,
        &[("a", int, 0), ("next", ptr, 64), ("arr", arr, 128)],
    );
    let _un = b.union_("u", 8, &[("x", int, 0), ("p", pfwd, 0)]);
    let _bf = b.struct_kflag(
        "bits",
        4,
        &[("lo", int, 3 << 24), ("hi", int, (5 << 24) | 3)],
    );
    let _en = b.enum_("color", 4, false, &[("RED", 0), ("BLUE", 7)]);
    let _e64 = b.enum64(
        "big",
        8,
        true,
        &[("NEG", (-5i64) as u64), ("HUGE", 1 << 40)],
    );
    let td = b.typedef("node_t", st);
    let vol = b.volatile(td);
    let cst = b.const_(vol);
    let _rst = b.restrict(ptr);
    let tag = b.type_tag("kptr", st);
    let _ptag = b.ptr(tag);
    let fl = b.float("double", 8);
    let proto = b.func_proto(int, &[("x", int), ("y", cst)]);
    let f = b.func("work", proto, 1);
    let _dt = b.decl_tag("hot", f, -1);
    let _dt2 = b.decl_tag("contains:node:a", st, 0);
    let v1 = b.var("counter", int, 1);
    let v2 = b.var("ratio", fl, 0);
    let _ds = b.datasec(".data", 16, &[(v1, 0, 4), (v2, 8, 8)]);
    let _ = uchar;
    b.build()
}

/// The corpus: valid blobs first, then one blob per broken rule.
pub fn blobs() -> Vec<Blob> {
    let mut v = vec![
        one("valid: one int", |_, _| {}),
        Blob {
            name: "valid: every kind",
            bytes: all_kinds(),
        },
        one("valid: self-referential list via pointer", |b, int| {
            let fwd_ptr_target = b.next_id() + 1;
            let p = b.ptr(fwd_ptr_target);
            b.struct_("list", 16, &[("v", int, 0), ("next", p, 64)]);
        }),
        one("valid: const void and pointer to function", |b, int| {
            let cv = b.const_(0);
            b.ptr(cv);
            let fp = b.func_proto(0, &[("", int), ("", 0)]);
            b.ptr(fp);
        }),
        one(
            "valid: tag before const (PTR -> TAG -> CONST -> STRUCT)",
            |b, int| {
                let s = b.struct_("obj", 4, &[("x", int, 0)]);
                let c = b.const_(s);
                let t = b.type_tag("kptr", c);
                b.ptr(t);
            },
        ),
        one("valid: flexible array member", |b, int| {
            let a = b.array(int, int, 0);
            b.struct_("flex", 4, &[("n", int, 0), ("data", a, 32)]);
        }),
        one("valid: decl tag on a func parameter", |b, int| {
            let p = b.func_proto(0, &[("a", int), ("b", int)]);
            let f = b.func("g", p, 0);
            b.decl_tag("arg", f, 1);
        }),
        hdr("valid: longer header with zero padding", |_| {}),
        one(
            "valid since btf_tag_kflag: kflag on TYPE_TAG (attribute)",
            |b, int| {
                b.raw_named(
                    "attr",
                    btf_info_enc(BtfKind::TypeTag as u8, true, 0),
                    int,
                    &[],
                );
            },
        ),
        one(
            "valid since btf_tag_kflag: kflag on DECL_TAG (attribute)",
            |b, int| {
                let s = b.struct_("s", 4, &[("x", int, 0)]);
                b.raw_named(
                    "attr",
                    btf_info_enc(BtfKind::DeclTag as u8, true, 0),
                    s,
                    &(-1i32).to_ne_bytes(),
                );
            },
        ),
        // header and sections
        hdr("bad magic", |h| h.magic = 0xbeef),
        hdr("version 2", |h| h.version = 2),
        hdr("flags set", |h| h.flags = 1),
        hdr("hdr_len beyond the data", |h| h.hdr_len = 4096),
        hdr("string section not at the end", |h| h.str_len -= 1),
        hdr("section overlap", |h| h.str_off -= 4),
        hdr("gap between sections", |h| {
            h.type_len -= 4;
        }),
        hdr("total section length too long", |h| h.str_len += 8),
        hdr("section offset past the end", |h| h.type_off = 1 << 20),
    ];
    // The header blobs above that need different bytes.
    v.retain(|b| b.name != "valid: longer header with zero padding");
    v.push({
        let (bb, _) = b();
        let mut raw = bb.build_with(|h| h.hdr_len = 32);
        raw.splice(24..24, [0u8; 8]);
        Blob {
            name: "valid: longer header with zero padding",
            bytes: raw,
        }
    });
    v.push({
        let (bb, _) = b();
        let mut raw = bb.build_with(|h| h.hdr_len = 32);
        raw.splice(24..24, [0u8, 0, 0, 0, 1, 0, 0, 0]);
        Blob {
            name: "unsupported header field set",
            bytes: raw,
        }
    });
    v.push(Blob {
        name: "header only",
        bytes: BtfBuilder::new().build_with(|h| {
            h.str_len = 0;
            h.str_off = 0;
        })[..24]
            .to_vec(),
    });
    v.push(Blob {
        name: "type_off unaligned",
        bytes: BtfBuilder::new().build_with(|h| {
            h.type_off = 2;
            h.type_len = 0;
            h.str_off = 0;
            h.str_len = 2;
        })[..24]
            .iter()
            .copied()
            .chain([0u8, 0])
            .collect(),
    });
    v.push(Blob {
        name: "no types",
        bytes: BtfBuilder::new().build(),
    });
    v.push(Blob {
        name: "truncated before hdr_len",
        bytes: BtfBuilder::new().build()[..6].to_vec(),
    });
    v.push({
        let mut bb = BtfBuilder::new();
        bb.raw_strings(b"x");
        let _ = bb.int("int", 4, BTF_INT_SIGNED, 32);
        Blob {
            name: "string section without final NUL",
            bytes: {
                let mut raw = bb.build();
                let n = raw.len();
                raw[n - 1] = b'y';
                raw
            },
        }
    });
    v.push({
        let mut bb = BtfBuilder::new();
        let _ = bb.int("int", 4, BTF_INT_SIGNED, 32);
        let mut raw = bb.build();
        let so = 24 + bb.header().str_off as usize;
        raw[so] = b'z';
        Blob {
            name: "string section not starting with NUL",
            bytes: raw,
        }
    });
    // meta pass
    v.extend([
        one("truncated type record", |b, _| b.raw_type_bytes(&[0u8; 8])),
        one("info has reserved bits", |b, int| {
            b.raw_type(
                0,
                btf_info_enc(BtfKind::Ptr as u8, false, 0) | (1 << 20),
                int,
                &[],
            );
        }),
        one("kind 0", |b, _| {
            b.raw_type(0, 0, 0, &[]);
        }),
        one("kind past BTF_KIND_MAX", |b, _| {
            b.raw_type(0, btf_info_enc(20, false, 0), 0, &[]);
        }),
        one("valid: typedef named with Latin-1 letters (the kernel's isalpha takes them), not UTF-8", |b, int| {
            let n = b.raw_strings(b"\xff\xfename\0");
            b.raw_type(n, btf_info_enc(BtfKind::Typedef as u8, false, 0), int, &[]);
        }),
        one("valid: struct member named with a Latin-1 letter, not UTF-8", |b, int| {
            let n = b.raw_strings(b"m\xc3\0");
            let sname = b.add_str("holder");
            let mut m = Vec::new();
            m.extend_from_slice(&n.to_ne_bytes());
            m.extend_from_slice(&int.to_ne_bytes());
            m.extend_from_slice(&0u32.to_ne_bytes());
            b.raw_type(sname, btf_info_enc(BtfKind::Struct as u8, false, 1), 4, &m);
        }),
        one("typedef named with a byte that is not a letter, not UTF-8", |b, int| {
            let n = b.raw_strings(b"t\x80\0");
            b.raw_type(n, btf_info_enc(BtfKind::Typedef as u8, false, 0), int, &[]);
        }),
        one("valid: decl tag whose value is not UTF-8", |b, int| {
            let s = b.struct_("tagged", 4, &[("x", int, 0)]);
            let n = b.raw_strings(b"note:\xe9t\xe9\0");
            b.raw_type(
                n,
                btf_info_enc(BtfKind::DeclTag as u8, false, 0),
                s,
                &(-1i32).to_ne_bytes(),
            );
        }),
        one("name offset out of range", |b, int| {
            b.raw_type(
                1000,
                btf_info_enc(BtfKind::Typedef as u8, false, 0),
                int,
                &[],
            );
        }),
        one("int with vlen", |b, _| {
            b.raw_type(
                0,
                btf_info_enc(BtfKind::Int as u8, false, 1),
                4,
                &btf_int_enc(0, 0, 32).to_ne_bytes(),
            );
        }),
        one("int with kflag", |b, _| {
            b.raw_type(
                0,
                btf_info_enc(BtfKind::Int as u8, true, 0),
                4,
                &btf_int_enc(0, 0, 32).to_ne_bytes(),
            );
        }),
        one("int data reserved bits", |b, _| {
            b.raw_type(
                0,
                btf_info_enc(BtfKind::Int as u8, false, 0),
                4,
                &0x1000_0020u32.to_ne_bytes(),
            );
        }),
        one("int nr_bits beyond 128", |b, _| {
            b.raw_type(
                0,
                btf_info_enc(BtfKind::Int as u8, false, 0),
                32,
                &btf_int_enc(0, 8, 128).to_ne_bytes(),
            );
        }),
        one("int nr_bits beyond its size", |b, _| {
            b.int("wide", 2, 0, 32);
        }),
        one("int with two encodings", |b, _| {
            b.int("weird", 4, BTF_INT_SIGNED | BTF_INT_CHAR, 32);
        }),
        one("int data truncated", |b, _| {
            b.raw_type(0, btf_info_enc(BtfKind::Int as u8, false, 0), 4, &[]);
        }),
        one("pointer with a name", |b, int| {
            b.raw_named("p", btf_info_enc(BtfKind::Ptr as u8, false, 0), int, &[]);
        }),
        one("typedef without a name", |b, int| {
            b.typedef("", int);
        }),
        one("typedef with an invalid identifier", |b, int| {
            b.typedef("1bad", int);
        }),
        one("type tag without a name", |b, int| {
            b.type_tag("", int);
        }),
        one("modifier type id too large", |b, _| {
            b.const_(BTF_MAX_TYPE + 1);
        }),
        one("fwd with type", |b, _| {
            b.raw_named("f", btf_info_enc(BtfKind::Fwd as u8, false, 0), 3, &[]);
        }),
        one("array with a name", |b, int| {
            let mut tr = Vec::new();
            for x in [int, int, 2] {
                tr.extend_from_slice(&x.to_ne_bytes());
            }
            b.raw_named("a", btf_info_enc(BtfKind::Array as u8, false, 0), 0, &tr);
        }),
        one("array with size", |b, int| {
            let mut tr = Vec::new();
            for x in [int, int, 2] {
                tr.extend_from_slice(&x.to_ne_bytes());
            }
            b.raw_type(0, btf_info_enc(BtfKind::Array as u8, false, 0), 8, &tr);
        }),
        one("array of void", |b, int| {
            b.array(0, int, 2);
        }),
        one("array without index type", |b, int| {
            b.array(int, 0, 2);
        }),
        one("struct member name offset out of range", |b, int| {
            let mut tr = Vec::new();
            for x in [5000u32, int, 0] {
                tr.extend_from_slice(&x.to_ne_bytes());
            }
            b.raw_type(0, btf_info_enc(BtfKind::Struct as u8, false, 1), 4, &tr);
        }),
        one("struct member with invalid name", |b, int| {
            b.struct_("s", 4, &[("a-b", int, 0)]);
        }),
        one("struct member of type void", |b, _| {
            b.struct_("s", 4, &[("a", 0, 0)]);
        }),
        one("union member at non-zero offset", |b, int| {
            b.union_("u", 8, &[("a", int, 0), ("b", int, 32)]);
        }),
        one("struct members out of order", |b, int| {
            b.struct_("s", 8, &[("a", int, 32), ("b", int, 0)]);
        }),
        one("struct member offset beyond its size", |b, int| {
            b.struct_("s", 4, &[("a", int, 0), ("b", int, 64)]);
        }),
        one("struct members truncated", |b, int| {
            let mut tr = Vec::new();
            for x in [0u32, int, 0] {
                tr.extend_from_slice(&x.to_ne_bytes());
            }
            b.raw_type(0, btf_info_enc(BtfKind::Struct as u8, false, 2), 8, &tr);
        }),
        one("enum of size 3", |b, _| {
            b.enum_("e", 3, false, &[("A", 1)]);
        }),
        one("enum value without a name", |b, _| {
            b.enum_("e", 4, false, &[("", 1)]);
        }),
        one("enum64 value name offset out of range", |b, _| {
            let mut tr = Vec::new();
            for x in [7777u32, 1, 0] {
                tr.extend_from_slice(&x.to_ne_bytes());
            }
            b.raw_type(0, btf_info_enc(BtfKind::Enum64 as u8, false, 1), 8, &tr);
        }),
        one("func with extern linkage", |b, int| {
            let p = b.func_proto(int, &[]);
            b.func("f", p, 2);
        }),
        one("func without a name", |b, int| {
            let p = b.func_proto(int, &[]);
            b.func("", p, 0);
        }),
        one("func proto with a name", |b, int| {
            b.raw_named(
                "fp",
                btf_info_enc(BtfKind::FuncProto as u8, false, 0),
                int,
                &[],
            );
        }),
        one("var with extern linkage", |b, int| {
            b.var("v", int, BTF_VAR_GLOBAL_EXTERN);
        }),
        one("var of void", |b, _| {
            b.var("v", 0, 1);
        }),
        one("datasec of size 0", |b, int| {
            let v = b.var("v", int, 1);
            b.datasec(".data", 0, &[(v, 0, 4)]);
        }),
        one("datasec with overlapping vars", |b, int| {
            let v1 = b.var("v1", int, 1);
            let v2 = b.var("v2", int, 1);
            b.datasec(".data", 8, &[(v1, 0, 4), (v2, 2, 4)]);
        }),
        one("datasec var past the end", |b, int| {
            let v = b.var("v", int, 1);
            b.datasec(".data", 4, &[(v, 2, 4)]);
        }),
        one("datasec with unprintable name", |b, int| {
            let v = b.var("v", int, 1);
            b.datasec(".da\tta", 4, &[(v, 0, 4)]);
        }),
        one("float of size 3", |b, _| {
            b.float("f", 3);
        }),
        one("decl tag with component -2", |b, int| {
            let s = b.struct_("s", 4, &[("x", int, 0)]);
            b.decl_tag("t", s, -2);
        }),
        one("decl tag with empty value", |b, int| {
            let s = b.struct_("s", 4, &[("x", int, 0)]);
            b.decl_tag("", s, -1);
        }),
        // resolve pass
        one("typedef loop", |b, _| {
            let first = b.next_id();
            b.typedef("a", first + 1);
            b.typedef("b", first);
        }),
        one("const of a var", |b, int| {
            let v = b.var("v", int, 1);
            b.const_(v);
        }),
        one("pointer to a type past the end", |b, _| {
            b.ptr(900);
        }),
        one("struct member of func proto type", |b, int| {
            let p = b.func_proto(int, &[]);
            b.struct_("s", 8, &[("f", p, 0)]);
        }),
        one("pointer member not byte aligned", |b, int| {
            let p = b.ptr(int);
            b.struct_("s", 16, &[("p", p, 4)]);
        }),
        one("struct member exceeds struct size", |b, int| {
            let inner = b.struct_("inner", 8, &[("x", int, 0)]);
            b.struct_("outer", 8, &[("i", inner, 32)]);
        }),
        one("int member exceeds struct size", |b, int| {
            b.struct_("s", 2, &[("x", int, 0)]);
        }),
        one("valid: a 512 MiB int of 32 bits, and a struct member of it", |b, _| {
            let huge = b.int("huge", 0x2000_0000, 0, 32);
            b.struct_("s", 0x2000_0000, &[("x", huge, 0)]);
        }),
        one("valid: int member at bit offset 4", |b, int| {
            b.struct_("s", 8, &[("x", int, 4)]);
        }),
        one("int member at bit offset 4 exceeds struct size", |b, int| {
            b.struct_("s", 4, &[("x", int, 4)]);
        }),
        one("kflag int member not a bitfield at bit offset 4", |b, int| {
            b.struct_kflag("s", 8, &[("x", int, 4)]);
        }),
        one("kflag bitfield larger than its int", |b, int| {
            b.struct_kflag("s", 4, &[("x", int, 33 << 24)]);
        }),
        one("kflag member of a non-regular int", |b, _| {
            let odd = b.int("odd", 4, 0, 7);
            b.struct_kflag("s", 4, &[("x", odd, 0)]);
        }),
        one("bitfield size on a pointer member", |b, int| {
            let p = b.ptr(int);
            b.struct_kflag("s", 8, &[("p", p, 3 << 24)]);
        }),
        one("float member misaligned", |b, _| {
            let f = b.float("double", 8);
            b.struct_("s", 16, &[("d", f, 32)]);
        }),
        one("array index is a struct", |b, int| {
            let s = b.struct_("s", 4, &[("x", int, 0)]);
            b.array(int, s, 3);
        }),
        one("array of non-regular int", |b, int| {
            let odd = b.int("odd", 1, 0, 3);
            b.array(odd, int, 3);
        }),
        one("array size overflows u32", |b, int| {
            let big = b.array(int, int, 0x4000_0000);
            b.array(big, int, 8);
        }),
        one("array of func proto", |b, int| {
            let p = b.func_proto(int, &[]);
            b.array(p, int, 2);
        }),
        one("nesting deeper than 32", |b, int| {
            let first = b.next_id();
            for i in 0..33 {
                b.array(first + i + 1, int, 1);
            }
            b.array(int, int, 1);
        }),
        one("func whose type is not a proto", |b, int| {
            b.func("f", int, 0);
        }),
        one("func param without a name", |b, int| {
            let p = b.func_proto(int, &[("", int)]);
            b.func("f", p, 0);
        }),
        one("func proto returning a var", |b, int| {
            let v = b.var("v", int, 1);
            b.func_proto(v, &[]);
        }),
        one("func proto with named vararg", |b, int| {
            b.func_proto(int, &[("x", int), ("rest", 0)]);
        }),
        one("func proto argument of type void", |b, int| {
            b.func_proto(int, &[("x", 0), ("y", int)]);
        }),
        one("decl tag on an int", |b, int| {
            b.decl_tag("t", int, -1);
        }),
        one("decl tag component out of range", |b, int| {
            let s = b.struct_("s", 4, &[("x", int, 0)]);
            b.decl_tag("t", s, 1);
        }),
        one("decl tag component on a var", |b, int| {
            let v = b.var("v", int, 1);
            b.decl_tag("t", v, 0);
        }),
        one("datasec entry that is not a var", |b, int| {
            b.datasec(".data", 4, &[(int, 0, 4)]);
        }),
        one("datasec var smaller than its type", |b, int| {
            let s = b.struct_("s", 8, &[("x", int, 0), ("y", int, 32)]);
            let v = b.var("v", s, 1);
            b.datasec(".data", 8, &[(v, 0, 4)]);
        }),
        one("type tag after const", |b, int| {
            let s = b.struct_("obj", 4, &[("x", int, 0)]);
            let t = b.type_tag("kptr", s);
            let c = b.const_(t);
            b.ptr(c);
        }),
        one("var of a fwd", |b, _| {
            let f = b.fwd("f", false);
            b.var("v", f, 1);
        }),
    ]);
    v
}

/// xorshift64: the mutation tests' reproducible random source (seed must be non-zero).
pub struct Rng(pub u64);
impl Rng {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// A number below `n` (0 for `n` of 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
}

const INTERESTING: [u32; 12] = [
    0,
    1,
    2,
    3,
    4,
    7,
    8,
    0x7f,
    0xffff,
    0x000f_ffff,
    0x7fff_ffff,
    0xffff_ffff,
];

/// `seed` with one to four random edits: bit flips, bytes, aligned u32 edge values,
/// truncation, appended bytes, a duplicated chunk, or a header re-fitted to the size.
pub fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut v = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        if v.is_empty() {
            v.push(rng.next_u64() as u8);
            continue;
        }
        match rng.below(8) {
            0 => {
                let i = rng.below(v.len());
                v[i] ^= 1 << rng.below(8);
            }
            1 => {
                let i = rng.below(v.len());
                v[i] = rng.next_u64() as u8;
            }
            2 | 3 => {
                // An aligned u32 field (header fields, type words) set to an edge value.
                let i = rng.below(v.len() / 4) * 4;
                if i + 4 <= v.len() {
                    let x = if rng.below(2) == 0 {
                        INTERESTING[rng.below(INTERESTING.len())]
                    } else {
                        rng.next_u64() as u32
                    };
                    v[i..i + 4].copy_from_slice(&x.to_ne_bytes());
                }
            }
            4 => {
                let n = rng.below(v.len());
                v.truncate(n);
            }
            5 => {
                let extra = 1 + rng.below(32);
                for _ in 0..extra {
                    v.push(rng.next_u64() as u8);
                }
            }
            6 => {
                // Duplicate a chunk (repeated type records).
                let a = rng.below(v.len());
                let len = (1 + rng.below(48)).min(v.len() - a);
                let chunk: Vec<u8> = v[a..a + len].to_vec();
                let at = rng.below(v.len());
                v.splice(at..at, chunk);
            }
            _ => {
                // Keep the header consistent with a changed size, so the type and string
                // sections get exercised rather than the header checks alone.
                if v.len() >= 24 {
                    let total = (v.len() - 24) as u32;
                    let str_len = u32::from_ne_bytes([v[20], v[21], v[22], v[23]]).min(total);
                    let type_len = total - str_len;
                    v[8..12].copy_from_slice(&0u32.to_ne_bytes());
                    v[12..16].copy_from_slice(&type_len.to_ne_bytes());
                    v[16..20].copy_from_slice(&type_len.to_ne_bytes());
                    v[20..24].copy_from_slice(&str_len.to_ne_bytes());
                }
            }
        }
    }
    v
}
