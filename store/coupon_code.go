package store

import (
	"crypto/rand"
	"fmt"
)

// couponAlphabet leaves out characters people confuse (0/O, 1/I/L).
const couponAlphabet = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"

// NewCouponCode returns a random, human-friendly code like "7KQ4M-XH2PA":
// ten symbols from a 31-letter alphabet, about 49 bits.
func NewCouponCode() string {
	var b [10]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("store: random coupon code: %v", err))
	}
	out := make([]byte, 0, 11)
	for i, v := range b {
		if i == 5 {
			out = append(out, '-')
		}
		out = append(out, couponAlphabet[int(v)%len(couponAlphabet)])
	}
	return string(out)
}
