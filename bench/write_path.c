/*
 * write_path.c - vigil-bench-writepath: what one spec rewrite costs in
 * CPU on the file system of a directory, by the two atomic-replace paths
 * vigild has (src/util.c):
 *
 *   create+rename    a fresh temp file (O_CREAT|O_EXCL), write, close,
 *                    renameat over the spec (vigil_fs_replace)
 *   shadow+exchange  the spec's shadow rewritten in place (pwrite,
 *                    ftruncate), then renameat2(RENAME_EXCHANGE) with the
 *                    spec (vigil_fs_replace_shadow)
 *
 * Usage: vigil-bench-writepath DIR [FILES [ROUNDS]] (defaults 2000, 5).
 * The rounds alternate the two paths, so that a busy host's noise hits
 * both alike; the first shadow round also creates the shadows (the cost
 * a spec pays once).  Figures are process CPU (user + system) per write.
 * Leaves FILES specs and their shadows in DIR (use a scratch directory).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

static double cpu_s(double *sys)
{
	struct rusage r;
	getrusage(RUSAGE_SELF, &r);
	*sys = (double)r.ru_stime.tv_sec + (double)r.ru_stime.tv_usec / 1e6;
	return *sys + (double)r.ru_utime.tv_sec + (double)r.ru_utime.tv_usec / 1e6;
}

static int one(int d, int i, int shadow, const char *buf, size_t len, unsigned long *seq)
{
	char name[64], tmp[160];
	snprintf(name, sizeof name, "worker-%05d.json", i);
	if (!shadow) {
		snprintf(tmp, sizeof tmp, ".%s.tmp.%d.%lu", name, (int)getpid(), (*seq)++);
		int fd = openat(d, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
		if (fd < 0 || write(fd, buf, len) != (ssize_t)len)
			return -1;
		close(fd);
		return renameat(d, tmp, d, name);
	}
	snprintf(tmp, sizeof tmp, ".%s.shadow", name);
	int fresh = 0;
	int fd = openat(d, tmp, O_WRONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	struct stat st;
	if (fd >= 0 && fstat(fd, &st) < 0)
		return -1;
	if (fd < 0) {
		fd = openat(d, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
		fresh = 1;
	}
	if (fd < 0 || pwrite(fd, buf, len, 0) != (ssize_t)len || (!fresh && ftruncate(fd, (off_t)len) < 0))
		return -1;
	close(fd);
	if (renameat2(d, tmp, d, name, RENAME_EXCHANGE) == 0)
		return 0;
	return renameat(d, tmp, d, name);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: vigil-bench-writepath DIR [FILES [ROUNDS]]\n");
		return 2;
	}
	int files = argc > 2 ? atoi(argv[2]) : 2000, rounds = argc > 3 ? atoi(argv[3]) : 5;
	if (files <= 0 || files > 100000 || rounds <= 0 || rounds > 100) {
		fprintf(stderr, "vigil-bench-writepath: FILES in [1, 100000], ROUNDS in [1, 100]\n");
		return 2;
	}
	int d = open(argv[1], O_DIRECTORY | O_RDONLY | O_CLOEXEC);
	if (d < 0) {
		perror(argv[1]);
		return 1;
	}
	char buf[620]; /* about a spec's size */
	memset(buf, 'x', sizeof buf);
	buf[sizeof buf - 1] = '\n';
	unsigned long seq = 0;
	for (int r = 0; r < rounds; r++)
		for (int shadow = 0; shadow < 2; shadow++) {
			double s0, s1;
			double c0 = cpu_s(&s0);
			for (int i = 0; i < files; i++)
				if (one(d, i, shadow, buf, sizeof buf, &seq) < 0) {
					perror("write");
					return 1;
				}
			double c1 = cpu_s(&s1);
			printf("round %d %-16s %7.1f us CPU per write (%.1f system)\n", r,
			       shadow ? "shadow+exchange" : "create+rename", (c1 - c0) * 1e6 / files,
			       (s1 - s0) * 1e6 / files);
		}
	return 0;
}
