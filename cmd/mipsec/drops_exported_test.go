package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap/zaptest"

	"github.com/mipsec/mipsec/control"
	"github.com/mipsec/mipsec/dataplane"
	"github.com/mipsec/mipsec/esp"
	"github.com/mipsec/mipsec/ike"
	"github.com/mipsec/mipsec/mip6"
	"github.com/mipsec/mipsec/node"
	"github.com/mipsec/mipsec/sad"
	"github.com/mipsec/mipsec/spd"
)

// Every drop reason and counter of the daemon is in `mipsec stats --json`
// and in the metrics: the tests below enumerate them from the enums and,
// by reflection, from the counter structs (dataplane.Stats, spd.Stats,
// underlay.Stats, mip6.HAStats, mip6.MNCounters), give each a value no
// other counter has, and look for that value in both outputs. A reason or
// counter added without being exported fails here.

// exportTarget is a fakeTarget whose dataplane and mobility counters the
// test sets.
type exportTarget struct {
	*fakeTarget
	ds dataplane.Stats
	m  node.MobilityMetrics
	ok bool
}

func (e *exportTarget) DataplaneStats() dataplane.Stats { return e.ds }
func (e *exportTarget) MobilityMetrics() (node.MobilityMetrics, bool) {
	return e.m, e.ok
}

// counterValues hands out distinct values, far from any other number in
// the outputs.
type counterValues struct{ next uint64 }

func (c *counterValues) get() uint64 {
	if c.next == 0 {
		c.next = 7_000_001
	}
	c.next += 13
	return c.next
}

// fillUint64 sets every uint64 field of the struct v points to (and every
// element of uint64 arrays, and a "test-reason" key of string-keyed
// uint64 maps) to a fresh value; it returns the values by field name.
func fillUint64(t *testing.T, v any, vals *counterValues) map[string]uint64 {
	t.Helper()
	rv := reflect.ValueOf(v).Elem()
	out := map[string]uint64{}
	for i := range rv.NumField() {
		f, sf := rv.Field(i), rv.Type().Field(i)
		if !sf.IsExported() {
			continue
		}
		switch {
		case f.Kind() == reflect.Uint64:
			n := vals.get()
			f.SetUint(n)
			out[sf.Name] = n
		case f.Kind() == reflect.Array && f.Type().Elem().Kind() == reflect.Uint64:
			for j := range f.Len() {
				n := vals.get()
				f.Index(j).SetUint(n)
				out[fmt.Sprintf("%s[%d]", sf.Name, j)] = n
			}
		case f.Kind() == reflect.Map && f.Type().Key().Kind() == reflect.String && f.Type().Elem().Kind() == reflect.Uint64:
			n := vals.get()
			f.Set(reflect.ValueOf(map[string]uint64{"test-reason": n}))
			out[sf.Name+"[test-reason]"] = n
		case f.Kind() == reflect.Slice:
			// Per-policy hits (dataplane.Stats.InboundPolicyHits):
			// exported with the policies, not counters of their own.
		default:
			t.Errorf("%s.%s: a %s field the export test does not know how to fill", rv.Type(), sf.Name, f.Type())
		}
	}
	return out
}

// series is one scraped metric.
type series struct {
	name, labels string
	value        float64
}

func scrapeSeries(t *testing.T, src metricsSource) []series {
	t.Helper()
	h, err := newMetricsHandler(src)
	if err != nil {
		t.Fatal(err)
	}
	return scrapeHandler(t, h)
}

