/work/main/target-nostd/debug/deps/kernel_core-e839fab86b8f52de.d: kernel-core/src/lib.rs kernel-core/src/btf/mod.rs kernel-core/src/btf/builder.rs kernel-core/src/btf/dtors.rs kernel-core/src/btf/log.rs kernel-core/src/btf/name_index.rs kernel-core/src/btf/names.rs kernel-core/src/btf/object.rs kernel-core/src/btf/registry.rs kernel-core/src/btf/types.rs kernel-core/src/btf/uapi.rs kernel-core/src/btf/verifier.rs kernel-core/src/errno.rs kernel-core/src/map/mod.rs kernel-core/src/map/bpf_map.rs kernel-core/src/map/check_btf.rs kernel-core/src/map/create.rs kernel-core/src/map/local_storage.rs kernel-core/src/map/lru.rs kernel-core/src/map/map_in_map.rs kernel-core/src/map/runtime.rs kernel-core/src/map/types.rs kernel-core/src/map/value.rs kernel-core/src/module.rs kernel-core/src/obj/mod.rs kernel-core/src/obj/free_fields.rs kernel-core/src/obj/helpers.rs kernel-core/src/obj/local_frees.rs kernel-core/src/obj/mem.rs kernel-core/src/obj/runtime.rs kernel-core/src/obj/uptr.rs kernel-core/src/obj/user_pages.rs kernel-core/src/profile.rs kernel-core/src/record/mod.rs kernel-core/src/record/field.rs kernel-core/src/record/find.rs kernel-core/src/record/free.rs kernel-core/src/record/metas.rs kernel-core/src/record/parse.rs kernel-core/src/sync/mod.rs kernel-core/src/sync/rcu.rs kernel-core/src/sync/refcount.rs kernel-core/src/sync/spinlock.rs kernel-core/src/sync/task.rs kernel-core/src/sync/warn.rs kernel-core/src/sync/word.rs kernel-core/src/syscall.rs kernel-core/src/tally.rs kernel-core/src/trace.rs kernel-core/src/why.rs Cargo.toml

/work/main/target-nostd/debug/deps/libkernel_core-e839fab86b8f52de.rmeta: kernel-core/src/lib.rs kernel-core/src/btf/mod.rs kernel-core/src/btf/builder.rs kernel-core/src/btf/dtors.rs kernel-core/src/btf/log.rs kernel-core/src/btf/name_index.rs kernel-core/src/btf/names.rs kernel-core/src/btf/object.rs kernel-core/src/btf/registry.rs kernel-core/src/btf/types.rs kernel-core/src/btf/uapi.rs kernel-core/src/btf/verifier.rs kernel-core/src/errno.rs kernel-core/src/map/mod.rs kernel-core/src/map/bpf_map.rs kernel-core/src/map/check_btf.rs kernel-core/src/map/create.rs kernel-core/src/map/local_storage.rs kernel-core/src/map/lru.rs kernel-core/src/map/map_in_map.rs kernel-core/src/map/runtime.rs kernel-core/src/map/types.rs kernel-core/src/map/value.rs kernel-core/src/module.rs kernel-core/src/obj/mod.rs kernel-core/src/obj/free_fields.rs kernel-core/src/obj/helpers.rs kernel-core/src/obj/local_frees.rs kernel-core/src/obj/mem.rs kernel-core/src/obj/runtime.rs kernel-core/src/obj/uptr.rs kernel-core/src/obj/user_pages.rs kernel-core/src/profile.rs kernel-core/src/record/mod.rs kernel-core/src/record/field.rs kernel-core/src/record/find.rs kernel-core/src/record/free.rs kernel-core/src/record/metas.rs kernel-core/src/record/parse.rs kernel-core/src/sync/mod.rs kernel-core/src/sync/rcu.rs kernel-core/src/sync/refcount.rs kernel-core/src/sync/spinlock.rs kernel-core/src/sync/task.rs kernel-core/src/sync/warn.rs kernel-core/src/sync/word.rs kernel-core/src/syscall.rs kernel-core/src/tally.rs kernel-core/src/trace.rs kernel-core/src/why.rs Cargo.toml

kernel-core/src/lib.rs:
kernel-core/src/btf/mod.rs:
kernel-core/src/btf/builder.rs:
kernel-core/src/btf/dtors.rs:
kernel-core/src/btf/log.rs:
kernel-core/src/btf/name_index.rs:
kernel-core/src/btf/names.rs:
kernel-core/src/btf/object.rs:
kernel-core/src/btf/registry.rs:
kernel-core/src/btf/types.rs:
kernel-core/src/btf/uapi.rs:
kernel-core/src/btf/verifier.rs:
kernel-core/src/errno.rs:
kernel-core/src/map/mod.rs:
kernel-core/src/map/bpf_map.rs:
kernel-core/src/map/check_btf.rs:
kernel-core/src/map/create.rs:
kernel-core/src/map/local_storage.rs:
kernel-core/src/map/lru.rs:
kernel-core/src/map/map_in_map.rs:
kernel-core/src/map/runtime.rs:
kernel-core/src/map/types.rs:
kernel-core/src/map/value.rs:
kernel-core/src/module.rs:
kernel-core/src/obj/mod.rs:
kernel-core/src/obj/free_fields.rs:
kernel-core/src/obj/helpers.rs:
kernel-core/src/obj/local_frees.rs:
kernel-core/src/obj/mem.rs:
kernel-core/src/obj/runtime.rs:
kernel-core/src/obj/uptr.rs:
kernel-core/src/obj/user_pages.rs:
kernel-core/src/profile.rs:
kernel-core/src/record/mod.rs:
kernel-core/src/record/field.rs:
kernel-core/src/record/find.rs:
kernel-core/src/record/free.rs:
kernel-core/src/record/metas.rs:
kernel-core/src/record/parse.rs:
kernel-core/src/sync/mod.rs:
kernel-core/src/sync/rcu.rs:
kernel-core/src/sync/refcount.rs:
kernel-core/src/sync/spinlock.rs:
kernel-core/src/sync/task.rs:
kernel-core/src/sync/warn.rs:
kernel-core/src/sync/word.rs:
kernel-core/src/syscall.rs:
kernel-core/src/tally.rs:
kernel-core/src/trace.rs:
kernel-core/src/why.rs:
Cargo.toml:

# env-dep:CLIPPY_ARGS=-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__
# env-dep:CLIPPY_CONF_DIR
