/*
 * sencha-bench's Boehm GC peer: the workloads of bench/src/workload.rs built in a bdwgc heap,
 * one full collection at a time with its mark phase timed, and a check of every collection.
 *
 * Built only with the `boehm` cargo feature (bench/build.rs), against the system's libgc
 * (Debian: libgc-dev, bdwgc 8.2), and driven from bench/src/peer/boehm_ffi.rs in a child
 * process of sencha-bench: bdwgc keeps one global heap and reads GC_MARKERS once, at GC_INIT.
 *
 * Objects are precise, as sencha's layouts are: every shape allocates from a custom kind whose
 * descriptor is `GC_DS_LENGTH | pointer-prefix bytes` (not added to the object size), so the
 * marker scans exactly the pointer words, which come first in each struct. Interior pointers
 * are off (every pointer is to an object's start, as in sencha's workloads), so bdwgc adds no
 * byte to a request and a 32-byte node takes 32 bytes.
 *
 * The caller (Rust) computes the allocation order and the random plans once, with the same
 * code that builds sencha's heap, so both heaps come from one definition. Everything passed in
 * is validated here: a bad plan is an error code, never a wild write.
 *
 * Mark time is the interval between GC_EVENT_MARK_START and GC_EVENT_MARK_END of the
 * collection-event callback: world stopped, roots and heap marked, no sweep, no mark clearing.
 */
#define _GNU_SOURCE 1 /* gettid */
#define GC_THREADS 1
#include <gc.h>
#include <gc/gc_mark.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "boehm_peer.h"

/* Tree nodes: {left, right, index, depth}, 32 bytes, the first two words are pointers. */
struct node {
    struct node *left;
    struct node *right;
    uintptr_t index;
    uintptr_t depth;
};

/* List cells: {next, value}, 16 bytes, the first word is a pointer. */
struct cell {
    struct cell *next;
    uintptr_t value;
};

enum shape { SHAPE_NONE, SHAPE_TREE, SHAPE_LIST, SHAPE_GRAPH };

static int initialized;
static int kind_ptr1; /* one pointer word first (list cells) */
static int kind_ptr2; /* two pointer words first (tree nodes, graph objects) */

/* The one workload: its root lives here, in the program's data segment, which bdwgc scans. */
static void *root;
static enum shape shape;
static size_t shape_n;

/* bdwgc's log (GC_PRINT_STATS=1 in the environment), kept in a temporary file: the only place
 * bdwgc says that its mark stack overflowed, which makes a mark rescan the heap. */
static FILE *log_file;
static off_t log_read;

/* Written by the collection-event callback, which runs in the collecting thread. */
static uint64_t mark_start_ns;
static uint64_t mark_end_ns;
static uint64_t marks_seen;

static uint64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static void GC_CALLBACK on_collection_event(GC_EventType e)
{
    if (e == GC_EVENT_MARK_START) {
        mark_start_ns = now_ns();
    } else if (e == GC_EVENT_MARK_END) {
        mark_end_ns = now_ns();
        marks_seen++;
    }
}

int sencha_boehm_init(struct sencha_boehm_info *info)
{
    /* bdwgc takes the main thread's stack for the initialising thread's. */
    if (gettid() != getpid()) {
        return SENCHA_BOEHM_NOT_MAIN_THREAD;
    }
    if (!initialized) {
        log_file = tmpfile();
        if (log_file != NULL) {
            GC_set_log_fd(fileno(log_file));
        }
        GC_set_all_interior_pointers(0);
        GC_INIT();
        if (log_file != NULL) {
            GC_set_log_fd(fileno(log_file)); /* again: GC_LOG_FILE would have replaced it */
        }
        GC_start_mark_threads();
        GC_set_on_collection_event(on_collection_event);
        kind_ptr1 = (int)GC_new_kind(GC_new_free_list(), GC_DS_LENGTH | sizeof(void *), 0, 1);
        kind_ptr2 = (int)GC_new_kind(GC_new_free_list(), GC_DS_LENGTH | 2 * sizeof(void *), 0, 1);
        initialized = 1;
    }
    info->markers = (unsigned)GC_get_parallel() + 1;
    info->version = GC_get_version();
    info->overflow_log = log_file != NULL && getenv("GC_PRINT_STATS") != NULL;
    return SENCHA_BOEHM_OK;
}

