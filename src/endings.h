/*
 * endings.h - ending a worker's process through its pidfd, and the table of
 * processes that said goodbye but are still being waited for (endings.c).
 * Action thread only.
 */
#ifndef VIGIL_ENDINGS_H
#define VIGIL_ENDINGS_H

#include <stdbool.h>
#include <stdint.h>

#include "registry.h"
#include "restart.h"

struct vigil_action;

/* (vigil_restart_kill, vigil_restart_resume_ending: restart.h.) */

/* SIGKILL to every worker whose grace is over; *next (monotonic ms) is
 * lowered to the earliest grace still running. */
void vigil_endings_escalate(struct vigil_action *a, uint64_t now_mono_ms, uint64_t *next);
/* The ending of worker id that a replacement must wait for, or -1. */
int vigil_ending_find(const struct vigil_restart *r, const char *id);
/* w said goodbye: its pidfd moves to the table when its process is still
 * there and vigild was ending it (or it is vigild's child, to be reaped). */
void vigil_ending_take(struct vigil_action *a, struct vigil_worker *w);
/* Frees what has exited, escalates graces, gives up on what survives
 * SIGKILL for 5 s; *next (monotonic ms) lowered to when to look again. */
void vigil_endings_poll(struct vigil_action *a, uint64_t now_mono_ms, uint64_t *next);

#endif /* VIGIL_ENDINGS_H */
