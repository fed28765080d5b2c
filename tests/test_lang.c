/*
 * test_lang.c - workers in other languages and shapes, end to end: the
 * emitter's refusal of a live worker id (-EEXIST) and the tools' silence
 * about rejected slots; a C++ worker and a Python worker copied from the
 * README (through libvigil) under the real vigild, with every verdict a C
 * worker gets; the shell emitter's long-lived coprocess.
 *
 * Policies: interval 0.5 s, timeout 1 s, zombie 2 s (tick 100 ms) -
 * the README's workers beat every 100 ms, and Python start-up must not
 * count as a missed beat on a loaded host.  Order is judged strictly;
 * upper bounds get itest_slack_ms() (see itest.h).
 */
#define _GNU_SOURCE
#include <dirent.h>
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
	itest_write_policy(&H, 0.5, 1.0, 2.0, NULL);
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
		char *prom = NULL;
		const char *margs[] = {"metrics", "--prom", NULL};
		rc = itest_vigilctl(&H, &prom, NULL, margs);
		CHECK(rc == 0 && prom != NULL && strstr(prom, "vigil_workers{worker_type=\"dup\"} 1\n") != NULL &&
			      strstr(prom, "vigil_workers{worker_type=\"racer\"} 1") == NULL,
		      "metrics --prom (%s racer) counts the rejected slot or not the worker: exit %d", round == 0 ? "live" : "dead",
		      rc);
		free(prom);
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


/* ---- the README's workers in C++, Python and shell ------------------------- */

/* Starts the README worker of lang ("cpp", "py", "sh") as worker id; the
 * process started is the worker itself (bash execs it). */
static pid_t lang_start(const char *lang, const char *id)
{
	char script[3 * ITEST_PATH_MAX];
	if (strcmp(lang, "cpp") == 0)
		snprintf(script, sizeof script, "export WORKER_ID=%s WORKER_TYPE=cpp TASK_ID=task-lang; exec '%s'", id,
			 README_CPP_WORKER);
	else if (strcmp(lang, "py") == 0)
		snprintf(script, sizeof script,
			 "export WORKER_ID=%s WORKER_TYPE=python TASK_ID=task-lang VIGIL_LIBRARY='%s' PYTHONPATH='%s'; "
			 "exec '%s' '%s'",
			 id, LIBVIGIL_PATH, PYTHON_MODULE_DIR, PYTHON3_PATH, README_PY_WORKER);
	else
		snprintf(script, sizeof script,
			 "cd '%s' && export WORKER_ID=%s WORKER_TYPE=shell TASK_ID=task-lang; exec bash '%s'",
			 SOURCE_DIR, id, README_SH_WORKER);
	return itest_bash_start(&H, script);
}

/* Beats vigild credited to id, from `vigilctl status --json` (-1: no row
 * or not scored yet). */
static long long status_beats(const char *id)
{
	char *out = NULL;
	const char *args[] = {"status", "--json", NULL};
	if (itest_vigilctl(&H, &out, NULL, args) != 0) {
		free(out);
		return -1;
	}
	json_t *arr = json_loads(out != NULL ? out : "", 0, NULL);
	free(out);
	long long beats = -1;
	size_t i;
	json_t *row;
	json_array_foreach(arr, i, row) {
		json_t *b = json_object_get(row, "beats");
		if (strcmp(itest_str(row, "worker_id"), id) == 0 && json_is_integer(b))
			beats = json_integer_value(b);
	}
	json_decref(arr);
	return beats;
}

/* The children of ppid whose comm starts with name (from /proc), up to
 * max into out; how many. */
static int children_named(pid_t ppid, const char *name, pid_t *out, int max)
{
	int n = 0;
	DIR *d = opendir("/proc");
	if (d == NULL)
		return 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		pid_t pid = (pid_t)atoi(e->d_name);
		char buf[1024];
		if (pid <= 0 || itest_proc_stat(pid, buf, sizeof buf) == NULL)
			continue;
		const char *open = strchr(buf, '('), *close = strrchr(buf, ')');
		if (open == NULL || close == NULL || strncmp(open + 1, name, strlen(name)) != 0)
			continue;
		int pp = 0;
		char st = 0;
		if (sscanf(close + 1, " %c %d", &st, &pp) == 2 && pp == ppid && st != 'Z') {
			if (n < max)
				out[n] = pid;
			n++;
		}
	}
	closedir(d);
	return n;
}

