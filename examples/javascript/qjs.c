/* A small JavaScript runner for wasm32-wasi around the QuickJS-ng engine (its C sources come from the
 * quickjs-ng source distribution on PyPI; see examples/build.sh).
 *
 *   main.wasm SCRIPT [ARGS...]     run the file SCRIPT (in a preopened directory)
 *   main.wasm - [ARGS...]          read the script from stdin
 *   main.wasm -e CODE [ARGS...]    run CODE
 *
 * The script sees a Node-like subset: console.log/info (stdout), console.error/warn (stderr),
 * process.argv ([argv[0], SCRIPT, ARGS...]), process.env, process.exit(code), process.exitCode,
 * process.stdout.write(s), process.stderr.write(s), process.stdin.read() (all of stdin as a string)
 * and readFile(path) (a UTF-8 file as a string). Promises and async functions run to completion.
 * An uncaught exception or unhandled rejection prints "Uncaught ..." to stderr and exits 1. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quickjs.h"

extern char **environ;

static char *unhandled_rejection = NULL; /* the reason of a rejection still unhandled, if any */

static const char PRELUDE[] =
    "(function (host) {\n"
    "  const show = (v) => typeof v === 'string' ? v\n"
    "    : v instanceof Error ? (v.stack ? `${v}\\n${v.stack}`.trimEnd() : String(v))\n"
    "    : v !== null && typeof v === 'object' ? JSON.stringify(v) : String(v);\n"
    "  const line = (args) => args.map(show).join(' ') + '\\n';\n"
    "  const out = (s) => host.write(1, String(s)), err = (s) => host.write(2, String(s));\n"
    "  globalThis.console = { log: (...a) => out(line(a)), info: (...a) => out(line(a)),\n"
    "                         error: (...a) => err(line(a)), warn: (...a) => err(line(a)) };\n"
    "  globalThis.process = { argv: host.argv, env: host.env, exitCode: undefined,\n"
    "    exit: (code) => host.exit(code === undefined ? (process.exitCode ?? 0) : code),\n"
    "    stdout: { write: out }, stderr: { write: err }, stdin: { read: () => host.read(null) } };\n"
    "  globalThis.readFile = (path) => host.read(String(path));\n"
    "})\n";

static int write_all(FILE *stream, const char *data, size_t len) {
    return fwrite(data, 1, len, stream) == len ? 0 : -1;
}

/* host.write(fd, string): fd 1 is stdout, anything else stderr. */
static JSValue host_write(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv) {
    int32_t fd = 1;
    size_t len;
    if (argc < 2 || JS_ToInt32(ctx, &fd, argv[0]))
        return JS_ThrowTypeError(ctx, "write(fd, string)");
    const char *s = JS_ToCStringLen(ctx, &len, argv[1]);
    if (!s)
        return JS_EXCEPTION;
    FILE *stream = fd == 1 ? stdout : stderr;
    int failed = write_all(stream, s, len);
    JS_FreeCString(ctx, s);
    if (failed)
        return JS_ThrowInternalError(ctx, "write failed: %s", strerror(errno));
    return JS_UNDEFINED;
}

static char *read_stream(FILE *f, size_t *len) {
    size_t cap = 1 << 16, n = 0, got;
    char *buf = malloc(cap);
    while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            char *bigger = realloc(buf, cap *= 2);
            if (!bigger)
                free(buf);
            buf = bigger;
        }
    }
    if (buf && ferror(f)) {
        free(buf);
        buf = NULL;
    }
    *len = n;
    return buf;
}

/* host.read(null) reads all of stdin, host.read(path) a whole file; UTF-8 text either way. */
static JSValue host_read(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv) {
    size_t len;
    char *data;
    if (argc < 1 || JS_IsNull(argv[0])) {
        data = read_stream(stdin, &len);
        if (!data)
            return JS_ThrowInternalError(ctx, "cannot read stdin: %s", strerror(errno));
    } else {
        const char *path = JS_ToCString(ctx, argv[0]);
        if (!path)
            return JS_EXCEPTION;
        FILE *f = fopen(path, "rb");
        data = f ? read_stream(f, &len) : NULL;
        int error = errno;
        if (f)
            fclose(f);
        if (!data) {
            JSValue e = JS_ThrowInternalError(ctx, "readFile: %s: %s", path, strerror(error));
            JS_FreeCString(ctx, path);
            return e;
        }
        JS_FreeCString(ctx, path);
    }
    JSValue str = JS_NewStringLen(ctx, data, len);
    free(data);
    return str;
}

static JSValue host_exit(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv) {
    int32_t code = 0;
    if (argc > 0)
        JS_ToInt32(ctx, &code, argv[0]);
    fflush(stdout);
    exit(code & 0xff);
}

static void print_exception(JSContext *ctx, const char *prefix) {
    JSValue exc = JS_GetException(ctx);
    const char *text = JS_ToCString(ctx, exc);
    fprintf(stderr, "%s%s\n", prefix, text ? text : "(unprintable exception)");
    if (text)
        JS_FreeCString(ctx, text);
    if (JS_IsError(exc)) {
        JSValue stack = JS_GetPropertyStr(ctx, exc, "stack");
        const char *s = JS_IsUndefined(stack) ? NULL : JS_ToCString(ctx, stack);
        if (s && *s)
            fprintf(stderr, "%s", s);
        if (s)
            JS_FreeCString(ctx, s);
        JS_FreeValue(ctx, stack);
    }
    JS_FreeValue(ctx, exc);
}

