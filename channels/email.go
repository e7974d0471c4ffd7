package channels

import (
	"net/mail"
	"strings"

	gomail "github.com/wneessen/go-mail"
)

// MessageIDDomainDefault is the right-hand side of a Message-ID when the
// sender's address has no usable domain.
const MessageIDDomainDefault = "ciclo"

// fromWordMax bounds a word of an ASCII sender display name: go-mail writes
// the From header itself and can fold it only between words (it encodes a
// non-ASCII name in words short enough).
const fromWordMax = HeaderLineSoft - len("From: ") - 2

// reservedHeaders are set from Message fields or by go-mail; Message.Headers may not set them.
var reservedHeaders = map[string]bool{
	"from": true, "to": true, "cc": true, "bcc": true, "subject": true, "message-id": true,
	"date": true, "mime-version": true, "content-type": true, "content-transfer-encoding": true,
}

// MessageID returns the Message-ID header value of a message with this id
// sent from this sender: "<id@domain>", the domain being that of from's
// address (MessageIDDomainDefault if it has none). id should be globally
// unique, e.g. hold a random part, and stay the same across retries.
func MessageID(id, from string) string {
	domain := MessageIDDomainDefault
	if a, err := mail.ParseAddress(from); err == nil {
		if d := mailboxDomain(a); d != "" {
			domain = d
		}
	}
	return "<" + id + "@" + domain + ">"
}

// email is a message ready to write or send.
type email struct {
	msg       *gomail.Msg
	messageID string // with angle brackets
}

// buildEmail turns m into a go-mail message. Any problem with m is a permanent *SendError.
//
// go-mail writes the From header; ciclo writes To, Subject and the extra
// headers itself (preformatted), folding them so that no line exceeds 998
// characters and, but for a structured value with a longer word, 78: go-mail
// folds only at spaces and would write a long name or subject without spaces
// as one line. The recipient is given to go-mail as Bcc, which it uses for
// RCPT TO and never writes as a header.
func buildEmail(m *Message) (*email, error) {
	if !isDotAtom(m.ID) {
		return nil, invalid("id %q is not a dot-atom", m.ID)
	}
	if m.Text == "" && m.HTML == "" {
		return nil, invalid("no body")
	}
	from, err := mail.ParseAddress(m.From)
	if err != nil {
		return nil, invalid("from %q: %v", m.From, err)
	}
	if printableASCII(from.Name) && longestWord(from.Name) > fromWordMax {
		return nil, invalid("from %q: the display name has a word longer than %d characters", m.From, fromWordMax)
	}
	to, err := mail.ParseAddress(m.To)
	if err != nil || to.Name != "" {
		return nil, invalid("to %q: not a bare address", m.To)
	}
	if hasNewline(m.Subject) || hasNewline(m.ToName) {
		return nil, invalid("subject or recipient name contains a line break")
	}

	msg := gomail.NewMsg(gomail.WithNoDefaultUserAgent())
	if err := msg.From(from.String()); err != nil {
		return nil, invalid("from %q: %v", m.From, err)
	}
	if err := msg.Bcc(to.Address); err != nil {
		return nil, invalid("to %q: %v", m.To, err)
	}
	msg.SetGenHeaderPreformatted(gomail.Header(gomail.HeaderTo), formatAddress("To", m.ToName, to.Address))
	msg.SetGenHeaderPreformatted(gomail.HeaderSubject, foldText("Subject", m.Subject))
	id := MessageID(m.ID, m.From)
	msg.SetMessageIDWithValue(strings.Trim(id, "<>"))
	msg.SetDate()
	for name, value := range m.Headers {
		if !isHeaderName(name) || reservedHeaders[strings.ToLower(name)] {
			return nil, invalid("header %q cannot be set", name)
		}
		if hasNewline(value) {
			return nil, invalid("header %q contains a line break", name)
		}
		folded, err := foldStructured(name, value)
		if err != nil {
			return nil, invalid("%v", err)
		}
		msg.SetGenHeaderPreformatted(gomail.Header(name), folded)
	}
	switch {
	case m.Text != "" && m.HTML != "":
		msg.SetBodyString(gomail.TypeTextPlain, m.Text)
		msg.AddAlternativeString(gomail.TypeTextHTML, m.HTML)
	case m.Text != "":
		msg.SetBodyString(gomail.TypeTextPlain, m.Text)
	default:
		msg.SetBodyString(gomail.TypeTextHTML, m.HTML)
	}
	return &email{msg: msg, messageID: id}, nil
}

// isDotAtom reports whether s is an RFC 5322 dot-atom-text, usable as a Message-ID local part.
func isDotAtom(s string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-/=?^_`{|}~.", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// isHeaderName reports whether s is a valid header field name (printable ASCII, no colon).
func isHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f || c == ':' {
			return false
		}
	}
	return true
}

func hasNewline(s string) bool {
	return strings.ContainsAny(s, "\r\n")
}
