package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestREADMEFilesExist checks that the files the README's commands name
// ship with the repository (the tour creates rules.yaml and rules.new.yaml
// itself), and that the example event is JSON for rules test --event.
func TestREADMEFilesExist(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	named := regexp.MustCompile(`(?:examples/[\w.-]+|rules\.example\.yaml|docs/[\w.-]+\.md)`).FindAllString(string(readme), -1)
	require.Contains(t, named, "examples/order.json")
	for _, path := range named {
		require.FileExists(t, filepath.Join("..", "..", path), "the README names %s", path)
	}
	b, err := os.ReadFile("../../examples/order.json")
	require.NoError(t, err)
	require.True(t, json.Valid(b))
	require.Contains(t, string(readme), "cp rules.example.yaml rules.yaml")
	require.Contains(t, string(readme), "> rules.new.yaml")
	require.NotRegexp(t, `(?m)^psql ciclo`, string(readme), "psql examples connect with $DATABASE_URL, not as the OS user")
}
