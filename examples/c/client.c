/* TCP client for a keep. The connected socket is preopened by the keep; its fd is the
 * index of NAME (argv[1], default "server") in the ':'-separated FD_NAMES. Sends
 * "hello from the keep\n", shuts down its write side, then copies everything it
 * receives to stdout until the server closes the connection. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int find_fd(const char *name) {
    const char *names = getenv("FD_NAMES");
    if (!names) {
        fprintf(stderr, "client: FD_NAMES is not set; no socket named '%s'\n", name);
        return -1;
    }
    size_t len = strlen(name);
    int index = 0;
    for (const char *p = names;; index++) {
        const char *end = strchr(p, ':');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n == len && memcmp(p, name, len) == 0)
            return index;
        if (!end)
            break;
        p = end + 1;
    }
    fprintf(stderr, "client: no fd named '%s' in FD_NAMES=%s\n", name, names);
    return -1;
}

/* Wait after EAGAIN: the keep may hand over a nonblocking socket. */
static void wait_fd(int fd, short events) {
    struct pollfd p = {.fd = fd, .events = events};
    poll(&p, 1, -1);
}

int main(int argc, char **argv) {
    const char *name = argc > 1 ? argv[1] : "server";
    int fd = find_fd(name);
    if (fd < 0)
        return 1;

    static const char line[] = "hello from the keep\n";
    size_t off = 0;
    while (off < sizeof line - 1) {
        ssize_t n = send(fd, line + off, sizeof line - 1 - off, 0);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                wait_fd(fd, POLLOUT);
                continue;
            }
            if (errno == EINTR)
                continue;
            fprintf(stderr, "client: send: %s\n", strerror(errno));
            return 1;
        }
        off += (size_t)n;
    }
    if (shutdown(fd, SHUT_WR) != 0) {
        fprintf(stderr, "client: shutdown: %s\n", strerror(errno));
        return 1;
    }

    static char buf[65536];
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                wait_fd(fd, POLLIN);
                continue;
            }
            if (errno == EINTR)
                continue;
            fprintf(stderr, "client: recv: %s\n", strerror(errno));
            return 1;
        }
        if (n == 0)
            break;
        if (fwrite(buf, 1, (size_t)n, stdout) != (size_t)n) {
            fprintf(stderr, "client: write to stdout failed\n");
            return 1;
        }
    }
    fflush(stdout);
    close(fd);
    return 0;
}
