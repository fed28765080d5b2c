/*
 * common.c - vigilctl's shared preamble and helpers: usage errors, the
 * --home/--shm resolution, opening the segment and reading its slots, and
 * the JSON files under the home through which vigilctl talks to vigild.
 *
 * Part of vigilctl (see tools/vigilctl.c and ctl.h for the whole).
 */
#include "ctl.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>

/* Contract in ctl.h.  optind 0, not 1: getopt_long then reinitialises,
 * which it must since main() has already parsed the global options. */
void ctl_opt_begin(void)
{
	optind = 0;
	opterr = 0;
}

/* Contract in ctl.h.  The loop ends: every getopt_long call consumes at
 * least one element of argv, and it returns -1 past the last.  o->name is
 * a row of the table (a constant of the command's own file). */
int ctl_opt_next(const struct ctl_opts *o, int argc, char **argv, struct common *c)
{
	for (;;) {
		int opt = getopt_long(argc, argv, o->shortopts, o->longopts, NULL);
		switch (opt) {
		case 'H': c->home_arg = optarg; break;
		case 'S': c->shm_arg = optarg; break;
		case 'h':
			ctl_usage_cmd(stdout, ctl_find_cmd(o->name));
			o->help(o->ctx);
			return CTL_OPT_HELP;
		default: return opt;
		}
	}
}

/* Reports an unknown option or a missing argument from getopt_long (run
 * with opterr = 0) and returns EXIT_USAGE. */
int ctl_bad_option(const char *cmd, int opt, char **argv)
{
	const char *what = argv[optind - 1];
	if (opt == ':')
		fprintf(stderr, "vigilctl %s: option '%s' needs an argument (see vigilctl %s --help)\n", cmd, what,
			cmd);
	else if (optopt != 0)
		fprintf(stderr, "vigilctl %s: unknown option '-%c' (see vigilctl %s --help)\n", cmd, optopt, cmd);
	else
		fprintf(stderr, "vigilctl %s: unknown option '%s' (see vigilctl %s --help)\n", cmd, what, cmd);
	return EXIT_USAGE;
}

/* Strict decimal integer in [lo, hi]. */
bool ctl_parse_int(const char *s, long lo, long hi, long *out)
{
	if (s == NULL || *s == '\0')
		return false;
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < lo || v > hi)
		return false;
	*out = v;
	return true;
}

/* A printable rendering of a string that came from the user or the
 * environment, for error messages. */
const char *ctl_render_arg(const char *s, char *buf, size_t len)
{
	vigil_id_render(s, strlen(s), buf, len);
	return buf;
}

/* After getopt: a subcommand that takes no operands refuses one.
 * EXIT_OK, or EXIT_USAGE with the reason on stderr. */
int ctl_no_operands(const char *cmd, int argc, char **argv)
{
	if (optind >= argc)
		return EXIT_OK;
	char rb[160];
	fprintf(stderr, "vigilctl %s: unexpected argument '%s' (see vigilctl %s --help)\n", cmd,
		ctl_render_arg(argv[optind], rb, sizeof rb), cmd);
	return EXIT_USAGE;
}

/* Copies a fixed 64-byte id field out of the segment into a printable,
 * NUL-terminated string: the id itself when it obeys the name rule, else
 * its bytes with anything outside [A-Za-z0-9._-] escaped as \xNN. */
void ctl_slot_id(char out[300], const char field[VIGIL_ID_MAX])
{
	char raw[VIGIL_ID_MAX + 1];
	if (vigil_id_copy(raw, field))
		memcpy(out, raw, sizeof raw);
	else
		vigil_id_render(field, VIGIL_ID_MAX, out, 300);
}

/* The vigild attached to the segment, or 0 when none is (or it is gone):
 * the holder of the segment's lock (vigil_segment_lock), never the pid in
 * the header, which a vigild killed -9 leaves behind. */
pid_t ctl_supervisor_alive(const struct vigil_segment *seg)
{
	pid_t p = vigil_segment_supervisor(seg->name);
	if (p == -EBUSY)
		return -1; /* held by a vigild of another pid namespace */
	return p > 0 ? p : 0;
}

