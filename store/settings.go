package store

import (
	"context"
	"fmt"
)

// EnsureSetting returns the setting's stored value, storing candidate first
// if there is none. Concurrent callers all get the first writer's value.
func (s *Store) EnsureSetting(ctx context.Context, name, candidate string) (string, error) {
	var v string
	if err := s.db.QueryRow(ctx, q("EnsureSetting"), name, candidate).Scan(&v); err != nil {
		return "", fmt.Errorf("setting %q: %w", name, err)
	}
	return v, nil
}
