// Command client is a TCP client for a keep. The connected socket is preopened by
// the keep; its fd is the index of NAME (argv[1], default "server") in the
// ':'-separated FD_NAMES. It sends "hello from the keep\n", shuts down its write
// side, then copies everything it receives to stdout until the server closes.
package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
)

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "client: "+format+"\n", args...)
	os.Exit(1)
}

func main() {
	name := "server"
	if len(os.Args) > 1 {
		name = os.Args[1]
	}
	names, ok := os.LookupEnv("FD_NAMES")
	if !ok {
		fail("FD_NAMES is not set; no socket named '%s'", name)
	}
	fd := -1
	for i, n := range strings.Split(names, ":") {
		if n == name {
			fd = i
			break
		}
	}
	if fd < 0 {
		fail("no fd named '%s' in FD_NAMES=%s", name, names)
	}
	// Go polls a file only if it is non-blocking when wrapped (wasip1 has no threads to block).
	if err := syscall.SetNonblock(fd, true); err != nil {
		fmt.Fprintf(os.Stderr, "fd %d (%s): cannot make it non-blocking: %v\n", fd, name, err)
		os.Exit(1)
	}
	c, err := net.FileConn(os.NewFile(uintptr(fd), name))
	if err != nil {
		fail("fd %d (%s) is not a connected socket: %v", fd, name, err)
	}
	if _, err := io.WriteString(c, "hello from the keep\n"); err != nil {
		fail("send: %v", err)
	}
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		if err := cw.CloseWrite(); err != nil {
			fail("shutdown: %v", err)
		}
	}
	buf := make([]byte, 64*1024)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if _, werr := os.Stdout.Write(buf[:n]); werr != nil {
				fail("write to stdout: %v", werr)
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			fail("recv: %v", err)
		}
	}
	c.Close()
}
