//! Kernel profiles: every behaviour switch is a named flag of [`Semantics`], never a
//! version compared inline. Each flag's doc names the change that introduced it.

/// The behaviour switches of one kernel version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Semantics {
    /// Profile name (`"v6.18"`, ...).
    pub name: &'static str,
    /// TYPE_TAG and DECL_TAG may carry `kind_flag` (an attribute rather than a tag);
    /// older kernels refuse it with "Invalid btf_info kind_flag". Added after v6.12
    /// ("bpf: allow kind_flag for BTF type and decl tags", for `btf_type_attr`); the
    /// running 6.18 kernel accepts it.
    pub btf_tag_kflag: bool,
}

impl Semantics {
    /// Before c8e18754: a `__kptr` to a program-only type is rejected (-ENOENT).
    pub const V6_3: Semantics = Semantics {
        name: "v6.3",
        btf_tag_kflag: false,
    };
    /// c8e18754 "bpf: Support __kptr to local kptrs" as merged.
    pub const C8E18754: Semantics = Semantics {
        name: "c8e18754",
        ..Self::V6_3
    };
    /// The v6.4 release.
    pub const V6_4: Semantics = Semantics {
        name: "v6.4",
        ..Self::C8E18754
    };
    /// v6.12.
    pub const V6_12: Semantics = Semantics {
        name: "v6.12",
        ..Self::V6_4
    };
    /// v6.18, the running kernel of these machines; the default.
    pub const V6_18: Semantics = Semantics {
        name: "v6.18",
        btf_tag_kflag: true,
    };

    /// All profiles, oldest first.
    pub const ALL: [Semantics; 5] = [
        Self::V6_3,
        Self::C8E18754,
        Self::V6_4,
        Self::V6_12,
        Self::V6_18,
    ];

    /// Looks a profile up by name.
    pub fn by_name(name: &str) -> Option<Semantics> {
        Self::ALL.iter().copied().find(|s| s.name == name)
    }
}

impl Default for Semantics {
    fn default() -> Self {
        Self::V6_18
    }
}
