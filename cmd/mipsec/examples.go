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

//go:embed examples/ha.toml examples/mn.toml examples/ha-ike.toml examples/mn-ike.toml
var exampleFS embed.FS

// exampleConfig returns an embedded example configuration by name: "ha"
// or "mn" (manual keys), "ha-ike" or "mn-ike" (keyed by IKEv2); a ".toml"
// suffix is accepted.
func exampleConfig(name string) ([]byte, error) {
	n := strings.TrimSuffix(name, ".toml")
	switch n {
	case node.RoleHA, node.RoleMN, node.RoleHA + "-ike", node.RoleMN + "-ike":
		return exampleFS.ReadFile("examples/" + n + ".toml")
	}
	return nil, fmt.Errorf("no example configuration %q; want %q, %q, %q or %q", name, node.RoleHA, node.RoleMN, node.RoleHA+"-ike", node.RoleMN+"-ike")
}
