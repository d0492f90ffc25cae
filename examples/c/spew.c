/* Write N MiB (argv[1], default 100) of 'x' to stdout in 64 KiB writes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char buf[64 * 1024];

int main(int argc, char **argv) {
    long mib = argc > 1 ? atol(argv[1]) : 100;
    memset(buf, 'x', sizeof buf);
    long chunks = mib * (1024 * 1024 / (long)sizeof buf);
    for (long c = 0; c < chunks; c++) {
        size_t off = 0;
        while (off < sizeof buf) {
            ssize_t w = write(STDOUT_FILENO, buf + off, sizeof buf - off);
            if (w < 0) {
                perror("write");
                return 1;
            }
            off += (size_t)w;
        }
    }
    return 0;
}
