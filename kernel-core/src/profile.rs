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
    /// A `__kptr` whose pointee exists only in program BTF is a local kptr (an object
    /// from `bpf_obj_new`). Before it, `bpf_find_btf_id`'s -ENOENT fails the field.
    /// c8e18754 "bpf: Support __kptr to local kptrs".
    pub local_kptr: bool,
    /// A local kptr field holds a reference on the program BTF (`btf_get` in
    /// `btf_parse_kptr`, `btf_put` in `btf_record_free`). From c8e18754; dropped in
    /// v6.12 (only kernel BTFs are referenced since).
    pub local_kptr_holds_btf: bool,
    /// The local kptr's destructor slot holds `__bpf_obj_drop_impl` (c8e18754's
    /// `dtor`/`obj_drop` union); v6.4 (9e36a204bd43) stores NULL and branches on
    /// `btf_is_kernel` at teardown.
    pub local_kptr_dtor_obj_drop: bool,
    /// `bpf_refcount` (v6.4 refcount series); list_node and rb_node grow an owner
    /// field (16 -> 24, 24 -> 32 bytes).
    pub refcount: bool,
    /// `__percpu_kptr` (v6.6).
    pub percpu_kptr: bool,
    /// `bpf_wq` (v6.10, d56b63cf0c0f; `BTF_FIELDS_MAX` 10 -> 11).
    pub wq: bool,
    /// Special fields inside arrays and nested structs (v6.10, `btf_find_field_one`,
    /// `btf_repeat_fields`).
    pub nested_fields: bool,
    /// Struct metas also parse kptrs: local objects may hold kptrs (v6.12).
    pub struct_meta_kptrs: bool,
    /// `__uptr` in task storage (v6.13).
    pub uptr: bool,
    /// `bpf_res_spin_lock` (v6.15).
    pub res_spin_lock: bool,
    /// `bpf_task_work` (v6.18).
    pub task_work: bool,
    /// `btf_find_kptr` ignores TYPE_TAGs with kind_flag (attributes), v6.14+.
    pub kptr_skips_attr_tags: bool,
    /// The kptr tag names after 03b77e17aeb2 "bpf: Rename __kptr_ref -> __kptr and
    /// __kptr -> __kptr_untrusted" (v6.4, before c8e18754): `kptr` is referenced and
    /// `kptr_untrusted` unreferenced. Before it (v6.3), `kptr` is unreferenced and
    /// `kptr_ref` referenced.
    pub kptr_untrusted_tag: bool,
    /// Kptrs are allowed in per-CPU and LRU per-CPU hash maps and in the local storages
    /// ("bpf: Support kptrs in percpu hashmap and percpu LRU hashmap" and "bpf: Support
    /// kptrs in local storage maps", v6.4 cycle, merged before c8e18754). Before them
    /// `map_check_btf` allows kptrs only in HASH, LRU_HASH, ARRAY and PERCPU_ARRAY.
    pub kptr_more_maps: bool,
    /// Ownership between local types is bounded by depth (`btf_check_ownership_depth`,
    /// `BTF_MAX_OWNERSHIP_DEPTH` 8, kptrs count as edges) instead of the older rule that
    /// a type both owning and owned may own only pure nodes (-ELOOP). Found in a
    /// stable backport (Debian's 6.12.117 source); no named profile has it: the running
    /// 6.18.44 kernel keeps the older rule (tests/semantics_probe.rs asks it).
    pub ownership_depth: bool,
    /// `bpf_obj_free_fields` releases a referenced kptr only if the exchanged value is
    /// non-NULL ("only invoke kptr dtor following non-NULL xchg", v6.4); c8e18754
    /// calls the destructor or `__bpf_obj_drop_impl` on NULL too.
    pub free_fields_null_check: bool,
    /// Local kptrs are dropped with migration disabled (9e36a204bd43, v6.4);
    /// c8e18754 reaches `bpf_mem_free` with migration enabled.
    pub free_fields_migrate_disable: bool,
    /// Teardown WARNs when a local pointee has no struct meta (c8e18754 to v6.5).
    pub warn_missing_pointee_meta: bool,
    /// `__bpf_obj_drop_impl` frees through `bpf_mem_free_rcu` (v6.6); before,
    /// `bpf_mem_free` allows immediate reuse.
    pub obj_drop_free_rcu: bool,
    /// `bpf_refcount_acquire` uses `refcount_inc_not_zero` and may fail (v6.6); v6.4
    /// used `refcount_inc`.
    pub refcount_acquire_not_zero: bool,
    /// `bpf_map_free_deferred` puts the map's BTF after `map_free` (59e5791f59dd,
    /// v6.7); v6.4 put it before.
    pub map_btf_put_after_free: bool,
    /// Non-preallocated hash elements free their special fields again when the memory
    /// is finally freed (an allocator destructor, newest kernels; not in 6.18).
    pub htab_elem_dtor: bool,
    /// A per-CPU array inner map must have the template's `max_entries`
    /// (`percpu_array_map_ops.map_meta_equal` is `array_map_meta_equal`), as the
    /// verifier inlines its lookups against the template (`percpu_array_map_gen_lookup`,
    /// v6.10). Not in v6.12 (Debian's 6.12.118 source still has `bpf_map_meta_equal`
    /// there); the running 6.18 refuses a per-CPU array of another size with -EINVAL
    /// (probed; the upstream commit could not be identified offline).
    pub inner_percpu_array_max_entries: bool,
    /// `bpf_map_free` (kernel/bpf/syscall.c) runs `map->ops->map_free` with migration
    /// disabled, and `bpf_obj_free_fields`, `bpf_list_head_free`, `bpf_rb_root_free` and
    /// the hash map's element frees (`delete_all_elements`, `htab_elem_free`) no longer
    /// toggle it: every caller guarantees it. Hou Tao's "bpf: Disable migration before
    /// calling ops->map_free()" and "bpf: Remove migrate_{disable|enable} in
    /// bpf_obj_free_fields()" (v6.14 series "bpf: Reduce the use of
    /// migrate_{disable|enable}"; version from the series' date, not from a tree).
    /// Not in v6.12: Debian's 6.12.118 source has the removal (a 6.12.114 stable
    /// backport) but not the `bpf_map_free` half. Takes precedence over
    /// `free_fields_migrate_disable`.
    pub map_free_migrate_disable: bool,
    /// An LRU map's CPU takes at most `clamp(nr_elems / nr_cpus / 2, 1, 128)` free
    /// nodes at once (`lru->target_free`, kernel/bpf/bpf_lru_list.c); before it
    /// always `LOCAL_FREE_TARGET` (128), so a small map's eviction empties its whole
    /// inactive list. d4adf1c9ee77 "bpf: Adjust free target to avoid global starvation
    /// of LRU map" (v6.16; also in Debian's 6.12.118 as a backport). The running 6.18
    /// answers as with it (tests/htab_updates.rs asks it).
    pub lru_free_target_clamped: bool,
    /// `pcpu_copy_value` (kernel/bpf/hashtab.c) frees the special fields of each CPU's
    /// value after copying into it, so an in-place update of a PERCPU_HASH or
    /// LRU_PERCPU_HASH drops what was stashed there. Leon Hwang, "bpf: Free special
    /// fields when update \[lru_,\]percpu_hash maps" (November 2025, after v6.18-rc4;
    /// in Debian's 6.12.118 as a backport, and taken to be in the running 6.18.44 as
    /// in that stable tree: not probed). Before it the copy skips them and they stay.
    pub htab_percpu_update_frees_fields: bool,
    /// A local storage element's special fields are freed in an RCU callback after its
    /// unlink (`bpf_selem_free_fields_rcu` / `bpf_selem_free_fields_trace_rcu`,
    /// kernel/bpf/bpf_local_storage.c), whether or not the element may be reused at
    /// once, and the map's free waits for those callbacks (`rcu_barrier_tasks_trace`,
    /// `rcu_barrier`). From "bpf: Support kptrs in local storage maps" (v6.4 cycle,
    /// before c8e18754); "bpf: Remove bpf_selem_free_fields*_rcu" (Martin KaFai Lau's
    /// series "bpf: Use bpf_mem_cache_alloc/free in bpf_local_storage", v6.4) frees
    /// them in `bpf_selem_free` at the unlink instead. Whether that series was applied
    /// before or after c8e18754 (both on 2023-03-10) could not be settled offline: the
    /// c8e18754 profile takes the earlier shape.
    pub selem_free_fields_rcu: bool,
    /// Task and cgroup storage take their elements from the BPF memory allocator
    /// (`smap->bpf_ma`, kernel/bpf/bpf_local_storage.c): an element unlinked with
    /// `reuse_now` (map free, owner destruction) is freed at once, its fields first.
    /// "bpf: Use bpf_mem_cache_alloc/free in bpf_local_storage_elem" and "... for
    /// bpf_local_storage" (v6.4). Socket and inode storage keep `kzalloc`/`kfree_rcu`.
    pub local_storage_bpf_ma: bool,
    /// `bpf_selem_free` of a `bpf_ma` storage (task, cgroup) whose element is unlinked
    /// without `reuse_now` (a delete, an update replacing the element) frees the
    /// element's special fields in the RCU callback (`bpf_selem_free_rcu`, after an RCU
    /// tasks trace grace period), no longer at the unlink: "bpf: Postpone
    /// bpf_obj_free_fields to the rcu callback" (Martin KaFai Lau, the task storage
    /// uptr series, v6.13). Before it (v6.4 to v6.12) an object a program stashes into
    /// an element it has just deleted is never released; socket storage still frees
    /// at the unlink in v6.18 (the `kfree_rcu` path, changed only by the
    /// `kmalloc_nolock` rewrite after v6.18).
    pub selem_free_fields_postponed: bool,
    /// An inner map removed from a map of maps (`bpf_map_fd_put_ptr` with
    /// `need_defer`, kernel/bpf/map_in_map.c) is marked `free_after_rcu_gp`, or
    /// `free_after_mult_rcu_gp` when a sleepable program uses the outer map, and its
    /// last `bpf_map_put` (kernel/bpf/syscall.c) waits for those grace periods before
    /// queueing the free. Hou Tao, "bpf: Defer the free of inner map when necessary"
    /// and "bpf: Optimize the free of inner map" (v6.8). Before, the last put queues
    /// `bpf_map_free_deferred` at once, while a program may still use the map.
    pub inner_map_free_after_gp: bool,
}

