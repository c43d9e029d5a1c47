package config

// The configuration file as text: before the TOML, characters that cannot
// be seen (a byte order mark, NUL bytes, zero-width and bidirectional
// controls, unusual spaces) are named with their line, instead of a
// TOML error about a character nobody sees, or a value that silently
// differs from what it looks like.

import (
	"bytes"
	"fmt"
	"unicode"
	"unicode/utf8"
)

// maxTextProblems is how many lines with such characters are listed.
const maxTextProblems = 10

// textProblems lists the lines of data that hold a character the file
// must not have: not UTF-8, a byte order mark, a NUL or other control
// character (tab, line feed and carriage return are fine), or an
// invisible one. One error a line, the first character of it, at most
// maxTextProblems lines (then one error counting the rest).
func textProblems(data []byte) Errors {
	if bytes.HasPrefix(data, []byte{0xff, 0xfe}) || bytes.HasPrefix(data, []byte{0xfe, 0xff}) {
		return Errors{{Line: 1, Msg: fmt.Sprintf("the file is UTF-16 (byte order mark % X); save it as UTF-8", data[:2])}}
	}
	var out Errors
	more := 0
	line, col, reported := 1, 0, false
	for i := 0; i < len(data); {
		r, n := utf8.DecodeRune(data[i:])
		col++
		msg := ""
		switch {
		case r == '\n':
			line, col, reported = line+1, 0, false
		case reported:
		case r == utf8.RuneError && n == 1:
			msg = fmt.Sprintf("byte %#02x at column %d is not UTF-8; save the file as UTF-8", data[i], col)
		case i == 0 && r == 0xfeff:
			msg = "a UTF-8 byte order mark (EF BB BF) starts the file; save it without one"
		case r == 0:
			msg = fmt.Sprintf("a NUL byte at column %d; a configuration file is text", col)
		default:
			if name, what := invisible(r); name != "" {
				fix := "delete it"
				if unicode.Is(unicode.Zs, r) {
					fix = "type a plain space instead"
				}
				msg = fmt.Sprintf("%s at column %d, %s; %s (in a string, write it as the escape \\u%04X if it is meant)", name, col, what, fix, r)
			}
		}
		if msg != "" {
			reported = true
			if len(out) < maxTextProblems {
				out = append(out, Error{Line: line, Msg: msg})
			} else {
				more++
			}
		}
		i += n
	}
	if more > 0 {
		out = append(out, Error{Msg: fmt.Sprintf("and %d more line%s with such characters", more, plural(more))})
	}
	return out
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// in sets the file of every error.
func (es Errors) in(file string) Errors {
	for i := range es {
		es[i].File = file
	}
	return es
}

// invisible names r ("U+200B ZERO WIDTH SPACE") and says what it is ("an
// invisible character", "a control character") when a configuration file
// must not hold it; "" for every other character.
func invisible(r rune) (name, what string) {
	if r == '\t' || r == '\n' || r == '\r' {
		return "", ""
	}
	code := fmt.Sprintf("U+%04X", r)
	if n, ok := runeNames[r]; ok {
		code += " " + n
	}
	switch {
	case r < 0x20 || r == 0x7f:
		return code, "a control character"
	case r >= 0x80 && r <= 0x9f:
		return code, "a C1 control character"
	case r >= 0xfe00 && r <= 0xfe0f:
		return fmt.Sprintf("U+%04X VARIATION SELECTOR-%d", r, r-0xfe00+1), "an invisible character"
	case r >= 0xe0100 && r <= 0xe01ef:
		return fmt.Sprintf("U+%04X VARIATION SELECTOR-%d", r, r-0xe0100+17), "an invisible character"
	case r >= 0xe0000 && r <= 0xe007f:
		return code + " (a tag character)", "an invisible character"
	case unicode.Is(unicode.Zs, r) && r != ' ':
		return code, "a space that is not U+0020 SPACE"
	case runeNames[r] != "" || unicode.Is(unicode.Cf, r) || unicode.In(r, unicode.Zl, unicode.Zp):
		return code, "an invisible character"
	}
	return "", ""
}

// runeNames are the Unicode names of the characters invisible reports
// most often (the others are named by code point alone).
var runeNames = map[rune]string{
	0x07: "BELL", 0x08: "BACKSPACE", 0x0b: "LINE TABULATION", 0x0c: "FORM FEED",
	0x1b: "ESCAPE", 0x7f: "DELETE",
	0xa0: "NO-BREAK SPACE", 0xad: "SOFT HYPHEN", 0x34f: "COMBINING GRAPHEME JOINER",
	0x61c: "ARABIC LETTER MARK", 0x115f: "HANGUL CHOSEONG FILLER", 0x1160: "HANGUL JUNGSEONG FILLER",
	0x1680: "OGHAM SPACE MARK", 0x17b4: "KHMER VOWEL INHERENT AQ", 0x17b5: "KHMER VOWEL INHERENT AA",
	0x180e: "MONGOLIAN VOWEL SEPARATOR",
	0x2000: "EN QUAD", 0x2001: "EM QUAD", 0x2002: "EN SPACE", 0x2003: "EM SPACE",
	0x2004: "THREE-PER-EM SPACE", 0x2005: "FOUR-PER-EM SPACE", 0x2006: "SIX-PER-EM SPACE",
	0x2007: "FIGURE SPACE", 0x2008: "PUNCTUATION SPACE", 0x2009: "THIN SPACE", 0x200a: "HAIR SPACE",
	0x200b: "ZERO WIDTH SPACE", 0x200c: "ZERO WIDTH NON-JOINER", 0x200d: "ZERO WIDTH JOINER",
	0x200e: "LEFT-TO-RIGHT MARK", 0x200f: "RIGHT-TO-LEFT MARK",
	0x2028: "LINE SEPARATOR", 0x2029: "PARAGRAPH SEPARATOR",
	0x202a: "LEFT-TO-RIGHT EMBEDDING", 0x202b: "RIGHT-TO-LEFT EMBEDDING", 0x202c: "POP DIRECTIONAL FORMATTING",
	0x202d: "LEFT-TO-RIGHT OVERRIDE", 0x202e: "RIGHT-TO-LEFT OVERRIDE", 0x202f: "NARROW NO-BREAK SPACE",
	0x205f: "MEDIUM MATHEMATICAL SPACE", 0x2060: "WORD JOINER", 0x2061: "FUNCTION APPLICATION",
	0x2062: "INVISIBLE TIMES", 0x2063: "INVISIBLE SEPARATOR", 0x2064: "INVISIBLE PLUS",
	0x2066: "LEFT-TO-RIGHT ISOLATE", 0x2067: "RIGHT-TO-LEFT ISOLATE", 0x2068: "FIRST STRONG ISOLATE",
	0x2069: "POP DIRECTIONAL ISOLATE",
	0x3000: "IDEOGRAPHIC SPACE", 0x3164: "HANGUL FILLER",
	0xfeff: "ZERO WIDTH NO-BREAK SPACE", 0xffa0: "HALFWIDTH HANGUL FILLER",
	0xfff9: "INTERLINEAR ANNOTATION ANCHOR", 0xfffa: "INTERLINEAR ANNOTATION SEPARATOR",
	0xfffb: "INTERLINEAR ANNOTATION TERMINATOR",
}
