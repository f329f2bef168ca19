//! Kernel error numbers (`include/uapi/asm-generic/errno-base.h`, `errno.h`,
//! `include/linux/errno.h`) and the result type the model returns.

use core::fmt;

/// A positive kernel errno. Kernel functions return `-errno`; the model returns
/// `Err(Errno)`.
#[derive(Copy, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Errno(i32);

/// Result of a modelled kernel function.
pub type KResult<T> = Result<T, Errno>;

macro_rules! errnos {
    ($($name:ident = $val:expr, $text:expr;)*) => {
        impl Errno {
            $(
                #[doc = $text]
                pub const $name: Errno = Errno($val);
            )*

            /// The kernel's symbolic name (`"EINVAL"`), or `None` for a value the model
            /// does not name.
            pub const fn name(self) -> Option<&'static str> {
                match self.0 {
                    $($val => Some(stringify!($name)),)*
                    _ => None,
                }
            }

            /// Looks a symbolic name up (`"EINVAL"` -> `Errno::EINVAL`).
            pub fn from_name(name: &str) -> Option<Errno> {
                match name {
                    $(stringify!($name) => Some(Errno($val)),)*
                    _ => None,
                }
            }
        }
    };
}

errnos! {
    EPERM = 1, "Operation not permitted.";
    ENOENT = 2, "No such file or directory.";
    ESRCH = 3, "No such process.";
    EIO = 5, "I/O error.";
    ENXIO = 6, "No such device or address.";
    E2BIG = 7, "Argument list too long.";
    EBADF = 9, "Bad file number.";
    EAGAIN = 11, "Try again.";
    ENOMEM = 12, "Out of memory.";
    EACCES = 13, "Permission denied.";
    EFAULT = 14, "Bad address.";
    EBUSY = 16, "Device or resource busy.";
    EEXIST = 17, "File exists.";
    EINVAL = 22, "Invalid argument.";
    ENOSPC = 28, "No space left on device.";
    ERANGE = 34, "Math result not representable.";
    ELOOP = 40, "Too many symbolic links encountered (the kernel's cycle errno).";
    EOPNOTSUPP = 95, "Operation not supported on transport endpoint.";
    ENOTSUPP = 524, "Operation is not supported (kernel-internal, returned as is by BTF load).";
}

impl Errno {
    /// Wraps a positive errno value as the kernel returns it to user space.
    pub const fn from_raw(v: i32) -> Errno {
        Errno(if v < 0 { -v } else { v })
    }

    /// The positive value.
    pub const fn raw(self) -> i32 {
        self.0
    }

    /// The kernel's return value, `-errno`.
    pub const fn to_kernel(self) -> i32 {
        -self.0
    }
}

impl fmt::Debug for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "Errno({})", self.0),
        }
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for e in [Errno::EINVAL, Errno::E2BIG, Errno::ELOOP, Errno::ENOTSUPP] {
            let n = e.name().unwrap();
            assert_eq!(Errno::from_name(n), Some(e));
        }
        assert_eq!(Errno::from_raw(-22), Errno::EINVAL);
        assert_eq!(Errno::EINVAL.to_kernel(), -22);
        assert_eq!(Errno::from_raw(4242).name(), None);
    }
}
