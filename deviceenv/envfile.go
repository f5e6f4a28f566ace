package deviceenv

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"unicode/utf8"
)

var keyRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// CheckKey reports whether key can name a variable in an env file and in a shell.
func CheckKey(key string) error {
	if !keyRE.MatchString(key) {
		return fmt.Errorf("%q is not a variable name: use letters, digits and _, not starting with a digit", key)
	}
	return nil
}

// envHeader starts every env file this package writes.
const envHeader = "# tessel-proxy env file, written by `tessel-proxy env set`. Comments are not kept.\n"

// FormatEnv renders vars as dotenv text, keys sorted, such that ParseEnv returns every value
// byte for byte. (godotenv.Marshal does not: it writes 007 as 7.)
func FormatEnv(vars map[string]string) ([]byte, error) {
	keys := make([]string, 0, len(vars))
	for k := range vars {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b bytes.Buffer
	b.WriteString(envHeader)
	for _, k := range keys {
		if err := CheckKey(k); err != nil {
			return nil, err
		}
		q, err := QuoteValue(vars[k])
		if err != nil {
			return nil, fmt.Errorf("%s: %w", k, err)
		}
		b.WriteString(k + "=" + q + "\n")
	}
	return b.Bytes(), nil
}

// QuoteValue returns v written so that godotenv reads back exactly v. godotenv has no quoting
// that covers every string, so the form is chosen by what v contains:
//   - single quotes keep everything literally, but cannot hold ' or \r (CRLF is folded) or
//     end in \ (godotenv would read \' as an escaped quote);
//   - double quotes take \\ \" \n \r \$ escapes, but cannot end in \ or " (godotenv trims
//     every trailing quote and skips a quote after a backslash);
//   - unquoted takes \$ for $ and anything else on one line that has no surrounding space,
//     no " #" comment start and no leading quote.
//
// A value none of them can hold is an error that says so.
func QuoteValue(v string) (string, error) {
	if strings.ContainsRune(v, 0) {
		return "", errors.New("the value contains a NUL byte, which no environment variable can hold")
	}
	if !utf8.ValidString(v) {
		return "", errors.New("the value is not valid UTF-8 text")
	}
	if !strings.ContainsAny(v, "'\r") && !strings.HasSuffix(v, `\`) {
		return "'" + v + "'", nil
	}
	if !strings.HasSuffix(v, `\`) && !strings.HasSuffix(v, `"`) {
		r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "\r", `\r`, `$`, `\$`)
		return `"` + r.Replace(v) + `"`, nil
	}
	if unquotable(v) {
		return strings.ReplaceAll(v, `$`, `\$`), nil
	}
	return "", errors.New(`the value cannot be written to a dotenv file: it holds ' or a carriage return, ends in \ or ", and has line breaks or surrounding space`)
}

func unquotable(v string) bool {
	if v == "" || strings.ContainsAny(v, "\n\r") || strings.HasPrefix(v, `"`) || strings.HasPrefix(v, `'`) {
		return false
	}
	r := []rune(v)
	if godotenvSpace(r[0]) || godotenvSpace(r[len(r)-1]) {
		return false
	}
	for i := 1; i < len(r); i++ {
		if r[i] == '#' && godotenvSpace(r[i-1]) {
			return false
		}
	}
	return true
}

// godotenvSpace is godotenv's isSpace: the runes it trims around an unquoted value.
func godotenvSpace(r rune) bool {
	switch r {
	case '\t', '\v', '\f', '\r', ' ', 0x85, 0xA0:
		return true
	}
	return false
}
