// Command exit_code exits with the status given as argv[1] (default 0).
package main

import (
	"fmt"
	"os"
	"strconv"
)

func main() {
	code := 0
	if len(os.Args) > 1 {
		code, _ = strconv.Atoi(os.Args[1])
	}
	fmt.Fprintf(os.Stderr, "exiting with %d\n", code)
	os.Exit(code)
}
