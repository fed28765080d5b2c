/*
 * registry.h - the action thread's table of known workers.
 *
 * One record per monitored worker, found by worker id through a liburcu
 * lock-free hash table (lookups from any RCU reader; the action thread is
 * the only writer) and by slot through a flat array.  Records are made when
 * a registration event arrives and freed after an RCU grace period when the
 * worker leaves, so a reader holding rcu_read_lock never sees one vanish.
 * Memory per worker: sizeof(struct vigil_worker), about 400 bytes.
 */
#ifndef VIGIL_REGISTRY_H
#define VIGIL_REGISTRY_H

#include <stdbool.h>
#include <stdint.h>
#include <urcu/urcu-memb.h>
#include <urcu/rculfhash.h>

enum vigil_worker_status {
	VIGIL_STATUS_ACTIVE = 0,
	VIGIL_STATUS_ZOMBIE = 1,
	VIGIL_STATUS_EXITED = 2,
	VIGIL_STATUS_RESTARTING = 3,
};

struct vigil_worker {
	struct cds_lfht_node node;
	struct rcu_head rcu;
	char id[65];
	char type[65];
	char task[65];
	char *command;     /* JSON array text of argv (malloc'd; NULL: "[]") */
	char *cwd;         /* its working directory (malloc'd; NULL: unknown) */
	uint64_t gen;
	uint64_t created_unix_ms;
	uint64_t last_seen_ms;
	uint64_t beats;
	uint32_t slot;
	int32_t pid;
	int32_t registrar_pid;
	uint64_t pid_start_ticks; /* as recorded at registration (0 unknown) */
	uint32_t health;
	uint32_t progress;
	uint32_t missed;
	uint8_t status;   /* enum vigil_worker_status */
	bool verified;    /* identity verified: may be signalled through its pidfd */
	bool spawned;     /* started by this vigild (restart.c owns its lineage) */
	bool beat_seen;   /* the scanner reported a beat since it registered or adopted it */
	bool verified_before; /* adopted: the previous vigild's spec verified this very process */
	int sig_pidfd;    /* verified: our own pidfd to signal it through; else -1 */
	uint64_t tokens;  /* token_budget.allocated */
	uint32_t restart_attempt; /* restart.attempt in the spec */
	/* ending it: SIGTERM sent at kill_sent_ms, SIGKILL due at kill_due_ms */
	uint64_t kill_sent_ms, kill_due_ms;
	uint8_t kill_why;       /* enum vigil_kill_why */
	uint8_t kill_signal;    /* the last signal sent */
	int16_t cleanup_idx;    /* pending cleanup request, or -1 */
	uint8_t fds_held;       /* pidfds counted in a->pidfds_held for it (ours + the scanner's) */
	/* what the spec file on disk says, to rewrite only on change */
	bool spec_written;
	uint8_t w_status;
	uint32_t w_health, w_progress, w_missed;
	uint64_t w_last_seen_ms;
	uint64_t w_beats;       /* 0 in the file = "has not beaten yet", a state of its own */
	uint64_t w_written_ms;  /* when the spec was last written */
};

enum vigil_kill_why {
	VIGIL_KILL_NONE = 0,
	VIGIL_KILL_CLEANUP,   /* vigilctl cleanup-zombies */
	VIGIL_KILL_RESTART,   /* a restart request for a running worker */
	VIGIL_KILL_ZOMBIE,    /* a zombie of a worker vigild restarts */
	VIGIL_KILL_NO_BEAT,   /* restarted but silent past heartbeat_timeout */
	VIGIL_KILL_DEADLINE,  /* past its spawn --timeout */
};

struct vigil_registry {
	struct cds_lfht *ht;
	struct vigil_worker **by_slot;
	uint32_t slots;
	uint32_t count;
};

int vigil_registry_init(struct vigil_registry *r, uint32_t slots);
void vigil_registry_destroy(struct vigil_registry *r);
/* Caller holds urcu_memb_read_lock(). */
struct vigil_worker *vigil_registry_find(struct vigil_registry *r, const char *id);
/* Adds w (id and slot filled in); -EEXIST when the id or slot is taken. */
int vigil_registry_add(struct vigil_registry *r, struct vigil_worker *w);
/* Removes and frees w after a grace period. */
void vigil_registry_remove(struct vigil_registry *r, struct vigil_worker *w);
static inline struct vigil_worker *vigil_registry_at(struct vigil_registry *r, uint32_t slot)
{
	return slot < r->slots ? r->by_slot[slot] : 0;
}

#endif /* VIGIL_REGISTRY_H */
