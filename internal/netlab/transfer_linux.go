package netlab

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"time"
)

// Payload returns size bytes of ChaCha8 output from seed with marker
// (the plaintext pattern a capture looks for) at the start of every KiB.
func Payload(size int64, marker []byte, seed [32]byte) io.Reader {
	return &payload{rng: rand.NewChaCha8(seed), marker: marker, size: size}
}

type payload struct {
	rng       *rand.ChaCha8
	marker    []byte
	off, size int64
}

func (p *payload) Read(b []byte) (int, error) {
	if p.off >= p.size {
		return 0, io.EOF
	}
	b = b[:min(int64(len(b)), p.size-p.off)]
	p.rng.Read(b)
	start, end := p.off, p.off+int64(len(b))
	for k := start / 1024 * 1024; k < end; k += 1024 {
		lo, hi := max(k, start), min(k+int64(len(p.marker)), end)
		if lo < hi {
			copy(b[lo-start:hi-start], p.marker[lo-k:hi-k])
		}
	}
	p.off = end
	return len(b), nil
}

// TransferResult describes one TCP transfer.
type TransferResult struct {
	Bytes   int
	Elapsed time.Duration
}

// Mbps is the throughput in Mbit/s.
func (r TransferResult) Mbps() float64 { return float64(r.Bytes) * 8 / r.Elapsed.Seconds() / 1e6 }

func (r TransferResult) String() string {
	return fmt.Sprintf("%d bytes in %v (%.1f Mbit/s)", r.Bytes, r.Elapsed.Round(time.Millisecond), r.Mbps())
}

// Transfer sends everything data yields, in writes of up to chunk bytes,
// over TCP from src (in cliNS) to dst (in srvNS), and checks that the
// receiver got as many bytes with the same SHA-256 as were sent. progress,
// if not nil, is called from the sender after every write with the bytes
// sent so far. When ctx is done the connection is aborted and its cause
// returned.
func Transfer(ctx context.Context, srvNS string, dst netip.AddrPort, cliNS string, src netip.Addr,
	data io.Reader, chunk int, progress func(sent int)) (TransferResult, error) {
	var ln net.Listener
	if err := InNetns(srvNS, func() error {
		var err error
		ln, err = net.Listen("tcp", dst.String())
		return err
	}); err != nil {
		return TransferResult{}, fmt.Errorf("listen %v: %w", dst, err)
	}
	defer ln.Close()
	type recv struct {
		sum [sha256.Size]byte
		n   int64
		err error
	}
	var (
		mu       sync.Mutex
		accepted net.Conn
	)
	rc := make(chan recv, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			rc <- recv{err: err}
			return
		}
		defer c.Close()
		mu.Lock()
		accepted = c
		mu.Unlock()
		if ctx.Err() != nil {
			c.SetDeadline(time.Unix(1, 0))
		}
		h := sha256.New()
		n, err := io.Copy(h, c)
		var r recv
		copy(r.sum[:], h.Sum(nil))
		r.n, r.err = n, err
		rc <- r
	}()
	var conn net.Conn
	if err := InNetns(cliNS, func() error {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: src.AsSlice()}, Timeout: 10 * time.Second}
		var err error
		conn, err = d.DialContext(ctx, "tcp", dst.String())
		return err
	}); err != nil {
		return TransferResult{}, fmt.Errorf("dial %v from %v: %w", dst, src, err)
	}
	defer conn.Close()
	// Abort the blocking reads and writes when ctx is done.
	stop := context.AfterFunc(ctx, func() {
		conn.SetDeadline(time.Unix(1, 0))
		ln.Close()
		mu.Lock()
		if accepted != nil {
			accepted.SetDeadline(time.Unix(1, 0))
		}
		mu.Unlock()
	})
	defer stop()
	sent := sha256.New()
	buf := make([]byte, chunk)
	total := 0
	start := time.Now()
	for {
		if err := context.Cause(ctx); err != nil {
			return TransferResult{}, err
		}
		n, rerr := io.ReadFull(data, buf)
		if n > 0 {
			sent.Write(buf[:n])
			if _, err := conn.Write(buf[:n]); err != nil {
				return TransferResult{}, fmt.Errorf("send at byte %d: %w", total, cause(ctx, err))
			}
			total += n
			if progress != nil {
				progress(total)
			}
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return TransferResult{}, rerr
		}
	}
	if err := conn.(*net.TCPConn).CloseWrite(); err != nil {
		return TransferResult{}, err
	}
	var r recv
	select {
	case r = <-rc:
	case <-ctx.Done():
		return TransferResult{}, context.Cause(ctx)
	}
	elapsed := time.Since(start)
	switch {
	case r.err != nil:
		return TransferResult{}, fmt.Errorf("receive after %d bytes: %w", r.n, cause(ctx, r.err))
	case r.n != int64(total):
		return TransferResult{}, fmt.Errorf("received %d bytes, sent %d", r.n, total)
	case r.sum != [sha256.Size]byte(sent.Sum(nil)):
		return TransferResult{}, errors.New("the received bytes differ from the sent ones (SHA-256)")
	}
	return TransferResult{Bytes: total, Elapsed: elapsed}, nil
}

// cause is ctx's cause when ctx is done (what aborted err), else err.
func cause(ctx context.Context, err error) error {
	if c := context.Cause(ctx); c != nil {
		return c
	}
	return err
}
