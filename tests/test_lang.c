/*
 * test_lang.c - workers in other languages and shapes, end to end: the
 * emitter's refusal of a live worker id (-EEXIST) and the tools' silence
 * about rejected slots; a C++ worker and a Python worker copied from the
 * README (through libvigil) under the real vigild, with every verdict a C
 * worker gets; the shell emitter's long-lived coprocess.
 *
 * Policies: interval 0.3 s, timeout 0.6 s, zombie 1.2 s (tick 75 ms) -
 * the README's workers beat every 100 ms, and Python start-up must not
 * count as a missed beat on a loaded host.  Order is judged strictly;
 * upper bounds get itest_slack_ms() (see itest.h).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "itest.h"
#include "vigil.h"

static struct itest_home H;
#include "itest_check.h"

#define HB "heartbeat-events.jsonl"
#define ZE "zombie-cleanup-events.jsonl"
#define HB_LOG "agents/logs/system/heartbeat-monitor-daemon.log"

static void dump_state(void)
{
	if (H.dir[0] == '\0')
		return;
	fprintf(stderr, "==== state of %s (segment %s)\n", H.dir, H.shm);
	dump_tail("heartbeat-events.jsonl", "coordination/events/" HB, 40);
	dump_tail("zombie-cleanup-events.jsonl", "coordination/events/" ZE, 20);
	dump_tail("heartbeat-monitor-daemon.log", HB_LOG, 30);
	dump_tail("vigild.out", "vigild.out", 20);
	dump_tail("bash-0.out", "bash-0.out", 20);
	dump_tail("bash-1.out", "bash-1.out", 20);
}

static int setup(void **state)
{
	(void)state;
	itest_home_create(&H);
	itest_write_policy(&H, 0.3, 0.6, 1.2, NULL);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	return itest_finish(&H, NULL);
}

static size_t count(const char *file, const char *event, const char *id)
{
	return itest_count_events(&H, file, event, id);
}

/* Waits for worker_registered of id (5 s) and returns it. */
static json_t *registered(const char *id)
{
	json_t *ev = itest_wait_event(&H, HB, "worker_registered", id, 5000);
	CHECK(ev != NULL, "worker %s was not registered within 5 s", id);
	return ev;
}

/* The rows of `vigilctl status --json` about id: how many, and the pid of
 * the last one (0 when none). */
static int status_rows(const char *id, int *pid)
{
	char *out = NULL;
	const char *args[] = {"status", "--json", NULL};
	int rc = itest_vigilctl(&H, &out, NULL, args);
	CHECK(rc == 0, "vigilctl status --json exited %d", rc);
	json_error_t e;
	json_t *arr = json_loads(out != NULL ? out : "", 0, &e);
	CHECK(json_is_array(arr), "vigilctl status --json printed no array: %s", out != NULL ? out : "");
	free(out);
	int n = 0;
	*pid = 0;
	size_t i;
	json_t *row;
	json_array_foreach(arr, i, row) {
		if (strcmp(itest_str(row, "worker_id"), id) == 0) {
			n++;
			*pid = (int)itest_int(row, "pid");
		}
	}
	json_decref(arr);
	return n;
}

/* `vigilctl check`: its exit code, and its line in *line (malloc'd). */
static int check_line(char **line)
{
	const char *args[] = {"check", NULL};
	return itest_vigilctl(&H, line, NULL, args);
}

/*
 * Writes a registration of id for pid straight into the segment, as
 * vigil_register does but without its live-id check: what a second
 * registrant that raced the first past that check leaves.  Returns the
 * slot.
 */
static uint32_t forge_registration(const char *id, pid_t pid)
{
	struct vigil v;
	memset(&v, 0, sizeof v);
	CHECK(vigil__map(&v, H.shm, 1) == 0, "cannot map %s", H.shm);
	struct vigil_shm_header *h = v.hdr;
	uint32_t slot = h->slot_count;
	for (uint32_t i = 0; i < h->slot_count && slot == h->slot_count; i++) {
		struct vigil_slot_hot *hot = vigil__hot(h, i);
		uint64_t o = atomic_load(&hot->owner);
		if (vigil_owner_state(o) != VIGIL_SLOT_FREE)
			continue;
		uint64_t gen = vigil_owner_gen(o) + 1;
		if (!atomic_compare_exchange_strong(&hot->owner, &o, vigil_owner_make(VIGIL_SLOT_CLAIMED, gen)))
			continue;
		struct vigil_slot_cold *c = vigil__cold(h, i);
		vigil__copy_id(c->worker_id, id);
		vigil__copy_id(c->worker_type, "racer");
		vigil__copy_id(c->task_id, "");
		c->pid = pid;
		c->registrar_pid = getpid();
		c->pid_start_ticks = vigil__pid_start_ticks(pid);
		c->registered_unix_ms = (uint64_t)itest_now_ms();
		c->flags = 0;
		c->spawn_tag = 0;
		atomic_store(&hot->beat, vigil_beat_make(gen, 0, 100, 0));
		atomic_store(&hot->owner, vigil_owner_make(VIGIL_SLOT_ACTIVE, gen));
		slot = i;
	}
	CHECK(slot < h->slot_count, "no free slot to forge a registration in");
	munmap(v.hdr, v.map_size);
	return slot;
}

