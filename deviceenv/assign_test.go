package deviceenv

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/tessel/tessel-proxy/internal/testcert"
)

func TestParseAssignments(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	oneLine := write("token.txt", "secret\n")
	twoLines := write("two.txt", "a\nb\n")
	dotenv := write("proxy.env", "PROXY_PORT=8443\nPROXY_HOST=from-file\n")

	tests := []struct {
		name  string
		o     AssignOptions
		want  []Assignment
		error string
	}{
		{"a value as is", AssignOptions{Args: []string{"PROXY_HOST=h=x"}},
			[]Assignment{{"PROXY_HOST", "h=x", "argument", false}}, ""},
		{"a file loses the newline echo adds", AssignOptions{Args: []string{"PROXY_TOKEN=@" + oneLine}},
			[]Assignment{{"PROXY_TOKEN", "secret", oneLine, true}}, ""},
		{"a multi-line file keeps its bytes", AssignOptions{Args: []string{"X=@" + twoLines}},
			[]Assignment{{"X", "a\nb\n", twoLines, true}}, ""},
		{"stdin", AssignOptions{Args: []string{"PROXY_TOKEN", "-"}, Stdin: strings.NewReader("t\r\n")},
			[]Assignment{{"PROXY_TOKEN", "t", "stdin", true}}, ""},
		{"the dotenv file sorted, then arguments", AssignOptions{FromFile: dotenv, Args: []string{"PROXY_HOST=arg"}},
			[]Assignment{{"PROXY_HOST", "from-file", dotenv, false}, {"PROXY_PORT", "8443", dotenv, false}, {"PROXY_HOST", "arg", "argument", false}}, ""},
		{"LocalPath resolves @FILE", AssignOptions{Args: []string{"X=@~/token.txt"},
			LocalPath: func(p string) (string, error) { return filepath.Join(dir, strings.TrimPrefix(p, "~/")), nil }},
			[]Assignment{{"X", "secret", "~/token.txt", true}}, ""},
		{"stdin twice", AssignOptions{FromFile: "-", Args: []string{"A", "-"}, Stdin: strings.NewReader("")},
			nil, "env set: only one value can come from stdin (A -)"},
		{"no stdin", AssignOptions{Args: []string{"A", "-"}}, nil, "env set: A -: no stdin"},
		{"no stdin for --from-file", AssignOptions{FromFile: "-"}, nil, "--from-file: env set: --from-file -: no stdin"},
		{"not an assignment", AssignOptions{Args: []string{"PROXY_HOST"}}, nil, `env set: "PROXY_HOST" is not KEY=VALUE, KEY=@FILE or KEY -`},
		{"a missing file", AssignOptions{Args: []string{"X=@" + dir + "/none"}}, nil, "X=@" + dir + "/none: open "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseAssignments(tt.o)
			if tt.error != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tt.error) {
					t.Fatalf("error %v, want one starting %q", err, tt.error)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestCheckAssignments(t *testing.T) {
	pem := string(testcert.New(t).PEM)
	tests := []struct {
		name     string
		list     []Assignment
		remote   bool
		order    []string
		values   map[string]string
		warnings []string
		error    string
	}{
		{"the last value wins, the first position stays",
			[]Assignment{{Key: "PROXY_HOST", Value: "a"}, {Key: "PROXY_PORT", Value: "1"}, {Key: "PROXY_HOST", Value: "b"}}, false,
			[]string{"PROXY_HOST", "PROXY_PORT"}, map[string]string{"PROXY_HOST": "b", "PROXY_PORT": "1"}, nil, ""},
		{"a near miss is stored with a warning", []Assignment{{Key: "PROXY_PRT", Value: "1"}}, false,
			[]string{"PROXY_PRT"}, map[string]string{"PROXY_PRT": "1"},
			[]string{"warning: PROXY_PRT is not a tessel-proxy variable; did you mean PROXY_PORT? (stored anyway)"}, ""},
		{"an unknown key is stored quietly", []Assignment{{Key: "MY_VAR", Value: "x"}}, false,
			[]string{"MY_VAR"}, map[string]string{"MY_VAR": "x"}, nil, ""},
		{"PEM text from a file", []Assignment{{Key: "PROXY_CERT", Value: pem, From: "ca.pem", Content: true}}, false,
			[]string{"PROXY_CERT"}, map[string]string{"PROXY_CERT": pem}, nil, ""},
		{"a bad port", []Assignment{{Key: "PROXY_PORT", Value: "70000"}}, false, nil, nil, nil, "PROXY_PORT"},
		{"a bad key", []Assignment{{Key: "1X", Value: "v"}}, false, nil, nil, nil, "env set: "},
		{"a file that is not PEM", []Assignment{{Key: "PROXY_CERT", Value: "/etc/ca.pem", From: "list.txt", Content: true}}, false,
			nil, nil, nil, "PROXY_CERT: list.txt holds no PEM certificate (expected -----BEGIN CERTIFICATE-----)"},
		{"a certificate path that is not here", []Assignment{{Key: "PROXY_CERT", Value: "/nonexistent/ca.pem"}}, false,
			nil, nil, nil, "PROXY_CERT"},
		{"a certificate path on a remote device is stored unread", []Assignment{{Key: "PROXY_CERT", Value: "/nonexistent/ca.pem"}}, true,
			[]string{"PROXY_CERT"}, map[string]string{"PROXY_CERT": "/nonexistent/ca.pem"}, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := CheckAssignments(tt.list, tt.remote)
			if tt.error != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tt.error) {
					t.Fatalf("error %v, want one starting %q", err, tt.error)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got.Order, tt.order) || !reflect.DeepEqual(got.Values, tt.values) || !reflect.DeepEqual(got.Warnings, tt.warnings) {
				t.Errorf("got %+v, want order %q values %q warnings %q", got, tt.order, tt.values, tt.warnings)
			}
		})
	}
}

func TestNearVariable(t *testing.T) {
	for key, want := range map[string]string{
		"PROXY_PORT":  "",
		"proxy_port":  "PROXY_PORT",
		"PROXY_PRT":   "PROXY_PORT",
		"PROXY_HOTS":  "PROXY_HOST",
		"MY_VARIABLE": "",
	} {
		if got := NearVariable(key); got != want {
			t.Errorf("NearVariable(%q) = %q, want %q", key, got, want)
		}
	}
}
