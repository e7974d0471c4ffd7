package channels

import (
	"fmt"
	"net/mail"
	"strings"
	"unicode/utf8"
)

// Header line limits (RFC 5322 section 2.1.1): a line should be at most
// HeaderLineSoft characters and must be at most HeaderLineHard, both without
// the CRLF.
const (
	HeaderLineSoft = 78
	HeaderLineHard = 998

	// encodedWordMax is the longest RFC 2047 encoded-word.
	encodedWordMax = 75
	qPrefix        = "=?utf-8?q?"
	qSuffix        = "?="
)

// foldText formats an unstructured header value (Subject) for the field
// name: plain text folded at single spaces when that keeps every line
// within HeaderLineSoft, else RFC 2047 encoded-words (one or more per line),
// which also carries non-ASCII text and words too long for one line. The
// result follows "name: " and contains CRLF SP folds; unfolded and decoded
// it is exactly value.
func foldText(name, value string) string {
	if value == "" {
		return ""
	}
	if plainText(value) && longestWord(value) <= HeaderLineSoft-len(name)-2 {
		return fold(name, splitWords(value))
	}
	return fold(name, qWords(value, firstRoom(name)))
}

// firstRoom is how long the first word of a header's value may be for the
// first line to stay within HeaderLineSoft.
func firstRoom(name string) int {
	return HeaderLineSoft - len(name) - 2
}

// foldStructured folds a structured header value (List-Unsubscribe) at
// single spaces. Structured values cannot be encoded, so a word longer than
// a line stays whole; it errors if a line would exceed HeaderLineHard or the
// value holds bytes outside printable ASCII.
func foldStructured(name, value string) (string, error) {
	for i := 0; i < len(value); i++ {
		if c := value[i]; (c < ' ' && c != '\t') || c >= 0x7f {
			return "", fmt.Errorf("header %q: byte %#x at %d is not printable ASCII", name, c, i)
		}
	}
	out := fold(name, splitWords(value))
	if n := longestLine(name, out); n > HeaderLineHard {
		return "", fmt.Errorf("header %q: a line of %d characters (the limit is %d) cannot be folded", name, n, HeaderLineHard)
	}
	return out, nil
}

// formatAddress formats a mailbox for an address header: the display name as
// a quoted string (as net/mail writes it) when that fits on the header's line, else as
// encoded-words (always for non-ASCII), folded so that no line exceeds
// HeaderLineSoft unless the address itself is that long. Parsed with
// net/mail it gives back name and addr exactly.
func formatAddress(field, name, addr string) string {
	angle := "<" + addr + ">"
	if name == "" {
		return angle
	}
	var words []string
	switch {
	case printableASCII(name) && len(field)+2+len(quote(name))+1+len(angle) <= HeaderLineSoft:
		words = []string{quote(name), angle}
	default:
		words = append(qWords(name, firstRoom(field)), angle)
	}
	return fold(field, words)
}

// fold joins words with single spaces, starting a new line (CRLF SP) before
// a word that would take the line past HeaderLineSoft. The first line
// already holds "name: ".
func fold(name string, words []string) string {
	var b strings.Builder
	line := len(name) + 2
	for i, w := range words {
		switch {
		case i == 0:
		case line+1+len(w) > HeaderLineSoft:
			b.WriteString("\r\n")
			line = 0
		}
		if i > 0 {
			b.WriteByte(' ')
			line++
		}
		b.WriteString(w)
		line += len(w)
	}
	return b.String()
}

// splitWords splits s at single spaces, the only places a fold keeps the
// text exact: a run of spaces stays inside one word.
func splitWords(s string) []string {
	var words []string
	start := 0
	for i := 1; i+1 < len(s); i++ {
		if s[i] == ' ' && s[i-1] != ' ' && s[i+1] != ' ' && i > start {
			words = append(words, s[start:i])
			start = i + 1
		}
	}
	return append(words, s[start:])
}

// qWords encodes s as Q encoded-words of at most encodedWordMax characters
// (the first at most first), using only the characters RFC 2047 allows in a
// display name, and never splitting a UTF-8 sequence across words.
func qWords(s string, first int) []string {
	full := encodedWordMax - len(qPrefix) - len(qSuffix)
	room := min(full, first-len(qPrefix)-len(qSuffix))
	var (
		words []string
		cur   strings.Builder
	)
	for i := 0; i < len(s); {
		_, size := utf8.DecodeRuneInString(s[i:])
		enc := qEncode(s[i : i+size])
		if cur.Len()+len(enc) > room && cur.Len() > 0 {
			words = append(words, qPrefix+cur.String()+qSuffix)
			cur.Reset()
			room = full
		}
		cur.WriteString(enc)
		i += size
	}
	return append(words, qPrefix+cur.String()+qSuffix)
}

// qEncode Q-encodes the bytes of one rune.
func qEncode(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ':
			b.WriteByte('_')
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', strings.IndexByte("!*+-/", c) >= 0:
			b.WriteByte(c)
		default:
			b.WriteByte('=')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&0xf])
		}
	}
	return b.String()
}

// plainText reports whether s can be written as is in an unstructured
// header: printable ASCII, spaces only singly and between words, and nothing
// a reader would take for an encoded-word.
func plainText(s string) bool {
	return s != "" && printableASCII(s) && s[0] != ' ' && s[len(s)-1] != ' ' &&
		!strings.Contains(s, "  ") && !strings.Contains(s, "=?")
}

// printableASCII reports whether s is printable ASCII and spaces only.
func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}

// quote makes s a quoted-string.
func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

func longestWord(s string) int {
	n := 0
	for _, w := range splitWords(s) {
		n = max(n, len(w))
	}
	return n
}

// longestLine is the length of the longest line of the header name: value.
func longestLine(name, value string) int {
	n := 0
	for i, l := range strings.Split(value, "\r\n") {
		if i == 0 {
			l = name + ": " + l
		}
		n = max(n, len(l))
	}
	return n
}

// mailboxDomain returns the domain of a parsed address, or "" if it has none
// usable in a Message-ID (a dot-atom).
func mailboxDomain(a *mail.Address) string {
	at := strings.LastIndexByte(a.Address, '@')
	if at < 0 {
		return ""
	}
	d := strings.ToLower(a.Address[at+1:])
	if !isDotAtom(d) {
		return ""
	}
	return d
}
