package channels

import (
	"net/mail"
	"strings"

	gomail "github.com/wneessen/go-mail"
)

// MessageIDDomain is the right-hand side of every Message-ID ciclo sets: <ID@ciclo>.
const MessageIDDomain = "ciclo"

// reservedHeaders are set from Message fields or by go-mail; Message.Headers may not set them.
var reservedHeaders = map[string]bool{
	"from": true, "to": true, "cc": true, "bcc": true, "subject": true, "message-id": true,
	"date": true, "mime-version": true, "content-type": true, "content-transfer-encoding": true,
}

// MessageID returns the Message-ID header value ciclo uses for a delivery id: "<id@ciclo>".
func MessageID(id string) string {
	return "<" + id + "@" + MessageIDDomain + ">"
}

// buildEmail turns m into a go-mail message. Any problem with m is a permanent *SendError.
func buildEmail(m *Message) (*gomail.Msg, error) {
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
	to, err := mail.ParseAddress(m.To)
	if err != nil || to.Name != "" {
		return nil, invalid("to %q: not a bare address", m.To)
	}
	to.Name = m.ToName
	if hasNewline(m.Subject) || hasNewline(m.ToName) {
		return nil, invalid("subject or recipient name contains a line break")
	}

	msg := gomail.NewMsg(gomail.WithNoDefaultUserAgent())
	if err := msg.From(from.String()); err != nil {
		return nil, invalid("from %q: %v", m.From, err)
	}
	if err := msg.To(to.String()); err != nil {
		return nil, invalid("to %q: %v", m.To, err)
	}
	msg.Subject(m.Subject)
	msg.SetMessageIDWithValue(m.ID + "@" + MessageIDDomain)
	msg.SetDate()
	for name, value := range m.Headers {
		if !isHeaderName(name) || reservedHeaders[strings.ToLower(name)] {
			return nil, invalid("header %q cannot be set", name)
		}
		if hasNewline(value) {
			return nil, invalid("header %q contains a line break", name)
		}
		msg.SetGenHeader(gomail.Header(name), value)
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
	return msg, nil
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
