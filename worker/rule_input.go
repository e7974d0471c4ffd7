package worker

import (
	"github.com/ciclohq/ciclo/rules"
	"github.com/ciclohq/ciclo/store"
)

// RuleCustomer is the view of a stored customer that rules evaluate, the
// same one the evaluate worker builds; read-only tools (rules test, rules
// diff) use it so they see what the workers see.
func RuleCustomer(c *store.Customer) rules.Customer { return ruleCustomer(c) }