/* Drops the current workload (it becomes garbage) before a new one is built. */
static void forget(void)
{
    root = NULL;
    shape = SHAPE_NONE;
    shape_n = 0;
}

static uintptr_t depth_of(size_t k)
{
    return (uintptr_t)(63 - __builtin_clzll((unsigned long long)k + 1));
}

int sencha_boehm_build_tree(const size_t *order, size_t n)
{
    if (!initialized) {
        return SENCHA_BOEHM_NOT_INITIALIZED;
    }
    if (order == NULL || n == 0 || n > ((size_t)1 << 40)) {
        return SENCHA_BOEHM_BAD_INPUT;
    }
    forget();
    struct node **addr = calloc(n, sizeof *addr);
    if (addr == NULL) {
        return SENCHA_BOEHM_OUT_OF_MEMORY;
    }
    int rc = SENCHA_BOEHM_OK;
    /* No collection may run while the nodes are reachable only from `addr` (malloc memory,
     * which bdwgc does not scan); sencha's heap is likewise never collected while built. */
    GC_disable();
    for (size_t j = 0; j < n; j++) {
        size_t k = order[j];
        if (k >= n || addr[k] != NULL) {
            rc = SENCHA_BOEHM_BAD_INPUT; /* not a permutation of 0..n */
            goto done;
        }
        addr[k] = GC_generic_malloc(sizeof(struct node), kind_ptr2);
        if (addr[k] == NULL) {
            rc = SENCHA_BOEHM_OUT_OF_MEMORY;
            goto done;
        }
    }
    for (size_t k = 0; k < n; k++) {
        size_t l = 2 * k + 1, r = 2 * k + 2;
        if (r < n) {
            addr[k]->left = addr[l];
            addr[k]->right = addr[r];
        }
        addr[k]->index = k;
        addr[k]->depth = depth_of(k);
    }
    root = addr[0];
    shape = SHAPE_TREE;
    shape_n = n;
done:
    GC_enable();
    free(addr);
    return rc;
}

int sencha_boehm_build_list(size_t n)
{
    if (!initialized) {
        return SENCHA_BOEHM_NOT_INITIALIZED;
    }
    if (n == 0) {
        return SENCHA_BOEHM_BAD_INPUT;
    }
    forget();
    int rc = SENCHA_BOEHM_OK;
    struct cell *head = NULL, *prev = NULL;
    GC_disable(); /* as for the tree: `head` alone keeps the cells, and it may sit in a register */
    /* Linked in allocation order, head first, as the Rust workload is. */
    for (size_t i = 0; i < n; i++) {
        struct cell *c = GC_generic_malloc(sizeof(struct cell), kind_ptr1);
        if (c == NULL) {
            rc = SENCHA_BOEHM_OUT_OF_MEMORY;
            goto done;
        }
        c->next = NULL;
        c->value = i;
        if (prev == NULL) {
            head = c;
        } else {
            prev->next = c;
        }
        prev = c;
    }
    root = head;
    shape = SHAPE_LIST;
    shape_n = n;
done:
    GC_enable();
    return rc;
}

