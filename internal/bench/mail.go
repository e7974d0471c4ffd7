package bench

import (
	"context"
	"fmt"
	"net"
	"strconv"

	gomail "github.com/wneessen/go-mail"

	"github.com/ciclohq/ciclo/internal/smtpsink"
	"github.com/ciclohq/ciclo/templates"
	"github.com/ciclohq/ciclo/unsubscribe"
)

// renderedMail is a message rendered once by ciclo's templates, which the
// raw go-mail baselines send to each recipient.
type renderedMail struct {
	templates.Rendered
	signer *unsubscribe.Signer
}

// renderWelcome renders the default welcome template with sample data.
func renderWelcome(subject string) (renderedMail, error) {
	tset, err := templates.New("")
	if err != nil {
		return renderedMail{}, fmt.Errorf("templates: %w", err)
	}
	data := templates.SampleData()
	data.Coupon, data.Event = nil, nil
	r, err := tset.Render("welcome", subject, data)
	if err != nil {
		return renderedMail{}, fmt.Errorf("render welcome: %w", err)
	}
	return renderedMail{Rendered: r, signer: unsubscribe.NewSigner(randomHex(16), "http://localhost")}, nil
}

// send builds the message for to, with ciclo's List-Unsubscribe headers,
// and sends it over client's open connection.
func (m renderedMail) send(client *gomail.Client, to string) error {
	msg := gomail.NewMsg()
	if err := msg.From(benchFrom); err != nil {
		return fmt.Errorf("raw go-mail: %w", err)
	}
	if err := msg.AddToFormat("Customer", to); err != nil {
		return fmt.Errorf("raw go-mail: %w", err)
	}
	msg.Subject(m.Subject)
	msg.SetMessageIDWithValue("raw-" + to)
	msg.SetDate()
	msg.SetGenHeader("List-Unsubscribe", "<"+m.signer.URL(to, to)+">")
	msg.SetGenHeader("List-Unsubscribe-Post", "List-Unsubscribe=One-Click")
	msg.SetBodyString(gomail.TypeTextPlain, m.Text)
	msg.AddAlternativeString(gomail.TypeTextHTML, m.HTML)
	if err := client.Send(msg); err != nil {
		return fmt.Errorf("raw go-mail send: %w", err)
	}
	return nil
}

// dialRaw opens one go-mail connection to srv, kept for every send.
func dialRaw(srv *smtpsink.Server) (*gomail.Client, error) {
	host, port, err := net.SplitHostPort(srv.Addr)
	if err != nil {
		return nil, err
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return nil, err
	}
	client, err := gomail.NewClient(host, gomail.WithPort(p), gomail.WithTLSPolicy(gomail.NoTLS))
	if err != nil {
		return nil, fmt.Errorf("raw go-mail: %w", err)
	}
	if err := client.DialWithContext(context.Background()); err != nil {
		return nil, fmt.Errorf("raw go-mail dial: %w", err)
	}
	return client, nil
}