impl Semantics {
    /// Before c8e18754: a `__kptr` to a program-only type is rejected (-ENOENT).
    pub const V6_3: Semantics = Semantics {
        name: "v6.3",
        btf_tag_kflag: false,
        local_kptr: false,
        local_kptr_holds_btf: false,
        local_kptr_dtor_obj_drop: false,
        refcount: false,
        percpu_kptr: false,
        wq: false,
        nested_fields: false,
        struct_meta_kptrs: false,
        uptr: false,
        res_spin_lock: false,
        task_work: false,
        kptr_skips_attr_tags: false,
        kptr_untrusted_tag: false,
        kptr_more_maps: false,
        ownership_depth: false,
        free_fields_null_check: false,
        free_fields_migrate_disable: false,
        warn_missing_pointee_meta: true,
        obj_drop_free_rcu: false,
        refcount_acquire_not_zero: false,
        map_btf_put_after_free: false,
        htab_elem_dtor: false,
        inner_percpu_array_max_entries: false,
        map_free_migrate_disable: false,
        lru_free_target_clamped: false,
        htab_percpu_update_frees_fields: false,
        selem_free_fields_rcu: false,
        local_storage_bpf_ma: false,
        selem_free_fields_postponed: false,
        inner_map_free_after_gp: false,
    };
    /// c8e18754 "bpf: Support __kptr to local kptrs" as merged.
    pub const C8E18754: Semantics = Semantics {
        name: "c8e18754",
        kptr_untrusted_tag: true,
        kptr_more_maps: true,
        local_kptr: true,
        local_kptr_holds_btf: true,
        local_kptr_dtor_obj_drop: true,
        selem_free_fields_rcu: true,
        ..Self::V6_3
    };
    /// The v6.4 release.
    pub const V6_4: Semantics = Semantics {
        name: "v6.4",
        local_kptr_dtor_obj_drop: false,
        refcount: true,
        free_fields_null_check: true,
        free_fields_migrate_disable: true,
        selem_free_fields_rcu: false,
        local_storage_bpf_ma: true,
        ..Self::C8E18754
    };
    /// v6.12.
    pub const V6_12: Semantics = Semantics {
        name: "v6.12",
        local_kptr_holds_btf: false,
        percpu_kptr: true,
        wq: true,
        nested_fields: true,
        struct_meta_kptrs: true,
        warn_missing_pointee_meta: false,
        obj_drop_free_rcu: true,
        refcount_acquire_not_zero: true,
        map_btf_put_after_free: true,
        inner_map_free_after_gp: true,
        ..Self::V6_4
    };
    /// v6.18, the running kernel of these machines; the default.
    pub const V6_18: Semantics = Semantics {
        name: "v6.18",
        btf_tag_kflag: true,
        uptr: true,
        res_spin_lock: true,
        task_work: true,
        kptr_skips_attr_tags: true,
        inner_percpu_array_max_entries: true,
        map_free_migrate_disable: true,
        lru_free_target_clamped: true,
        htab_percpu_update_frees_fields: true,
        selem_free_fields_postponed: true,
        ..Self::V6_12
    };