/* A rejection can be handled later in the same run (p.catch after p rejected): judge at the end. */
static void track_rejection(JSContext *ctx, JSValueConst promise, JSValueConst reason, bool is_handled,
                            void *opaque) {
    free(unhandled_rejection);
    unhandled_rejection = NULL;
    if (is_handled)
        return;
    const char *text = JS_ToCString(ctx, reason);
    unhandled_rejection = strdup(text ? text : "(unprintable reason)");
    if (text)
        JS_FreeCString(ctx, text);
}

static JSValue make_host(JSContext *ctx, int argc, char **argv, int script_index) {
    JSValue host = JS_NewObject(ctx);
    JS_SetPropertyStr(ctx, host, "write", JS_NewCFunction(ctx, host_write, "write", 2));
    JS_SetPropertyStr(ctx, host, "read", JS_NewCFunction(ctx, host_read, "read", 1));
    JS_SetPropertyStr(ctx, host, "exit", JS_NewCFunction(ctx, host_exit, "exit", 1));
    JSValue args = JS_NewArray(ctx);
    uint32_t n = 0;
    JS_SetPropertyUint32(ctx, args, n++, JS_NewString(ctx, argc > 0 ? argv[0] : "main.wasm"));
    for (int i = script_index; i < argc; i++)
        JS_SetPropertyUint32(ctx, args, n++, JS_NewString(ctx, argv[i]));
    JS_SetPropertyStr(ctx, host, "argv", args);
    JSValue env = JS_NewObject(ctx);
    for (char **e = environ; e && *e; e++) {
        const char *eq = strchr(*e, '=');
        if (!eq)
            continue;
        char *key = strndup(*e, eq - *e);
        JS_SetPropertyStr(ctx, env, key, JS_NewString(ctx, eq + 1));
        free(key);
    }
    JS_SetPropertyStr(ctx, host, "env", env);
    return host;
}

static int usage(void) {
    fputs("usage: main.wasm SCRIPT [ARGS...] | - [ARGS...] | -e CODE [ARGS...]\n", stderr);
    return 2;
}

int main(int argc, char **argv) {
    if (argc < 2)
        return usage();
    char *source;
    size_t len;
    const char *name = argv[1];
    int script_index = 1; /* process.argv[1] */
    if (strcmp(argv[1], "-e") == 0) {
        if (argc < 3)
            return usage();
        source = strdup(argv[2]);
        len = strlen(source);
        name = "<eval>";
        script_index = 2;
    } else if (strcmp(argv[1], "-") == 0) {
        source = read_stream(stdin, &len);
        name = "<stdin>";
    } else {
        FILE *f = fopen(argv[1], "rb");
        if (!f) {
            fprintf(stderr, "%s: cannot open the script: %s (is its directory preopened?)\n", argv[1],
                    strerror(errno));
            return 2;
        }
        source = read_stream(f, &len);
        fclose(f);
    }
    if (!source) {
        fprintf(stderr, "%s: cannot read the script: %s\n", name, strerror(errno));
        return 2;
    }

    JSRuntime *rt = JS_NewRuntime();
    /* The engine counts its own (shadow) stack; keep its limit below what exhausts the wasm call stack, so
     * deep recursion is a catchable RangeError rather than a trap. */
    JS_SetMaxStackSize(rt, 160 * 1024);
    JSContext *ctx = JS_NewContext(rt);
    JS_SetHostPromiseRejectionTracker(rt, track_rejection, NULL);
    JSValue setup = JS_Eval(ctx, PRELUDE, sizeof PRELUDE - 1, "<prelude>", JS_EVAL_TYPE_GLOBAL);
    JSValue host = make_host(ctx, argc, argv, script_index);
    JSValue done = JS_Call(ctx, setup, JS_UNDEFINED, 1, &host);
    JS_FreeValue(ctx, done);
    JS_FreeValue(ctx, host);
    JS_FreeValue(ctx, setup);

    /* JS_Eval needs a NUL-terminated source */
    char *text = realloc(source, len + 1);
    if (!text)
        return 1;
    text[len] = '\0';
    JSValue result = JS_Eval(ctx, text, len, name, JS_EVAL_TYPE_GLOBAL);
    free(text);
    int status = 0;
    if (JS_IsException(result)) {
        print_exception(ctx, "Uncaught ");
        status = 1;
    }
    JS_FreeValue(ctx, result);
    JSContext *job_ctx;
    int ran;
    while (status == 0 && (ran = JS_ExecutePendingJob(rt, &job_ctx)) != 0) {
        if (ran < 0) {
            print_exception(job_ctx, "Uncaught ");
            status = 1;
        }
    }
    if (status == 0 && unhandled_rejection) {
        fprintf(stderr, "Uncaught (in promise) %s\n", unhandled_rejection);
        status = 1;
    }
    if (status == 0) {
        JSValue global = JS_GetGlobalObject(ctx);
        JSValue process = JS_GetPropertyStr(ctx, global, "process");
        JSValue code = JS_GetPropertyStr(ctx, process, "exitCode");
        if (!JS_IsUndefined(code))
            JS_ToInt32(ctx, &status, code);
        JS_FreeValue(ctx, code);
        JS_FreeValue(ctx, process);
        JS_FreeValue(ctx, global);
    }
    fflush(stdout);
    return status & 0xff;
}