/* A supervisor pid for a message: "?" when it is not visible here. */
const char *ctl_pid_text(long long pid, char buf[24])
{
	if (pid > 0)
		snprintf(buf, 24, "%lld", pid);
	else
		snprintf(buf, 24, "?");
	return buf;
}

int ctl_resolve(struct common *c)
{
	char err[512] = "";
	int rc = vigil_home_resolve(c->home_arg, c->shm_arg, c->home, sizeof c->home, c->shm, sizeof c->shm, err,
				    sizeof err);
	if (rc < 0) {
		fprintf(stderr, "vigilctl: %s\n", err[0] != '\0' ? err : strerror(-rc));
		return rc == -EINVAL ? EXIT_USAGE : EXIT_FAIL;
	}
	return EXIT_OK;
}

/* Opens the segment of c without creating it; prints one line and returns
 * EXIT_FAIL on error. */
int ctl_open_segment(const struct common *c, struct vigil_segment *seg, bool writable)
{
	char err[768] = "";
	int rc = vigil_segment_open(seg, c->shm, 1, VIGILCTL_SHM_MODE, false, writable, err, sizeof err);
	if (rc == 0)
		return EXIT_OK;
	switch (-rc) {
	case ENOENT:
		fprintf(stderr, "vigilctl: segment %s: no such segment (is vigild running for home %s?)\n", c->shm,
			c->home);
		break;
	case EPROTO:
		fprintf(stderr, "vigilctl: segment %s: %s (%s)\n", c->shm, vigil_strerror(rc),
			err[0] != '\0' ? err : "ABI mismatch");
		break;
	case EACCES:
		fprintf(stderr, "vigilctl: segment %s: permission denied (%s access)\n", c->shm,
			writable ? "read-write" : "read");
		break;
	default:
		if (err[0] != '\0')
			fprintf(stderr, "vigilctl: %s\n", err);
		else
			fprintf(stderr, "vigilctl: segment %s: %s\n", c->shm, vigil_strerror(rc));
		break;
	}
	return EXIT_FAIL;
}

/* ---- reading a slot: status, check and top -------------------------------- */

static const char *verdict_state(uint32_t verdict)
{
	switch (verdict) {
	case VIGIL_VERDICT_NONE: return "new";
	case VIGIL_VERDICT_OK: return "active";
	case VIGIL_VERDICT_MISSED: return "missed";
	case VIGIL_VERDICT_TIMEOUT: return "timeout";
	case VIGIL_VERDICT_ZOMBIE: return "zombie";
	case VIGIL_VERDICT_EXITED: return "exited";
	case VIGIL_VERDICT_DETACHED: return "detached";
	case VIGIL_VERDICT_REJECTED: return "rejected";
	default: return "unknown";
	}
}

/*
 * Reads one slot into r; false when it is not a live worker (state other
 * than ACTIVE or ZOMBIE, or a registration vigild rejected) or kept
 * changing owner while we read it.
 *
 * The identity is read between two loads of the owner word: if the owner
 * moved, the copy may mix two identities and is thrown away.  The view is
 * trusted only when it describes this generation (vigild writes
 * generation_low first when it starts tracking a slot); otherwise the
 * worker is "new" to vigild and its health is unknown.  Without a view,
 * beats and progress come from the worker's own beat word, when that word
 * carries this generation.
 */
