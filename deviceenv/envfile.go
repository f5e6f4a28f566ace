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

// QuoteValue returns v written so that godotenv reads back exactly v, and a POSIX shell that
// sources the file gets v too and never runs any of it:
//   - single quotes when v holds no ' and no \r: both read everything inside literally;
//   - double quotes otherwise, with \\ \" \$ and \` escaped (both readers unescape them) and
//     a carriage return as \r (godotenv folds a raw CRLF; a shell reads this one as the two
//     characters \r, the one place where the two readers differ).
//
// A value that ends in \ (godotenv reads \' and \" before the closing quote as escaped
// quotes), or that holds ' or \r and ends in " (godotenv trims every trailing quote), fits
// neither form; such a value, a NUL byte or invalid UTF-8 is an error that says so.
func QuoteValue(v string) (string, error) {
	if strings.ContainsRune(v, 0) {
		return "", errors.New("the value contains a NUL byte, which no environment variable can hold")
	}
	if !utf8.ValidString(v) {
		return "", errors.New("the value is not valid UTF-8 text")
	}
	if strings.HasSuffix(v, `\`) {
		return "", errors.New(`the value ends in \, which an env file cannot hold so that both dotenv readers and a shell read it back`)
	}
	if !strings.ContainsAny(v, "'\r") {
		return "'" + v + "'", nil
	}
	if strings.HasSuffix(v, `"`) {
		return "", errors.New(`the value holds ' or a carriage return and ends in ", which an env file cannot hold so that both dotenv readers and a shell read it back`)
	}
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, `$`, `\$`, "`", "\\`", "\r", `\r`)
	return `"` + r.Replace(v) + `"`, nil
}
