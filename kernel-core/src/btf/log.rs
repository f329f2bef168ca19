//! The BTF verifier log (`struct bpf_verifier_log`, kernel/bpf/log.c) as `BPF_BTF_LOAD`
//! fills it with `log_level` 1: the header dump, one line per type checked, and the
//! failing check's message.

use alloc::string::String;
use core::fmt::{self, Write};

/// A verifier log. With level 0 nothing is formatted, as in the kernel.
#[derive(Default, Clone, Debug)]
pub struct VerifierLog {
    level: u32,
    buf: String,
}

impl VerifierLog {
    /// A log at `level` (0 = off, 1 = what `BPF_BTF_LOAD` writes with `log_level=1`).
    pub fn new(level: u32) -> Self {
        VerifierLog {
            level,
            buf: String::new(),
        }
    }

    /// `bpf_verifier_log_needed`.
    #[inline]
    pub fn needed(&self) -> bool {
        self.level != 0
    }

    /// Appends formatted text (`bpf_verifier_vlog`).
    pub fn write(&mut self, args: fmt::Arguments<'_>) {
        if self.needed() {
            let _ = self.buf.write_fmt(args);
        }
    }

    /// The text so far.
    pub fn as_str(&self) -> &str {
        &self.buf
    }

    /// Takes the text out.
    pub fn into_string(self) -> String {
        self.buf
    }
}
