package shellquote

import (
	"os/exec"
	"testing"
)

func TestWordsSurviveARealShell(t *testing.T) {
	for _, s := range []string{"plain", "with space", "it's", "$HOME", "a\nb", "", `back\slash`, "*", "x=y", "--profile"} {
		for name, quote := range map[string]func(string) string{"Quote": Quote, "Word": Word} {
			out, err := exec.Command("sh", "-c", "printf %s "+quote(s)).Output()
			if err != nil || string(out) != s {
				t.Errorf("%s(%q) = %s; sh read back %q (%v)", name, s, quote(s), out, err)
			}
		}
	}
	if Word("work") != "work" || Word("a b") != "'a b'" {
		t.Errorf("Word quotes only what needs it: %s %s", Word("work"), Word("a b"))
	}
}
