/*
 * A tiny thread-affine C library, in the style of OpenGL contexts or GUI
 * toolkits: affine_init() binds the library to the calling OS thread, and
 * every later call must come from that same thread. The per-thread state
 * is a __thread variable, as such libraries keep theirs.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

static pthread_t owner;
static int initialised;
static __thread long calls_on_this_thread;

long affine_gettid(void) { return (long)syscall(SYS_gettid); }

/* Binds the library to the calling thread. Returns its thread id. */
long affine_init(void) {
    owner = pthread_self();
    initialised = 1;
    calls_on_this_thread = 0;
    return affine_gettid();
}

/*
 * A call that is only valid on the owner thread: returns the number of
 * calls made on this thread so far (>= 1), or -1 when called from another
 * thread (or before affine_init), as a thread-affine library would fail.
 */
long affine_call(void) {
    if (!initialised || !pthread_equal(owner, pthread_self()))
        return -1;
    return ++calls_on_this_thread;
}

/* Unbinds the library; returns the calls made, or -1 off the owner thread. */
long affine_shutdown(void) {
    if (!initialised || !pthread_equal(owner, pthread_self()))
        return -1;
    initialised = 0;
    return calls_on_this_thread;
}
