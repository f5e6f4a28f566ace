// Command tessel-proxy shares one authenticated, multiplexed TLS tunnel among all of a
// program's outgoing TCP connections. See README.md.
package main

import (
	"os"

	"github.com/tessel/tessel-proxy/commands"
)

func main() {
	io := commands.IO{In: os.Stdin, Out: os.Stdout, Err: os.Stderr, LookupEnv: os.LookupEnv, Environ: os.Environ}
	os.Exit(commands.Main(io, os.Args))
}
