package rules

import (
	"fmt"
	"strings"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"
)

// Bounds on conditions and points expressions. An expression may have at
// most MaxExprNodes nodes (checked when the rules are loaded), and a string
// it builds (repeat, or + on strings) may be at most MaxExprStringBytes
// long (checked as it runs, before the string is built; + is checked when
// both sides are known to be strings, not on event properties of unknown
// type); expr's own memory
// budget bounds the arrays and maps it builds. A condition that goes over
// fails for that event, as any run-time error does, instead of exhausting
// the worker's memory.
const (
	MaxExprNodes       = 2000
	MaxExprStringBytes = 1 << 20
)

// compileExpr compiles src with ciclo's environment, the bounds and extra.
// It compiles twice: first without the bounded + on strings, whose
// operator patching hides some type errors (an unknown field in a
// function's argument), for the errors; then with it, for the program.
func compileExpr(src string, extra ...expr.Option) (*vm.Program, error) {
	if _, err := expr.Compile(src, exprOptions(false, extra)...); err != nil {
		return nil, err
	}
	return expr.Compile(src, exprOptions(true, extra)...)
}

func exprOptions(boundedPlus bool, extra []expr.Option) []expr.Option {
	opts := []expr.Option{
		expr.Env(env{}),
		expr.MaxNodes(MaxExprNodes),
		expr.DisableBuiltin("repeat"),
		expr.Function("repeat", boundedRepeat, new(func(string, int) string)),
		expr.Function("concatStrings", boundedConcat, new(func(string, string) string)),
	}
	if boundedPlus {
		opts = append(opts, expr.Operator("+", "concatStrings"))
	}
	return append(opts, extra...)
}

func boundedRepeat(args ...any) (any, error) {
	s, n := args[0].(string), args[1].(int)
	if n < 0 {
		return nil, fmt.Errorf("repeat: negative count %d", n)
	}
	if len(s) > 0 && n > MaxExprStringBytes/len(s) {
		return nil, fmt.Errorf("repeat: the result would be longer than %d bytes", MaxExprStringBytes)
	}
	return strings.Repeat(s, n), nil
}

func boundedConcat(args ...any) (any, error) {
	a, b := args[0].(string), args[1].(string)
	if len(a)+len(b) > MaxExprStringBytes {
		return nil, fmt.Errorf("+: the string would be longer than %d bytes", MaxExprStringBytes)
	}
	return a + b, nil
}
