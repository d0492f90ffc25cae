/* TCP echo server for a keep. The listening socket is preopened by the keep; its
 * fd is the index of NAME (argv[1], default "ingest") in the ':'-separated FD_NAMES.
 * Serves up to MAX_CLIENTS connections at once with nonblocking sockets and poll():
 * every byte received is sent back; a connection is closed once the peer has closed
 * its side and everything has been echoed, or on any error (EPIPE, ECONNRESET, ...). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_CLIENTS 64
#define BUF_SIZE 16384

/* Index of `name` in FD_NAMES, or -1 after printing an error. */
static int find_fd(const char *name) {
    const char *names = getenv("FD_NAMES");
    if (!names) {
        fprintf(stderr, "echo_server: FD_NAMES is not set; no socket named '%s'\n", name);
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
    fprintf(stderr, "echo_server: no fd named '%s' in FD_NAMES=%s\n", name, names);
    return -1;
}

struct client {
    int fd;            /* -1: free slot */
    int eof;           /* peer closed its write side */
    size_t off, len;   /* unsent bytes are buf[off..len) */
    char buf[BUF_SIZE];
};

static struct client clients[MAX_CLIENTS];

static int transient(int err) {
    return err == EAGAIN || err == EWOULDBLOCK || err == EINTR;
}

static void drop_client(struct client *c) {
    close(c->fd);
    c->fd = -1;
}

/* Send what is pending; returns 0 to keep the connection, -1 to drop it. */
static int flush_client(struct client *c) {
    while (c->off < c->len) {
        ssize_t n = send(c->fd, c->buf + c->off, c->len - c->off, 0);
        if (n < 0)
            return transient(errno) ? 0 : -1; /* EPIPE, ECONNRESET, ...: drop */
        c->off += (size_t)n;
    }
    c->off = c->len = 0;
    return c->eof ? -1 : 0;
}

/* Read once and echo; returns 0 to keep the connection, -1 to drop it. */
static int serve_client(struct client *c) {
    ssize_t n = recv(c->fd, c->buf, sizeof c->buf, 0);
    if (n < 0)
        return transient(errno) ? 0 : -1;
    if (n == 0) {
        c->eof = 1;
        return -1; /* nothing pending (we only read when the buffer is empty) */
    }
    c->off = 0;
    c->len = (size_t)n;
    return flush_client(c);
}

int main(int argc, char **argv) {
    const char *name = argc > 1 ? argv[1] : "ingest";
    int lfd = find_fd(name);
    if (lfd < 0)
        return 1;
    if (fcntl(lfd, F_SETFL, O_NONBLOCK) != 0) {
        fprintf(stderr, "echo_server: cannot make fd %d nonblocking: %s\n", lfd, strerror(errno));
        return 1;
    }
    for (int i = 0; i < MAX_CLIENTS; i++)
        clients[i].fd = -1;
    fprintf(stderr, "echo_server: serving on fd %d (%s)\n", lfd, name);

    struct pollfd pfds[MAX_CLIENTS + 1];
    for (;;) {
        int nclients = 0;
        for (int i = 0; i < MAX_CLIENTS; i++) {
            struct client *c = &clients[i];
            pfds[i + 1].fd = c->fd; /* poll() skips negative fds */
            pfds[i + 1].events = c->len > c->off ? POLLOUT : POLLIN;
            pfds[i + 1].revents = 0;
            nclients += c->fd >= 0;
        }
        pfds[0].fd = nclients < MAX_CLIENTS ? lfd : -1; /* stop accepting when full */
        pfds[0].events = POLLIN;
        pfds[0].revents = 0;

        if (poll(pfds, MAX_CLIENTS + 1, -1) < 0) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, "echo_server: poll: %s\n", strerror(errno));
            return 1;
        }

        for (int i = 0; i < MAX_CLIENTS; i++) {
            struct client *c = &clients[i];
            if (c->fd < 0 || pfds[i + 1].revents == 0)
                continue;
            int keep = c->len > c->off ? flush_client(c) : serve_client(c);
            if (keep < 0)
                drop_client(c);
        }

        if (pfds[0].revents != 0) {
            /* Accept everything that is waiting, while there are free slots. */
            for (int i = 0; i < MAX_CLIENTS; i++) {
                if (clients[i].fd >= 0)
                    continue;
                /* wasi-libc's accept() writes through addr/addrlen: they must not be NULL. */
                struct sockaddr_storage addr;
                socklen_t addrlen = sizeof addr;
                int fd = accept(lfd, (struct sockaddr *)&addr, &addrlen);
                if (fd < 0) {
                    if (transient(errno) || errno == ECONNABORTED)
                        break;
                    fprintf(stderr, "echo_server: accept: %s\n", strerror(errno));
                    return 1;
                }
                if (fcntl(fd, F_SETFL, O_NONBLOCK) != 0) {
                    close(fd);
                    continue;
                }
                clients[i].fd = fd;
                clients[i].eof = 0;
                clients[i].off = clients[i].len = 0;
            }
        }
    }
}
