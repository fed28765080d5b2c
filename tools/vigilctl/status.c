/*
 * status.c - `vigilctl status`: one line (or JSON object) per live worker.
 *
 * Part of vigilctl (see tools/vigilctl.c and ctl.h for the whole).
 */
#include "ctl.h"

/* status order: highest health first, then by id, then by slot. */
static int row_cmp(const void *a, const void *b)
{
	const struct row *x = a, *y = b;
	if (x->health != y->health)
		return x->health > y->health ? -1 : 1;
	int c = strcmp(x->id, y->id);
	if (c != 0)
		return c;
	return x->slot < y->slot ? -1 : x->slot > y->slot;
}

static json_t *int_or_null(int64_t v)
{
	return v < 0 ? json_null() : json_integer((json_int_t)v);
}

static int print_json(const struct row *rows, size_t n)
{
	json_t *arr = json_array();
	if (arr == NULL)
		goto oom;
	for (size_t i = 0; i < n; i++) {
		const struct row *r = &rows[i];
		char iso[21];
		json_t *last = json_null(), *last_ms = json_null();
		if (r->last_seen_ms != 0) {
			vigil_iso8601(r->last_seen_ms, iso);
			last = json_string(iso);
			last_ms = json_integer((json_int_t)(r->last_seen_ms > INT64_MAX ? INT64_MAX : r->last_seen_ms));
		}
		/* The strings are ASCII by construction (slot_id), so jansson
		 * accepts them. */
		json_t *o = json_pack("{s:s, s:s, s:s, s:i, s:I, s:s, s:o, s:o, s:o, s:o, s:o, s:o}",
				      "worker_id", r->id, "worker_type", r->type, "task_id", r->task, "pid",
				      (int)r->pid, "slot", (json_int_t)r->slot, "state", r->state, "health_score",
				      int_or_null(r->health), "progress", int_or_null(r->progress), "missed",
				      int_or_null(r->missed), "beats", int_or_null(r->beats), "last_seen", last,
				      "last_seen_ms", last_ms);
		if (o == NULL || json_array_append_new(arr, o) < 0)
			goto oom;
	}
	char *txt = json_dumps(arr, JSON_COMPACT);
	json_decref(arr);
	if (txt == NULL)
		goto oom;
	int ok = printf("%s\n", txt) >= 0;
	free(txt);
	return ok ? EXIT_OK : EXIT_FAIL;
oom:
	json_decref(arr);
	fprintf(stderr, "vigilctl status: out of memory building JSON\n");
	return EXIT_FAIL;
}

static void print_text(const struct row *rows, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const struct row *r = &rows[i];
		char health[16], last[21];
		if (r->health < 0)
			snprintf(health, sizeof health, "-");
		else
			snprintf(health, sizeof health, "%d%%", r->health);
		if (r->last_seen_ms == 0)
			snprintf(last, sizeof last, "never");
		else
			vigil_iso8601(r->last_seen_ms, last);
		printf("%s | %s | %s | %s | %d | %s\n", health, r->id[0] != '\0' ? r->id : "-", last,
		       r->type[0] != '\0' ? r->type : "-", (int)r->pid, r->state);
	}
}

/* What `vigilctl status --help` prints after the usage line. */
static void status_help(const void *ctx)
{
	(void)ctx;
	printf("\n"
	       "One line per live worker (ACTIVE or ZOMBIE slot), highest health first, no\n"
	       "header.  HEALTH is '-' and STATE 'new' until vigild has scored the worker.\n"
	       "STATE: active, missed, timeout, zombie, new.  LAST_SEEN is UTC ISO 8601 or\n"
	       "'never'.  --json prints an array of objects with worker_id, worker_type,\n"
	       "task_id, pid, slot, state, health_score, progress, missed, beats, last_seen,\n"
	       "last_seen_ms (null when unknown).\n");
}

int ctl_cmd_status(int argc, char **argv, struct common *c)
{
	static const struct option opts[] = {
		{"json", no_argument, NULL, 'j'},
		COMMON_OPTIONS,
	};
	static const struct ctl_opts parse = {"status", ":h", opts, status_help, NULL};
	bool json = false;
	int opt;
	ctl_opt_begin();
	while ((opt = ctl_opt_next(&parse, argc, argv, c)) != -1) {
		switch (opt) {
		case 'j': json = true; break;
		case CTL_OPT_HELP: return EXIT_OK;
		default: return ctl_bad_option("status", opt, argv);
		}
	}
	int rc = ctl_no_operands("status", argc, argv);
	if (rc == EXIT_OK)
		rc = ctl_resolve(c);
	if (rc != EXIT_OK)
		return rc;
	struct vigil_segment seg;
	rc = ctl_open_segment(c, &seg, false);
	if (rc != EXIT_OK)
		return rc;
	if (ctl_supervisor_alive(&seg) == 0)
		fprintf(stderr, "vigilctl: warning: no vigild attached to %s; values may be stale\n", c->shm);

	struct row *rows = NULL;
	size_t n = 0, cap = 0;
	for (uint32_t i = 0; i < seg.slots; i++) {
		if (n == cap) {
			size_t ncap = cap == 0 ? 64 : cap * 2;
			struct row *nr = realloc(rows, ncap * sizeof *nr);
			if (nr == NULL) {
				fprintf(stderr, "vigilctl status: out of memory at slot %u\n", i);
				free(rows);
				vigil_segment_close(&seg);
				return EXIT_FAIL;
			}
			rows = nr;
			cap = ncap;
		}
		if (ctl_read_slot(&seg, i, &rows[n]))
			n++;
	}
	vigil_segment_close(&seg);
	if (n > 1)
		qsort(rows, n, sizeof *rows, row_cmp);
	if (json) {
		rc = print_json(rows, n);
	} else {
		print_text(rows, n);
		rc = EXIT_OK;
	}
	free(rows);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "vigilctl status: cannot write output: %s\n", strerror(errno));
		return EXIT_FAIL;
	}
	return rc;
}