    /// `BTF_FIELDS_MAX`: 10, 11 since `bpf_wq`.
    pub const fn btf_fields_max(&self) -> usize {
        if self.wq { 11 } else { 10 }
    }

    /// All profiles, oldest first.
    pub const ALL: [Semantics; 5] = [
        Self::V6_3,
        Self::C8E18754,
        Self::V6_4,
        Self::V6_12,
        Self::V6_18,
    ];

    /// The same behaviour as `o`, flag for flag, whatever the two are named (a profile
    /// changed with `--set` and back again is the profile it started from).
    pub fn same_flags(&self, o: &Semantics) -> bool {
        Semantics {
            name: o.name,
            ..*self
        } == *o
    }

    /// Looks a profile up by name.
    pub fn by_name(name: &str) -> Option<Semantics> {
        Self::ALL.iter().copied().find(|s| s.name == name)
    }
}

/// One behaviour flag of [`Semantics`]: its name, what it switches and the change that
/// introduced it (for `kptr-model profiles` and `--set FLAG=VALUE`; the doc comments
/// above say more).
#[derive(Clone, Copy)]
pub struct FlagInfo {
    /// The field's name.
    pub name: &'static str,
    /// What the flag switches on, in one line.
    pub summary: &'static str,
    /// The change that introduced it (commit, title or release).
    pub commit: &'static str,
    /// Reads the flag.
    pub get: fn(&Semantics) -> bool,
    /// Sets the flag.
    pub set: fn(&mut Semantics, bool),
}

