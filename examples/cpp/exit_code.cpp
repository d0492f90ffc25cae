// Exit with the status given as argv[1] (default 0).
#include <cstdlib>
#include <iostream>

int main(int argc, char **argv) {
    int code = argc > 1 ? std::atoi(argv[1]) : 0;
    std::cerr << "exiting with " << code << '\n';
    return code;
}
