/* sc_timer_hash.c - a scenario object: one BPF_MAP_TYPE_HASH map of 4 entries
 * (preallocated) whose struct val also has a struct bpf_timer (SC_TIMER), and
 * the timer_init program (htab_map_free_timers_and_wq at the last user
 * reference). */
#define SC_TIMER
#include "scenario.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, struct val);
} vals SEC(".maps");

SCENARIO_PROGRAMS(LOOKUP_VALS)
SCENARIO_DELETE_PROGRAM
SCENARIO_TIMER_PROGRAM(LOOKUP_VALS)
