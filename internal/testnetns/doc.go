// Package testnetns runs test code inside a named network namespace (one made by
// `ip netns add`). It is Linux only and needs root (CAP_SYS_ADMIN).
package testnetns
