// Package message builds what a firing sends: the data templates render
// with, an email's headers and Message-ID, and a webhook's JSON body. The
// dispatch worker uses it to send and the dry run (rules test, preview) to
// show, so both build the same message from the same customer.
package message

import (
	"strconv"
	"strings"

	"github.com/ciclohq/ciclo/store"
	"github.com/ciclohq/ciclo/templates"
)

// DefaultStoreName is the store name templates show when none is configured.
const DefaultStoreName = "our store"

// Customer is a stored customer as templates show it.
func Customer(c *store.Customer) templates.Customer {
	return templates.Customer{ID: c.ID, Email: c.Email, Name: c.Name, Stage: c.Stage,
		OrdersCount: c.OrdersCount, TotalSpent: c.TotalSpent, Attributes: c.Attributes}
}

// Data gathers what templates and webhook bodies show for a queued
// delivery: its customer, rule, event and coupon, the store's name (or
// DefaultStoreName) and the customer's unsubscribe link.
func Data(dp *store.Dispatch, storeName, unsubscribeURL string) templates.Data {
	cust := Customer(dp.Customer)
	cust.Points = templates.Points{Balance: dp.Points.Balance, NextExpiry: dp.Points.NextExpiry}
	cust.Tier = dp.Points.Tier
	data := templates.Data{
		Customer:       cust,
		Rule:           dp.Delivery.Rule,
		StoreName:      storeName,
		UnsubscribeURL: unsubscribeURL,
	}
	if data.StoreName == "" {
		data.StoreName = DefaultStoreName
	}
	if ev := dp.Event; ev != nil {
		data.Event = &templates.Event{Type: ev.Type, Properties: ev.Properties, OccurredAt: ev.OccurredAt}
	}
	if c := dp.Coupon; c != nil {
		data.Coupon = &templates.Coupon{Code: c.Code, Kind: c.Kind, Value: c.Value, ExpiresAt: c.ExpiresAt}
	}
	return data
}

// EmailHeaders are the headers of a marketing email: the one-click
// unsubscribe link (RFC 8058), and a mailto address to unsubscribe by when
// mailto is not "".
func EmailHeaders(unsubscribeURL, mailto string) map[string]string {
	list := "<" + unsubscribeURL + ">"
	if mailto != "" {
		list += ", <mailto:" + mailto + "?subject=unsubscribe>"
	}
	return map[string]string{
		"List-Unsubscribe":      list,
		"List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
	}
}

// EmailID is the Message-ID local part of an email delivery:
// "delivery-<id>.<message key>", unique everywhere thanks to the random key
// drawn when the delivery was queued, and the same on every retry. The
// channel adds the sending domain. Deliveries finished before keys existed
// have none and keep the old "delivery-<id>".
func EmailID(d *store.Delivery) string {
	id := WebhookID(d)
	if d.MessageKey != "" {
		id += "." + strings.ReplaceAll(d.MessageKey, "-", "")
	}
	return id
}

// WebhookID is the message id of a webhook delivery: "delivery-<id>".
func WebhookID(d *store.Delivery) string {
	return "delivery-" + strconv.FormatInt(d.ID, 10)
}
