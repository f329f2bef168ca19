//! The installed libbpf (`libbpf.so.1`), opened at run time with `dlopen`, to load a
//! scenario's BPF object into the running kernel exactly as users load objects (maps,
//! relocations, kfunc ids, programs). Only `kptr-model run --kernel` needs it; where
//! the library is missing the kernel is not asked.

use std::ffi::{CStr, CString, c_char, c_int, c_void};

/// The libbpf functions used, looked up once.
pub struct Libbpf {
    handle: *mut c_void,
    open_file: unsafe extern "C" fn(*const c_char, *const c_void) -> *mut c_void,
    load: unsafe extern "C" fn(*mut c_void) -> c_int,
    close: unsafe extern "C" fn(*mut c_void),
    find_map: unsafe extern "C" fn(*const c_void, *const c_char) -> *mut c_void,
    map_fd: unsafe extern "C" fn(*const c_void) -> c_int,
    find_prog: unsafe extern "C" fn(*const c_void, *const c_char) -> *mut c_void,
    prog_fd: unsafe extern "C" fn(*const c_void) -> c_int,
}

impl Drop for Libbpf {
    fn drop(&mut self) {
        // SAFETY: `handle` came from a successful dlopen and is closed once; no
        // function pointer of the library outlives `self`.
        unsafe { libc::dlclose(self.handle) };
    }
}

/// An object loaded into the kernel; closed (every map and program fd) on drop.
pub struct LoadedObject<'a> {
    lib: &'a Libbpf,
    obj: *mut c_void,
}

impl Drop for LoadedObject<'_> {
    fn drop(&mut self) {
        // SAFETY: `obj` came from bpf_object__open_file and is closed exactly once.
        unsafe { (self.lib.close)(self.obj) };
    }
}

fn sym<T>(handle: *mut c_void, name: &CStr) -> Result<T, String> {
    // SAFETY: `handle` is a live dlopen handle and `name` a NUL-terminated string.
    let p = unsafe { libc::dlsym(handle, name.as_ptr()) };
    if p.is_null() {
        return Err(format!("libbpf.so.1 has no {}", name.to_string_lossy()));
    }
    // SAFETY: `T` is the function pointer type libbpf declares for `name` (libbpf.h);
    // both are pointer-sized.
    Ok(unsafe { std::mem::transmute_copy::<*mut c_void, T>(&p) })
}

impl Libbpf {
    /// Opens `libbpf.so.1` and silences its log (`libbpf_set_print(NULL)`).
    pub fn open() -> Result<Libbpf, String> {
        // SAFETY: a constant NUL-terminated library name; RTLD_NOW resolves it at once.
        let handle = unsafe { libc::dlopen(c"libbpf.so.1".as_ptr(), libc::RTLD_NOW) };
        if handle.is_null() {
            return Err("libbpf.so.1 is not installed (apt-get install libbpf1)".into());
        }
        let set_print: unsafe extern "C" fn(*const c_void) -> *const c_void =
            match sym(handle, c"libbpf_set_print") {
                Ok(f) => f,
                Err(e) => {
                    // SAFETY: the handle from the dlopen above, closed once.
                    unsafe { libc::dlclose(handle) };
                    return Err(e);
                }
            };
        // SAFETY: libbpf_set_print(NULL) turns libbpf's messages off.
        unsafe { set_print(std::ptr::null()) };
        let lib = Libbpf {
            handle,
            open_file: sym(handle, c"bpf_object__open_file")?,
            load: sym(handle, c"bpf_object__load")?,
            close: sym(handle, c"bpf_object__close")?,
            find_map: sym(handle, c"bpf_object__find_map_by_name")?,
            map_fd: sym(handle, c"bpf_map__fd")?,
            find_prog: sym(handle, c"bpf_object__find_program_by_name")?,
            prog_fd: sym(handle, c"bpf_program__fd")?,
        };
        Ok(lib)
    }

    /// `bpf_object__open_file` then `bpf_object__load`: the errno on failure.
    pub fn load(&self, path: &str) -> Result<LoadedObject<'_>, i32> {
        let c = CString::new(path).map_err(|_| libc::EINVAL)?;
        // SAFETY: a NUL-terminated path and no options; libbpf 1.x returns NULL and
        // sets errno on failure.
        let obj = unsafe { (self.open_file)(c.as_ptr(), std::ptr::null()) };
        if obj.is_null() {
            return Err(std::io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EINVAL));
        }
        let loaded = LoadedObject { lib: self, obj };
        // SAFETY: `obj` is the live object just opened.
        let r = unsafe { (self.load)(obj) };
        if r < 0 {
            return Err(-r);
        }
        Ok(loaded)
    }
}

impl LoadedObject<'_> {
    /// The fd of map `name`, if the object has it.
    pub fn map_fd(&self, name: &str) -> Option<c_int> {
        let c = CString::new(name).ok()?;
        // SAFETY: live object, NUL-terminated name; the map pointer lives as long as
        // the object.
        let m = unsafe { (self.lib.find_map)(self.obj, c.as_ptr()) };
        if m.is_null() {
            return None;
        }
        // SAFETY: `m` is a map of the live object.
        let fd = unsafe { (self.lib.map_fd)(m) };
        (fd >= 0).then_some(fd)
    }

    /// The fd of program `name`, if the object has it loaded.
    pub fn prog_fd(&self, name: &str) -> Option<c_int> {
        let c = CString::new(name).ok()?;
        // SAFETY: live object, NUL-terminated name.
        let p = unsafe { (self.lib.find_prog)(self.obj, c.as_ptr()) };
        if p.is_null() {
            return None;
        }
        // SAFETY: `p` is a program of the live object.
        let fd = unsafe { (self.lib.prog_fd)(p) };
        (fd >= 0).then_some(fd)
    }
}
