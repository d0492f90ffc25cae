// Command args_env prints argv and the environment in the order the runtime gives them.
package main

import (
	"bufio"
	"fmt"
	"os"
)

func main() {
	w := bufio.NewWriter(os.Stdout)
	defer w.Flush()
	for i, arg := range os.Args {
		fmt.Fprintf(w, "argv[%d]=%s\n", i, arg)
	}
	for _, kv := range os.Environ() {
		fmt.Fprintf(w, "env:%s\n", kv)
	}
}