int sencha_boehm_build_graph(const uint16_t *bytes, const size_t *edges, size_t n)
{
    if (!initialized) {
        return SENCHA_BOEHM_NOT_INITIALIZED;
    }
    if (bytes == NULL || edges == NULL || n == 0 || n > ((size_t)1 << 40)) {
        return SENCHA_BOEHM_BAD_INPUT;
    }
    forget();
    void ***objs = malloc(n * sizeof *objs);
    if (objs == NULL) {
        return SENCHA_BOEHM_OUT_OF_MEMORY;
    }
    int rc = SENCHA_BOEHM_OK;
    GC_disable();
    for (size_t i = 0; i < n; i++) {
        size_t b = bytes[i];
        if (b < 2 * sizeof(void *) || b > 512 || b % sizeof(void *) != 0) {
            rc = SENCHA_BOEHM_BAD_INPUT;
            goto done;
        }
        objs[i] = GC_generic_malloc(b, kind_ptr2);
        if (objs[i] == NULL) {
            rc = SENCHA_BOEHM_OUT_OF_MEMORY;
            goto done;
        }
    }
    for (size_t i = 0; i < n; i++) {
        size_t a = edges[2 * i], b = edges[2 * i + 1];
        if (a >= n || b >= n) {
            rc = SENCHA_BOEHM_BAD_INPUT;
            goto done;
        }
        objs[i][0] = objs[a];
        objs[i][1] = objs[b];
    }
    /* The root array: one large object of n pointers, allocated last, scanned whole. */
    void **array = GC_malloc(n * sizeof(void *));
    if (array == NULL) {
        rc = SENCHA_BOEHM_OUT_OF_MEMORY;
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        array[i] = objs[i];
    }
    root = array;
    shape = SHAPE_GRAPH;
    shape_n = n;
done:
    GC_enable();
    free(objs);
    return rc;
}

/* How many "Mark stack overflow" lines bdwgc logged since the last call. */
static size_t new_overflows(void)
{
    static const char needle[] = "Mark stack overflow";
    struct stat st;
    if (log_file == NULL || fstat(fileno(log_file), &st) != 0 || st.st_size <= log_read) {
        return 0;
    }
    size_t len = (size_t)(st.st_size - log_read);
    char *text = malloc(len + 1);
    if (text == NULL) {
        return 0;
    }
    ssize_t got = pread(fileno(log_file), text, len, log_read);
    size_t count = 0;
    if (got > 0) {
        text[got] = '\0';
        log_read += got;
        for (const char *p = text; (p = strstr(p, needle)) != NULL; p += sizeof needle - 1) {
            count++;
        }
    }
    free(text);
    return count;
}

int sencha_boehm_collect(struct sencha_boehm_collection *out)
{
    if (!initialized) {
        return SENCHA_BOEHM_NOT_INITIALIZED;
    }
    (void)new_overflows(); /* whatever the build logged */
    uint64_t before = marks_seen;
    GC_gcollect();
    if (marks_seen != before + 1) {
        return SENCHA_BOEHM_NO_MARK; /* collection disabled, or not one whole mark */
    }
    out->mark_ns = mark_end_ns - mark_start_ns;
    out->heap_bytes = GC_get_heap_size();
    out->overflows = new_overflows();
    return SENCHA_BOEHM_OK;
}

/* The check runs with the allocation lock held (GC_is_marked needs it; no collection can run). */
struct check_args {
    const uint16_t *bytes;
    const size_t *edges;
    size_t n;
    struct sencha_boehm_check *out;
    int rc;
};

static void check_tree(struct sencha_boehm_check *out)
{
    /* Depth-first walk with a bounded explicit stack: a valid tree of n < 2^40 nodes never
     * holds more than 41 entries; anything else is reported, never overflowed or looped. */
    struct {
        struct node *p;
        size_t k;
    } stack[64];
    size_t top = 0;
    stack[top].p = root;
    stack[top].k = 0;
    top++;
    while (top > 0) {
        top--;
        struct node *p = stack[top].p;
        size_t k = stack[top].k;
        if (p == NULL || k >= shape_n || out->objects >= shape_n || !GC_is_marked(p)
            || p->index != k || p->depth != depth_of(k)) {
            out->bad++;
            continue;
        }
        out->objects++;
        out->bytes += sizeof(struct node);
        if (2 * k + 2 < shape_n) {
            if (top + 2 > sizeof stack / sizeof stack[0]) {
                out->bad++;
                return;
            }
            stack[top].p = p->right;
            stack[top].k = 2 * k + 2;
            top++;
            stack[top].p = p->left;
            stack[top].k = 2 * k + 1;
            top++;
        } else if (p->left != NULL || p->right != NULL) {
            out->bad++;
        }
    }
}

