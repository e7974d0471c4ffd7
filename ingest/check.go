package ingest

import (
	"errors"
	"fmt"
	"net/mail"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Limits on contact fields. Identifiers and addresses are counted in bytes
// (what the protocols and indexes limit), names in characters.
const (
	// MaxCustomerIDBytes bounds customer_id.
	MaxCustomerIDBytes = 255
	// MaxIdempotencyKeyBytes bounds idempotency_key.
	MaxIdempotencyKeyBytes = 255
	// MaxEmailBytes bounds an email address: RFC 5321 (4.5.3.1.3) allows a
	// 256-octet path, which includes the angle brackets.
	MaxEmailBytes = 254
	// MaxEmailLocalBytes bounds the part before the @ (RFC 5321 4.5.3.1.1).
	MaxEmailLocalBytes = 64
	// MaxNameChars bounds a customer's name, which goes into To: headers
	// (RFC 5322 lines are at most 998 characters).
	MaxNameChars = 200
	// MaxTimezoneBytes bounds a time zone name; IANA names are far shorter.
	MaxTimezoneBytes = 64
)

// Error classes, tested with errors.Is on a *FieldError.
var (
	// ErrMalformed marks text ciclo cannot take as sent: invalid UTF-8, a
	// lone surrogate, a NUL, a control character in a contact field, a
	// field over its limit. The API answers 400.
	ErrMalformed = errors.New("malformed input")
	// ErrInvalid marks well-formed input that does not make sense (an
	// address that does not parse, an unknown time zone). The API answers 422.
	ErrInvalid = errors.New("invalid input")
)

// FieldError is a refused field: its path in the request (e.g. "name",
// "[1].properties.items[0].sku") and what is wrong with it.
type FieldError struct {
	// Field is the path of the field, as the request spells it.
	Field string
	// Message says what is wrong and how to fix it.
	Message string
	// Kind is ErrMalformed or ErrInvalid.
	Kind error
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Message }

// Is reports whether target is the error's class.
func (e *FieldError) Is(target error) bool { return target == e.Kind }

// AtIndex returns err with its field prefixed by a batch index ("[3].name");
// other errors are returned unchanged.
func AtIndex(err error, i int) error {
	var fe *FieldError
	if !errors.As(err, &fe) {
		return err
	}
	out := *fe
	out.Field = "[" + strconv.Itoa(i) + "]" + joinPath("", fe.Field)
	return &out
}

func malformed(field, format string, args ...any) error {
	return &FieldError{Field: field, Message: fmt.Sprintf(format, args...), Kind: ErrMalformed}
}

func invalid(field, format string, args ...any) error {
	return &FieldError{Field: field, Message: fmt.Sprintf(format, args...), Kind: ErrInvalid}
}

// CheckJSONText walks a JSON document that has already been decoded without
// error and refuses any string (object keys included, at any depth) that is
// not valid UTF-8, holds a lone UTF-16 surrogate escape, or holds a NUL.
//
// It reads the raw bytes because encoding/json silently replaces invalid
// UTF-8 and lone surrogates with U+FFFD, which would rewrite identifiers
// (two distinct customer ids could become one); Postgres refuses NUL in text
// and jsonb, so storing it could only fail. The error names the field's path.
func CheckJSONText(doc []byte) error {
	w := walker{doc: doc}
	w.value()
	return w.err
}

// walker scans one syntactically valid JSON value, keeping the path to the
// current value for error messages. It stops at the first bad string.
type walker struct {
	doc  []byte
	pos  int
	path []segment
	err  error
}

// segment is one step of a path: an object key (its raw bytes, with
// quotes) or an array index. Rendered only for an error.
type segment struct {
	key   []byte
	index int
}

func (w *walker) ws() {
	for w.pos < len(w.doc) {
		switch w.doc[w.pos] {
		case ' ', '\t', '\n', '\r':
			w.pos++
		default:
			return
		}
	}
}

func (w *walker) field() string {
	var b strings.Builder
	for _, seg := range w.path {
		if seg.key != nil {
			b.WriteString(renderKey(seg.key))
		} else {
			b.WriteString("[" + strconv.Itoa(seg.index) + "]")
		}
	}
	return strings.TrimPrefix(b.String(), ".")
}

func (w *walker) value() {
	w.ws()
	if w.err != nil || w.pos >= len(w.doc) {
		return
	}
	switch w.doc[w.pos] {
	case '{':
		w.pos++
		for w.err == nil {
			w.ws()
			if w.pos >= len(w.doc) || w.doc[w.pos] == '}' {
				w.pos++
				return
			}
			if w.doc[w.pos] == ',' {
				w.pos++
				continue
			}
			start := w.pos
			if !w.str(true) {
				return
			}
			key := w.doc[start:w.pos]
			w.ws()
			w.pos++ // ':'
			w.path = append(w.path, segment{key: key})
			w.value()
			w.path = w.path[:len(w.path)-1]
		}
	case '[':
		w.pos++
		for i := 0; w.err == nil; {
			w.ws()
			if w.pos >= len(w.doc) || w.doc[w.pos] == ']' {
				w.pos++
				return
			}
			if w.doc[w.pos] == ',' {
				w.pos++
				continue
			}
			w.path = append(w.path, segment{index: i})
			w.value()
			w.path = w.path[:len(w.path)-1]
			i++
		}
	case '"':
		w.str(false)
	default: // number, true, false, null
		for w.pos < len(w.doc) {
			switch w.doc[w.pos] {
			case ',', ']', '}', ' ', '\t', '\r', '\n':
				return
			}
			w.pos++
		}
	}
}

// str checks the string starting at w.pos (its opening quote) and moves past
// it; it reports false after setting w.err. A bad object key is reported
// under the path of its object, naming the key.
func (w *walker) str(isKey bool) bool {
	start := w.pos
	w.pos++
	fail := func(format string, args ...any) bool {
		field, what := w.field(), ""
		if isKey {
			field = strings.TrimPrefix(field+renderKey(w.doc[start:w.endOfString(w.pos)]), ".")
			what = "the property name "
		}
		if field == "" {
			field = "(body)"
		}
		w.err = malformed(field, what+format, args...)
		return false
	}
	for w.pos < len(w.doc) {
		c := w.doc[w.pos]
		switch {
		case c == '"':
			w.pos++
			return true
		case c == '\\':
			if w.pos+1 < len(w.doc) && w.doc[w.pos+1] == 'u' {
				r, ok := hex4(w.doc, w.pos+2)
				if !ok {
					w.pos += 2
					continue
				}
				switch {
				case r == 0:
					return fail(`contains a NUL character (\u0000), which cannot be stored: remove it`)
				case r >= 0xDC00 && r <= 0xDFFF:
					return fail(`contains a lone UTF-16 surrogate \u%04x (a low surrogate without the high one before it): send the whole pair or the character itself`, r)
				case r >= 0xD800 && r <= 0xDBFF:
					lo, ok := rune(0), false
					if w.pos+7 < len(w.doc) && w.doc[w.pos+6] == '\\' && w.doc[w.pos+7] == 'u' {
						lo, ok = hex4(w.doc, w.pos+8)
					}
					if !ok || lo < 0xDC00 || lo > 0xDFFF {
						return fail(`contains a lone UTF-16 surrogate \u%04x (a high surrogate not followed by a low one): send the whole pair or the character itself`, r)
					}
					w.pos += 12
					continue
				}
				w.pos += 6
				continue
			}
			w.pos += 2
		case c < utf8.RuneSelf:
			w.pos++
		default:
			r, size := utf8.DecodeRune(w.doc[w.pos:])
			if r == utf8.RuneError && size <= 1 {
				return fail("is not valid UTF-8 (byte 0x%02x at offset %d of the body): send text encoded as UTF-8", w.doc[w.pos], w.pos)
			}
			w.pos += size
		}
	}
	return true
}

// endOfString returns the offset just past the string that contains pos.
func (w *walker) endOfString(pos int) int {
	for pos < len(w.doc) {
		switch w.doc[pos] {
		case '\\':
			pos += 2
			continue
		case '"':
			return pos + 1
		}
		pos++
	}
	return len(w.doc)
}

var plainKeyRE = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// renderKey turns a raw JSON key (with its quotes) into a path segment:
// ".total", or `["a b"]` for a key that is not a plain word.
func renderKey(raw []byte) string {
	inner := raw
	if len(inner) >= 2 {
		inner = inner[1 : len(inner)-1]
	}
	if plainKeyRE.Match(inner) {
		return "." + string(inner)
	}
	if !strings.HasSuffix(string(raw), `"`) {
		raw = append(append([]byte{}, raw...), '"')
	}
	// Keep the key's escapes as sent (a NUL shows as \u0000); show
	// invalid bytes as \xNN.
	var b strings.Builder
	b.WriteString("[")
	for i := 0; i < len(raw); {
		r, size := utf8.DecodeRune(raw[i:])
		if r == utf8.RuneError && size <= 1 {
			fmt.Fprintf(&b, `\x%02x`, raw[i])
		} else {
			b.Write(raw[i : i+size])
		}
		i += size
	}
	b.WriteString("]")
	return b.String()
}

func hex4(b []byte, at int) (rune, bool) {
	if at+4 > len(b) {
		return 0, false
	}
	var v rune
	for _, c := range b[at : at+4] {
		switch {
		case c >= '0' && c <= '9':
			v = v<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			v = v<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			v = v<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return v, true
}

// CheckString is CheckJSONText for a string that did not come as JSON (a
// URL path, a CSV cell): it refuses invalid UTF-8 and NUL.
func CheckString(field, s string) error {
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			return malformed(field, "is not valid UTF-8 (byte 0x%02x at byte %d): send text encoded as UTF-8", s[i], i)
		case r == 0:
			return malformed(field, "contains a NUL character, which cannot be stored: remove it")
		}
		i += size
	}
	return nil
}

// CheckText refuses a contact field that holds a control character (C0,
// DEL, C1, and the Unicode line and paragraph separators): these end up in
// email headers, where a line break splits the header and makes the message
// undeliverable, or lets the sender add headers of its own.
func CheckText(field, s string) error {
	for i, r := range s {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return malformed(field, "contains the control character U+%04X at byte %d: contact fields are one line of printable text", r, i)
		}
	}
	return nil
}

