/* sc_array_nolock.c - a scenario object: one BPF_MAP_TYPE_ARRAY map of 4
 * entries whose struct val has no bpf_spin_lock (SC_NO_LOCK), for the order in
 * which map_update_elem and array_map_update_elem refuse BPF_F_LOCK. */
#define SC_NO_LOCK
#include "scenario.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, struct val);
} vals SEC(".maps");

SCENARIO_PROGRAMS(LOOKUP_VALS)
