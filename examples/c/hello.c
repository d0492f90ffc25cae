#include <stdio.h>

int main(void) {
    fputs("Hello, world!\n", stdout);
    return 0;
}
