/* sc_hash.c - a scenario object: one BPF_MAP_TYPE_HASH map of 4 entries (map_flags
 * 0) holding struct val, and the scenario programs (scenario.h). */
#include "scenario.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4);
	__uint(map_flags, 0);
	__type(key, __u32);
	__type(value, struct val);
} vals SEC(".maps");

SCENARIO_PROGRAMS(LOOKUP_VALS)
SCENARIO_DELETE_PROGRAM
