/* sc_cgrp_storage.c - a scenario object: a BPF_MAP_TYPE_CGRP_STORAGE map of
 * struct val, and the storage programs (scenario.h) on the cgroup whose id is
 * args->owner (bpf_cgroup_from_id: a cgroup the runner creates; user space
 * names it with an fd of its directory). */
#include "scenario.h"

struct {
	__uint(type, BPF_MAP_TYPE_CGRP_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct val);
} vals SEC(".maps");

static __always_inline struct val *cgrp_get(struct args *a, __u64 flags)
{
	struct cgroup *cg = bpf_cgroup_from_id(a->owner);
	struct val *v;

	if (!cg)
		return NULL;
	v = bpf_cgrp_storage_get(&vals, cg, NULL, flags);
	bpf_cgroup_release(cg);
	return v;
}

static __always_inline long cgrp_delete(struct args *a)
{
	struct cgroup *cg = bpf_cgroup_from_id(a->owner);
	long ret;

	if (!cg)
		return -SC_ENOENT;
	ret = bpf_cgrp_storage_delete(&vals, cg);
	bpf_cgroup_release(cg);
	return ret;
}

SCENARIO_STORAGE_PROGRAMS(cgrp_get, cgrp_delete)