/*
 * The README worker of lang, three times at once under vigild, gets every
 * verdict a C worker gets: registered and verified (vigild holds its
 * pidfd), beats credited, SIGKILL seen at once (worker_exited within a
 * tick), SIGSTOP judged missed, timeout, zombie in that order, and a run
 * to the end reported worker_detached (exit 0, never worker_exited; the
 * shell worker says goodbye with emit_detach).  The
 * finished and the killed worker are never blamed for missed beats.
 */
static void verdicts_like_c(const char *lang, void (*extra)(pid_t done, const char *id))
{
	itest_vigild_start(&H);
	char ids[3][64];
	const char *what[3] = {"kill", "stop", "done"};
	pid_t pids[3];
	for (int i = 0; i < 3; i++) {
		snprintf(ids[i], sizeof ids[i], "worker-%s-%s", lang, what[i]);
		pids[i] = lang_start(lang, ids[i]);
	}
	for (int i = 0; i < 3; i++) {
		json_t *r = registered(ids[i]);
		CHECK(json_is_true(json_object_get(r, "verified")), "%s not verified (no pidfd watch)", ids[i]);
		CHECK(itest_int(r, "pid") == pids[i], "%s registered with pid %lld, the worker is %d", ids[i],
		      (long long)itest_int(r, "pid"), (int)pids[i]);
		json_decref(r);
	}
	for (int i = 0; i < 3; i++) {
		int64_t deadline = itest_mono_ms() + 5000;
		long long b;
		while ((b = status_beats(ids[i])) < 3 && itest_mono_ms() < deadline)
			itest_sleep_ms(50);
		CHECK(b >= 3, "%s: %lld beats credited after 5 s, want >= 3", ids[i], b);
	}
	if (extra != NULL)
		extra(pids[2], ids[2]);

	/* kill -9: seen at once. */
	int64_t t_kill = itest_now_ms();
	itest_signal(pids[0], SIGKILL);
	json_t *ex = itest_wait_event(&H, HB, "worker_exited", ids[0], 3000);
	CHECK(ex != NULL, "%s: no worker_exited within 3 s of SIGKILL", ids[0]);
	int64_t dt = itest_int(ex, "timestamp_ms") - t_kill;
	CHECK(dt >= -1 && (double)dt <= itest_tick_ms(&H) + itest_slack_ms(),
	      "%s: worker_exited %lld ms after SIGKILL (tick %.1f, slack %d)", ids[0], (long long)dt,
	      itest_tick_ms(&H), itest_slack_ms());
	json_decref(ex);

	/* SIGSTOP: missed, then timeout, then zombie. */
	itest_signal(pids[1], SIGSTOP);
	json_t *m = itest_wait_event(&H, HB, "heartbeat_missed", ids[1], 5000);
	json_t *t = itest_wait_event(&H, HB, "heartbeat_timeout", ids[1], 5000);
	json_t *z = itest_wait_event(&H, ZE, "zombie_detected", ids[1], 8000);
	CHECK(m != NULL && t != NULL && z != NULL, "%s stopped: missed %s, timeout %s, zombie %s", ids[1],
	      m ? "yes" : "no", t ? "yes" : "no", z ? "yes" : "no");
	CHECK(itest_int(m, "timestamp_ms") <= itest_int(t, "timestamp_ms") &&
		      itest_int(t, "timestamp_ms") <= itest_int(z, "timestamp_ms"),
	      "%s: verdicts out of order", ids[1]);
	json_decref(m);
	json_decref(t);
	json_decref(z);
	itest_kill(pids[1]);

	/* The end of the run (101 beats, 100 ms apart). */
	json_t *d = itest_wait_event(&H, HB, "worker_detached", ids[2], 30000);
	CHECK(d != NULL, "%s: no worker_detached within 30 s", ids[2]);
	json_decref(d);
	int rc = itest_reap(pids[2], 5000);
	CHECK(rc == 0, "%s exited %d, want 0", ids[2], rc);
	CHECK(count(HB, "worker_exited", ids[2]) == 0, "%s detached but was also reported exited", ids[2]);
	for (int i = 0; i < 3; i += 2)
		CHECK(count(HB, "heartbeat_missed", ids[i]) == 0, "%s: unexpected heartbeat_missed", ids[i]);
	itest_reap(pids[0], 1000);
}

