package control

// Control commands of the mobility roles:
//
//	binding.list            (HA) the binding cache: HoA, HoA4, CoAs with
//	                        BID / primary / NAT endpoint, seq, lifetime left
//	mn.status               (MN) the binding update list, current and
//	                        registered CoA, NAT, keepalive, last handover
//	mn.move {"coa":"ADDR"}  (MN) force the care-of address
//
// A daemon of another role answers with an error that names its role.

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/mipsec/mipsec/endpoint"
	"github.com/mipsec/mipsec/mip6"
	"github.com/mipsec/mipsec/node"
)

// MobilityTarget is what the mobility commands need; the daemon has it,
// a Target without it is a gateway.
type MobilityTarget interface {
	// Bindings returns the HA's binding cache (node.ErrNotHA otherwise).
	Bindings() ([]mip6.BindingStatus, error)
	// MNStatus returns the MN's registration (node.ErrNotMN otherwise).
	MNStatus() (mip6.MNStatus, error)
	// MNMove forces the MN's care-of address (node.ErrNotMN otherwise).
	MNMove(coa netip.Addr) error
}

func init() {
	methods["binding.list"] = method{"home agent: the binding cache", (*Server).cmdBindingList}
	methods["mn.status"] = method{"mobile node: its registration", (*Server).cmdMNStatus}
	methods["mn.move"] = method{"mobile node: force the care-of address (args: coa)", (*Server).cmdMNMove}
}

// CareOfInfo is one care-of address of a binding (RFC 5648 BID).
type CareOfInfo struct {
	BID     uint16 `json:"bid"`
	Addr    string `json:"addr"`
	Primary bool   `json:"primary"`
	NAT     bool   `json:"nat"`
	// Endpoint is the outer IPv4 address and UDP port the BU came from
	// (the NAT's mapping with NAT); empty when not UDP-encapsulated.
	Endpoint string `json:"endpoint,omitempty"`
}

// BindingInfo is one binding in the binding.list answer.
type BindingInfo struct {
	HoA  string       `json:"hoa"`
	HoA4 string       `json:"hoa4,omitempty"`
	CoAs []CareOfInfo `json:"coas"`
	Seq  uint16       `json:"seq"`
	// Lifetime is the granted lifetime; LifetimeLeft what remains of it
	// (whole seconds).
	Lifetime     string    `json:"lifetime"`
	LifetimeLeft string    `json:"lifetime_left"`
	Expires      time.Time `json:"expires"`
	LastBU       time.Time `json:"last_bu,omitzero"`
}

func bindingInfoOf(b mip6.BindingStatus, now time.Time) BindingInfo {
	in := BindingInfo{HoA: b.HoA.String(), Seq: b.Seq, CoAs: []CareOfInfo{},
		Lifetime: b.Lifetime.String(), Expires: b.Expires.UTC(), LastBU: b.LastBU.UTC()}
	if b.HoA4.IsValid() {
		in.HoA4 = b.HoA4.String()
	}
	left := max(b.Expires.Sub(now), 0).Truncate(time.Second)
	in.LifetimeLeft = left.String()
	for _, c := range b.CoAs {
		ci := CareOfInfo{BID: c.BID, Addr: c.Addr.String(), Primary: c.Primary, NAT: c.NAT}
		if c.Endpoint.IsValid() {
			ci.Endpoint = c.Endpoint.String()
		}
		in.CoAs = append(in.CoAs, ci)
	}
	return in
}

func (s *Server) mobilityTarget() (MobilityTarget, bool) {
	m, ok := s.t.(MobilityTarget)
	return m, ok
}

func (s *Server) cmdBindingList(args json.RawMessage) (any, error) {
	if err := decodeArgs(args, &noArgs{}); err != nil {
		return nil, err
	}
	m, ok := s.mobilityTarget()
	if !ok {
		return nil, node.ErrNotHA
	}
	bs, err := m.Bindings()
	if err != nil {
		return nil, err
	}
	slices.SortFunc(bs, func(a, b mip6.BindingStatus) int { return a.HoA.Compare(b.HoA) })
	now := time.Now()
	out := []BindingInfo{}
	for _, b := range bs {
		out = append(out, bindingInfoOf(b, now))
	}
	return out, nil
}

