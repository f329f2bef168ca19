/* sc_timer_array.c - a scenario object: one BPF_MAP_TYPE_ARRAY map of 4
 * entries whose struct val also has a struct bpf_timer (SC_TIMER), and the
 * timer_init program: the timers go when user space drops its last reference
 * to the map (map_release_uref), the kptrs stay. */
#define SC_TIMER
#include "scenario.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, struct val);
} vals SEC(".maps");

SCENARIO_PROGRAMS(LOOKUP_VALS)
SCENARIO_TIMER_PROGRAM(LOOKUP_VALS)
