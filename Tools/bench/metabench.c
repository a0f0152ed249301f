// metabench: the metadata driver of Tools/bench/run. Multi-threaded, syscalls only, timed with
// clock_gettime(CLOCK_MONOTONIC). Each thread owns a subtree DIR/t<k>/a<i>/b<j>/ of leaf
// directories holding PER_DIR files each, and works inside a leaf through a directory descriptor
// (the *at calls, as find, ls -l, rm -r and tar do), so one operation is one last-component
// lookup plus the call itself, not a walk of the whole path.
//
//   metabench DIR FILES THREADS [-p phases] [-d per_dir] [-f fanout] [-i interval] [-r]
//
// phases (comma separated, in order; default mkdir,create,stat,readdir,rename,unlink,rmdir):
//   mkdir   make the leaf directories (and their parents)
//   create  open(O_CREAT|O_EXCL|O_WRONLY) + close of every file
//   stat    fstatat of every file
//   readdir open + getdents64 to the end + close of every leaf directory (counted per entry)
//   rename  renameat f<n> -> r<n> in the same directory
//   unlink  unlinkat of every (renamed) file; with no rename phase before it, of f<n>
//           (-r: the files were renamed by an earlier run: stat and unlink use r<n>)
//   rmdir   remove the leaf directories and their parents
// Prints one line per phase: "phase <name> ops <n> seconds <s> ops_per_s <r>".
// With -i N, create and stat also print "interval <name> <k> ops_per_s <r>" for each N operations
// (all threads together), for the scale test.
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static const char *root;
static long files, nthreads, perDir = 100, fanout = 32, interval;
static int renamed;                 // a rename phase ran: unlink removes r<n>
static pthread_barrier_t startBarrier;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what, const char *path) {
    fprintf(stderr, "metabench: %s %s: %s\n", what, path, strerror(errno));
    exit(2);
}

struct worker {
    pthread_t thread;
    long index;
    long first, count;              // files [first, first+count) of the whole run
    const char *phase;
    long done;                      // operations (readdir: entries)
    double *marks;                  // time at each interval boundary of this thread's share
    long nmarks;
    double start, end;              // this thread's work, from the barrier to its last call
};

static long dirsOf(long count) { return (count + perDir - 1) / perDir; }

static void leafPath(char *buf, size_t n, long thread, long dir) {
    snprintf(buf, n, "%s/t%ld/a%ld/b%ld", root, thread, dir / fanout, dir % fanout);
}

static int openDir(const char *path) {
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) die("open", path);
    return fd;
}

static void mark(struct worker *w, long opsInPhase) {
    if (!w->marks) return;
    long share = interval / nthreads;
    if (share > 0 && opsInPhase % share == 0 && opsInPhase / share - 1 < w->nmarks) w->marks[opsInPhase / share - 1] = now();
}

static void *run(void *arg) {
    struct worker *w = arg;
    char path[4096], name[64], other[64];
    long ndirs = dirsOf(w->count);
    const char *ph = w->phase;
    pthread_barrier_wait(&startBarrier);
    w->start = now();
    if (!strcmp(ph, "mkdir")) {
        snprintf(path, sizeof path, "%s/t%ld", root, w->index);
        if (mkdir(path, 0755) && errno != EEXIST) die("mkdir", path);
        for (long d = 0; d < ndirs; d++) {
            if (d % fanout == 0) {
                snprintf(path, sizeof path, "%s/t%ld/a%ld", root, w->index, d / fanout);
                if (mkdir(path, 0755) && errno != EEXIST) die("mkdir", path);
                w->done++;
            }
            leafPath(path, sizeof path, w->index, d);
            if (mkdir(path, 0755)) die("mkdir", path);
            w->done++;
        }
    } else if (!strcmp(ph, "rmdir")) {
        for (long d = 0; d < ndirs; d++) {
            leafPath(path, sizeof path, w->index, d);
            if (rmdir(path)) die("rmdir", path);
            w->done++;
            if (d % fanout == fanout - 1 || d == ndirs - 1) {
                snprintf(path, sizeof path, "%s/t%ld/a%ld", root, w->index, d / fanout);
                if (rmdir(path)) die("rmdir", path);
                w->done++;
            }
        }
        snprintf(path, sizeof path, "%s/t%ld", root, w->index);
        if (rmdir(path)) die("rmdir", path);
    } else if (!strcmp(ph, "readdir")) {
        char buf[32768];
        for (long d = 0; d < ndirs; d++) {
            leafPath(path, sizeof path, w->index, d);
            int dfd = openDir(path);
            for (;;) {
                long n = syscall(SYS_getdents64, dfd, buf, sizeof buf);
                if (n < 0) die("getdents64", path);
                if (n == 0) break;
                for (long off = 0; off < n;) {
                    struct dirent64 *e = (struct dirent64 *)(buf + off);
                    if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) w->done++;
                    off += e->d_reclen;
                }
            }
            close(dfd);
        }
    } else {
        long n = 0;
        for (long d = 0; d < ndirs; d++) {
            leafPath(path, sizeof path, w->index, d);
            int dfd = openDir(path);
            long inDir = w->count - d * perDir < perDir ? w->count - d * perDir : perDir;
            for (long j = 0; j < inDir; j++, n++) {
                snprintf(name, sizeof name, "%c%ld", renamed && strcmp(ph, "rename") ? 'r' : 'f', j);
                if (!strcmp(ph, "create")) {
                    int fd = openat(dfd, name, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
                    if (fd < 0) die("create", name);
                    close(fd);
                } else if (!strcmp(ph, "stat")) {
                    struct stat st;
                    if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW)) die("stat", name);
                } else if (!strcmp(ph, "rename")) {
                    snprintf(other, sizeof other, "r%ld", j);
                    if (renameat(dfd, name, dfd, other)) die("rename", name);
                } else if (!strcmp(ph, "unlink")) {
                    if (unlinkat(dfd, name, 0)) die("unlink", name);
                } else {
                    fprintf(stderr, "metabench: unknown phase %s\n", ph);
                    exit(2);
                }
                mark(w, n + 1);
            }
            close(dfd);
        }
        w->done = n;
    }
    w->end = now();
    return NULL;
}

