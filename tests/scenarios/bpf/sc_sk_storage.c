/* sc_sk_storage.c - a scenario object: a BPF_MAP_TYPE_SK_STORAGE map of
 * struct val, and the storage programs on a UDP socket the runner creates.
 * No program type BPF_PROG_TEST_RUN runs can reach a socket of the caller's
 * (a test run's skb carries a socket of its own, freed after the run), so the
 * programs are UDP socket iterators (SEC("iter/udp"): bpf_sk_storage_get is
 * allowed in iterators): user space writes struct args into sc_args (owner:
 * the socket's cookie), reads the iterator to its end, and reads args->ret
 * back; the program acts on the socket whose cookie it is and on no other. */
#include "scenario.h"

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct val);
} vals SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct args);
} sc_args SEC(".maps");

#pragma clang attribute push(__attribute__((preserve_access_index)), apply_to = record)
struct bpf_iter_meta {
	void *seq;
	__u64 session_id;
	__u64 seq_num;
};

struct udp_sock;

struct bpf_iter__udp {
	struct bpf_iter_meta *meta;
	struct udp_sock *udp_sk;
	__u32 uid;
	int bucket;
};
#pragma clang attribute pop

static __u64 (*bpf_get_socket_cookie)(void *sk) = (void *) 46;

/* The args, when the iterator is at the runner's socket. */
static __always_inline struct args *sk_args(struct udp_sock *sk)
{
	__u32 zero = 0;
	struct args *a;

	if (!sk)
		return NULL;
	a = bpf_map_lookup_elem(&sc_args, &zero);
	if (!a || bpf_get_socket_cookie(sk) != a->owner)
		return NULL;
	return a;
}

SEC("iter/udp")
int stash(struct bpf_iter__udp *ctx)
{
	struct udp_sock *sk = ctx->udp_sk;
	struct args *a = sk_args(sk);

	if (a)
		a->ret = sc_stash(bpf_sk_storage_get(&vals, sk, NULL,
						     BPF_LOCAL_STORAGE_GET_F_CREATE),
				  a->id);
	return 0;
}

SEC("iter/udp")
int take(struct bpf_iter__udp *ctx)
{
	struct udp_sock *sk = ctx->udp_sk;
	struct args *a = sk_args(sk);

	if (a)
		a->ret = sc_take(bpf_sk_storage_get(&vals, sk, NULL, 0));
	return 0;
}

SEC("iter/udp")
int peek(struct bpf_iter__udp *ctx)
{
	struct udp_sock *sk = ctx->udp_sk;
	struct args *a = sk_args(sk);

	if (a)
		a->ret = sc_peek(bpf_sk_storage_get(&vals, sk, NULL, 0));
	return 0;
}

SEC("iter/udp")
int stash_deleted(struct bpf_iter__udp *ctx)
{
	struct udp_sock *sk = ctx->udp_sk;
	struct args *a = sk_args(sk);
	struct val *v;

	if (!a)
		return 0;
	v = bpf_sk_storage_get(&vals, sk, NULL, 0);
	if (!v) {
		a->ret = -SC_ENOENT;
		return 0;
	}
	bpf_sk_storage_delete(&vals, sk);
	a->ret = sc_stash(v, a->id);
	return 0;
}

char _license[] SEC("license") = "GPL";
