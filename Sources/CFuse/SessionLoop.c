// The request loop: libfuse's multi-threaded loop, plus a short spin for the next request before a
// worker sleeps in read(2) on /dev/fuse.
//
// Why: on these machines a FUSE round trip costs about 20 us, and most of it is two wakeups — the
// daemon's when a request arrives, the caller's when the reply does. metafs answers a cached
// lookup in about 1 us, so the daemon's wakeup is most of what metafs itself adds to a call. A
// synchronous caller (cp, tar, git, a stat walk) sends its next request a few microseconds after
// the reply; a worker that polls /dev/fuse for that long picks it up without being woken. One
// worker at a time spins (the others sleep in read as usual), yielding the CPU each turn so that a
// runnable caller on the same core goes first.
//
// How long it spins adapts as KVM's halt polling does (virt/kvm/kvm_main.c, halt_poll_ns): the
// spinner times its whole wait for the next request, polling and sleeping. A wait longer than
// `max_spin_ns` (requests are sparse: a cached-mode workload, an idle mount) halves the window,
// down to 0; a wait the window missed but `max_spin_ns` would have caught grows it (from
// SPIN_START_NS, doubling, up to `max_spin_ns`). So a busy synchronous caller keeps a worker
// polling, and sparse requests cost no spinning. max_spin_ns 0 never spins.
//
// Ending: unmounting makes every read fail with ENODEV (libfuse then marks the session exited); a
// signal handler calls fuse_session_exit, which wakes the main thread's sem_wait with EINTR, and
// the main thread cancels the workers still asleep in read, as fuse_session_loop_mt does.
#include "CFuse.h"
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct cfuse_loop {
    struct fuse_session *se;
    long max_spin_ns;         // --spin-us
    atomic_long spin_ns;      // the current window, 0...max_spin_ns
    atomic_int spinning;      // 1 while a worker spins: only one does
    sem_t finished;           // posted by each worker that leaves the loop
    atomic_int error;
};

// Where a window grows from (KVM's halt_poll_ns_grow_start is 10 us as well).
#define SPIN_START_NS 10000L

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/// Polls /dev/fuse until a request is queued or the current window has passed. Returns the window
/// it used, or -1 if another worker is already spinning (this one then just sleeps in read).
static long spin_for_request(struct cfuse_loop *loop, int fd) {
    int expected = 0;
    if (!atomic_compare_exchange_strong(&loop->spinning, &expected, 1)) return -1;
    long window = atomic_load_explicit(&loop->spin_ns, memory_order_relaxed);
    if (window > 0) {
        long long deadline = now_ns() + window;
        struct pollfd p = { .fd = fd, .events = POLLIN };
        while (!fuse_session_exited(loop->se)) {
            if (poll(&p, 1, 0) != 0) break;      // a request (or an error read will report)
            if (now_ns() >= deadline) break;
            sched_yield();
        }
    }
    atomic_store(&loop->spinning, 0);
    return window;
}

/// The spinner waited `waited_ns` for its request with a window of `window` ns: adapt the window.
static void adapt_window(struct cfuse_loop *loop, long window, long long waited_ns) {
    long next = window;
    if (waited_ns <= window) return;                        // the spin caught it
    if (waited_ns > loop->max_spin_ns) {                    // sparse requests: spin less
        next = window / 2;
        if (next < SPIN_START_NS) next = 0;
    } else if (window < loop->max_spin_ns) {                // a longer window would have caught it
        next = window < SPIN_START_NS ? SPIN_START_NS : window * 2;
        if (next > loop->max_spin_ns) next = loop->max_spin_ns;
    }
    atomic_store_explicit(&loop->spin_ns, next, memory_order_relaxed);
}

static void free_buffer(void *arg) {
    free(((struct fuse_buf *)arg)->mem);
}

static void *worker(void *arg) {
    struct cfuse_loop *loop = arg;
    struct fuse_buf buf;
    memset(&buf, 0, sizeof buf);
    int fd = fuse_session_fd(loop->se);
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL);
    pthread_cleanup_push(free_buffer, &buf);
    while (!fuse_session_exited(loop->se)) {
        long long wait_start = 0;
        long window = -1;
        if (loop->max_spin_ns > 0) {
            wait_start = now_ns();
            window = spin_for_request(loop, fd);
        }
        // Cancellable only while asleep in read, never while serving a request.
        pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, NULL);
        int res = fuse_session_receive_buf(loop->se, &buf);
        pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL);
        if (window >= 0 && res > 0) adapt_window(loop, window, now_ns() - wait_start);
        if (res == -EINTR || res == -EAGAIN) continue;
        if (res <= 0) {
            if (res < 0) atomic_store(&loop->error, res);
            fuse_session_exit(loop->se);
            break;
        }
        fuse_session_process_buf(loop->se, &buf);
    }
    pthread_cleanup_pop(1);
    sem_post(&loop->finished);
    return NULL;
}

int cfuse_session_loop(struct fuse_session *se, unsigned threads, long spin_ns) {
    if (threads < 1) threads = 1;
    struct cfuse_loop loop = { .se = se, .max_spin_ns = spin_ns > 0 ? spin_ns : 0 };
    atomic_init(&loop.spin_ns, loop.max_spin_ns);
    atomic_init(&loop.spinning, 0);
    atomic_init(&loop.error, 0);
    sem_init(&loop.finished, 0, 0);
    pthread_t *ids = calloc(threads, sizeof *ids);
    unsigned started = 0;
    for (; started < threads; started++) {
        if (pthread_create(&ids[started], NULL, worker, &loop) != 0) break;
    }
    if (started == 0) {
        free(ids);
        sem_destroy(&loop.finished);
        return -EAGAIN;
    }
    // Until the first worker leaves (unmount, error) or a signal handler ends the session. The
    // timeout covers a signal taken by a thread that is neither this one nor a worker.
    while (!fuse_session_exited(se)) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 1;
        sem_timedwait(&loop.finished, &until);
    }
    for (unsigned i = 0; i < started; i++) pthread_cancel(ids[i]);
    for (unsigned i = 0; i < started; i++) pthread_join(ids[i], NULL);
    free(ids);
    sem_destroy(&loop.finished);
    int error = atomic_load(&loop.error);
    fuse_session_reset(se);
    return error;
}