static void cpp_worker_verdicts(void **state)
{
	(void)state;
	verdicts_like_c("cpp", NULL);
}

static void python_worker_verdicts(void **state)
{
	(void)state;
	verdicts_like_c("py", NULL);
}

/* The Python module's errors and its context manager: a bad id and a live
 * id raise VigilError with errno and vigil_strerror's sentence; leaving a
 * `with` block by an exception detaches (worker_detached while the process
 * still runs); a beat after that raises ENOTCONN. */
static const char PY_ERRORS[] =
	"import errno, os, sys, time\n"
	"import vigil\n"
	"os.environ['WORKER_ID'] = 'bad id'\n"
	"try:\n"
	"    vigil.attach()\n"
	"except vigil.VigilError as e:\n"
	"    assert e.errno == errno.EINVAL and 'ids must match' in str(e), e\n"
	"    print('einval ok', flush=True)\n"
	"os.environ['WORKER_ID'] = 'worker-py-exc'\n"
	"w = vigil.attach()\n"
	"try:\n"
	"    vigil.attach()\n"
	"except vigil.VigilError as e:\n"
	"    assert e.errno == errno.EEXIST and 'live in the segment' in str(e), e\n"
	"    print('eexist ok', flush=True)\n"
	"try:\n"
	"    with w:\n"
	"        w.beat(100, 10)\n"
	"        raise RuntimeError('boom')\n"
	"except RuntimeError:\n"
	"    print('raised ok', flush=True)\n"
	"try:\n"
	"    w.beat(1, 1)\n"
	"except vigil.VigilError as e:\n"
	"    assert e.errno == errno.ENOTCONN, e\n"
	"    print('enotconn ok', flush=True)\n"
	"time.sleep(600)\n";

static void python_errors_and_with(void **state)
{
	(void)state;
	itest_vigild_start(&H);
	itest_write_file(&H, "errors.py", PY_ERRORS);
	char script[4 * ITEST_PATH_MAX], path[ITEST_PATH_MAX], outp[ITEST_PATH_MAX];
	snprintf(script, sizeof script, "export VIGIL_LIBRARY='%s' PYTHONPATH='%s'; exec '%s' '%s' >'%s' 2>&1",
		 LIBVIGIL_PATH, PYTHON_MODULE_DIR, PYTHON3_PATH, itest_path(&H, "errors.py", path),
		 itest_path(&H, "errors.out", outp));
	pid_t p = itest_bash_start(&H, script);
	if (!itest_wait_text(&H, "errors.out", "enotconn ok", 10000))
		dump_tail("errors.out", "errors.out", 20);
	CHECK(itest_wait_text(&H, "errors.out", "enotconn ok", 100), "the Python checks did not all pass");
	char *out = itest_read_file(&H, "errors.out");
	CHECK(out != NULL && strstr(out, "einval ok") && strstr(out, "eexist ok") && strstr(out, "raised ok"),
	      "Python output: %s", out != NULL ? out : "");
	free(out);
	json_t *d = itest_wait_event(&H, HB, "worker_detached", "worker-py-exc", 3000);
	CHECK(d != NULL, "leaving the with block by an exception did not detach");
	json_decref(d);
	CHECK(itest_alive(p), "the Python worker died");
	CHECK(count(HB, "worker_exited", "worker-py-exc") == 0, "reported exited while alive");
	itest_kill(p);
}

/* While the README's shell worker beats, one coprocess of its bash
 * carries every beat (no fork per beat). */
static void one_emitter(pid_t bash, const char *id)
{
	pid_t first[4], later[4];
	int n1 = children_named(bash, "vigilctl", first, 4);
	long long b1 = status_beats(id);
	itest_sleep_ms(1000);
	int n2 = children_named(bash, "vigilctl", later, 4);
	long long b2 = status_beats(id);
	CHECK(n1 == 1 && n2 == 1 && first[0] == later[0],
	      "%s: want one vigilctl child of bash %d carrying the beats, saw %d then %d (pids %d, %d)", id,
	      (int)bash, n1, n2, n1 > 0 ? (int)first[0] : 0, n2 > 0 ? (int)later[0] : 0);
	CHECK(b2 >= b1 + 5, "%s: %lld beats in a second through the coprocess, want >= 5", id, b2 - b1);
}

