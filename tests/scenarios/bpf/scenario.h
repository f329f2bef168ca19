/* SPDX-License-Identifier: GPL-2.0 */
/*
 * scenario.h - the programs a run-time scenario's steps run (kptr-model run;
 * tests/scenarios/README.md). Every scenario object has one map, `vals`, whose
 * value is struct val, and three SEC("syscall") programs that act on the value
 * of one key, as BPF_PROG_TEST_RUN runs them with struct args as the context:
 *
 *   stash: bpf_obj_new a struct obj, give it args->id, bpf_kptr_xchg it into
 *          the slot; the object it displaces is reported (its id) and dropped;
 *   take:  bpf_kptr_xchg NULL into the slot; the object taken is reported and
 *          dropped;
 *   peek:  bpf_kptr_xchg NULL into the slot, report the object, put it back;
 *   stash_deleted (hash maps): look the value up, delete its key with
 *          bpf_map_delete_elem while still holding the value, then stash a new
 *          object (args->id) into it: the object lands in an element the map no
 *          longer links, which a preallocated map reuses for a later insert.
 *
 * args->ret: the id reported, 0 for an empty slot, or -errno (-ENOENT: no
 * value for the key; -ENOMEM: bpf_obj_new failed).
 *
 * With SC_TIMER the value also has a struct bpf_timer, and timer_init runs
 * bpf_timer_init on it (args->ret: its result).
 *
 * Local storage objects (sc_task_storage.c, sc_cgrp_storage.c,
 * sc_sk_storage.c) have the same four programs over the owner's value:
 * stash looks it up with BPF_LOCAL_STORAGE_GET_F_CREATE, the others without;
 * stash_deleted deletes it with the storage's delete helper while holding it.
 * args->owner names the owner where a program needs it (a cgroup id, a socket
 * cookie).
 */
#ifndef KPTR_SCENARIO_H
#define KPTR_SCENARIO_H

#include "../../fixtures/corpus/src/experimental.h"

struct obj {
	__u64 id;
	__u64 payload;
};

/* The same layout with and without the lock: per-CPU and LRU maps take no
 * bpf_spin_lock (map_check_btf), so their objects define SC_NO_LOCK. */
struct val {
#ifdef SC_NO_LOCK
	__u32 nolock;
#else
	struct bpf_spin_lock lock;
#endif
	__u32 data;
	struct obj __kptr *slot;
	__u64 more;
#ifdef SC_TIMER
	struct bpf_timer timer;
#endif
};

struct args {
	__u32 key;
	__u32 pad;
	__u64 id;
	__s64 ret;
	__u64 owner;
};

#define SC_ENOENT 2
#define SC_ENOMEM 12

/* LOOKUP(a) yields a struct val * for args a, or NULL. */
#define SCENARIO_PROGRAMS(LOOKUP)						\
SEC("syscall")									\
int stash(struct args *a)							\
{										\
	struct val *v = LOOKUP(a);						\
	struct obj *o;								\
										\
	if (!v) {								\
		a->ret = -SC_ENOENT;						\
		return 0;							\
	}									\
	o = bpf_obj_new(struct obj);						\
	if (!o) {								\
		a->ret = -SC_ENOMEM;						\
		return 0;							\
	}									\
	o->id = a->id;								\
	o = bpf_kptr_xchg(&v->slot, o);						\
	a->ret = 0;								\
	if (o) {								\
		a->ret = o->id;							\
		bpf_obj_drop(o);						\
	}									\
	return 0;								\
}										\
										\
SEC("syscall")									\
int take(struct args *a)							\
{										\
	struct val *v = LOOKUP(a);						\
	struct obj *o;								\
										\
	if (!v) {								\
		a->ret = -SC_ENOENT;						\
		return 0;							\
	}									\
	o = bpf_kptr_xchg(&v->slot, NULL);					\
	a->ret = 0;								\
	if (o) {								\
		a->ret = o->id;							\
		bpf_obj_drop(o);						\
	}									\
	return 0;								\
}										\
										\
SEC("syscall")									\
int peek(struct args *a)							\
{										\
	struct val *v = LOOKUP(a);						\
	struct obj *o;								\
										\
	if (!v) {								\
		a->ret = -SC_ENOENT;						\
		return 0;							\
	}									\
	o = bpf_kptr_xchg(&v->slot, NULL);					\
	a->ret = 0;								\
	if (o) {								\
		a->ret = o->id;							\
		o = bpf_kptr_xchg(&v->slot, o);					\
		if (o)								\
			bpf_obj_drop(o);					\
	}									\
	return 0;								\
}										\
										\