macro_rules! flag_table {
    ($($f:ident: $summary:expr, $commit:expr;)*) => {
        /// Every flag of [`Semantics`], in declaration order (a unit test checks that
        /// none is missing).
        pub const FLAGS: &[FlagInfo] = &[$(FlagInfo {
            name: stringify!($f),
            summary: $summary,
            commit: $commit,
            get: |s| s.$f,
            set: |s, v| s.$f = v,
        },)*];
    };
}

flag_table! {
    btf_tag_kflag: "TYPE_TAG and DECL_TAG may carry kind_flag (attributes)",
        "bpf: allow kind_flag for BTF type and decl tags (after v6.12)";
    local_kptr: "a __kptr to a program-only type is a local kptr",
        "c8e18754 bpf: Support __kptr to local kptrs (v6.4)";
    local_kptr_holds_btf: "a local kptr field holds a program-BTF reference",
        "c8e18754 (v6.4); dropped in v6.12";
    local_kptr_dtor_obj_drop: "a local kptr's destructor slot holds __bpf_obj_drop_impl",
        "c8e18754; 9e36a204bd43 (v6.4) stores NULL";
    refcount: "bpf_refcount; list and rb nodes grow an owner field",
        "the bpf_refcount series (v6.4)";
    percpu_kptr: "__percpu_kptr fields", "v6.6";
    wq: "bpf_wq fields (BTF_FIELDS_MAX 10 -> 11)", "d56b63cf0c0f (v6.10)";
    nested_fields: "special fields in arrays and nested structs",
        "btf_find_field_one, btf_repeat_fields (v6.10)";
    struct_meta_kptrs: "struct metas parse kptrs: local objects may hold kptrs", "v6.12";
    uptr: "__uptr fields in task storage", "v6.13";
    res_spin_lock: "bpf_res_spin_lock fields", "v6.15";
    task_work: "bpf_task_work fields", "v6.18";
    kptr_skips_attr_tags: "btf_find_kptr ignores TYPE_TAGs with kind_flag", "v6.14";
    kptr_untrusted_tag: "`kptr` is referenced, `kptr_untrusted` unreferenced",
        "03b77e17aeb2 bpf: Rename __kptr_ref -> __kptr and __kptr -> __kptr_untrusted (v6.4)";
    kptr_more_maps: "kptrs in per-CPU hashes and local storages",
        "bpf: Support kptrs in percpu hashmap and percpu LRU hashmap; ... in local storage maps (v6.4)";
    ownership_depth: "ownership bounded by depth instead of the owner-and-owned rule",
        "stable backport (Debian 6.12.117); in no named profile";
    free_fields_null_check: "a kptr's destructor runs only after a non-NULL xchg",
        "bpf: only invoke kptr dtor following non-NULL xchg (v6.4)";
    free_fields_migrate_disable: "local kptrs are dropped with migration disabled",
        "9e36a204bd43 (v6.4)";
    warn_missing_pointee_meta: "teardown WARNs when a local pointee has no struct meta",
        "c8e18754 to v6.5";
    obj_drop_free_rcu: "__bpf_obj_drop_impl frees through bpf_mem_free_rcu", "v6.6";
    refcount_acquire_not_zero: "bpf_refcount_acquire uses refcount_inc_not_zero", "v6.6";
    map_btf_put_after_free: "the map's BTF is put after map_free", "59e5791f59dd (v6.7)";
    htab_elem_dtor: "freed non-preallocated hash elements free their special fields again",
        "newest kernels; not in 6.18";
    inner_percpu_array_max_entries: "a per-CPU array inner map must have the template's max_entries",
        "percpu_array_map_gen_lookup (v6.10; commit not identified offline)";
    map_free_migrate_disable: "bpf_map_free runs map_free with migration disabled; the free paths no longer toggle it",
        "Hou Tao, bpf: Disable migration before calling ops->map_free() (v6.14 series)";
    lru_free_target_clamped: "an LRU map's free target is clamped to the map's size",
        "d4adf1c9ee77 bpf: Adjust free target to avoid global starvation of LRU map (v6.16)";
    htab_percpu_update_frees_fields: "per-CPU hash updates free the old special fields",
        "Leon Hwang, bpf: Free special fields when update [lru_,]percpu_hash maps (after v6.18-rc4)";
    selem_free_fields_rcu: "a local storage element's special fields are freed in an RCU callback after its unlink",
        "bpf: Support kptrs in local storage maps (v6.4 cycle); removed by bpf: Remove bpf_selem_free_fields*_rcu (v6.4)";
    local_storage_bpf_ma: "task and cgroup storage elements come from the BPF memory allocator",
        "bpf: Use bpf_mem_cache_alloc/free in bpf_local_storage_elem (v6.4)";
    selem_free_fields_postponed: "a deleted bpf_ma storage element's special fields are freed in the RCU callback",
        "Martin KaFai Lau, bpf: Postpone bpf_obj_free_fields to the rcu callback (v6.13)";
    inner_map_free_after_gp: "an inner map removed from a map of maps is freed after the grace periods",
        "Hou Tao, bpf: Defer the free of inner map when necessary (v6.8)";
}

