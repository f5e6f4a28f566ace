// Command tessel-proxy shares one authenticated, multiplexed TLS tunnel among all of a
// program's outgoing TCP connections. See README.md.
package main

import (
	"os"

	"github.com/tessel/tessel-proxy/commands"
	"github.com/tessel/tessel-proxy/transparent"
)

func main() {
	// `run --transparent` re-executes this binary as the first process of the program's
	// namespaces; that run never reaches the command line.
	if len(os.Args) > 1 && os.Args[1] == transparent.InitArg {
		os.Exit(transparent.Init(os.Args[2:]))
	}
	io := commands.IO{In: os.Stdin, Out: os.Stdout, Err: os.Stderr, LookupEnv: os.LookupEnv, Environ: os.Environ}
	os.Exit(commands.Main(io, os.Args))
}
