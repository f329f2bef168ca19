/* sc_task_storage.c - a scenario object: a BPF_MAP_TYPE_TASK_STORAGE map of
 * struct val, and the storage programs (scenario.h) on the task that runs
 * them (bpf_get_current_task_btf: the thread that calls BPF_PROG_TEST_RUN; user
 * space names it with a pidfd). */
#include "scenario.h"

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct val);
} vals SEC(".maps");

#define TASK_GET(a, flags)							\
	((struct val *)bpf_task_storage_get(&vals, bpf_get_current_task_btf(),	\
					    NULL, flags))
#define TASK_DELETE(a) bpf_task_storage_delete(&vals, bpf_get_current_task_btf())

SCENARIO_STORAGE_PROGRAMS(TASK_GET, TASK_DELETE)
