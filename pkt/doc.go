// Package pkt owns packet buffers: one packet is one fixed array with
// headroom in front and tailroom behind, so ESP headers, IVs and outer
// headers are prepended in place and the ESP trailer and ICV are appended in
// place, without copying the payload.
//
// pkt is a leaf: it imports only the standard library and never logs.
//
// Hot-path contract: Get/Put and every Buf method are allocation-free.
package pkt