/* ---- a live worker id ------------------------------------------------------- */

static void duplicate_id_refused(void **state)
{
	(void)state;
	itest_vigild_start(&H);
	const char *id = "worker-dup-001";
	const char *args[] = {"--beat-ms", "20", NULL};
	pid_t a = itest_worker_start(&H, id, "dup", NULL, args);
	json_t *r = registered(id);
	CHECK(json_is_true(json_object_get(r, "verified")), "first worker not verified");
	json_decref(r);

	/* A second process with the same WORKER_ID: refused by the emitter,
	 * with vigil_strerror's sentence, while the first lives. */
	pid_t b = itest_worker_start(&H, id, "dup", NULL, args);
	int rc = itest_reap(b, 5000);
	CHECK(rc == 1, "second worker with a live id exited %d, want 1 (attach refused)", rc);
	char *err = itest_read_file(&H, "worker-worker-dup-001.err");
	CHECK(err != NULL && strstr(err, "attach: this WORKER_ID is live in the segment") != NULL,
	      "the refused worker did not print vigil_strerror(-EEXIST): %s", err != NULL ? err : "(nothing)");
	free(err);
	CHECK(itest_alive(a), "the first worker died");

	/* The shell emitter applies the same rule. */
	char *out = NULL, *eout = NULL;
	char pidarg[16];
	snprintf(pidarg, sizeof pidarg, "%d", (int)getpid());
	const char *emit2[] = {"emit", "--pid", pidarg, id, "50", "50", NULL};
	rc = itest_vigilctl(&H, &out, &eout, emit2);
	CHECK(rc == 1 && eout != NULL && strstr(eout, "still running") != NULL,
	      "vigilctl emit with a live id: exit %d, stderr %s", rc, eout != NULL ? eout : "");
	free(out);
	free(eout);

	itest_sleep_ms(300); /* a few ticks: vigild would have seen a registration */
	CHECK(count(HB, "worker_rejected", id) == 0, "vigild saw a registration the emitter should have refused");
	CHECK(count(HB, "worker_registered", id) == 1, "%zu worker_registered for %s, want 1",
	      count(HB, "worker_registered", id), id);
	int pid = 0;
	CHECK(status_rows(id, &pid) == 1 && pid == a, "status: want one row for %s with pid %d (got pid %d)", id,
	      (int)a, pid);

	/* The race vigild settles: a registration that got past the check.
	 * vigild rejects it, and no tool shows or counts it, alive or dead. */
	pid_t racer = itest_bash_start(&H, "exec sleep 600");
	itest_wait_comm(racer, "sleep", 2000);
	forge_registration(id, racer);
	json_t *rej = itest_wait_event(&H, HB, "worker_rejected", id, 3000);
	CHECK(rej != NULL, "vigild did not reject the forged duplicate of %s", id);
	json_decref(rej);
	itest_sleep_ms(200);
	for (int round = 0; round < 2; round++) {
		CHECK(status_rows(id, &pid) == 1 && pid == a,
		      "status (%s racer): want one row for %s with pid %d (got %d rows, pid %d)",
		      round == 0 ? "live" : "dead", id, (int)a, status_rows(id, &pid), pid);
		char *line = NULL;
		rc = check_line(&line);
		CHECK(rc == 0 && line != NULL && strstr(line, "VIGIL OK") != NULL && strstr(line, "workers=1 ") != NULL,
		      "check (%s racer): exit %d: %s", round == 0 ? "live" : "dead", rc, line != NULL ? line : "");
		free(line);
		if (round == 0) {
			itest_kill(racer);
			itest_sleep_ms(300);
		}
	}

	/* A holder that is gone does not block its id. */
	itest_signal(a, SIGKILL);
	json_t *ex = itest_wait_event(&H, HB, "worker_exited", id, 3000);
	CHECK(ex != NULL, "no worker_exited for the killed first worker");
	json_decref(ex);
	itest_reap(a, 1000);
	pid_t c = itest_worker_start(&H, id, "dup", NULL, args);
	CHECK(itest_wait_text_count(&H, "coordination/events/" HB, "\"worker_registered\"", 2, 5000),
	      "the id of a dead worker could not be registered again");
	CHECK(status_rows(id, &pid) == 1 && pid == c, "status after the restart: want one row with pid %d, got %d",
	      (int)c, pid);
	itest_kill(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(duplicate_id_refused, setup, teardown),
	};
	/* VIGIL_TEST_FILTER=<glob> runs only the matching tests. */
	if (getenv("VIGIL_TEST_FILTER") != NULL)
		cmocka_set_test_filter(getenv("VIGIL_TEST_FILTER"));
	return cmocka_run_group_tests_name("lang", tests, NULL, NULL);
}
