// Package shellquote writes words for a POSIX shell command line: the commands tessel-proxy
// prints for users to paste or eval, and those it hands to sh.
package shellquote

import "strings"

// Quote single-quotes s, so that a POSIX shell reads it back as exactly s.
func Quote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// Word returns s as it is when a shell reads it as one plain word, else Quote(s): for
// commands shown to people, who read `--profile work` more easily than `--profile 'work'`.
func Word(s string) string {
	if s != "" && !strings.ContainsFunc(s, needsQuote) {
		return s
	}
	return Quote(s)
}

func needsQuote(r rune) bool {
	switch {
	case 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z', '0' <= r && r <= '9':
		return false
	}
	return !strings.ContainsRune("_./:,@%+=-", r)
}
