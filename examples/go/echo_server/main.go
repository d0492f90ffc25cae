// Command echo_server is a TCP echo server for a keep. The listening socket is
// preopened by the keep; its fd is the index of NAME (argv[1], default "ingest") in
// the ':'-separated FD_NAMES. Each connection gets a goroutine that writes every byte
// back until the peer closes; errors (EPIPE, ECONNRESET, ...) only end that connection.
//
// Outside a keep (the native benchmark build), set ECHO_LISTEN=HOST:PORT to listen there
// instead; the server then prints "listening on ADDR" to stdout.
package main

import (
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
)

// keepListener returns the listener the keep preopened under name.
func keepListener(name string) net.Listener {
	names, ok := os.LookupEnv("FD_NAMES")
	if !ok {
		fmt.Fprintf(os.Stderr, "echo_server: FD_NAMES is not set; no socket named '%s'\n", name)
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
				fmt.Fprintf(os.Stderr, "echo_server: fd %d (%s) is not a listener: %v\n", fd, name, err)
				os.Exit(1)
			}
			fmt.Fprintf(os.Stderr, "echo_server: serving on fd %d (%s)\n", fd, name)
			return l
		}
	}
	fmt.Fprintf(os.Stderr, "echo_server: no fd named '%s' in FD_NAMES=%s\n", name, names)
	os.Exit(1)
	return nil
}

func echo(c net.Conn) {
	defer c.Close()
	buf := make([]byte, 256*1024)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil { // io.EOF, ECONNRESET, ...
			return
		}
	}
}

func main() {
	var l net.Listener
	if addr := os.Getenv("ECHO_LISTEN"); addr != "" {
		var err error
		l, err = net.Listen("tcp", addr)
		if err != nil {
			fmt.Fprintln(os.Stderr, "echo_server:", err)
			os.Exit(1)
		}
		fmt.Printf("listening on %s\n", l.Addr()) // os.Stdout is unbuffered
		os.Stdout.Sync()
	} else {
		name := "ingest"
		if len(os.Args) > 1 {
			name = os.Args[1]
		}
		l = keepListener(name)
	}
	for {
		c, err := l.Accept()
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				continue
			}
			fmt.Fprintln(os.Stderr, "echo_server: accept:", err)
			os.Exit(1)
		}
		go echo(c)
	}
}
