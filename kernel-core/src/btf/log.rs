//! The BTF verifier log (`struct bpf_verifier_log`, kernel/bpf/log.c) as `BPF_BTF_LOAD`
//! fills it with `log_level` 1: the header dump, one line per type checked, and the
//! failing check's message. The log is bytes, as the kernel's is: a name is printed
//! as its bytes (`%s`), whatever they are.
//!
//! The verifier is generic over its log ([`BtfLog`]): [`VerifierLog`] keeps the text,
//! [`NoLog`] (log level 0) is a sink whose every call compiles to nothing.

use alloc::vec::Vec;
use core::fmt::{self, Write};

/// The first of 128 private-use code points that stand for the bytes 0x80..=0xff of a
/// name while it passes through `core::fmt`; the log turns each back into its byte.
/// Only [`LogName`] produces them, and it encodes every non-ASCII byte of a name, so
/// the round trip is exact.
const RAW_BYTE_BASE: u32 = 0x10_ff00;

/// A name from the string section, printed into the log as its raw bytes.
pub struct LogName<'a>(pub &'a [u8]);

impl fmt::Display for LogName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for &b in self.0 {
            let c = if b < 0x80 {
                char::from(b)
            } else {
                char::from_u32(RAW_BYTE_BASE + u32::from(b)).unwrap_or(char::REPLACEMENT_CHARACTER)
            };
            f.write_char(c)?;
        }
        Ok(())
    }
}

/// The log's bytes, written through `core::fmt`.
struct Sink<'a>(&'a mut Vec<u8>);

impl Write for Sink<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for c in s.chars() {
            let u = u32::from(c);
            if (RAW_BYTE_BASE + 0x80..=RAW_BYTE_BASE + 0xff).contains(&u) {
                self.0.push((u - RAW_BYTE_BASE) as u8);
            } else {
                let mut b = [0u8; 4];
                self.0.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
            }
        }
        Ok(())
    }
}

/// Where the verifier writes its log: `struct bpf_verifier_log` (kernel/bpf/log.c).
pub trait BtfLog {
    /// `bpf_verifier_log_needed`: whether anything is written at all.
    fn needed(&self) -> bool;
    /// `bpf_verifier_vlog`: appends formatted text; [`LogName`]s become their bytes.
    fn write(&mut self, args: fmt::Arguments<'_>);
}

/// The log at level 0: nothing is ever needed, so a verifier monomorphised over it
/// formats nothing and tests nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoLog;

impl BtfLog for NoLog {
    #[inline(always)]
    fn needed(&self) -> bool {
        false
    }
    #[inline(always)]
    fn write(&mut self, _: fmt::Arguments<'_>) {}
}

impl BtfLog for VerifierLog {
    #[inline]
    fn needed(&self) -> bool {
        VerifierLog::needed(self)
    }
    fn write(&mut self, args: fmt::Arguments<'_>) {
        VerifierLog::write(self, args)
    }
}

/// A verifier log. With level 0 nothing is formatted, as in the kernel.
#[derive(Default, Clone, Debug)]
pub struct VerifierLog {
    level: u32,
    buf: Vec<u8>,
}

impl VerifierLog {
    /// A log at `level` (0 = off, 1 = what `BPF_BTF_LOAD` writes with `log_level=1`).
    pub fn new(level: u32) -> Self {
        VerifierLog {
            level,
            buf: Vec::new(),
        }
    }

    /// `bpf_verifier_log_needed`.
    #[inline]
    pub fn needed(&self) -> bool {
        self.level != 0
    }

    /// Appends formatted text (`bpf_verifier_vlog`); [`LogName`]s become their bytes.
    pub fn write(&mut self, args: fmt::Arguments<'_>) {
        if self.needed() {
            let _ = Sink(&mut self.buf).write_fmt(args);
        }
    }

    /// The bytes so far.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    /// Takes the bytes out.
    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_keep_their_bytes() {
        let mut l = VerifierLog::new(1);
        l.write(format_args!(
            "[1] STRUCT {} size={}\n",
            LogName(b"a\xff\xc3(b"),
            8
        ));
        assert_eq!(l.as_bytes(), b"[1] STRUCT a\xff\xc3(b size=8\n");
        let mut off = VerifierLog::new(0);
        off.write(format_args!("{}", LogName(b"x")));
        assert!(off.as_bytes().is_empty());
    }
}
