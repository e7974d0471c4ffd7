package store

// PerEvent returns a Store on the same database whose IngestEventsQueued
// stores every event with a statement of its own, never the set-based one:
// the reference the equivalence test compares the set-based path with.
func (s *Store) PerEvent() *Store { return &Store{db: s.db, perEvent: true} }
