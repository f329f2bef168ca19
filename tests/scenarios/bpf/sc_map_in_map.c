/* sc_map_in_map.c - a scenario object: an ARRAY_OF_MAPS `outer` whose slot 0
 * holds `vals` (an ARRAY of 4 struct val); the programs reach the value
 * through the outer map, as programs using maps of maps do. */
#include "scenario.h"

struct inner {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, struct val);
};

struct inner vals SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 1);
	__type(key, __u32);
	__array(values, struct inner);
} outer SEC(".maps") = {
	.values = { [0] = (void *)&vals },
};

static __always_inline struct val *lookup_inner(struct args *a)
{
	__u32 zero = 0, key = a->key;
	void *in = bpf_map_lookup_elem(&outer, &zero);

	if (!in)
		return NULL;

	return bpf_map_lookup_elem(in, &key);
}

SCENARIO_PROGRAMS(lookup_inner)