// checkBytes bounds a field in bytes.
func checkBytes(field, s string, limit int) error {
	if len(s) > limit {
		return malformed(field, "is %d bytes long, over the limit of %d bytes", len(s), limit)
	}
	return nil
}

// CheckCustomerID checks a customer id's length and characters (presence
// is the caller's rule).
func CheckCustomerID(field, id string) error {
	if err := checkBytes(field, id, MaxCustomerIDBytes); err != nil {
		return err
	}
	// A path parameter is not checked by CheckJSONText: refuse what the
	// database cannot take as sent here.
	if err := CheckString(field, id); err != nil {
		return err
	}
	return CheckText(field, id)
}

// CheckIdempotencyKey checks an idempotency key's length.
func CheckIdempotencyKey(field, key string) error {
	return checkBytes(field, key, MaxIdempotencyKeyBytes)
}

// CheckName checks a customer's name: one line of at most MaxNameChars
// characters.
func CheckName(field, name string) error {
	if err := CheckText(field, name); err != nil {
		return err
	}
	if n := utf8.RuneCountInString(name); n > MaxNameChars {
		return malformed(field, "is %d characters long, over the limit of %d characters", n, MaxNameChars)
	}
	return nil
}

// CheckEmail checks a bare email address (no display name): one line, within
// RFC 5321's limits, and parsable.
func CheckEmail(field, addr string) error {
	if err := CheckText(field, addr); err != nil {
		return err
	}
	if err := checkBytes(field, addr, MaxEmailBytes); err != nil {
		return err
	}
	if at := strings.LastIndexByte(addr, '@'); at > MaxEmailLocalBytes {
		return malformed(field, "has a %d-byte part before the @, over the limit of %d bytes", at, MaxEmailLocalBytes)
	}
	if a, err := mail.ParseAddress(addr); err != nil || a.Address != addr {
		return invalid(field, "%q is not a valid email address", addr)
	}
	return nil
}

