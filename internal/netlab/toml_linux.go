package netlab

import (
	"fmt"
	"sort"
	"strings"
)

// SetTOML returns config (TOML text) with the values of the keys in set
// replaced: a key is "name" for the top-level table or "table.name" (the
// table as its [header] spells it, e.g. "control.socket"); a value is TOML
// as it should appear (quoted strings included). Only simple `key = value`
// lines on one line are understood, which is all the example configs use
// for the fields a lab overrides (state_dir, control socket, lifetimes). A
// key that is not in config is added at the end of its table (the table
// must exist, or be the top level); a key in an array of tables
// ([[...]]) is an error.
func SetTOML(config string, set map[string]string) (string, error) {
	lines := strings.Split(config, "\n")
	done := map[string]bool{}
	table, arr := "", false
	// last line of each table's body, for additions.
	end := map[string]int{"": -1}
	for i, l := range lines {
		t := strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(t, "[["):
			table, arr = strings.TrimSpace(strings.Trim(t, "[] ")), true
			continue
		case strings.HasPrefix(t, "["):
			name := t[1:]
			if j := strings.Index(name, "]"); j >= 0 {
				name = name[:j]
			}
			table, arr = strings.TrimSpace(name), false
			end[table] = i
			continue
		}
		if t != "" && !strings.HasPrefix(t, "#") && !arr {
			end[table] = i
		}
		k, _, ok := strings.Cut(t, "=")
		if !ok || strings.HasPrefix(t, "#") {
			continue
		}
		key := strings.Trim(strings.TrimSpace(k), `"`)
		if table != "" {
			key = table + "." + key
		}
		v, want := set[key]
		if !want {
			continue
		}
		if arr {
			return "", fmt.Errorf("SetTOML: %s is in an array of tables", key)
		}
		indent := l[:len(l)-len(strings.TrimLeft(l, " \t"))]
		lines[i] = indent + strings.TrimSpace(k) + " = " + v
		done[key] = true
	}
	var missing []string
	for k := range set {
		if !done[k] {
			missing = append(missing, k)
		}
	}
	sort.Strings(missing)
	// Insert from the bottom up so that earlier indexes stay valid.
	type ins struct {
		at   int
		line string
	}
	var adds []ins
	var tables []string
	for _, k := range missing {
		tbl, name := "", k
		if i := strings.LastIndex(k, "."); i >= 0 {
			tbl, name = k[:i], k[i+1:]
		}
		at, ok := end[tbl]
		if !ok {
			tables = append(tables, tbl)
			continue
		}
		adds = append(adds, ins{at + 1, name + " = " + set[k]})
	}
	if len(tables) > 0 {
		return "", fmt.Errorf("SetTOML: no table [%s] in the config", strings.Join(tables, "], ["))
	}
	sort.SliceStable(adds, func(i, j int) bool { return adds[i].at > adds[j].at })
	for _, a := range adds {
		lines = append(lines[:a.at], append([]string{a.line}, lines[a.at:]...)...)
	}
	return strings.Join(lines, "\n"), nil
}