// MNStatusInfo is the mn.status answer.
type MNStatusInfo struct {
	State string `json:"state"`
	Home  bool   `json:"home"`
	HoA   string `json:"hoa"`
	HoA4  string `json:"hoa4,omitempty"`
	HA    string `json:"ha"`
	HAV4  string `json:"ha_v4,omitempty"`
	// CoA is the current care-of address (the last move); RegisteredCoA
	// the one the HA accepted, where data goes (DR-3).
	CoA           string `json:"coa,omitempty"`
	RegisteredCoA string `json:"registered_coa,omitempty"`
	// Data is how data leaves now: "raw ADDR", "udp ADDR:PORT" or "keep".
	Data      string `json:"data"`
	BUSPI     SPI    `json:"bu_spi,omitempty"`
	NAT       bool   `json:"nat"`
	Keepalive string `json:"keepalive,omitempty"`
	Seq       uint16 `json:"seq"`
	Attempts  int    `json:"attempts"`
	// Expires is when the registration ends without a refresh.
	Expires      time.Time `json:"expires,omitzero"`
	LifetimeLeft string    `json:"lifetime_left,omitempty"`
	LastBAStatus string    `json:"last_ba_status,omitempty"`
	// LastHandover is when the last handover completed; HandoverTime
	// how long it took from the move to the accepted BA.
	LastHandover time.Time        `json:"last_handover,omitzero"`
	HandoverTime string           `json:"handover_time,omitempty"`
	Counters     mip6.MNCounters  `json:"counters"`
	IPv4HoAAck   *json.RawMessage `json:"ipv4_hoa_ack,omitempty"`
}

func mNStatusInfoOf(st mip6.MNStatus, now time.Time) MNStatusInfo {
	in := MNStatusInfo{
		State: st.State.String(), Home: st.Home, HoA: st.HoA.String(), HA: st.HA.String(),
		BUSPI: SPI(st.BUSPI), NAT: st.NAT, Seq: st.Seq, Attempts: st.Attempts, Counters: st.Counters,
		Data: "keep",
	}
	str := func(a netip.Addr) string {
		if a.IsValid() {
			return a.String()
		}
		return ""
	}
	in.HoA4, in.HAV4, in.CoA, in.RegisteredCoA = str(st.HoA4), str(st.HAV4), str(st.CoA), str(st.RegisteredCoA)
	switch ep := st.Data; {
	case !ep.Addr.IsValid():
	case ep.Encap == endpoint.EncapUDP:
		in.Data = "udp " + ep.Addr.String()
	default:
		in.Data = "raw " + ep.Addr.Addr().String()
	}
	if st.Keepalive > 0 {
		in.Keepalive = st.Keepalive.String()
	}
	if !st.Expires.IsZero() {
		in.Expires = st.Expires.UTC()
		in.LifetimeLeft = max(st.Expires.Sub(now), 0).Truncate(time.Second).String()
	}
	if st.HaveBA {
		in.LastBAStatus = st.LastBAStatus.String()
	}
	if !st.LastHandover.IsZero() {
		in.LastHandover = st.LastHandover.UTC()
		in.HandoverTime = st.HandoverDuration.String()
	}
	if st.IPv4HoAAck != nil {
		if b, err := json.Marshal(st.IPv4HoAAck); err == nil {
			r := json.RawMessage(b)
			in.IPv4HoAAck = &r
		}
	}
	return in
}

func (s *Server) cmdMNStatus(args json.RawMessage) (any, error) {
	if err := decodeArgs(args, &noArgs{}); err != nil {
		return nil, err
	}
	m, ok := s.mobilityTarget()
	if !ok {
		return nil, node.ErrNotMN
	}
	st, err := m.MNStatus()
	if err != nil {
		return nil, err
	}
	return mNStatusInfoOf(st, time.Now()), nil
}