func scrapeHandler(t *testing.T, h http.Handler) []series {
	t.Helper()
	srv := httptest.NewServer(h)
	defer srv.Close()
	var out []series
	for _, line := range strings.Split(scrape(t, srv.URL), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		sp := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[sp+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		name, labels, _ := strings.Cut(line[:sp], "{")
		out = append(out, series{name, strings.TrimSuffix(labels, "}"), v})
	}
	return out
}

// find returns the series of family name (a prefix when it ends in "_")
// with the value v and all the labels given ("reason=\"icv\"").
func find(ss []series, name string, v uint64, labels ...string) bool {
	for _, s := range ss {
		if s.name != name && !(strings.HasSuffix(name, "_") && strings.HasPrefix(s.name, name)) {
			continue
		}
		if s.value != float64(v) {
			continue
		}
		ok := true
		for _, l := range labels {
			ok = ok && strings.Contains(","+s.labels+",", ","+l+",")
		}
		if ok {
			return true
		}
	}
	return false
}

// jsonNumbers are all the numbers in v, at any depth.
func jsonNumbers(v any, into map[uint64]bool) {
	switch x := v.(type) {
	case float64:
		into[uint64(x)] = true
	case map[string]any:
		for _, e := range x {
			jsonNumbers(e, into)
		}
	case []any:
		for _, e := range x {
			jsonNumbers(e, into)
		}
	}
}

// snake is a Go field name in snake_case: NoMatch -> no_match, NoSA ->
// no_sa.
func snake(s string) string {
	var b strings.Builder
	r := []rune(s)
	for i, c := range r {
		if unicode.IsUpper(c) && i > 0 && (unicode.IsLower(r[i-1]) || unicode.IsDigit(r[i-1])) {
			b.WriteByte('_')
		}
		b.WriteRune(unicode.ToLower(c))
	}
	return b.String()
}

// startExport serves e on a control socket and returns the stats answer
// as JSON (decoded), as the CLI prints it as text, and the metrics.
func startExport(t *testing.T, e *exportTarget) (map[string]any, string, []series) {
	t.Helper()
	s, err := control.Listen(filepath.Join(shortTempDir(t), "export.sock"), e, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	var js map[string]any
	if err := json.Unmarshal([]byte(mustCLI(t, s, "stats", "--json")), &js); err != nil {
		t.Fatal(err)
	}
	return js, mustCLI(t, s, "stats"), scrapeSeries(t, e)
}

// TestEveryDropExported: the dataplane's drop reasons (0 ..
// NumDropReasons-1) and other counters, the SPD's and the underlay's
// counters, and every ESP verdict an SA counts.
func TestEveryDropExported(t *testing.T) {
	_, ft := startServer(t)
	var vals counterValues
	e := &exportTarget{fakeTarget: ft}
	dpVals := fillUint64(t, &e.ds, &vals)
	ulVals := map[string]uint64{}
	ul := reflect.ValueOf(&ft.ul).Elem()
	for i := range ul.NumField() {
		p, ok := ul.Field(i).Addr().Interface().(*atomic.Uint64)
		if !ok {
			t.Errorf("underlay.Stats.%s is not an atomic.Uint64: the export test does not know it", ul.Type().Field(i).Name)
			continue
		}
		n := vals.get()
		p.Store(n)
		ulVals[ul.Type().Field(i).Name] = n
	}
	// One real SA drop, end to end.
	junk := make([]byte, 72)
	copy(junk, []byte{0, 0, 0xb0, 0x01, 0, 0, 0, 1})
	_, v := ft.sad.Lookup(sad.Inbound, 0xb001).Open(newPacketBuf(t, junk), 0)
	if v == esp.OK {
		t.Fatal("junk opened")
	}

	js, text, ms := startExport(t, e)

	// Dataplane drop reasons, by name.
	dp, _ := js["dataplane"].(map[string]any)
	drops, _ := dp["drops"].(map[string]any)
	seen := map[string]bool{}
	for r := range dataplane.NumDropReasons {
		name := r.String()
		if name == "unknown" || name == "" || seen[name] {
			t.Errorf("drop reason %d has no name of its own (%q): add it to dataplane's dropNames", r, name)
			continue
		}
		seen[name] = true
		want := e.ds.Drops[r]
		if got, _ := drops[name].(float64); uint64(got) != want {
			t.Errorf("drop reason %s: stats --json dataplane.drops[%q] = %v, want %d", name, name, drops[name], want)
		}
		if !find(ms, "mipsec_dataplane_drops_total", want, `reason="`+name+`"`) {
			t.Errorf("drop reason %s: no mipsec_dataplane_drops_total{reason=%q} %d", name, name, want)
		}
		if !strings.Contains(text, fmt.Sprintf("%s=%d", name, want)) {
			t.Errorf("drop reason %s: not in `mipsec stats`:\n%s", name, text)
		}
	}
	// The dataplane's other counters.
	dpNums := map[uint64]bool{}
	jsonNumbers(dp, dpNums)
	for f, n := range dpVals {
		if strings.HasPrefix(f, "Drops[") {
			continue
		}
		if !dpNums[n] {
			t.Errorf("dataplane.Stats.%s (%d) is not in stats --json's dataplane", f, n)
		}
		if !find(ms, "mipsec_dataplane_total", n) {
			t.Errorf("dataplane.Stats.%s (%d) is not a mipsec_dataplane_total series", f, n)
		}
	}

	// The underlay's counters.
	ulNums := map[uint64]bool{}
	jsonNumbers(js["underlay"], ulNums)
	for f, n := range ulVals {
		if !ulNums[n] {
			t.Errorf("underlay.Stats.%s (%d) is not in stats --json's underlay", f, n)
		}
		if !find(ms, "mipsec_underlay_total", n) {
			t.Errorf("underlay.Stats.%s (%d) is not a mipsec_underlay_total series", f, n)
		}
	}

	// The SPD's drop counters, in both directions (zero here: their
	// names are checked).
	spdT := reflect.TypeFor[spd.Stats]()
	spds, _ := js["spd"].([]any)
	if len(spds) != 2 {
		t.Fatalf("stats --json spd: %v", js["spd"])
	}
	for i := range spdT.NumField() {
		f := spdT.Field(i)
		if f.Type.Kind() != reflect.Uint64 {
			continue
		}
		name := snake(f.Name)
		for _, d := range spds {
			dm, _ := d.(map[string]any)
			if _, ok := dm[name]; !ok {
				t.Errorf("spd.Stats.%s: no %q in stats --json spd %v", f.Name, name, dm["dir"])
			}
			if !find(ms, "mipsec_spd_drops_total", 0, fmt.Sprintf("dir=%q", dm["dir"]), `reason="`+name+`"`) {
				t.Errorf("spd.Stats.%s: no mipsec_spd_drops_total{dir=%q,reason=%q}", f.Name, dm["dir"], name)
			}
		}
	}

	// ESP verdicts: each has a name, and an SA's counts of every one
	// reach both outputs (both go through control.SADrops).
	var st sad.Stats
	names := map[string]bool{}
	for v := esp.Verdict(1); v < esp.NumVerdicts; v++ {
		st.Drops[v] = vals.get()
		name := control.VerdictName(int(v))
		if name == "unknown" || name == "" || names[name] {
			t.Errorf("verdict %d has no name of its own (%q)", v, name)
		}
		names[name] = true
	}
	got := control.SADrops(&st)
	reg := prometheus.NewRegistry()
	if err := reg.Register(saDropsCollector{&st}); err != nil {
		t.Fatal(err)
	}
	sams := scrapeHandler(t, promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	for v := esp.Verdict(1); v < esp.NumVerdicts; v++ {
		name := control.VerdictName(int(v))
		if got[name] != st.Drops[v] {
			t.Errorf("verdict %s: SADrops %d, want %d", name, got[name], st.Drops[v])
		}
		if !find(sams, "mipsec_sa_drops_total", st.Drops[v]) {
			t.Errorf("verdict %s: no mipsec_sa_drops_total series %d", name, st.Drops[v])
		}
	}
	if len(sams) != int(esp.NumVerdicts)-1 {
		t.Errorf("%d SA drop series for %d verdicts", len(sams), esp.NumVerdicts-1)
	}
	// The real drop of the one SA, in the stats answer and the scrape.
	sas, _ := js["sas"].([]any)
	found := false
	for _, a := range sas {
		am, _ := a.(map[string]any)
		if d, ok := am["drops"].(map[string]any); ok && d[v.String()] == 1.0 {
			found = true
		}
	}
	if !found {
		t.Errorf("the SA's %s drop is not in stats --json: %v", v, js["sas"])
	}
	if !find(ms, "mipsec_sa_drops_total", 1, `reason="`+v.String()+`"`, `spi="0x0000b001"`) {
		t.Errorf("the SA's %s drop is not a mipsec_sa_drops_total series", v)
	}
}

// saDropsCollector collects one SA's drop series from synthetic counts.
type saDropsCollector struct{ st *sad.Stats }

func (c saDropsCollector) Describe(ch chan<- *prometheus.Desc) { ch <- descSADrops }
func (c saDropsCollector) Collect(ch chan<- prometheus.Metric) {
	collectSADrops(ch, []string{"in", "0x0000b001", "b-to-a"}, c.st)
}

// TestEveryMobilityCounterExported: every field of mip6.HAStats (home
// agent) and mip6.MNCounters (mobile node) is in `mipsec stats`, its
// --json and the metrics.
func TestEveryMobilityCounterExported(t *testing.T) {
	_, ft := startServer(t)
	var vals counterValues

	ha := &exportTarget{fakeTarget: ft, ok: true, m: node.MobilityMetrics{Role: node.RoleHA, Bindings: 1}}
	haVals := fillUint64(t, &ha.m.HA, &vals)
	js, text, ms := startExport(t, ha)
	if js["mn"] != nil {
		t.Errorf("a home agent's stats have an mn part: %v", js["mn"])
	}
	haNums := map[uint64]bool{}
	jsonNumbers(js["ha"], haNums)
	for f, n := range haVals {
		if !haNums[n] {
			t.Errorf("mip6.HAStats.%s (%d) is not in stats --json's ha: %v", f, n, js["ha"])
		}
		if !find(ms, "mipsec_mip6_", n) {
			t.Errorf("mip6.HAStats.%s (%d) is not a mipsec_mip6_ series", f, n)
		}
		if !strings.Contains(text, strconv.FormatUint(n, 10)) {
			t.Errorf("mip6.HAStats.%s (%d) is not in `mipsec stats`:\n%s", f, n, text)
		}
	}

	mn := &exportTarget{fakeTarget: ft, ok: true, m: node.MobilityMetrics{Role: node.RoleMN}}
	fillUint64(t, &mn.m.MN, &vals)
	js, text, ms = startExport(t, mn)
	if js["ha"] != nil {
		t.Errorf("a mobile node's stats have an ha part: %v", js["ha"])
	}
	mnJS, _ := js["mn"].(map[string]any)
	rt, rv := reflect.TypeFor[mip6.MNCounters](), reflect.ValueOf(mn.m.MN)
	for i := range rt.NumField() {
		f := rt.Field(i)
		tag, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if tag == "" || tag == "-" || tag != snake(tag) {
			t.Errorf("mip6.MNCounters.%s: json tag %q is not a snake_case name", f.Name, tag)
			continue
		}
		n := rv.Field(i).Uint()
		if got, _ := mnJS[tag].(float64); uint64(got) != n {
			t.Errorf("mip6.MNCounters.%s: stats --json mn[%q] = %v, want %d", f.Name, tag, mnJS[tag], n)
		}
		if !find(ms, "mipsec_mip6_mn_total", n, `counter="`+tag+`"`) {
			t.Errorf("mip6.MNCounters.%s: no mipsec_mip6_mn_total{counter=%q} %d", f.Name, tag, n)
		}
		if !strings.Contains(text, fmt.Sprintf("%s=%d", tag, n)) {
			t.Errorf("mip6.MNCounters.%s: not in `mipsec stats`:\n%s", f.Name, text)
		}
	}
}

// ikeStatsKeys are the keys of ike.Stats' maps by field: those
// status.go documents and, where the daemon can be made (the seams
// below it left unimplemented: neither is called before Start), the
// fixed key set its Stats returns.
func ikeStatsKeys(t *testing.T) map[string][]string {
	keys := map[string][]string{
		"Exchanges": {"IKE_SA_INIT", "IKE_AUTH", "CREATE_CHILD_SA", "INFORMATIONAL"},
		"Failures":  {"malformed", "auth_failed", "no_proposal", "ts_unacceptable", "invalid_spi", "message_id", "timeout", "queue_full", "cookie"},
	}
	type kernel struct{ ike.Kernel }
	type transport struct{ ike.Transport }
	d, err := ike.New(ike.Config{Kernel: kernel{}, Transport: transport{}})
	if err != nil || d == nil {
		t.Logf("no daemon to ask for its keys (%v): the documented ones only", err)
		return keys
	}
	got := make(chan ike.Stats, 1)
	go func() { got <- d.Stats() }()
	select {
	case st := <-got:
		for k := range st.Exchanges {
			keys["Exchanges"] = append(keys["Exchanges"], k)
		}
		for k := range st.Failures {
			keys["Failures"] = append(keys["Failures"], k)
		}
	case <-time.After(5 * time.Second):
		t.Log("the daemon did not answer Stats before Start: the documented keys only")
	}
	return keys
}

// TestEveryIKECounterExported: every field of ike.Stats, and every key of
// its maps, is in `mipsec stats`, its --json (under "ike", by the field's
// snake_case name) and the mipsec_ike_ metrics.
func TestEveryIKECounterExported(t *testing.T) {
	var vals counterValues
	var st ike.Stats
	keys := ikeStatsKeys(t)
	type want struct {
		field, key string // key: a map's
		n          uint64
	}
	var wants []want
	rv := reflect.ValueOf(&st).Elem()
	for i := range rv.NumField() {
		f, sf := rv.Field(i), rv.Type().Field(i)
		switch {
		case f.Kind() == reflect.Int:
			n := vals.get()
			f.SetInt(int64(n))
			wants = append(wants, want{field: sf.Name, n: n})
		case f.Kind() == reflect.Uint64:
			n := vals.get()
			f.SetUint(n)
			wants = append(wants, want{field: sf.Name, n: n})
		case f.Kind() == reflect.Map && f.Type().Key().Kind() == reflect.String && f.Type().Elem().Kind() == reflect.Uint64:
			m := map[string]uint64{}
			for _, k := range append(keys[sf.Name], "test-reason") {
				if _, dup := m[k]; dup {
					continue
				}
				m[k] = vals.get()
				wants = append(wants, want{field: sf.Name, key: k, n: m[k]})
			}
			f.Set(reflect.ValueOf(m))
		default:
			t.Errorf("ike.Stats.%s: a %s field the export test does not know how to fill", sf.Name, f.Type())
		}
	}
	_, ft := startServer(t)
	e := &ikeExportTarget{exportTarget: &exportTarget{fakeTarget: ft}, d: &cliIKE{stats: st}}
	s, err := control.Listen(filepath.Join(shortTempDir(t), "ike.sock"), e, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	var js map[string]any
	if err := json.Unmarshal([]byte(mustCLI(t, s, "stats", "--json")), &js); err != nil {
		t.Fatal(err)
	}
	text, ms := mustCLI(t, s, "stats"), scrapeSeries(t, e)
	ikeJS, _ := js["ike"].(map[string]any)
	// The JSON names: the field's snake_case name, IKESAs -> ike_sas.
	jsonName := map[string]string{"IKESAs": "ike_sas", "ChildSAs": "child_sas", "HalfOpen": "half_open", "CookiesSent": "cookies_sent", "ESPMoves": "esp_moves", "MOBIKEUpdates": "mobike_updates"}
	label := map[string]string{"Exchanges": "type", "Failures": "reason"}
	for _, w := range wants {
		name := jsonName[w.field]
		if name == "" {
			name = snake(w.field)
		}
		if w.key == "" {
			if got, _ := ikeJS[name].(float64); uint64(got) != w.n {
				t.Errorf("ike.Stats.%s: stats --json ike[%q] = %v, want %d", w.field, name, ikeJS[name], w.n)
			}
			metric := map[string]string{"IKESAs": "mipsec_ike_sas", "ChildSAs": "mipsec_ike_child_sas", "HalfOpen": "mipsec_ike_half_open",
				"Rekeys": "mipsec_ike_rekeys_total", "Retransmits": "mipsec_ike_retransmits_total", "CookiesSent": "mipsec_ike_cookies_sent_total", "ESPMoves": "mipsec_ike_esp_moves_total", "MOBIKEUpdates": "mipsec_ike_mobike_updates_total"}[w.field]
			if metric == "" {
				metric = "mipsec_ike_" // a new counter: any IKE series
			}
			if !find(ms, metric, w.n) {
				t.Errorf("ike.Stats.%s (%d): no %s series", w.field, w.n, metric)
			}
			if !strings.Contains(text, fmt.Sprintf("%s=%d", name, w.n)) {
				t.Errorf("ike.Stats.%s: %s=%d not in `mipsec stats`:\n%s", w.field, name, w.n, text)
			}
			continue
		}
		m, _ := ikeJS[name].(map[string]any)
		if got, _ := m[w.key].(float64); uint64(got) != w.n {
			t.Errorf("ike.Stats.%s[%q]: stats --json ike.%s = %v, want %d", w.field, w.key, name, m, w.n)
		}
		if !find(ms, "mipsec_ike_"+name+"_total", w.n, label[w.field]+`="`+w.key+`"`) {
			t.Errorf("ike.Stats.%s[%q] (%d): no mipsec_ike_%s_total{%s=%q} series", w.field, w.key, w.n, name, label[w.field], w.key)
		}
		if !strings.Contains(text, fmt.Sprintf("%s=%d", w.key, w.n)) {
			t.Errorf("ike.Stats.%s[%q]: %s=%d not in `mipsec stats`:\n%s", w.field, w.key, w.key, w.n, text)
		}
	}
	// The series the metrics promise, by name.
	for _, n := range []string{"mipsec_ike_sas", "mipsec_ike_child_sas", "mipsec_ike_half_open", "mipsec_ike_exchanges_total",
		"mipsec_ike_failures_total", "mipsec_ike_rekeys_total", "mipsec_ike_retransmits_total", "mipsec_ike_cookies_sent_total"} {
		found := false
		for _, s := range ms {
			found = found || s.name == n
		}
		if !found {
			t.Errorf("no %s series", n)
		}
	}
	// Without IKE: none.
	for _, s := range scrapeSeries(t, &exportTarget{fakeTarget: ft}) {
		if strings.HasPrefix(s.name, "mipsec_ike_") {
			t.Errorf("a target without IKE has %s", s.name)
		}
	}
}

// ikeExportTarget is an exportTarget with an IKE daemon.
type ikeExportTarget struct {
	*exportTarget
	d *cliIKE
}

func (e *ikeExportTarget) IKEDaemon() control.IKEDaemon { return e.d }
