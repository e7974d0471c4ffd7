package rules

import (
	"fmt"
	"reflect"
	"strings"
	"time"
)

// Reference describes everything a `when` expression can use. It is built
// by reflection over the environment the compiler checks expressions
// against, so the documentation generated from it (`ciclo rules env`,
// docs/rules.md) cannot drift from what Parse accepts.
type Reference struct {
	// Variables are the top-level names with their fields, e.g. customer.
	Variables []RefVariable
	// Functions are the helper functions, e.g. days_since.
	Functions []RefFunction
}

// RefVariable is a top-level name of the environment.
type RefVariable struct {
	Name, Type, Doc string
	// Fields are the variable's fields, for struct-typed variables.
	Fields []RefField
}

// RefField is one field of a variable, named as expressions write it.
type RefField struct {
	Name, Type, Doc string
}

// RefFunction is a helper function.
type RefFunction struct {
	// Name is the function's name; Signature is how it is called with
	// parameter and result types, e.g. "days_since(t time) float".
	Name, Signature, Doc string
}

// refDocs documents each name of the environment, keyed by its expression
// path. TestReference fails when a name has no entry, so a new field
// cannot ship undocumented.
var refDocs = map[string]string{
	"customer":                    "The customer the rule is evaluated for, with their facts as of the triggering event.",
	"customer.id":                 "The store's id for the customer.",
	"customer.email":              "Email address; empty when unknown.",
	"customer.name":               "Name; empty when unknown.",
	"customer.timezone":           "IANA time zone, e.g. Europe/Madrid; empty when unknown (local_hour then uses UTC).",
	"customer.stage":              "Current lifecycle stage, one of the file's stages.",
	"customer.stage_entered_at":   "When the customer entered the current stage.",
	"customer.created_at":         "When ciclo first saw the customer.",
	"customer.last_seen_at":       "Time of the customer's latest event.",
	"customer.first_order_at":     "Time of the first order; zero if the customer never ordered (see has).",
	"customer.last_order_at":      "Time of the latest order; zero if the customer never ordered (see has).",
	"customer.orders_count":       "Number of orders, the triggering one included.",
	"customer.total_spent":        "Sum of order totals, in currency units.",
	"customer.attributes":         "Free-form attributes sent with events, e.g. customer.attributes.plan == \"plus\". A missing key is nil; guard numeric uses as for event.properties (`rules check` warns).",
	"customer.unsubscribed":       "Whether the customer unsubscribed from marketing email.",
	"customer.coupon_expires_at":  "When the customer's earliest unredeemed, unexpired coupon expires; zero if none (see has). Filled in for scheduled rules; event rules see it unset.",
	"customer.points_balance":     "Loyalty points balance: the sum of the points ledger (below zero while a refund's debt is open).",
	"customer.points_pending":     "Points granted but not spendable yet (still in their pending period).",
	"customer.points_expiring_at": "When the customer's earliest-expiring available points expire; zero if none (see has), e.g. days_until(customer.points_expiring_at) <= 3.",
	"customer.tier":               "Loyalty tier from the file's tiers, e.g. \"gold\"; empty when the customer reaches none.",
	"event":                       "The triggering event. For scheduled rules it is empty: type \"\", no properties.",
	"event.type":                  "Event type, e.g. order_placed.",
	"event.properties":            "Event data, e.g. event.properties.total. A missing property is nil and a sent one may be a string: comparing either with a number (<, >=, …) or doing arithmetic with it is a run-time error, and the rule is skipped for that event (shown by `ciclo customer` and counted in ciclo_rule_errors_total). Guard it: `type(event.properties.score) in [\"int\", \"float\"] && event.properties.score >= 9`, or give a default: `(event.properties.score ?? 0) >= 9`. `rules check` warns about unguarded reads.",
	"event.occurred_at":           "When the event happened.",
	"run":                         "The journey run being evaluated, in a journey's exit when, if and wait_for when; empty elsewhere.",
	"run.key":                     "The run's correlation key: the rule's key: value when the run started (\"\" without key:).",
	"now":                         "The evaluation time: when the event is evaluated, or the sweep's time.",
	"days_since":                  "Days from t to now (fractional). NaN for a zero t, so every comparison with it is false: test has(t) for \"never\".",
	"hours_since":                 "Hours from t to now; NaN for a zero t.",
	"days_until":                  "Days from now until t (negative once t has passed); NaN for a zero t.",
	"local_hour":                  "Hour of day (0–23) of now in the customer's time zone (UTC when unset or invalid).",
	"has":                         "Whether t is set, i.e. the thing happened: has(customer.first_order_at).",
}

// EnvReference returns the reference of the expression environment.
func EnvReference() Reference {
	var ref Reference
	t := reflect.TypeOf(env{})
	for i := range t.NumField() {
		f := t.Field(i)
		name := f.Tag.Get("expr")
		if f.Type.Kind() == reflect.Func {
			ref.Functions = append(ref.Functions, RefFunction{Name: name, Signature: signature(name, f.Type), Doc: refDocs[name]})
			continue
		}
		v := RefVariable{Name: name, Type: typeName(f.Type), Doc: refDocs[name]}
		if f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeOf(time.Time{}) {
			for j := range f.Type.NumField() {
				sf := f.Type.Field(j)
				fname := sf.Tag.Get("expr")
				v.Fields = append(v.Fields, RefField{Name: fname, Type: typeName(sf.Type), Doc: refDocs[name+"."+fname]})
			}
		}
		ref.Variables = append(ref.Variables, v)
	}
	return ref
}

