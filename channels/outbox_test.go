package channels_test

import (
	"bytes"
	"net/mail"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ciclohq/ciclo/channels"
)

func TestOutbox(t *testing.T) {
	t.Parallel()

	setup := func(t *testing.T) (*channels.Outbox, string) {
		t.Helper()
		dir := filepath.Join(t.TempDir(), "outbox", "nested")
		ob, err := channels.NewOutbox(dir)
		require.NoError(t, err)
		return ob, dir
	}

	t.Run("WritesParsableEML", func(t *testing.T) {
		t.Parallel()
		ob, dir := setup(t)
		require.Equal(t, "email", ob.Name())
		info, err := os.Stat(dir)
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o755), info.Mode().Perm())

		res, err := ob.Send(t.Context(), testEmail("dlv-7"))
		require.NoError(t, err)
		require.Equal(t, "<dlv-7@example.com>", res.ProviderID)

		files, err := filepath.Glob(filepath.Join(dir, "*-dlv-7.eml"))
		require.NoError(t, err)
		require.Equal(t, []string{res.Response}, files)
		all, err := os.ReadDir(dir)
		require.NoError(t, err)
		require.Len(t, all, 1, "no temporary files left behind")

		data, err := os.ReadFile(files[0])
		require.NoError(t, err)
		msg, err := mail.ReadMessage(bytes.NewReader(data))
		require.NoError(t, err)
		require.Equal(t, "<dlv-7@example.com>", msg.Header.Get("Message-ID"))
		require.Equal(t, "<https://shop.example.com/u/1>", msg.Header.Get("List-Unsubscribe"))
		require.Contains(t, msg.Header.Get("Content-Type"), "multipart/alternative")
		to, err := msg.Header.AddressList("To")
		require.NoError(t, err)
		require.Equal(t, "ada@example.com", to[0].Address)
	})

	t.Run("InvalidMessageIsPermanent", func(t *testing.T) {
		t.Parallel()
		ob, dir := setup(t)
		m := testEmail("../../etc/passwd")
		_, err := ob.Send(t.Context(), m)
		require.ErrorIs(t, err, channels.ErrInvalidMessage)
		all, err := os.ReadDir(dir)
		require.NoError(t, err)
		require.Empty(t, all)
	})

	t.Run("SendAfterClose", func(t *testing.T) {
		t.Parallel()
		ob, _ := setup(t)
		require.NoError(t, ob.Close())
		_, err := ob.Send(t.Context(), testEmail("dlv-1"))
		require.ErrorIs(t, err, channels.ErrClosed)
	})

	t.Run("EmptyDir", func(t *testing.T) {
		t.Parallel()
		_, err := channels.NewOutbox("")
		require.Error(t, err)
	})
}
