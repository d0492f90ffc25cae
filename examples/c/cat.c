/* Copy stdin to stdout byte for byte until EOF. */
#include <errno.h>
#include <stdio.h>
#include <unistd.h>

static char buf[64 * 1024];

int main(void) {
    for (;;) {
        ssize_t n = read(STDIN_FILENO, buf, sizeof buf);
        if (n == 0)
            return 0;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            perror("read");
            return 1;
        }
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(STDOUT_FILENO, buf + off, (size_t)(n - off));
            if (w < 0) {
                if (errno == EINTR)
                    continue;
                perror("write");
                return 1;
            }
            off += w;
        }
    }
}