char _license[] SEC("license") = "GPL";

/* stash_deleted: for the hash maps, whose keys a program can delete. */
#define SCENARIO_DELETE_PROGRAM							\
SEC("syscall")									\
int stash_deleted(struct args *a)						\
{										\
	__u32 key = a->key;							\
	struct val *v = bpf_map_lookup_elem(&vals, &key);			\
	struct obj *o;								\
										\
	if (!v) {								\
		a->ret = -SC_ENOENT;						\
		return 0;							\
	}									\
	bpf_map_delete_elem(&vals, &key);					\
	o = bpf_obj_new(struct obj);						\
	if (!o) {								\
		a->ret = -SC_ENOMEM;						\
		return 0;							\
	}									\
	o->id = a->id;								\
	o = bpf_kptr_xchg(&v->slot, o);						\
	a->ret = 0;								\
	if (o) {								\
		a->ret = o->id;							\
		bpf_obj_drop(o);						\
	}									\
	return 0;								\
}

/* timer_init: bpf_timer_init on the value's timer (SC_TIMER objects). */
#define SCENARIO_TIMER_PROGRAM(LOOKUP)						\
SEC("syscall")									\
int timer_init(struct args *a)							\
{										\
	struct val *v = LOOKUP(a);						\
										\
	if (!v) {								\
		a->ret = -SC_ENOENT;						\
		return 0;							\
	}									\
	a->ret = bpf_timer_init(&v->timer, &vals, CLOCK_MONOTONIC);		\
	return 0;								\
}

/* Local storage from SEC("syscall") programs: GET(a, flags) yields the
 * owner's value (or NULL), DELETE(a) deletes it (the helper's result). */
#define SCENARIO_STORAGE_PROGRAMS(GET, DELETE)					\
SEC("syscall")									\
int stash(struct args *a)							\
{										\
	struct val *v = GET(a, BPF_LOCAL_STORAGE_GET_F_CREATE);			\
										\
	a->ret = sc_stash(v, a->id);						\
	return 0;								\
}										\
										\
SEC("syscall")									\
int take(struct args *a)							\
{										\
	a->ret = sc_take(GET(a, 0));						\
	return 0;								\
}										\
										\
SEC("syscall")									\
int peek(struct args *a)							\
{										\
	a->ret = sc_peek(GET(a, 0));						\
	return 0;								\
}										\
										\
SEC("syscall")									\
int stash_deleted(struct args *a)						\
{										\
	struct val *v = GET(a, 0);						\
										\
	if (!v) {								\
		a->ret = -SC_ENOENT;						\
		return 0;							\
	}									\
	DELETE(a);								\
	a->ret = sc_stash(v, a->id);						\
	return 0;								\
}										\
										\
char _license[] SEC("license") = "GPL";

/* The steps on a value the storage programs share: the id reported, 0, or
 * -errno (as args->ret). */
static __always_inline __s64 sc_stash(struct val *v, __u64 id)
{
	struct obj *o;
	__s64 ret = 0;

	if (!v)
		return -SC_ENOENT;
	o = bpf_obj_new(struct obj);
	if (!o)
		return -SC_ENOMEM;
	o->id = id;
	o = bpf_kptr_xchg(&v->slot, o);
	if (o) {
		ret = o->id;
		bpf_obj_drop(o);
	}
	return ret;
}

static __always_inline __s64 sc_take(struct val *v)
{
	struct obj *o;
	__s64 ret = 0;

	if (!v)
		return -SC_ENOENT;
	o = bpf_kptr_xchg(&v->slot, NULL);
	if (o) {
		ret = o->id;
		bpf_obj_drop(o);
	}
	return ret;
}

static __always_inline __s64 sc_peek(struct val *v)
{
	struct obj *o;
	__s64 ret = 0;

	if (!v)
		return -SC_ENOENT;
	o = bpf_kptr_xchg(&v->slot, NULL);
	if (o) {
		ret = o->id;
		o = bpf_kptr_xchg(&v->slot, o);
		if (o)
			bpf_obj_drop(o);
	}
	return ret;
}

/* The key goes through the stack: a helper takes no pointer into the context. */
#define LOOKUP_VALS(a)								\
	({									\
		__u32 __key = (a)->key;						\
		(struct val *)bpf_map_lookup_elem(&vals, &__key);		\
	})

#endif
