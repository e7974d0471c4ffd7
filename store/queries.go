package store

import (
	"bufio"
	"embed"
	"fmt"
	"io/fs"
	"strings"
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