bool ctl_read_slot(const struct vigil_segment *seg, uint32_t i, struct row *r)
{
	for (int attempt = 0; attempt < 3; attempt++) {
		const struct vigil_slot_hot *hot = &seg->hot[i];
		uint64_t o = atomic_load_explicit(&hot->owner, memory_order_acquire);
		uint32_t st = vigil_owner_state(o);
		if (st != VIGIL_SLOT_ACTIVE && st != VIGIL_SLOT_ZOMBIE)
			return false;
		uint64_t gen = vigil_owner_gen(o);

		struct vigil_slot_cold cold;
		memcpy(&cold, &seg->cold[i], sizeof cold);
		uint64_t beat = atomic_load_explicit(&hot->beat, memory_order_acquire);

		struct vigil_slot_view *v = &seg->view[i];
		uint32_t vgen = atomic_load_explicit(&v->generation_low, memory_order_acquire);
		uint64_t last = atomic_load_explicit(&v->last_seen_unix_ms, memory_order_relaxed);
		uint64_t vbeats = atomic_load_explicit(&v->beats, memory_order_relaxed);
		uint32_t health = atomic_load_explicit(&v->health_score, memory_order_relaxed);
		uint32_t prog = atomic_load_explicit(&v->progress, memory_order_relaxed);
		uint32_t verdict = atomic_load_explicit(&v->verdict, memory_order_relaxed);
		uint32_t missed = atomic_load_explicit(&v->missed, memory_order_relaxed);
		uint32_t vgen2 = atomic_load_explicit(&v->generation_low, memory_order_acquire);

		if (atomic_load_explicit(&hot->owner, memory_order_acquire) != o)
			continue; /* reused under us: read again */

		memset(r, 0, sizeof *r);
		r->slot = i;
		r->gen = gen;
		r->pid = cold.pid;
		ctl_slot_id(r->id, cold.worker_id);
		ctl_slot_id(r->type, cold.worker_type);
		ctl_slot_id(r->task, cold.task_id);

		/* Generation 0 was never claimed (claims start at 1), so a zeroed
		 * view never vouches for it. */
		bool trusted = gen != 0 && vgen == (uint32_t)gen && vgen2 == vgen;
		/* A registration vigild refused (worker_rejected, e.g. a second
		 * process with a live worker id) is not a worker: never shown,
		 * never counted (status, top, check all read slots here). */
		if (trusted && verdict == VIGIL_VERDICT_REJECTED)
			return false;
		if (trusted) {
			r->health = health > 100 ? 100 : (int)health;
			r->progress = prog > 100 ? 100 : (int)prog;
			r->missed = missed;
			r->beats = vbeats > INT64_MAX ? INT64_MAX : (int64_t)vbeats;
			r->last_seen_ms = last;
			r->state = verdict_state(verdict);
		} else {
			r->health = -1;
			r->missed = -1;
			r->last_seen_ms = 0;
			r->state = "new";
			if (vigil_beat_gen16(beat) == (gen & 0xffffu)) {
				uint32_t p = vigil_beat_progress(beat);
				r->progress = p > 100 ? 100 : (int)p;
				r->beats = vigil_beat_count(beat);
			} else {
				r->progress = -1;
				r->beats = -1;
			}
		}
		if (st == VIGIL_SLOT_ZOMBIE)
			r->state = "zombie";
		return true;
	}
	return false;
}

/* Like the runbook's `sort -rn`: highest health first (unknown last), then
 * by id, then by slot so that the order is total. */

/* ---- requests to vigild: files under the home -------------------------- */

/*
 * vigilctl never talks to vigild directly: it drops a JSON file into a
 * queue directory of coordination/ and, for the commands that report an
 * outcome, polls for vigild's answer file.  A request left while vigild is
 * down is carried out when it starts.  Every file is published whole (temp
 * file named ".<name>.tmp.<pid>.<seq>" in the same directory, fsync, then
 * linkat or renameat), so vigild never reads half a request; it must skip
 * names starting with '.'.
 */

void ctl_sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Opens rel (e.g. "coordination/spawn/queue") under the home, never
 * following a symbolic link below the home; creates it when asked.  An fd
 * or -errno. */
