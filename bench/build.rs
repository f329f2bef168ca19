//! Links the system libbpf (Debian's libbpf-dev) that the `btf` bench calls through
//! its own FFI declarations. libbpf.so pulls in libelf and libz itself.

fn main() {
    println!("cargo:rustc-link-lib=bpf");
    println!("cargo:rerun-if-changed=build.rs");
}
