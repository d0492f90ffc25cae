/* Write DIR/hello.txt, read it back, then list DIR sorted (DIR = argv[1], default "."). */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : ".";
    char path[4096];
    snprintf(path, sizeof path, "%s/hello.txt", dir);

    FILE *f = fopen(path, "w");
    if (!f || fputs("written by wasm\n", f) < 0 || fclose(f) != 0) {
        perror(path);
        return 1;
    }
    char buf[256];
    f = fopen(path, "r");
    if (!f) {
        perror(path);
        return 1;
    }
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    fwrite(buf, 1, n, stdout);

    DIR *d = opendir(dir);
    if (!d) {
        perror(dir);
        return 1;
    }
    char **names = NULL;
    size_t count = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        names = realloc(names, (count + 1) * sizeof *names);
        names[count++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, count, sizeof *names, cmp);
    for (size_t i = 0; i < count; i++)
        printf("entry: %s\n", names[i]);
    return 0;
}