// typeName names a Go type the way rule authors think of it.
func typeName(t reflect.Type) string {
	switch {
	case t == reflect.TypeOf(time.Time{}):
		return "time"
	case t.Kind() == reflect.String:
		return "string"
	case t.Kind() == reflect.Int:
		return "int"
	case t.Kind() == reflect.Float64:
		return "float"
	case t.Kind() == reflect.Bool:
		return "bool"
	case t.Kind() == reflect.Map:
		return "map"
	case t.Kind() == reflect.Struct:
		return "object"
	}
	return t.String()
}

// signature renders a helper's call signature; parameters are named t, as
// every helper that takes one takes a time.
func signature(name string, t reflect.Type) string {
	params := make([]string, t.NumIn())
	for i := range params {
		params[i] = "t " + typeName(t.In(i))
		if t.NumIn() > 1 {
			params[i] = fmt.Sprintf("t%d %s", i+1, typeName(t.In(i)))
		}
	}
	return fmt.Sprintf("%s(%s) %s", name, strings.Join(params, ", "), typeName(t.Out(0)))
}

// Text renders the reference for a terminal.
func (ref Reference) Text() string {
	var b strings.Builder
	b.WriteString("Names a rule's `when` can use (expr language: https://expr-lang.org):\n\n")
	for _, v := range ref.Variables {
		fmt.Fprintf(&b, "%-28s %-7s %s\n", v.Name, v.Type, v.Doc)
		for _, f := range v.Fields {
			fmt.Fprintf(&b, "  %-26s %-7s %s\n", v.Name+"."+f.Name, f.Type, f.Doc)
		}
		b.WriteString("\n")
	}
	b.WriteString("Functions:\n\n")
	for _, f := range ref.Functions {
		fmt.Fprintf(&b, "%-36s %s\n", f.Signature, f.Doc)
	}
	return b.String()
}

// Markdown renders the reference as the docs/rules.md page.
func (ref Reference) Markdown() string {
	var b strings.Builder
	b.WriteString(`# Rule conditions: fields and functions

<!-- Generated by ` + "`ciclo rules env --markdown`" + ` from the types the rule compiler
uses (rules.EnvReference); do not edit by hand. A test fails when this file
is out of date: run ` + "`go generate ./cmd/ciclo`" + `. -->

A rule's ` + "`when`" + ` is an [expr](https://expr-lang.org) expression that must be
boolean. It is compiled when the rules file is loaded against the names
below, so a misspelt field or a non-boolean condition is an error of
` + "`ciclo rules check`" + `, not a surprise at run time. Besides these names, the
expr language offers its operators (` + "`&&`, `||`, `!`, `==`, `in`, `matches`, `??`" + ` …)
and builtins (` + "`len`, `lower`, `any`, `all`" + ` …).

Example:

` + "```yaml" + `
when: days_since(customer.last_order_at) >= 60 && customer.stage != "churned"
` + "```" + `

` + "`ciclo rules test FILE --customer ID`" + ` shows the value of each part of a
condition for a real customer.
`)
	for _, v := range ref.Variables {
		fmt.Fprintf(&b, "\n## `%s` (%s)\n\n%s\n", v.Name, v.Type, v.Doc)
		if len(v.Fields) == 0 {
			continue
		}
		b.WriteString("\n| field | type | meaning |\n|---|---|---|\n")
		for _, f := range v.Fields {
			fmt.Fprintf(&b, "| `%s.%s` | %s | %s |\n", v.Name, f.Name, f.Type, strings.ReplaceAll(f.Doc, "|", `\|`))
		}
	}
	b.WriteString(pointsEventsMarkdown)
	b.WriteString("\n## Functions\n\n| function | meaning |\n|---|---|\n")
	for _, f := range ref.Functions {
		fmt.Fprintf(&b, "| `%s` | %s |\n", f.Signature, strings.ReplaceAll(f.Doc, "|", `\|`))
	}
	return b.String()
}

// pointsEventsMarkdown documents the events ciclo records about points and
// tiers, which rules react to like ingested ones (on: points_expiring).
const pointsEventsMarkdown = `
## Points and tier events

Events ciclo records itself, with their evaluation, in the transaction that
changes the ledger or the tier; rules react to them with ` + "`on:`" + ` like any
event.

| type | when | properties |
|---|---|---|
| ` + "`points_granted`" + ` | a rule's points action granted a lot, or a positive adjustment (` + "`POST /v1/customers/{id}/points/adjust`" + `) did | points, lot_id, reason, rule ("" for an adjustment), order_id, available_at, expires_at (absent when it never expires) |
| ` + "`points_spent`" + ` | a redemption, the reversal of a refunded or cancelled order's points, or a negative adjustment took points | points (> 0), kind (redeem, reverse, adjust), order_id, reason, debt, operation_id |
| ` + "`points_expiring`" + ` | the expiry sweep found lots expiring within defaults.points_expiring_days; one event per customer and sweep batch (batches hold 50,000 lots), each lot reminded of once | points (left on those lots), lot_id (the first), lot_ids, expires_at (the earliest) |
| ` + "`points_expired`" + ` | the expiry sweep closed lots past their expiry; one event per customer and batch | points (lost), lot_id (the first), lot_ids, expires_at (the latest) |
| ` + "`tier_changed`" + ` | the customer's tier changed | from, to, reason |
`
