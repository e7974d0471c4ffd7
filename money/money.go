// Package money converts the decimal amounts stores send (Shopify's
// "243.00", WooCommerce's "19.90", a CSV column) into integer minor units of
// their currency, exactly: no float ever holds an amount on the way in.
package money

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// MaxMinor bounds an amount in minor units (10^13 cents is 100 billion in
// currency units), far inside int64 and inside ciclo's numeric columns.
const MaxMinor = 10_000_000_000_000

// ErrInvalidAmount is returned for an amount that is not a plain decimal.
var ErrInvalidAmount = errors.New("invalid amount")

// exponents lists ISO 4217 currencies whose minor unit is not 2 decimals.
var exponents = map[string]int{
	"BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0,
	"PYG": 0, "RWF": 0, "UGX": 0, "UYI": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0, "XPF": 0,
	"BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
	"CLF": 4, "UYW": 4,
}

var (
	currencyRE = regexp.MustCompile(`^[A-Z]{3}$`)
	amountRE   = regexp.MustCompile(`^-?[0-9]+(\.[0-9]+)?$`)
)

// Exponent returns the number of decimals of currency's minor unit (2 for
// EUR and USD, 0 for JPY, 3 for KWD). It errors for a code that is not three
// upper-case letters.
func Exponent(currency string) (int, error) {
	if !currencyRE.MatchString(currency) {
		return 0, fmt.Errorf("currency %q is not an ISO 4217 code such as EUR or USD", currency)
	}
	if e, ok := exponents[currency]; ok {
		return e, nil
	}
	return 2, nil
}

// ParseMinor converts a decimal amount in currency units ("243.00", "5",
// "-1.5") into minor units (24300, 500, -150 for EUR). Digits past the
// currency's minor unit must be zeros ("1.230" is fine for EUR, "1.235" is
// an error): an amount is never rounded silently.
func ParseMinor(amount, currency string) (int64, error) {
	exp, err := Exponent(currency)
	if err != nil {
		return 0, err
	}
	s := strings.TrimSpace(amount)
	if !amountRE.MatchString(s) {
		return 0, fmt.Errorf("%w %q: want a decimal number such as 19.90", ErrInvalidAmount, amount)
	}
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	whole, frac, _ := strings.Cut(s, ".")
	if len(frac) > exp {
		if strings.Trim(frac[exp:], "0") != "" {
			return 0, fmt.Errorf("%w %q: %s has %d decimals", ErrInvalidAmount, amount, currency, exp)
		}
		frac = frac[:exp]
	}
	frac += strings.Repeat("0", exp-len(frac))
	digits := strings.TrimLeft(whole+frac, "0")
	if digits == "" {
		return 0, nil
	}
	if len(digits) > 18 {
		return 0, fmt.Errorf("%w %q: too large", ErrInvalidAmount, amount)
	}
	n, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || n > MaxMinor {
		return 0, fmt.Errorf("%w %q: larger than %d minor units", ErrInvalidAmount, amount, int64(MaxMinor))
	}
	if neg {
		n = -n
	}
	return n, nil
}

// Major returns minor units as a decimal amount in currency units, for the
// facts and rules that read totals in currency units (customer.total_spent,
// event.properties.total). The conversion is exact for every amount ParseMinor
// accepts up to 2^53 minor units.
func Major(minor int64, currency string) float64 {
	exp, err := Exponent(currency)
	if err != nil {
		exp = 2
	}
	f := float64(minor)
	for range exp {
		f /= 10
	}
	return f
}
