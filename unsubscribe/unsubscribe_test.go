package unsubscribe

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSigner(t *testing.T) {
	t.Parallel()
	s := NewSigner("secret", "https://ciclo.example.com/")

	t.Run("RoundTrip", func(t *testing.T) {
		t.Parallel()
		id, email, err := s.Verify(s.Token("c-1", "ana@example.com"))
		require.NoError(t, err)
		require.Equal(t, "c-1", id)
		require.Equal(t, "ana@example.com", email)
		require.True(t, strings.HasPrefix(s.URL("c-1", "ana@example.com"), "https://ciclo.example.com/unsubscribe/"))
	})

	tok := s.Token("c-1", "ana@example.com")
	other := NewSigner("other", "")
	tests := []struct {
		name  string
		token string
	}{
		{"Empty", ""},
		{"NoSignature", strings.Split(tok, ".")[0]},
		{"TamperedBody", "x" + tok},
		{"TamperedSignature", tok[:len(tok)-2] + "AA"},
		{"OtherSecret", other.Token("c-1", "ana@example.com")},
		{"NotBase64", "!!.!!"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, _, err := s.Verify(tt.token)
			require.ErrorIs(t, err, ErrInvalidToken)
		})
	}
}
