/* Write N numbered lines (argv[1], default 1000), alternately to stdout ("out I") and stderr ("err I"),
 * one write(2) per line: what arrives shows whether each stream kept its bytes and order. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv) {
    long lines = argc > 1 ? atol(argv[1]) : 1000;
    char line[32];
    for (long i = 0; i < lines; i++) {
        int fd = i % 2 ? STDERR_FILENO : STDOUT_FILENO;
        int n = snprintf(line, sizeof line, "%s %ld\n", i % 2 ? "err" : "out", i);
        if (write(fd, line, (size_t)n) != n)
            return 1;
    }
    return 0;
}
