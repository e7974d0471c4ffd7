package store

import (
	"bufio"
	"context"
	"embed"
	"fmt"
	"io/fs"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
)

//go:embed sql/*.sql
var sqlFiles embed.FS

// queries maps a query name to its SQL, read from the named blocks in sql/.
// A block starts with a line "-- name: Name" and runs to the next one.
var queries = mustLoadQueries(sqlFiles)

// q returns the named query; a missing name is a programmer error.
func q(name string) string {
	s, ok := queries[name]
	if !ok {
		panic(fmt.Sprintf("store: no query named %q in sql/", name))
	}
	return s
}

func mustLoadQueries(fsys fs.FS) map[string]string {
	out := map[string]string{}
	paths, err := fs.Glob(fsys, "sql/*.sql")
	if err != nil {
		panic(err)
	}
	for _, p := range paths {
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			panic(err)
		}
		var name string
		var body strings.Builder
		flush := func() {
			if name != "" {
				if _, dup := out[name]; dup {
					panic(fmt.Sprintf("store: query %q defined twice (%s)", name, p))
				}
				out[name] = strings.TrimSpace(body.String())
			}
			body.Reset()
		}
		sc := bufio.NewScanner(strings.NewReader(string(b)))
		for sc.Scan() {
			line := sc.Text()
			if rest, ok := strings.CutPrefix(line, "-- name:"); ok {
				flush()
				name = strings.TrimSpace(rest)
				continue
			}
			body.WriteString(line)
			body.WriteByte('\n')
		}
		flush()
	}
	return out
}

// positionalQuery is a named-argument query in pgx's positional form.
type positionalQuery struct {
	sql   string
	names []string // the name of $1, $2, …
}

// positionalQueries caches the positional form of named queries by name.
var positionalQueries sync.Map

// named returns the named query name with args in positional form. pgx
// rewrites a query with pgx.NamedArgs by lexing its text on every call,
// which for the ingest statement cost more CPU than the rest of the event;
// here that happens once per query. Every call of a query must pass the
// same names (a missing one is a programmer error).
func named(name string, args pgx.NamedArgs) (string, []any) {
	v, ok := positionalQueries.Load(name)
	if !ok {
		probe := make(pgx.NamedArgs, len(args))
		for k := range args {
			probe[k] = k
		}
		sql, order, err := probe.RewriteQuery(context.Background(), nil, q(name), nil)
		if err != nil {
			panic(fmt.Sprintf("store: query %q: %v", name, err))
		}
		pq := &positionalQuery{sql: sql, names: make([]string, len(order))}
		for i, n := range order {
			s, ok := n.(string)
			if !ok {
				panic(fmt.Sprintf("store: query %q: parameter $%d has no name among the arguments", name, i+1))
			}
			pq.names[i] = s
		}
		v, _ = positionalQueries.LoadOrStore(name, pq)
	}
	pq := v.(*positionalQuery)
	out := make([]any, len(pq.names))
	for i, n := range pq.names {
		a, ok := args[n]
		if !ok {
			panic(fmt.Sprintf("store: query %q: no argument %q", name, n))
		}
		out[i] = a
	}
	return pq.sql, out
}
