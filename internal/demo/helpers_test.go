package demo

import "os"

// testEnv reads the example configurations the binary embeds.
var testEnv = Env{ExampleConfig: func(role string) ([]byte, error) {
	return os.ReadFile("../../cmd/mipsec/examples/" + role + ".toml")
}}
