/* Minimal HTTP/1.1 server for a keep. The listening socket is preopened by the keep;
 * its fd is the index of NAME (argv[1], default "ingest") in the ':'-separated FD_NAMES.
 * Connections are served one at a time: read the request up to the end of its headers,
 * answer "Hello from a keep! You asked for PATH\n" (PATH from the request line) with
 * Connection: close, then close. Requests whose headers exceed 8 KiB get a 431. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_REQUEST 8192

static int find_fd(const char *name) {
    const char *names = getenv("FD_NAMES");
    if (!names) {
        fprintf(stderr, "http_server: FD_NAMES is not set; no socket named '%s'\n", name);
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
    fprintf(stderr, "http_server: no fd named '%s' in FD_NAMES=%s\n", name, names);
    return -1;
}

/* Wait until fd is readable (or writable) when a call reported EAGAIN: the keep may
 * hand over nonblocking sockets. */
static void wait_fd(int fd, short events) {
    struct pollfd p = {.fd = fd, .events = events};
    poll(&p, 1, -1);
}

static int send_all(int fd, const char *buf, size_t len) {
    while (len > 0) {
        ssize_t n = send(fd, buf, len, 0);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                wait_fd(fd, POLLOUT);
                continue;
            }
            if (errno == EINTR)
                continue;
            return -1; /* EPIPE, ECONNRESET, ...: give up on this client */
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

static void serve(int fd) {
    static char req[MAX_REQUEST + 1];
    size_t len = 0;
    while (!memmem(req, len, "\r\n\r\n", 4)) {
        if (len == MAX_REQUEST) {
            static const char too_large[] =
                "HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\n"
                "Connection: close\r\n\r\n";
            send_all(fd, too_large, sizeof too_large - 1);
            return;
        }
        ssize_t n = recv(fd, req + len, MAX_REQUEST - len, 0);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            wait_fd(fd, POLLIN);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return; /* peer went away before finishing its request */
        len += (size_t)n;
    }
    req[len] = '\0';

    /* Request line: METHOD SP PATH SP VERSION */
    const char *path = "/";
    size_t path_len = 1;
    char *sp = memchr(req, ' ', len);
    char *eol = strstr(req, "\r\n");
    if (sp && sp < eol) {
        char *start = sp + 1;
        char *stop = start;
        while (stop < eol && *stop != ' ')
            stop++;
        if (stop > start) {
            path = start;
            path_len = (size_t)(stop - start);
        }
    }

    char body[MAX_REQUEST + 64];
    int body_len = snprintf(body, sizeof body, "Hello from a keep! You asked for %.*s\n",
                            (int)path_len, path);
    char head[256];
    int head_len = snprintf(head, sizeof head,
                            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                            "Content-Length: %d\r\nConnection: close\r\n\r\n",
                            body_len);
    if (send_all(fd, head, (size_t)head_len) == 0)
        send_all(fd, body, (size_t)body_len);
}

int main(int argc, char **argv) {
    const char *name = argc > 1 ? argv[1] : "ingest";
    int lfd = find_fd(name);
    if (lfd < 0)
        return 1;
    fprintf(stderr, "http_server: serving on fd %d (%s)\n", lfd, name);
    for (;;) {
        /* wasi-libc's accept() writes through addr/addrlen: they must not be NULL. */
        struct sockaddr_storage addr;
        socklen_t addrlen = sizeof addr;
        int fd = accept(lfd, (struct sockaddr *)&addr, &addrlen);
        if (fd < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                wait_fd(lfd, POLLIN);
                continue;
            }
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            fprintf(stderr, "http_server: accept: %s\n", strerror(errno));
            return 1;
        }
        serve(fd);
        close(fd);
    }
}
