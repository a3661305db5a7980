/*
 * The interface between sencha-bench (bench/src/peer/boehm_ffi.rs mirrors it) and the Boehm GC
 * peer in boehm_peer.c. Every function returns one of the codes below.
 */
#ifndef SENCHA_BOEHM_PEER_H
#define SENCHA_BOEHM_PEER_H

#include <stddef.h>
#include <stdint.h>

#define SENCHA_BOEHM_OK 0
#define SENCHA_BOEHM_NOT_INITIALIZED 1
#define SENCHA_BOEHM_BAD_INPUT 2
#define SENCHA_BOEHM_OUT_OF_MEMORY 3
#define SENCHA_BOEHM_NO_MARK 4
#define SENCHA_BOEHM_NO_WORKLOAD 5
#define SENCHA_BOEHM_NOT_MAIN_THREAD 6

/* What a check found: objects and bytes (as requested) reached with their mark bit set and
 * their contents as built, and how many objects or links were not. */
struct sencha_boehm_check {
    size_t objects;
    size_t bytes;
    size_t bad;
};

/* What runs: marker threads including the collecting one (GC_MARKERS), bdwgc's version
 * (major << 16 | minor << 8 | micro), and whether mark-stack overflows are counted (they are
 * read from bdwgc's log, which GC_PRINT_STATS=1 in the environment turns on). */
struct sencha_boehm_info {
    unsigned markers;
    unsigned version;
    int overflow_log;
};

/* One collection: its mark phase's duration, the heap size after it, and how many times the
 * mark stack overflowed during it (each overflow makes bdwgc rescan the heap). */
struct sencha_boehm_collection {
    uint64_t mark_ns;
    size_t heap_bytes;
    size_t overflows;
};

/* Initializes bdwgc (log to a temporary file, interior pointers off, GC_INIT, mark threads
 * started, two precise kinds) once per process. Only the main thread may call it. */
int sencha_boehm_init(struct sencha_boehm_info *info);

/* The binary tree of n nodes (node k's children are 2k+1 and 2k+2): the j-th node allocated is
 * node order[j]; order must be a permutation of 0..n. Replaces any earlier workload. */
int sencha_boehm_build_tree(const size_t *order, size_t n);

/* A list of n cells {next, value}, allocated head last (cell i holds value i). */
int sencha_boehm_build_list(size_t n);

/* n objects of bytes[i] bytes (multiples of 8, 16 to 512) whose words 0 and 1 point to objects
 * edges[2i] and edges[2i+1], then one root array of the n objects in allocation order. */
int sencha_boehm_build_graph(const uint16_t *bytes, const size_t *edges, size_t n);

/* One full collection (GC_gcollect). */
int sencha_boehm_collect(struct sencha_boehm_collection *out);

/* Walks the workload as the last collection left it. bytes, edges and n are the graph's plan
 * (ignored for the other shapes). */
int sencha_boehm_check(const uint16_t *bytes, const size_t *edges, size_t n,
                       struct sencha_boehm_check *out);

/* For tests of the check: unlinks part of the workload (the tree's right subtree, the list's
 * second half, one root-array slot of the graph), so the next check must fail. */
int sencha_boehm_cut(void);

#endif
