package main

// The example configurations of the home agent and the mobile node
// (examples/ha.toml, examples/mn.toml; testdata/ha.toml and mn.toml link to
// them) are compiled into the binary, so the mobility demo starts from
// exactly the files users read.

import (
	"embed"
	"fmt"
	"strings"

	"github.com/mipsec/mipsec/node"
)

//go:embed examples/ha.toml examples/mn.toml
var exampleFS embed.FS

// exampleConfig returns an embedded example configuration by name: "ha" or
// "mn" (a ".toml" suffix is accepted).
func exampleConfig(name string) ([]byte, error) {
	n := strings.TrimSuffix(name, ".toml")
	switch n {
	case node.RoleHA, node.RoleMN:
		return exampleFS.ReadFile("examples/" + n + ".toml")
	}
	return nil, fmt.Errorf("no example configuration %q; want %q or %q", name, node.RoleHA, node.RoleMN)
}
