// Copy stdin to stdout byte for byte until EOF.
#include <cstdio>
#include <vector>

int main() {
    std::vector<char> buf(64 * 1024);
    std::size_t n;
    while ((n = std::fread(buf.data(), 1, buf.size(), stdin)) > 0) {
        if (std::fwrite(buf.data(), 1, n, stdout) != n)
            return 1;
    }
    return std::ferror(stdin) ? 1 : 0;
}
