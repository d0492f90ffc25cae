/* Report the Enarx FD_COUNT / FD_NAMES environment and the WASI file type of
 * each fd 0..FD_COUNT-1 (fds 0..2 when FD_COUNT is unset). */
#include <stdio.h>
#include <stdlib.h>
#include <wasi/api.h>

int main(void) {
    const char *count = getenv("FD_COUNT");
    const char *names = getenv("FD_NAMES");
    printf("FD_COUNT=%s\n", count ? count : "");
    printf("FD_NAMES=%s\n", names ? names : "");
    int n = count ? atoi(count) : 3;
    for (int fd = 0; fd < n; fd++) {
        __wasi_fdstat_t st;
        __wasi_errno_t err = __wasi_fd_fdstat_get((__wasi_fd_t)fd, &st);
        if (err == __WASI_ERRNO_SUCCESS)
            printf("fd %d: filetype %u\n", fd, (unsigned)st.fs_filetype);
        else
            printf("fd %d: closed (errno %u)\n", fd, (unsigned)err);
    }
    return 0;
}
