/*
 * The FUSE server's tables: nodes (host inodes the guest has looked up, one per inode) and open
 * file handles. Both are bounded; ids carry a generation so a stale or forged id finds nothing.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../fd_budget.h"
#include "internal.h"

static uint32_t hash(dev_t dev, ino_t ino)
{
	uint64_t h =
		((uint64_t)ino * 0x9e3779b97f4a7c15ull) ^ ((uint64_t)dev * 0xc2b2ae3d27d4eb4full);
	return (uint32_t)(h >> 32);
}

static uint64_t make_id(uint32_t slot, uint32_t gen)
{
	return ((uint64_t)gen << 32) | (uint64_t)(slot + 1);
}

/* The slot an id names, or UINT32_MAX. */
static uint32_t id_slot(uint64_t id, uint32_t hw, uint32_t *gen)
{
	uint32_t low = (uint32_t)id;
	*gen = (uint32_t)(id >> 32);
	if (low == 0 || low > hw)
		return UINT32_MAX;
	return low - 1;
}

struct fuse_node *fuse_node_get(struct fuse_server *s, uint64_t nodeid)
{
	uint32_t gen, slot = id_slot(nodeid, s->hw_nodes, &gen);
	if (slot == UINT32_MAX)
		return NULL;
	struct fuse_node *n = &s->nodes[slot];
	return n->fd >= 0 && n->gen == gen ? n : NULL;
}

uint64_t fuse_node_id(const struct fuse_server *s, const struct fuse_node *n)
{
	return make_id((uint32_t)(n - s->nodes), n->gen);
}

static int rehash(struct fuse_server *s, uint32_t nr_buckets)
{
	uint32_t *b = calloc(nr_buckets, sizeof(*b));
	if (!b)
		return -ENOMEM;
	free(s->buckets);
	s->buckets = b;
	s->nr_buckets = nr_buckets;
	for (uint32_t i = 0; i < s->hw_nodes; i++) {
		struct fuse_node *n = &s->nodes[i];
		if (n->fd < 0)
			continue;
		uint32_t *head = &b[hash(n->dev, n->ino) & (nr_buckets - 1)];
		n->next = *head;
		*head = i + 1;
	}
	return 0;
}

static struct fuse_node *find(struct fuse_server *s, dev_t dev, ino_t ino)
{
	for (uint32_t i = s->buckets[hash(dev, ino) & (s->nr_buckets - 1)]; i;
	     i = s->nodes[i - 1].next) {
		struct fuse_node *n = &s->nodes[i - 1];
		if (n->dev == dev && n->ino == ino)
			return n;
	}
	return NULL;
}

/* A free slot; UINT32_MAX when the table is full. */
static uint32_t alloc_slot(struct fuse_server *s)
{
	if (s->free_node) {
		uint32_t slot = s->free_node - 1;
		s->free_node = s->nodes[slot].next;
		return slot;
	}
	if (s->hw_nodes == s->max_nodes)
		return UINT32_MAX;
	s->nodes[s->hw_nodes].gen = 0;
	return s->hw_nodes++;
}

struct fuse_node *fuse_node_ref(struct fuse_server *s, int fd, const struct stat *st)
{
	struct fuse_node *n = find(s, st->st_dev, st->st_ino);
	if (n) {
		close(fd);
		n->nlookup++;
		return n;
	}
	/* Each node holds a descriptor: out of the process's budget (ENFILE when spent). */
	uint32_t slot = UINT32_MAX;
	if (fd_budget_take() && (slot = alloc_slot(s)) == UINT32_MAX)
		fd_budget_give();
	if (slot == UINT32_MAX) {
		close(fd);
		errno = ENFILE;
		return NULL;
	}
	n = &s->nodes[slot];
	n->fd = fd;
	n->dev = st->st_dev;
	n->ino = st->st_ino;
	n->type = st->st_mode & S_IFMT;
	n->nlookup = 1;
	n->seen_valid = false;
	uint32_t *head = &s->buckets[hash(n->dev, n->ino) & (s->nr_buckets - 1)];
	n->next = *head;
	*head = slot + 1;
	s->nr_nodes++;
	/* Load factor 1; if the bigger table cannot be had, chains just grow longer. */
	if (s->nr_nodes > s->nr_buckets) {
		int err = rehash(s, s->nr_buckets * 2);
		(void)err;
	}
	return n;
}

