// Print argv and the environment, in the order the runtime provides them.
#include <iostream>

extern char **environ;

int main(int argc, char **argv) {
    for (int i = 0; i < argc; ++i)
        std::cout << "argv[" << i << "]=" << argv[i] << '\n';
    for (char **e = environ; e && *e; ++e)
        std::cout << "env:" << *e << '\n';
    return 0;
}
