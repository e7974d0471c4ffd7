package hmacsig

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestVerify(t *testing.T) {
	t.Parallel()
	body := []byte(`{"id":1}`)
	// Known answer: printf '{"id":1}' | openssl dgst -sha256 -hmac secret -binary | base64
	require.Equal(t, "A971iWIMgT8Zj9A9eWfikrFj7wQ16/Qwcc4OlRl2PLc=", Sign(body, "secret"))
	tests := []struct {
		name      string
		signature string
		secrets   []string
		wantErr   error
	}{
		{name: "Valid", signature: Sign(body, "secret"), secrets: []string{"secret"}},
		{name: "SecondSecret", signature: Sign(body, "b"), secrets: []string{"a", "b"}},
		{name: "Mismatch", signature: Sign(body, "c"), secrets: []string{"a", "b"}, wantErr: ErrMismatch},
		{name: "NotBase64", signature: "!!", secrets: []string{"a"}, wantErr: ErrMismatch},
		{name: "Missing", secrets: []string{"a"}, wantErr: ErrMissing},
		{name: "NoSecret", signature: Sign(body, "a"), wantErr: ErrNoSecret},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := Verify(body, tt.signature, tt.secrets)
			if tt.wantErr == nil {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, tt.wantErr)
		})
	}
}

func TestSecrets(t *testing.T) {
	t.Parallel()
	require.Equal(t, []string{"old", "new"}, Secrets(" old, ,new "))
	require.Empty(t, Secrets(""))
}
