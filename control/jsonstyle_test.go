package control

import (
	"encoding/json"
	"net/netip"
	"regexp"
	"testing"
	"time"

	"github.com/mipsec/mipsec/ike"
	"github.com/mipsec/mipsec/mip6"
)

// TestJSONKeyStyle: every answer the CLI prints with --json uses one key
// style, snake_case, at every depth (no Go field names leak through).
func TestJSONKeyStyle(t *testing.T) {
	now := time.Now()
	answers := map[string]any{
		"status": StatusInfo{Started: now},
		"stats": StatsInfo{SAs: []SAStats{{Drops: map[string]uint64{"icv": 1}}}, SPD: []SPDStats{{}},
			HA: &HAStatsInfo{BURejected: map[string]uint64{"invalid-care-of-address": 1}}, MN: &mip6.MNCounters{},
			IKE: &IKEStatsInfo{Exchanges: map[string]uint64{"IKE_SA_INIT": 1}, Failures: map[string]uint64{"auth_failed": 1}}},
		"sa":      SAInfo{Lifetime: &LifetimeInfo{HardTime: "1h"}},
		"policy":  PolicyInfo{},
		"peer":    PeerInfo{},
		"binding": bindingInfoOf(mip6.BindingStatus{HoA: netip.MustParseAddr("2001:db8:1::100"), CoAs: []mip6.CareOf{{}}}, now),
		"mn":      mNStatusInfoOf(mip6.MNStatus{}, now),
		"ike_sa": IKESAInfoOf(ike.SAStatus{Established: now, RekeyAt: now, Local: netip.MustParseAddrPort("192.0.2.1:500"),
			Children: []ike.ChildStatus{{Installed: now, RekeyAt: now, ExpireAt: now, LocalTS: []ike.TrafficSelector{{}}}}}),
		"ike_action":    IKEActionInfo{Before: &IKESAInfo{}, After: &IKESAInfo{}},
		"ike_wireshark": IKEWiresharkKey{SKai: "00"},
	}
	key := regexp.MustCompile(`^[a-z0-9_]+$`)
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				if !key.MatchString(k) && path != "stats.sas[].drops" && path != "stats.dataplane.drops" && path != "stats.ha.bu_rejected" &&
					path != "stats.ike.exchanges" { // RFC 7296's exchange names
					t.Errorf("%s: key %q is not snake_case", path, k)
				}
				walk(path+"."+k, e)
			}
		case []any:
			for _, e := range x {
				walk(path+"[]", e)
			}
		}
	}
	for name, a := range answers {
		b, err := json.Marshal(a)
		if err != nil {
			t.Fatal(err)
		}
		var v any
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatal(err)
		}
		walk(name, v)
	}
}
