/* Execute the wasm `unreachable` instruction. */
#include <stdio.h>

int main(void) {
    fputs("about to trap\n", stderr);
    __builtin_trap();
}
