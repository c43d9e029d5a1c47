// Package dataplane moves packets: TUN and underlay I/O behind two
// interfaces (fakes in sub-packages), batching, workers, the pipeline that
// wires spd, sad and esp together, and the hooks where the mip6 mobility
// tunnel layer plugs in (after seal, before the outer header leaves; before
// SA lookup, when a packet arrives).
//
// Status: the package is a placeholder until the dataplane issue lands; the
// ESP engine (esp, sad, spd) is usable on its own as a bump-in-the-stack
// IPsec, see the README section "Embedding mipsec as a BITS IPsec".
//
// dataplane may import everything below it (esp, sad, spd, mip6, internal/*),
// zap, x/net, x/sys and wireguard/tun; never cmd or bench.
package dataplane
