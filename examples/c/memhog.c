/* Allocate and touch 1 MiB blocks until malloc fails (exit 2) or 4096 MiB (exit 0).
 * Each request leaves room for the allocator's header, so that a block costs
 * 1 MiB of linear memory rather than being rounded up to the next size class. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BLOCK (1024 * 1024)
#define HEADER_ROOM 64
#define MAX_BLOCKS 4096

static void *volatile blocks[MAX_BLOCKS];

int main(void) {
    for (int i = 0; i < MAX_BLOCKS; i++) {
        char *p = malloc(BLOCK - HEADER_ROOM);
        if (!p) {
            printf("malloc failed after %d MiB\n", i);
            return 2;
        }
        memset(p, i & 0xff, BLOCK - HEADER_ROOM);
        blocks[i] = p;
    }
    printf("allocated %d MiB without failure\n", MAX_BLOCKS);
    return 0;
}
