package channels

import (
	"fmt"
	"io"
)

// WriteEML writes m as an RFC 5322 message (.eml), exactly as the email
// channels would send it, without sending anything. Previews use it. A
// malformed m is a permanent *SendError, as with Send.
func WriteEML(w io.Writer, m *Message) error {
	e, err := buildEmail(m)
	if err != nil {
		return err
	}
	if _, err := e.msg.WriteTo(w); err != nil {
		return fmt.Errorf("write eml: %w", err)
	}
	return nil
}