void fuse_node_forget(struct fuse_server *s, uint64_t nodeid, uint64_t count)
{
	struct fuse_node *n = fuse_node_get(s, nodeid);
	if (!n || n == s->nodes) /* unknown, or the root, which lives as long as the server */
		return;
	n->nlookup = count >= n->nlookup ? 0 : n->nlookup - count;
	if (n->nlookup)
		return;
	uint32_t slot = (uint32_t)(n - s->nodes);
	for (uint32_t *p = &s->buckets[hash(n->dev, n->ino) & (s->nr_buckets - 1)]; *p;
	     p = &s->nodes[*p - 1].next) {
		if (*p == slot + 1) {
			*p = n->next;
			break;
		}
	}
	close(n->fd);
	fd_budget_give();
	n->fd = -1;
	n->gen++;
	n->next = s->free_node;
	s->free_node = slot + 1;
	s->nr_nodes--;
}

/*
 * Tables never move (node pointers stay valid across lookups): reserved once, touched as used,
 * a page at a time: where transparent huge pages are "always" (Debian's kernels) the root's node
 * alone took a whole 2 MiB page of the VMM's memory.
 */
static void *reserve(size_t bytes)
{
	void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	madvise(p, bytes, MADV_NOHUGEPAGE);
	return p;
}

int fuse_nodes_init(struct fuse_server *s, int root_fd, const struct stat *st)
{
	s->nodes = reserve(s->max_nodes * sizeof(*s->nodes));
	s->handles = reserve(FUSE_MAX_HANDLES * sizeof(*s->handles));
	if (!s->nodes || !s->handles || rehash(s, 1024) < 0)
		return -ENOMEM;
	s->hw_nodes = 1;
	struct fuse_node *root = &s->nodes[0];
	root->fd = root_fd;
	root->dev = st->st_dev;
	root->ino = st->st_ino;
	root->type = S_IFDIR;
	root->nlookup = 1;
	s->buckets[hash(root->dev, root->ino) & (s->nr_buckets - 1)] = 1;
	s->nr_nodes = 1;
	return 0;
}

void fuse_nodes_free(struct fuse_server *s)
{
	/* The root's descriptor is the server's own, not the budget's. */
	for (uint32_t i = 0; s->nodes && i < s->hw_nodes; i++) {
		if (s->nodes[i].fd >= 0) {
			close(s->nodes[i].fd);
			if (i > 0)
				fd_budget_give();
		}
	}
	for (uint32_t i = 0; s->handles && i < s->hw_handles; i++) {
		if (s->handles[i].fd >= 0) {
			close(s->handles[i].fd);
			fd_budget_give();
		}
	}
	if (s->nodes)
		munmap(s->nodes, s->max_nodes * sizeof(*s->nodes));
	if (s->handles)
		munmap(s->handles, FUSE_MAX_HANDLES * sizeof(*s->handles));
	free(s->buckets);
	s->nodes = NULL;
	s->handles = NULL;
	s->buckets = NULL;
}

uint64_t fuse_handle_new(struct fuse_server *s, int fd, bool dir)
{
	uint32_t slot;
	if (!fd_budget_take()) {
		close(fd);
		return 0;
	}
	if (s->free_handle) {
		slot = s->free_handle - 1;
		s->free_handle = s->handles[slot].next;
	} else if (s->hw_handles < FUSE_MAX_HANDLES) {
		slot = s->hw_handles++;
		s->handles[slot].gen = 0;
	} else {
		fd_budget_give();
		close(fd);
		return 0;
	}
	s->handles[slot].fd = fd;
	s->handles[slot].dir = dir;
	s->nr_handles++;
	return make_id(slot, s->handles[slot].gen);
}

struct fuse_handle *fuse_handle_get(struct fuse_server *s, uint64_t fh, bool dir)
{
	uint32_t gen, slot = id_slot(fh, s->hw_handles, &gen);
	if (slot == UINT32_MAX)
		return NULL;
	struct fuse_handle *h = &s->handles[slot];
	return h->fd >= 0 && h->gen == gen && h->dir == dir ? h : NULL;
}

void fuse_handle_close(struct fuse_server *s, uint64_t fh, bool dir)
{
	struct fuse_handle *h = fuse_handle_get(s, fh, dir);
	if (!h)
		return;
	close(h->fd);
	fd_budget_give();
	h->fd = -1;
	h->gen++;
	h->next = s->free_handle;
	s->free_handle = (uint32_t)(h - s->handles) + 1;
	s->nr_handles--;
}