static void phase(struct worker *ws, const char *name) {
    long nm = interval > 0 ? files / interval : 0;
    int marked = nm > 0 && (!strcmp(name, "create") || !strcmp(name, "stat"));
    pthread_barrier_init(&startBarrier, NULL, (unsigned)nthreads + 1);
    for (long k = 0; k < nthreads; k++) {
        ws[k].phase = name;
        ws[k].done = 0;
        ws[k].nmarks = marked ? nm : 0;
        ws[k].marks = marked ? calloc((size_t)nm, sizeof(double)) : NULL;
        if (pthread_create(&ws[k].thread, NULL, run, &ws[k])) { perror("pthread_create"); exit(2); }
    }
    pthread_barrier_wait(&startBarrier);
    long total = 0;
    for (long k = 0; k < nthreads; k++) { pthread_join(ws[k].thread, NULL); total += ws[k].done; }
    // From the first thread's start to the last one's end, as the threads saw them: the main
    // thread may run late after the barrier (on 2 busy cores, after short phases had ended).
    double t0 = ws[0].start, t1 = ws[0].end;
    for (long k = 1; k < nthreads; k++) {
        if (ws[k].start < t0) t0 = ws[k].start;
        if (ws[k].end > t1) t1 = ws[k].end;
    }
    double t = t1 - t0;
    pthread_barrier_destroy(&startBarrier);
    printf("phase %s ops %ld seconds %.4f ops_per_s %.1f\n", name, total, t, total / t);
    if (marked) {
        double previous = t0;
        for (long i = 0; i < nm; i++) {
            double end = 0;
            for (long k = 0; k < nthreads; k++) if (ws[k].marks[i] > end) end = ws[k].marks[i];
            if (end > 0) printf("interval %s %ld ops_per_s %.1f\n", name, i + 1, interval / (end - previous));
            previous = end;
        }
        for (long k = 0; k < nthreads; k++) free(ws[k].marks);
    }
    fflush(stdout);
    if (!strcmp(name, "rename")) renamed = 1;
}

int main(int argc, char **argv) {
    const char *phases = "mkdir,create,stat,readdir,rename,unlink,rmdir";
    int opt;
    while ((opt = getopt(argc, argv, "p:d:f:i:r")) != -1) {
        switch (opt) {
        case 'p': phases = optarg; break;
        case 'd': perDir = atol(optarg); break;
        case 'f': fanout = atol(optarg); break;
        case 'i': interval = atol(optarg); break;
        case 'r': renamed = 1; break;
        default: goto usage;
        }
    }
    if (argc - optind != 3) goto usage;
    root = argv[optind];
    files = atol(argv[optind + 1]);
    nthreads = atol(argv[optind + 2]);
    if (files < 1 || nthreads < 1 || perDir < 1 || fanout < 1) goto usage;
    struct worker *ws = calloc((size_t)nthreads, sizeof *ws);
    for (long k = 0; k < nthreads; k++) {
        ws[k].index = k;
        ws[k].first = files * k / nthreads;
        ws[k].count = files * (k + 1) / nthreads - ws[k].first;
    }
    char *list = strdup(phases);
    for (char *save = NULL, *p = strtok_r(list, ",", &save); p; p = strtok_r(NULL, ",", &save)) phase(ws, p);
    free(list);
    free(ws);
    return 0;
usage:
    fprintf(stderr, "usage: metabench [-p phases] [-d per_dir] [-f fanout] [-i interval] [-r] DIR FILES THREADS\n");
    return 2;
}