static void check_list(struct sencha_boehm_check *out)
{
    /* The head is the first cell allocated: values run 0, 1, ..., n-1. */
    struct cell *c = root;
    for (size_t i = 0; i < shape_n; i++) {
        if (c == NULL || !GC_is_marked(c) || c->value != i) {
            out->bad++;
            return;
        }
        out->objects++;
        out->bytes += sizeof(struct cell);
        c = c->next;
    }
    if (c != NULL) {
        out->bad++;
    }
}

static void check_graph(const struct check_args *a)
{
    struct sencha_boehm_check *out = a->out;
    void ***array = root;
    if (array == NULL || !GC_is_marked(array)) {
        out->bad++;
        return;
    }
    out->objects++;
    out->bytes += shape_n * sizeof(void *);
    for (size_t i = 0; i < shape_n; i++) {
        void **o = array[i];
        size_t x = a->edges[2 * i], y = a->edges[2 * i + 1];
        if (o == NULL || !GC_is_marked(o) || x >= shape_n || y >= shape_n || o[0] != array[x]
            || o[1] != array[y] || GC_size(o) < a->bytes[i]) {
            out->bad++;
            continue;
        }
        out->objects++;
        out->bytes += a->bytes[i];
    }
}

static void *GC_CALLBACK check_locked(void *p)
{
    struct check_args *a = p;
    a->out->objects = 0;
    a->out->bytes = 0;
    a->out->bad = 0;
    switch (shape) {
    case SHAPE_TREE:
        check_tree(a->out);
        break;
    case SHAPE_LIST:
        check_list(a->out);
        break;
    case SHAPE_GRAPH:
        if (a->bytes == NULL || a->edges == NULL || a->n != shape_n) {
            a->rc = SENCHA_BOEHM_BAD_INPUT;
            return NULL;
        }
        check_graph(a);
        break;
    default:
        a->rc = SENCHA_BOEHM_NO_WORKLOAD;
        return NULL;
    }
    a->rc = SENCHA_BOEHM_OK;
    return NULL;
}

int sencha_boehm_check(const uint16_t *bytes, const size_t *edges, size_t n,
                       struct sencha_boehm_check *out)
{
    if (!initialized) {
        return SENCHA_BOEHM_NOT_INITIALIZED;
    }
    struct check_args a = { bytes, edges, n, out, SENCHA_BOEHM_OK };
    GC_call_with_alloc_lock(check_locked, &a);
    return a.rc;
}

int sencha_boehm_cut(void)
{
    if (!initialized) {
        return SENCHA_BOEHM_NOT_INITIALIZED;
    }
    switch (shape) {
    case SHAPE_TREE:
        if (shape_n < 3) {
            return SENCHA_BOEHM_BAD_INPUT;
        }
        ((struct node *)root)->right = NULL;
        return SENCHA_BOEHM_OK;
    case SHAPE_LIST: {
        if (shape_n < 2) {
            return SENCHA_BOEHM_BAD_INPUT;
        }
        struct cell *c = root;
        for (size_t i = 1; i < shape_n / 2; i++) {
            c = c->next;
        }
        c->next = NULL;
        return SENCHA_BOEHM_OK;
    }
    case SHAPE_GRAPH:
        ((void **)root)[shape_n / 2] = NULL;
        return SENCHA_BOEHM_OK;
    default:
        return SENCHA_BOEHM_NO_WORKLOAD;
    }
}
