/*
 * registry.c - worker records by id (liburcu lock-free hash) and by slot.
 */
#define _GNU_SOURCE
#include "registry.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static unsigned long hash_id(const char *s)
{
	unsigned long h = 0xcbf29ce484222325ul; /* FNV-1a */
	for (; *s != '\0'; s++) {
		h ^= (unsigned char)*s;
		h *= 0x100000001b3ul;
	}
	return h;
}

static int match_id(struct cds_lfht_node *node, const void *key)
{
	const struct vigil_worker *w = caa_container_of(node, struct vigil_worker, node);
	return strcmp(w->id, key) == 0;
}

int vigil_registry_init(struct vigil_registry *r, uint32_t slots)
{
	memset(r, 0, sizeof *r);
	r->by_slot = calloc(slots, sizeof *r->by_slot);
	if (r->by_slot == NULL)
		return -ENOMEM;
	r->ht = cds_lfht_new_flavor(64, 64, 0, CDS_LFHT_AUTO_RESIZE | CDS_LFHT_ACCOUNTING, &urcu_memb_flavor,
				    NULL);
	if (r->ht == NULL) {
		free(r->by_slot);
		return -ENOMEM;
	}
	r->slots = slots;
	return 0;
}

static void free_worker(struct rcu_head *head)
{
	struct vigil_worker *w = caa_container_of(head, struct vigil_worker, rcu);
	free(w->command);
	free(w->cwd);
	free(w);
}

static void close_fds(struct vigil_worker *w)
{
	if (w->sig_pidfd >= 0)
		close(w->sig_pidfd);
	w->sig_pidfd = -1;
}

void vigil_registry_destroy(struct vigil_registry *r)
{
	if (r->by_slot != NULL) {
		for (uint32_t i = 0; i < r->slots; i++) {
			struct vigil_worker *w = r->by_slot[i];
			if (w == NULL)
				continue;
			urcu_memb_read_lock();
			cds_lfht_del(r->ht, &w->node);
			urcu_memb_read_unlock();
			r->by_slot[i] = NULL;
			close_fds(w);
			free(w->command);
			free(w->cwd);
			free(w);
		}
	}
	if (r->ht != NULL)
		cds_lfht_destroy(r->ht, NULL);
	free(r->by_slot);
	memset(r, 0, sizeof *r);
}

struct vigil_worker *vigil_registry_find(struct vigil_registry *r, const char *id)
{
	struct cds_lfht_iter it;
	cds_lfht_lookup(r->ht, hash_id(id), match_id, id, &it);
	struct cds_lfht_node *n = cds_lfht_iter_get_node(&it);
	return n == NULL ? NULL : caa_container_of(n, struct vigil_worker, node);
}

int vigil_registry_add(struct vigil_registry *r, struct vigil_worker *w)
{
	if (w->slot >= r->slots || r->by_slot[w->slot] != NULL)
		return -EEXIST;
	cds_lfht_node_init(&w->node);
	urcu_memb_read_lock();
	struct cds_lfht_node *got = cds_lfht_add_unique(r->ht, hash_id(w->id), match_id, w->id, &w->node);
	urcu_memb_read_unlock();
	if (got != &w->node)
		return -EEXIST;
	r->by_slot[w->slot] = w;
	r->count++;
	return 0;
}

void vigil_registry_remove(struct vigil_registry *r, struct vigil_worker *w)
{
	urcu_memb_read_lock();
	int rc = cds_lfht_del(r->ht, &w->node);
	urcu_memb_read_unlock();
	if (w->slot < r->slots && r->by_slot[w->slot] == w)
		r->by_slot[w->slot] = NULL;
	if (rc == 0) {
		r->count--;
		close_fds(w);
		urcu_memb_call_rcu(&w->rcu, free_worker);
	}
}
