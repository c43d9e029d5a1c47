package main

// `mipsec genkey [--alg NAME] [--enc|--auth]`: a fresh random key in the
// config's hex form ("0x..."), of exactly the size the algorithm takes:
// for AES-GCM, AES-GMAC and ChaCha20-Poly1305 the key and its 4-byte salt
// (RFC 4106 §8.1, RFC 4543 §3.2, RFC 7634 §2), for the HMAC suites the
// cipher key and the integrity key.

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/mipsec/mipsec/esp"
)

// defaultPairAlg is the algorithm genkey and pair use without --alg: the
// one of testdata/gateway-*.toml.
const defaultPairAlg = "aes128gcm16"

const genkeyUsage = `usage: mipsec genkey [--alg NAME] [--enc | --auth]

Print a fresh random key (crypto/rand) in the hex form the config takes
("0x...", for enc_key / auth_key or an enc_key_file), of exactly the size
the algorithm needs:

  aes128gcm16, aes128gmac              20 bytes: 16-byte key + 4-byte salt
  aes192gcm16                          28 bytes: 24-byte key + 4-byte salt
  aes256gcm16, aes256gmac,             36 bytes: 32-byte key + 4-byte salt
  chacha20poly1305
  aes128-sha256 / aes256-sha256        16 / 32-byte AES key and a 32-byte HMAC key
  aes128-sha1 / aes256-sha1            16 / 32-byte AES key and a 20-byte HMAC key
  null-sha256                          a 32-byte HMAC key only

A combined-mode algorithm has one key, printed alone. The HMAC suites have
two, printed as labelled TOML lines (enc_key = "0x...", auth_key = "0x...")
unless --enc or --auth picks one, printed alone. Every SA needs its own
key: never give one key to two SAs (see "Manual keys without IV reuse" in
the README). To write a key file: mipsec genkey > a-b.key; chmod 600 a-b.key
(or umask 077 first).

Flags:
`

func genkeyCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("genkey", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {} // printed below, on stdout for -h
	algName := fs.String("alg", defaultPairAlg, "ESP `algorithm` ("+strings.Join(esp.AlgorithmNames(), ", ")+")")
	encOnly := fs.Bool("enc", false, "print only the encryption key (with its salt), bare")
	authOnly := fs.Bool("auth", false, "print only the integrity (HMAC) key, bare")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printFlagUsage(stdout, genkeyUsage, fs)
			return 0
		}
		printFlagUsage(stderr, genkeyUsage, fs)
		return 2
	}
	if fs.NArg() != 0 {
		fmt.Fprintf(stderr, "mipsec genkey: unexpected argument %q\n", fs.Arg(0))
		printFlagUsage(stderr, genkeyUsage, fs)
		return 2
	}
	alg, err := esp.ParseAlgorithm(*algName)
	if err != nil {
		fmt.Fprintf(stderr, "mipsec genkey: %q is not an algorithm; want one of %s\n", *algName, strings.Join(esp.AlgorithmNames(), ", "))
		return 2
	}
	switch {
	case *encOnly && *authOnly:
		fmt.Fprintln(stderr, "mipsec genkey: --enc and --auth each print one key; give one of them, or neither for both")
		return 2
	case *encOnly && alg.EncKeyLen() == 0:
		fmt.Fprintf(stderr, "mipsec genkey: %s has no encryption key (NULL encryption, RFC 2410)\n", alg)
		return 2
	case *authOnly && alg.AuthKeyLen() == 0:
		fmt.Fprintf(stderr, "mipsec genkey: %s is combined mode: it has no separate integrity key\n", alg)
		return 2
	}
	enc, auth := newKeys(alg)
	switch {
	case *encOnly:
		fmt.Fprintln(stdout, hexKey(enc))
	case *authOnly:
		fmt.Fprintln(stdout, hexKey(auth))
	case alg.AuthKeyLen() == 0:
		fmt.Fprintln(stdout, hexKey(enc))
	default:
		if len(enc) > 0 {
			fmt.Fprintf(stdout, "enc_key = %q\n", hexKey(enc))
		}
		fmt.Fprintf(stdout, "auth_key = %q\n", hexKey(auth))
	}
	return 0
}

// printFlagUsage writes text and the flags of fs to w.
func printFlagUsage(w io.Writer, text string, fs *flag.FlagSet) {
	fmt.Fprint(w, text)
	fs.SetOutput(w)
	fs.PrintDefaults()
}

// newKeys returns a fresh random encryption key (with the salt where alg
// has one) and integrity key of alg's sizes; nil where alg has none.
func newKeys(alg esp.Algorithm) (enc, auth []byte) {
	return randomBytes(alg.EncKeyLen()), randomBytes(alg.AuthKeyLen())
}

// randomBytes returns n bytes from crypto/rand, nil for 0. crypto/rand.Read
// does not fail (it crashes the program rather than return short).
func randomBytes(n int) []byte {
	if n == 0 {
		return nil
	}
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// hexKey writes k the way the config reads it.
func hexKey(k []byte) string { return "0x" + hex.EncodeToString(k) }