int ctl_open_home_dir(const struct common *c, const char *rel, bool create)
{
	int home = open(c->home, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (home < 0)
		return -errno;
	int fd = vigil_fs_open_dir(home, rel, create);
	close(home);
	return fd;
}

/* Like open_home_dir with create, printing one error line on failure. */
int ctl_open_queue_dir(const char *cmd, const struct common *c, const char *rel)
{
	int fd = ctl_open_home_dir(c, rel, true);
	if (fd < 0)
		fprintf(stderr, "vigilctl %s: cannot open %s/%s: %s%s\n", cmd, c->home, rel, strerror(-fd),
			fd == -ENOTDIR ? " (or a component is a symbolic link)" : "");
	return fd;
}

/* True when name exists in dirfd (any type, not followed). */
bool ctl_exists_at(int dirfd, const char *name)
{
	struct stat st;
	return dirfd >= 0 && fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

/*
 * Publishes doc (compact JSON and a newline) as name in dirfd: written to
 * a temp file in the same directory and fsync'd, then linked to name with
 * linkat() when exclusive (so the call fails with -EEXIST, leaving the
 * existing file alone, when name is taken), else renamed over name.  The
 * temp name is unlinked in every case.  0 or -errno.
 */
int ctl_publish_json(int dirfd, const char *name, const json_t *doc, bool exclusive)
{
	static unsigned long seq;
	char tmp[512];
	int n = snprintf(tmp, sizeof tmp, ".%s.tmp.%d.%lu", name, (int)getpid(), seq++);
	if (n < 0 || (size_t)n >= sizeof tmp)
		return -ENAMETOOLONG;
	char *txt = json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (txt == NULL)
		return -ENOMEM;
	size_t len = strlen(txt);
	char *line = realloc(txt, len + 2);
	if (line == NULL) {
		free(txt);
		return -ENOMEM;
	}
	line[len++] = '\n';
	line[len] = '\0';

	int fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0) {
		int e = -errno;
		free(line);
		return e;
	}
	int rc = 0;
	const char *p = line;
	size_t left = len;
	/* Bounded: each pass writes at least one byte or fails. */
	while (left > 0) {
		ssize_t w = write(fd, p, left);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			rc = w < 0 ? -errno : -EIO;
			break;
		}
		p += w;
		left -= (size_t)w;
	}
	free(line);
	/* Durable: a request must survive a crash once we said it is queued. */
	if (rc == 0 && fsync(fd) < 0)
		rc = -errno;
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
	if (rc == 0) {
		if (exclusive) {
			if (linkat(dirfd, tmp, dirfd, name, 0) < 0)
				rc = -errno;
			unlinkat(dirfd, tmp, 0);
		} else if (renameat(dirfd, tmp, dirfd, name) < 0) {
			rc = -errno;
			unlinkat(dirfd, tmp, 0);
		}
	} else {
		unlinkat(dirfd, tmp, 0);
	}
	if (rc == 0)
		fsync(dirfd); /* the new name; best effort */
	return rc;
}

/* Reads name in dirfd as a JSON object into *out.  0; -ENOENT when it is
 * missing; another -errno, or -EBADMSG when it is not a JSON object, with
 * why set. */
int ctl_load_object(int dirfd, const char *name, json_t **out, char *why, size_t why_len)
{
	*out = NULL;
	char *buf;
	size_t n;
	int rc = vigil_fs_read(dirfd, name, VIGILCTL_FILE_MAX, &buf, &n);
	if (rc < 0) {
		if (rc == -EFBIG)
			snprintf(why, why_len, "larger than %u bytes", VIGILCTL_FILE_MAX);
		else if (rc == -ELOOP)
			snprintf(why, why_len, "is a symbolic link");
		else if (rc == -EINVAL)
			snprintf(why, why_len, "not a regular file");
		else
			snprintf(why, why_len, "%s", strerror(-rc));
		return rc;
	}
	json_error_t e;
	json_t *j = json_loadb(buf, n, 0, &e);
	free(buf);
	if (j == NULL) {
		snprintf(why, why_len, "invalid JSON (line %d: %s)", e.line, e.text);
		return -EBADMSG;
	}
	if (!json_is_object(j)) {
		json_decref(j);
		snprintf(why, why_len, "not a JSON object");
		return -EBADMSG;
	}
	*out = j;
	return 0;
}

/* A printable copy of an untrusted string (a message vigild or someone
 * else wrote): control characters become '?'; truncated to fit. */
const char *ctl_safe_text(const char *s, char *out, size_t len)
{
	size_t o = 0;
	for (; s != NULL && *s != '\0' && o + 1 < len; s++) {
		unsigned char ch = (unsigned char)*s;
		out[o++] = (ch < 0x20 || ch == 0x7f) ? '?' : (char)ch;
	}
	out[o] = '\0';
	return out;
}