impl Semantics {
    /// The flag named `name`, if [`FLAGS`] has it.
    pub fn flag(name: &str) -> Option<&'static FlagInfo> {
        FLAGS.iter().find(|f| f.name == name)
    }
}

impl Default for Semantics {
    fn default() -> Self {
        Self::V6_18
    }
}

#[cfg(test)]
mod flag_table_tests {
    extern crate std;
    use super::*;
    use std::format;
    use std::vec::Vec;

    /// Every field of `Semantics` but `name` is in `FLAGS`, in order, and each entry
    /// reads and writes its own field.
    #[test]
    fn every_flag_is_in_the_table() {
        let dbg = format!("{:?}", Semantics::V6_18);
        let inner = dbg
            .split_once('{')
            .and_then(|(_, r)| r.rsplit_once('}'))
            .map(|(l, _)| l)
            .unwrap();
        let fields: Vec<&str> = inner
            .split(',')
            .filter_map(|kv| kv.split_once(':'))
            .map(|(k, _)| k.trim())
            .filter(|k| *k != "name")
            .collect();
        let names: Vec<&str> = FLAGS.iter().map(|f| f.name).collect();
        assert_eq!(fields, names);
        let base = Semantics::V6_3;
        for f in FLAGS {
            let mut s = base;
            (f.set)(&mut s, !(f.get)(&base));
            for g in FLAGS {
                let flipped = (g.get)(&s) != (g.get)(&base);
                assert_eq!(
                    flipped,
                    g.name == f.name,
                    "setting {} changed {}",
                    f.name,
                    g.name
                );
            }
        }
    }
}