static void shell_worker_verdicts(void **state)
{
	(void)state;
	verdicts_like_c("sh", one_emitter);
}

/* A shell worker killed with -9: seen at once (above), and its coprocess
 * ends with it (it watches the shell's pidfd), so nothing beats for a dead
 * shell. */
static void shell_emitter_ends_with_shell(void **state)
{
	(void)state;
	itest_vigild_start(&H);
	pid_t b = itest_bash_start(&H, "source \"$SHIM\"; sleep 600 & while :; do emit_heartbeat worker-shell-co-001 "
				       "90 50 || exit 3; sleep 0.05; done");
	json_t *r = registered("worker-shell-co-001");
	CHECK(json_is_true(json_object_get(r, "verified")), "shell worker not verified");
	json_decref(r);
	pid_t co[2];
	CHECK(children_named(b, "vigilctl", co, 2) == 1, "want one vigilctl coprocess of the shell");
	itest_signal(b, SIGKILL);
	json_t *ex = itest_wait_event(&H, HB, "worker_exited", "worker-shell-co-001", 3000);
	CHECK(ex != NULL, "no worker_exited for the killed shell");
	json_decref(ex);
	int64_t deadline = itest_mono_ms() + 3000;
	while (itest_alive(co[0]) && itest_mono_ms() < deadline)
		itest_sleep_ms(10);
	CHECK(!itest_alive(co[0]), "the emitter coprocess %d outlived its shell by 3 s", (int)co[0]);
	itest_reap(b, 1000);
}

/* The coprocess that registered a shell worker stays alive and mapped, so a
 * restarted vigild verifies the worker again through it (its registrar)
 * and sees a kill -9 of the shell at once, not at the zombie threshold. */
static void shell_verified_after_vigild_restart(void **state)
{
	(void)state;
	itest_vigild_start(&H);
	const char *id = "worker-shell-rs-001";
	pid_t b = itest_bash_start(&H, "source \"$SHIM\"; while :; do emit_heartbeat worker-shell-rs-001 90 50 || "
				       "exit 3; sleep 0.05; done");
	json_t *r = registered(id);
	CHECK(json_is_true(json_object_get(r, "verified")), "shell worker not verified");
	json_decref(r);
	CHECK(itest_vigild_stop(&H, 10000) == 0, "vigild did not stop cleanly");
	itest_vigild_start(&H);
	json_t *a = itest_wait_event(&H, HB, "worker_adopted", id, 5000);
	CHECK(a != NULL, "the restarted vigild did not adopt %s", id);
	CHECK(json_is_true(json_object_get(a, "verified")), "the restarted vigild did not verify %s again", id);
	json_decref(a);
	itest_sleep_ms(200);
	int64_t t_kill = itest_now_ms();
	itest_signal(b, SIGKILL);
	json_t *ex = itest_wait_event(&H, HB, "worker_exited", id, 3000);
	CHECK(ex != NULL, "no worker_exited for the killed shell after the restart");
	int64_t dt = itest_int(ex, "timestamp_ms") - t_kill;
	CHECK(dt >= -1 && (double)dt <= itest_tick_ms(&H) + itest_slack_ms(),
	      "worker_exited %lld ms after SIGKILL (tick %.1f, slack %d)", (long long)dt, itest_tick_ms(&H),
	      itest_slack_ms());
	json_decref(ex);
	itest_reap(b, 1000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(duplicate_id_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(cpp_worker_verdicts, setup, teardown),
		cmocka_unit_test_setup_teardown(python_worker_verdicts, setup, teardown),
		cmocka_unit_test_setup_teardown(python_errors_and_with, setup, teardown),
		cmocka_unit_test_setup_teardown(shell_worker_verdicts, setup, teardown),
		cmocka_unit_test_setup_teardown(shell_emitter_ends_with_shell, setup, teardown),
		cmocka_unit_test_setup_teardown(shell_verified_after_vigild_restart, setup, teardown),
	};
	/* VIGIL_TEST_FILTER=<glob> runs only the matching tests. */
	if (getenv("VIGIL_TEST_FILTER") != NULL)
		cmocka_set_test_filter(getenv("VIGIL_TEST_FILTER"));
	return cmocka_run_group_tests_name("lang", tests, NULL, NULL);
}
