package deviceenv

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/joho/godotenv"
	"github.com/tessel/tessel-proxy/proxyconfig"
)

// ReadEnvFile reads a dotenv file. A missing file is an empty map, not an error.
func ReadEnvFile(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return map[string]string{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read env file: %w", err)
	}
	m, err := ParseEnv(b)
	if err != nil {
		return nil, fmt.Errorf("env file %s: %w", path, err)
	}
	return m, nil
}

// ParseEnv parses dotenv text (as godotenv does: quotes, escapes in double quotes, comments).
// Its errors name the line, never the text: an env file holds tokens.
func ParseEnv(b []byte) (map[string]string, error) {
	m, err := godotenv.Parse(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("not a valid dotenv file: %s", describeParseError(b, err))
	}
	return m, nil
}

// describeParseError rewords a godotenv error, which quotes the rest of the file, into what
// went wrong and on which line.
func describeParseError(b []byte, err error) string {
	text := bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n")) // as godotenv reads it
	lineOf := func(rest []byte) string {
		i := bytes.LastIndex(text, rest)
		if len(rest) == 0 || i < 0 {
			return ""
		}
		return fmt.Sprintf("line %d: ", 1+bytes.Count(text[:i], []byte("\n")))
	}
	msg := err.Error()
	if after, ok := strings.CutPrefix(msg, "unexpected character "); ok {
		char, near, _ := strings.Cut(after, " in variable name near ")
		rest, uerr := strconv.Unquote(near)
		if uerr != nil {
			rest = ""
		}
		if char == `"\n"` {
			return lineOf([]byte(rest)) + "no = after the variable name"
		}
		return lineOf([]byte(rest)) + "a variable name holds only letters, digits and _, then = and the value (found " + char + ")"
	}
	if rest, ok := strings.CutPrefix(msg, "unterminated quoted value "); ok {
		return lineOf([]byte(rest)) + "a quoted value has no closing quote"
	}
	return "cannot be parsed"
}

// LoadLocal reads the configuration of this machine in proxyconfig's lookup order: env
// first, then the local device's env file (proxyconfig.DefaultEnvPath), then the defaults.
func LoadLocal(env proxyconfig.Lookup) (proxyconfig.Config, error) {
	if env == nil {
		env = os.LookupEnv
	}
	path, err := proxyconfig.DefaultEnvPath(env)
	if err != nil {
		return proxyconfig.Config{}, err
	}
	file, err := ReadEnvFile(path)
	if err != nil {
		return proxyconfig.Config{}, err
	}
	return proxyconfig.ParseLayered(env, file, path)
}