// CheckTimezone checks an IANA time zone name.
func CheckTimezone(field, tz string) error {
	if err := CheckText(field, tz); err != nil {
		return err
	}
	if err := checkBytes(field, tz, MaxTimezoneBytes); err != nil {
		return err
	}
	// LoadLocation takes "Local" as the server's own zone, which is no
	// customer's.
	if _, err := time.LoadLocation(tz); err != nil || tz == "Local" {
		return invalid(field, "%q is not an IANA time zone (e.g. Europe/Madrid)", tz)
	}
	return nil
}

func joinPath(prefix, field string) string {
	if field == "" || strings.HasPrefix(field, "[") {
		return prefix + field
	}
	return prefix + "." + field
}

// CheckOccurredAt checks when a source says something happened (an event,
// an imported order or sign-up): facts keep the latest and earliest times
// they saw, so one absurd time would stick to the customer for good.
func CheckOccurredAt(field string, at, now time.Time) error {
	switch {
	case at.After(now.Add(maxClockSkew)):
		return invalid(field, "%s is in the future (more than %s ahead of the server's clock)", at.Format(time.RFC3339), maxClockSkew)
	case at.Before(minOccurredAt):
		return invalid(field, "%s is before %s: send the time it happened", at.Format(time.RFC3339), minOccurredAt.Format("2006-01-02"))
	}
	return nil
}
