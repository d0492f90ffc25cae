// Command http_server is a minimal HTTP server for a keep, built on net/http. The
// listening socket is preopened by the keep; its fd is the index of NAME (argv[1],
// default "ingest") in the ':'-separated FD_NAMES. Every request is answered with
// "Hello from a keep! You asked for PATH\n" (PATH as in the request line) and
// Connection: close. net/http also adds a Date header.
// Outside a keep (the native benchmark build), set HTTP_LISTEN=HOST:PORT to listen there
// instead; the address is printed as "listening on ADDR" on stdout.
package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
)

func keepListener(name string) net.Listener {
	names, ok := os.LookupEnv("FD_NAMES")
	if !ok {
		fmt.Fprintf(os.Stderr, "http_server: FD_NAMES is not set; no socket named '%s'\n", name)
		os.Exit(1)
	}
	for fd, n := range strings.Split(names, ":") {
		if n == name {
			// Go polls a file only if it is non-blocking when wrapped (wasip1 has no threads to block).
			if err := syscall.SetNonblock(fd, true); err != nil {
				fmt.Fprintf(os.Stderr, "fd %d (%s): cannot make it non-blocking: %v\n", fd, name, err)
				os.Exit(1)
			}
			l, err := net.FileListener(os.NewFile(uintptr(fd), name))
			if err != nil {
				fmt.Fprintf(os.Stderr, "http_server: fd %d (%s) is not a listener: %v\n", fd, name, err)
				os.Exit(1)
			}
			fmt.Fprintf(os.Stderr, "http_server: serving on fd %d (%s)\n", fd, name)
			return l
		}
	}
	fmt.Fprintf(os.Stderr, "http_server: no fd named '%s' in FD_NAMES=%s\n", name, names)
	os.Exit(1)
	return nil
}

func hello(w http.ResponseWriter, r *http.Request) {
	body := "Hello from a keep! You asked for " + r.RequestURI + "\n"
	h := w.Header()
	h.Set("Content-Type", "text/plain")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("Connection", "close")
	w.WriteHeader(http.StatusOK)
	w.Write([]byte(body)) // a vanished client is not our problem
}

func main() {
	name := "ingest"
	if len(os.Args) > 1 {
		name = os.Args[1]
	}
	var l net.Listener
	if addr := os.Getenv("HTTP_LISTEN"); addr != "" {
		var err error
		l, err = net.Listen("tcp", addr)
		if err != nil {
			fmt.Fprintln(os.Stderr, "http_server:", err)
			os.Exit(1)
		}
		fmt.Printf("listening on %s\n", l.Addr()) // os.Stdout is unbuffered
	} else {
		l = keepListener(name)
	}
	err := http.Serve(l, http.HandlerFunc(hello))
	fmt.Fprintln(os.Stderr, "http_server:", err)
	os.Exit(1)
}
