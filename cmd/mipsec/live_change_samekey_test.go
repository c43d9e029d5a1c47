// Same-key updates of the flowing SA itself. These found two bugs, both
// fixed: daemon.UpdateSA rebuilt a restarted SA (InitialSeq > 0) instead
// of letting sad.DB.Replace hand the esp state over, and a packet that
// found the old SA just before Replace swapped it was dropped instead of
// going to its successor (sad SA.next).

package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/mipsec/mipsec/control"
	"github.com/mipsec/mipsec/internal/fixture"
	"github.com/mipsec/mipsec/sad"
)

// TestLiveSameKeyUpdateNoLoss: `mipsec sa update` of the flow's own SAs
// with the keys they have, on both gateways, back to back while the flow
// runs. sad.DB.Replace hands the esp state over: nothing may be lost. Run
// with A fresh (InitialSeq 0) and after a restart (InitialSeq > 0).
func TestLiveSameKeyUpdateNoLoss(t *testing.T) {
	for _, prior := range []int{0, priorSeals} {
		t.Run(fmt.Sprintf("prior=%d", prior), func(t *testing.T) {
			r := newLiveRig(t, prior)
			pols := r.policyLists()
			flowOut := r.specFile("flow-out.json", control.SpecFromConfig(r.cfgA.SAs[0].Config))
			if r.cfgB.SAs[1].Params.SPI != fixture.SPIAtoB || r.cfgB.SAs[1].Dir != sad.Inbound {
				t.Fatal("gateway-b.toml: sa[1] is not the inbound 0xb001")
			}
			flowIn := r.specFile("flow-in.json", control.SpecFromConfig(r.cfgB.SAs[1].Config))
			r.start()
			r.progress(20)
			// A few with the flow moving on between them, then a hammer.
			for range 5 {
				r.ctl(r.sockA, "sa", "update", "-f", flowOut)
				r.ctl(r.sockB, "sa", "update", "-f", flowIn)
			}
			var wg sync.WaitGroup
			for _, c := range []struct{ sock, file string }{{r.sockA, flowOut}, {r.sockB, flowIn}} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range 200 {
						var o, e bytes.Buffer
						if rc := run([]string{"sa", "update", "-f", c.file, "--socket", c.sock}, &o, &e); rc != 0 {
							t.Errorf("sa update -f %s: %s", c.file, e.String())
							return
						}
					}
				}()
			}
			wg.Wait()
			r.checkEnd(pols)
		})
	}
}

// specFile writes v as JSON for `-f`.
func (r *liveRig) specFile(name string, v any) string {
	r.t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		r.t.Fatal(err)
	}
	path := filepath.Join(r.dir, name)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		r.t.Fatal(err)
	}
	return path
}
