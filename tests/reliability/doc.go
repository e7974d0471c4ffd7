// Package reliability holds black-box tests of ciclo's guarantees: they
// build the ciclo binary once, run real `ciclo serve` processes against real
// Postgres, SMTP and HTTP servers, and kill, cut and corrupt for real (kill
// -9 of a worker, a Postgres restart, SMTP and webhook outages).
//
// `go test ./tests/reliability/` runs the CI-sized variants (a few
// minutes); CICLO_RELIABILITY_LONG=1 runs larger ones.
package reliability
