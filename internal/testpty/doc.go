// Package testpty runs a command on a pseudo-terminal of its own, for tests of what a
// program does on a terminal (Ctrl-C, tty checks). It is Linux only.
package testpty