/* A string member of obj, or NULL. */
const char *ctl_obj_str(const json_t *obj, const char *key)
{
	return json_string_value(json_object_get(obj, key));
}

/*
 * Whether a vigild supervises this home's segment: 1 yes (pid in *pid),
 * 0 no (no segment, or nobody holds its lock), -1 cannot tell (why set).
 * The segment is opened (and validated) read-only; who supervises it is
 * asked of the kernel (the lock), not read from the header.
 */
int ctl_vigild_running(const struct common *c, pid_t *pid, char *why, size_t why_len)
{
	struct vigil_segment seg;
	char err[768] = "";
	*pid = 0;
	/* Read-only probe: accept a group-shared segment too. */
	int rc = vigil_segment_open(&seg, c->shm, 1, 0770, false, false, err, sizeof err);
	if (rc == -ENOENT)
		return 0;
	if (rc < 0) {
		snprintf(why, why_len, "%s", err[0] != '\0' ? err : vigil_strerror(rc));
		return -1;
	}
	pid_t sp = vigil_segment_supervisor(seg.name);
	vigil_segment_close(&seg);
	if (sp == -EBUSY) {
		*pid = -1; /* running, in another pid namespace */
		return 1;
	}
	if (sp < 0 && sp != -ENOENT) {
		snprintf(why, why_len, "cannot ask who holds segment %s: %s", c->shm, vigil_strerror(sp));
		return -1;
	}
	if (sp <= 0)
		return 0;
	*pid = sp;
	return 1;
}

/* Strict decimal number: finite, in [lo, hi]. */
bool ctl_parse_seconds(const char *s, double lo, double hi, double *out)
{
	if (s == NULL || *s == '\0')
		return false;
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno != 0 || *end != '\0' || !(v >= lo && v <= hi))
		return false;
	*out = v;
	return true;
}

/* A JSON number for v: an integer when v is whole. */
json_t *ctl_json_seconds(double v)
{
	if (v >= 0 && v < 9e15 && (double)(long long)v == v)
		return json_integer((json_int_t)v);
	return json_real(v);
}


/* ---- shared by metrics, check and top ------------------------------------ */

/* qsort order of worker-type names. */
static int type_cmp(const void *a, const void *b)
{
	return strcmp((const char *)a, (const char *)b);
}

/*
 * Worker types whose breaker file in dirfd (coordination/circuit-breakers/)
 * says "state": "open".  The first max of them (in directory order) are
 * copied into types and sorted; the total is returned.  Unreadable files
 * are skipped silently (vigilctl breakers reports them).
 */
size_t ctl_read_open_breakers(int dirfd, char (*types)[VIGIL_ID_MAX + 1], size_t max)
{
	int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (d == NULL) {
		if (fd >= 0)
			close(fd);
		return 0;
	}
	size_t n = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		const char *nm = de->d_name;
		size_t len = strlen(nm);
		if (nm[0] == '.' || len <= 5 || strcmp(nm + len - 5, ".json") != 0)
			continue;
		json_t *doc = NULL;
		char why[256];
		if (ctl_load_object(dirfd, nm, &doc, why, sizeof why) < 0)
			continue;
		const char *st = ctl_obj_str(doc, "state");
		if (st != NULL && strcmp(st, "open") == 0) {
			if (n < max) {
				const char *wt = ctl_obj_str(doc, "worker_type");
				if (wt != NULL && vigil_id_valid(wt))
					snprintf(types[n], VIGIL_ID_MAX + 1, "%s", wt);
				else
					vigil_id_render(nm, len - 5, types[n], VIGIL_ID_MAX + 1);
			}
			n++;
		}
		json_decref(doc);
	}
	closedir(d);
	qsort(types, n < max ? n : max, sizeof types[0], type_cmp);
	return n;
}

/* Copies a NUL-terminated string into a 65-byte field, truncating. */
void ctl_copy_field(char dst[VIGIL_ID_MAX + 1], const char *src)
{
	size_t n = strnlen(src, VIGIL_ID_MAX);
	memcpy(dst, src, n);
	dst[n] = '\0';
}

