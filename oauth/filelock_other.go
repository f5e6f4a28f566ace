//go:build !unix

package oauth

// lockDir is a no-op where flock(2) does not exist; updates there are atomic but not
// serialised.
func lockDir(string) (func(), error) { return func() {}, nil }
