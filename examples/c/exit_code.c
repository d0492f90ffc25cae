/* Exit with the status given as argv[1] (default 0). */
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    int code = argc > 1 ? atoi(argv[1]) : 0;
    fprintf(stderr, "exiting with %d\n", code);
    return code;
}