type MNMoveArgs struct {
	CoA string `json:"coa"`
}

func (s *Server) cmdMNMove(args json.RawMessage) (any, error) {
	var a MNMoveArgs
	if err := decodeArgs(args, &a); err != nil {
		return nil, err
	}
	coa, err := netip.ParseAddr(a.CoA)
	if err != nil || coa.Zone() != "" {
		return nil, fmt.Errorf("%w: args: coa %q is not an IP address", ErrBadRequest, a.CoA)
	}
	m, ok := s.mobilityTarget()
	if !ok {
		return nil, node.ErrNotMN
	}
	if err := m.MNMove(coa.Unmap()); err != nil {
		return nil, err
	}
	return map[string]any{"coa": coa.Unmap().String()}, nil
}

// HAStatsInfo is the home agent's part of the "stats" answer
// (node.MobilityMetrics.HA, mip6.HAStats).
type HAStatsInfo struct {
	Bindings int `json:"bindings"`
	// Received counts signaling messages (BUs, other MH, Mobile Prefix
	// Solicitations) taken from IPsec, before the rate limit.
	Received   uint64 `json:"received"`
	BUAccepted uint64 `json:"bu_accepted"`
	// BURejected are rejected or dropped signaling messages by reason
	// (mip6's reason names, e.g. "invalid-care-of-address").
	BURejected map[string]uint64 `json:"bu_rejected,omitempty"`
	// BadCoA counts BUs refused for their care-of address: the home
	// agent's own, a home address of a binding, not unicast.
	BadCoA uint64 `json:"bad_coa"`
	// RateLimited, QueueFull and TooBig count signaling dropped before
	// processing: over the per-home-address rate limit, the signaling
	// queue full, longer than the queue holds.
	RateLimited    uint64 `json:"rate_limited"`
	QueueFull      uint64 `json:"queue_full"`
	TooBig         uint64 `json:"too_big"`
	BAsSent        uint64 `json:"bas_sent"`
	BAsFailed      uint64 `json:"bas_failed"`
	NATDetected    uint64 `json:"nat_detected"`
	MPSAnswered    uint64 `json:"mps_answered"`
	HomeLinkErrors uint64 `json:"home_link_errors"`
	// DR1Failed counts data packets to a bound home address dropped
	// because its primary care-of address cannot be reached (DR-1).
	DR1Failed uint64 `json:"dr1_failed"`
}

// mobilityMetricsSource is the optional part of a Target with a mobility
// layer (the daemon).
type mobilityMetricsSource interface {
	MobilityMetrics() (node.MobilityMetrics, bool)
}

// mobilityStatsOf is t's home agent or mobile node counters for the
// "stats" answer; nil, nil for a target with neither.
func mobilityStatsOf(t any) (*HAStatsInfo, *mip6.MNCounters) {
	ms, ok := t.(mobilityMetricsSource)
	if !ok {
		return nil, nil
	}
	m, ok := ms.MobilityMetrics()
	switch {
	case !ok:
		return nil, nil
	case m.Role == node.RoleMN:
		c := m.MN
		return nil, &c
	case m.Role != node.RoleHA:
		return nil, nil
	}
	h := &m.HA
	return &HAStatsInfo{
		Bindings: m.Bindings, Received: h.Received, BUAccepted: h.BUAccepted, BURejected: h.BURejected, BadCoA: h.BadCoA,
		RateLimited: h.RateLimited, QueueFull: h.QueueFull, TooBig: h.TooBig,
		BAsSent: h.BAsSent, BAsFailed: h.BAsFailed, NATDetected: h.NATDetected, MPSAnswered: h.MPSAnswered,
		HomeLinkErrors: h.HomeLinkErrors, DR1Failed: h.DR1Failed,
	}, nil
}
