package deviceenv

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/tessel/tessel-proxy/proxyconfig"
)

// Assignment is one KEY=VALUE to store in an env file, and where the value came from.
type Assignment struct {
	Key, Value string
	// From names the value's origin in messages: "argument", "stdin", a file name, ...
	From string
	// Content is true when Value is the whole content of a file or of stdin, so that it is
	// the data itself (PEM text, say), never a path to it.
	Content bool
}

// AssignOptions says where ParseAssignments finds the values to assign.
type AssignOptions struct {
	// Args are KEY=VALUE (VALUE as is), KEY=@FILE (the content of FILE on this machine) and
	// KEY - (the content of Stdin), as `env set` takes them.
	Args []string
	// FromFile is a dotenv file whose every variable is assigned before Args; "-" reads it
	// from Stdin; "" is none.
	FromFile string
	// Stdin supplies at most one value; nil means there is none to read.
	Stdin io.Reader
	// LocalPath turns the FILE of KEY=@FILE into the path to read (expanding ~/, say); nil
	// reads FILE as given.
	LocalPath func(string) (string, error)
}

// ParseAssignments reads the assignments o describes: the variables of o.FromFile sorted by
// key, then o.Args in order (a later assignment of a key wins over an earlier one in
// CheckAssignments). A value read from a file or stdin keeps its bytes, except that a
// one-line value loses one trailing newline. Every error is a mistake in o, worded for the
// command line.
func ParseAssignments(o AssignOptions) ([]Assignment, error) {
	var list []Assignment
	stdinUsed := false
	readStdin := func(what string) ([]byte, error) {
		if stdinUsed {
			return nil, fmt.Errorf("env set: only one value can come from stdin (%s)", what)
		}
		stdinUsed = true
		if o.Stdin == nil {
			return nil, fmt.Errorf("env set: %s: no stdin", what)
		}
		return io.ReadAll(o.Stdin)
	}

	if o.FromFile != "" {
		var text []byte
		var err error
		if o.FromFile == "-" {
			text, err = readStdin("--from-file -")
		} else {
			text, err = os.ReadFile(o.FromFile)
		}
		if err != nil {
			return nil, fmt.Errorf("--from-file: %w", err)
		}
		vars, err := ParseEnv(text)
		if err != nil {
			return nil, fmt.Errorf("--from-file %s: %w", o.FromFile, err)
		}
		keys := make([]string, 0, len(vars))
		for k := range vars {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			list = append(list, Assignment{Key: k, Value: vars[k], From: o.FromFile})
		}
	}

	for i := 0; i < len(o.Args); i++ {
		a := o.Args[i]
		key, value, hasEq := strings.Cut(a, "=")
		switch {
		case !hasEq && i+1 < len(o.Args) && o.Args[i+1] == "-":
			i++
			b, err := readStdin(key + " -")
			if err != nil {
				return nil, err
			}
			list = append(list, Assignment{Key: key, Value: trimOneNewline(string(b)), From: "stdin", Content: true})
		case !hasEq:
			return nil, fmt.Errorf("env set: %q is not KEY=VALUE, KEY=@FILE or KEY -", a)
		case strings.HasPrefix(value, "@"):
			path := value[1:]
			if o.LocalPath != nil {
				var err error
				if path, err = o.LocalPath(path); err != nil {
					return nil, fmt.Errorf("%s=@: %w", key, err)
				}
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return nil, fmt.Errorf("%s=@%s: %w", key, value[1:], err)
			}
			list = append(list, Assignment{Key: key, Value: trimOneNewline(string(b)), From: value[1:], Content: true})
		default:
			list = append(list, Assignment{Key: key, Value: value, From: "argument"})
		}
	}
	return list, nil
}

// Checked is a list of assignments that passed CheckAssignments, ready to write.
type Checked struct {
	Values   map[string]string // the last value given for each key
	Order    []string          // the keys, in the order they were first given
	Warnings []string          // one line per key that looks like a misspelt PROXY_* variable
}

// CheckAssignments checks every assignment before anything is written: the key must suit an
// env file and a shell, a PROXY_* value must mean something (proxyconfig.Validate, or
// proxyconfig.ValidateRemote for a device other than this machine, where a PROXY_CERT path
// names a file there), and the value must be writable to a dotenv file. The first error is
// returned, worded for the command line. Unknown keys pass; a near miss of a known one is a
// warning.
func CheckAssignments(list []Assignment, remote bool) (*Checked, error) {
	validate := proxyconfig.Validate
	if remote {
		validate = proxyconfig.ValidateRemote
	}
	c := &Checked{Values: map[string]string{}}
	for _, a := range list {
		if err := CheckKey(a.Key); err != nil {
			return nil, fmt.Errorf("env set: %w", err)
		}
		if a.Key == proxyconfig.VarCert && a.Content && !strings.HasPrefix(strings.TrimSpace(a.Value), "-----BEGIN") {
			return nil, fmt.Errorf("%s: %s holds no PEM certificate (expected -----BEGIN CERTIFICATE-----)", a.Key, a.From)
		}
		if err := validate(a.Key, a.Value); err != nil {
			return nil, err
		}
		if _, err := QuoteValue(a.Value); err != nil {
			return nil, fmt.Errorf("%s: %w", a.Key, err)
		}
		if _, seen := c.Values[a.Key]; !seen {
			c.Order = append(c.Order, a.Key)
		}
		c.Values[a.Key] = a.Value
	}
	for _, k := range c.Order {
		if near := NearVariable(k); near != "" {
			c.Warnings = append(c.Warnings, fmt.Sprintf("warning: %s is not a tessel-proxy variable; did you mean %s? (stored anyway)", k, near))
		}
	}
	return c, nil
}

// trimOneNewline drops the newline that echo or an editor leaves after a one-line value; a
// multi-line value (PEM text) keeps its bytes.
func trimOneNewline(v string) string {
	body := strings.TrimSuffix(strings.TrimSuffix(v, "\n"), "\r")
	if strings.Contains(body, "\n") {
		return v
	}
	return body
}

// NearVariable returns the known variable that key is probably a misspelling of (a
// different case, or at most two edits away), or "" when key is known or near none.
func NearVariable(key string) string {
	best, bestDist := "", 3
	for _, v := range proxyconfig.Variables {
		if v.Name == key {
			return ""
		}
		if strings.EqualFold(v.Name, key) {
			return v.Name
		}
		if d := editDistance(v.Name, key); d < bestDist {
			best, bestDist = v.Name, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
