package config

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/mipsec/mipsec/sad"
	"github.com/mipsec/mipsec/spd"
)

// FuzzParseConfig: any input either fails with Errors, each naming
// what is wrong, or gives a File whose SAs and policies all build: a file
// `mipsec check` accepts never fails later in `mipsec run` at the SAD/SPD.
func FuzzParseConfig(f *testing.F) {
	for _, p := range []string{"../testdata/*.toml", "../testdata/bad/*.toml"} {
		m, _ := filepath.Glob(p)
		for _, file := range m {
			if b, err := os.ReadFile(file); err == nil {
				f.Add(b)
			}
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse("fuzz.toml", data)
		if err != nil {
			var ce Errors
			if !errors.As(err, &ce) || len(ce) == 0 {
				t.Fatalf("error is not Errors: %v", err)
			}
			for _, e := range ce {
				if e.Msg == "" {
					t.Fatalf("empty message: %+v", e)
				}
			}
			return
		}
		db := sad.New(sad.Options{})
		defer db.Close()
		for _, s := range cfg.SAs {
			if _, err := db.Add(s.Config); err != nil {
				t.Fatalf("%s validated but does not build: %v", s.Path, err)
			}
		}
		if err := spd.New(db).Replace(cfg.Policies); err != nil {
			t.Fatalf("policies validated but do not build: %v", err)
		}
	})
}
