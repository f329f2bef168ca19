// SPDX-License-Identifier: GPL-2.0
/*
 * prepare.c - ask the installed libbpf what it makes of a BPF object, and the
 * kernel what it received: opens OBJ with libbpf, turns off every program's
 * autoload, loads the object (BTF and maps only), and prints as JSON the BTF
 * bytes the kernel holds (BPF_OBJ_GET_INFO_BY_FD on the object's BTF fd) and
 * every map as the kernel reports it. Nothing is pinned; every fd is closed
 * when the object is closed.
 *
 * Never give it an object whose layout makes the kernel WARN (a value with both
 * bpf_spin_lock and bpf_res_spin_lock, a graph root guarded only by a
 * bpf_res_spin_lock, ...: kptr_tests::KERNEL_UNSAFE_FIXTURES): loading or closing
 * it taints the machine. It loads nothing unless KPTR_PREPARE_CHECKED=1 says the
 * caller has asked the model first, as tests/tests/libbpf_prepare.rs does.
 *
 * Usage: KPTR_PREPARE_CHECKED=1 prepare OBJ.o   (the object name comes from OBJ)
 * Exit: 0 after printing, also when libbpf refuses the object
 * ({"open_error": errno} or {"load_error": errno, ...}); 2 on a usage error.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

static int quiet(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	if (level == LIBBPF_WARN)
		return vfprintf(stderr, fmt, ap);
	return 0;
}

static void print_btf(int fd)
{
	struct bpf_btf_info info;
	__u32 len = sizeof(info), i;
	unsigned char *buf;

	memset(&info, 0, sizeof(info));
	if (bpf_obj_get_info_by_fd(fd, &info, &len)) {
		printf("\"btf_info_error\": %d", errno);
		return;
	}
	buf = calloc(1, info.btf_size ? info.btf_size : 1);
	if (!buf) {
		printf("\"btf_info_error\": %d", ENOMEM);
		return;
	}
	len = sizeof(info);
	__u32 size = info.btf_size;
	memset(&info, 0, sizeof(info));
	info.btf = (unsigned long)buf;
	info.btf_size = size;
	if (bpf_obj_get_info_by_fd(fd, &info, &len)) {
		printf("\"btf_info_error\": %d", errno);
		free(buf);
		return;
	}
	printf("\"btf\": \"");
	for (i = 0; i < size; i++)
		printf("%02x", buf[i]);
	printf("\"");
	free(buf);
}

int main(int argc, char **argv)
{
	struct bpf_object *obj;
	struct bpf_program *prog;
	struct bpf_map *map;
	int err, first = 1;

	if (argc != 2) {
		fprintf(stderr, "usage: %s OBJ.o\n", argv[0]);
		return 2;
	}
	if (!getenv("KPTR_PREPARE_CHECKED")) {
		fprintf(stderr, "%s: not loading %s: set KPTR_PREPARE_CHECKED=1 once the "
			"model says it raises no kernel WARN\n", argv[0], argv[1]);
		return 2;
	}
	libbpf_set_print(quiet);
	obj = bpf_object__open_file(argv[1], NULL);
	err = libbpf_get_error(obj);
	if (err) {
		printf("{\"open_error\": %d}\n", -err);
		return 0;
	}
	bpf_object__for_each_program(prog, obj)
		bpf_program__set_autoload(prog, false);
	err = bpf_object__load(obj);
	printf("{\"object\": \"%s\", \"libbpf\": [%u, %u], \"load_error\": %d, ",
	       bpf_object__name(obj), libbpf_major_version(), libbpf_minor_version(),
	       err < 0 ? -err : 0);
	if (bpf_object__btf_fd(obj) >= 0)
		print_btf(bpf_object__btf_fd(obj));
	else
		printf("\"btf\": null");
	printf(", \"maps\": [");
	bpf_object__for_each_map(map, obj) {
		struct bpf_map_info info;
		__u32 len = sizeof(info);
		int fd = bpf_map__fd(map);

		printf("%s{\"libbpf_name\": \"%s\"", first ? "" : ", ", bpf_map__name(map));
		first = 0;
		memset(&info, 0, sizeof(info));
		if (fd < 0 || bpf_obj_get_info_by_fd(fd, &info, &len)) {
			printf(", \"created\": false}");
			continue;
		}
		printf(", \"created\": true, \"name\": \"%s\", \"type\": %u, \"key_size\": %u, "
		       "\"value_size\": %u, \"max_entries\": %u, \"map_flags\": %u, "
		       "\"btf_key_type_id\": %u, \"btf_value_type_id\": %u, \"has_btf\": %s}",
		       info.name, info.type, info.key_size, info.value_size, info.max_entries,
		       info.map_flags, info.btf_key_type_id, info.btf_value_type_id,
		       info.btf_id ? "true" : "false");
	}
	printf("]}\n");
	bpf_object__close(obj);
	return 0;
}
