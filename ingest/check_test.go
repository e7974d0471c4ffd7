package ingest_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ciclohq/ciclo/ingest"
)

func TestCheckJSONText(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		doc       string
		wantField string // "" = accepted
		wantMsg   string
	}{
		{name: "Plain", doc: `{"a":"b","n":1.5e3,"t":true,"z":null,"l":[1,"x",{}],"o":{}}`},
		{name: "Pair", doc: `{"a":"\ud83d\ude00","b":"\uD83D\uDE00"}`},
		{name: "EscapedBackslashThenU0000", doc: `{"a":"\\u0000","b":"\\\\ud800"}`},
		{name: "OtherEscapes", doc: `{"a":"\" \\ \/ \b \f \n \r \t \u00e9 \ufffd"}`},
		{name: "RealReplacementChar", doc: "{\"a\":\"\uFFFD\"}"},
		{name: "Whitespace", doc: " \n[ { \"a\" : \"b\" } , { } ]\n"},
		{name: "MultiByte", doc: `{"name":"José 東京 👩‍👩‍👧"}`},

		{name: "Nul", doc: `{"a":"x\u0000"}`, wantField: "a", wantMsg: "NUL"},
		{name: "NulUpperHex", doc: `{"a":{"b":"\u0000"}}`, wantField: "a.b", wantMsg: "NUL"},
		{name: "NulInArray", doc: `[{"a":1},{"p":[0,"\u0000"]}]`, wantField: "[1].p[1]", wantMsg: "NUL"},
		{name: "NulInKey", doc: `{"p":{"k\u0000":1}}`, wantField: `p["k\u0000"]`, wantMsg: "property name"},
		{name: "NulInTopKey", doc: `{"k\u0000":1}`, wantField: `["k\u0000"]`, wantMsg: "property name"},
		{name: "KeyWithSpace", doc: `{"p":{"a b":"\u0000"}}`, wantField: `p["a b"]`},
		{name: "InvalidByte", doc: "{\"id\":\"coll-\xff\"}", wantField: "id", wantMsg: "0xff at offset 12"},
		{name: "Truncated", doc: "{\"id\":\"\xe6\x9d\"}", wantField: "id", wantMsg: "UTF-8"},
		{name: "Overlong", doc: "{\"id\":\"\xc0\xaf\"}", wantField: "id", wantMsg: "UTF-8"},
		{name: "EncodedSurrogate", doc: "{\"id\":\"\xed\xb0\x80\"}", wantField: "id", wantMsg: "UTF-8"},
		{name: "InvalidInKey", doc: "{\"p\":{\"\xfe\":1}}", wantField: `p["\xfe"]`, wantMsg: "property name is not valid UTF-8"},
		{name: "LoneHigh", doc: `{"a":"\ud800"}`, wantField: "a", wantMsg: `\ud800 (a high surrogate`},
		{name: "LoneLow", doc: `{"a":"x\uDC00y"}`, wantField: "a", wantMsg: `\udc00 (a low surrogate`},
		{name: "HighHigh", doc: `{"a":"\ud800\ud800"}`, wantField: "a", wantMsg: "surrogate"},
		{name: "HighThenOtherEscape", doc: `{"a":"\ud800\n"}`, wantField: "a", wantMsg: "surrogate"},
		{name: "LowThenHigh", doc: `{"a":"\udc00\ud800"}`, wantField: "a", wantMsg: "low surrogate"},
		{name: "HighAtEnd", doc: `{"a":"\ud800"}`, wantField: "a", wantMsg: "surrogate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var v any
			require.NoError(t, json.Unmarshal([]byte(tt.doc), &v), "test documents are valid JSON")
			err := ingest.CheckJSONText([]byte(tt.doc))
			if tt.wantField == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, ingest.ErrMalformed)
			var fe *ingest.FieldError
			require.ErrorAs(t, err, &fe)
			require.Equal(t, tt.wantField, fe.Field)
			require.Contains(t, fe.Message, tt.wantMsg)
		})
	}
}

func TestCheckFields(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		check   func(field, s string) error
		in      string
		wantErr error // nil, ingest.ErrMalformed or ingest.ErrInvalid
		wantMsg string
	}{
		{name: "NameOK", check: ingest.CheckName, in: "Ana María O'Brien-Núñez"},
		{name: "NameAtLimit", check: ingest.CheckName, in: strings.Repeat("é", 200)},
		{name: "NameEmoji", check: ingest.CheckName, in: "Ana 👩‍👩‍👧"},
		{name: "NameOverLimit", check: ingest.CheckName, in: strings.Repeat("a", 201), wantErr: ingest.ErrMalformed, wantMsg: "201 characters long, over the limit of 200"},
		{name: "NameNewline", check: ingest.CheckName, in: "a\nb", wantErr: ingest.ErrMalformed, wantMsg: "U+000A"},
		{name: "NameNEL", check: ingest.CheckName, in: "a\u0085", wantErr: ingest.ErrMalformed, wantMsg: "U+0085"},
		{name: "NameParagraphSep", check: ingest.CheckName, in: "a\u2029", wantErr: ingest.ErrMalformed, wantMsg: "U+2029"},
		{name: "EmailOK", check: ingest.CheckEmail, in: "ana@example.com"},
		{name: "EmailAtLimit", check: ingest.CheckEmail, in: strings.Repeat("a", 64) + "@" + strings.Repeat("b", 185) + ".com"},
		{name: "EmailOverLimit", check: ingest.CheckEmail, in: "a@" + strings.Repeat("b", 249) + ".com", wantErr: ingest.ErrMalformed, wantMsg: "255 bytes long, over the limit of 254 bytes"},
		{name: "EmailLocalOverLimit", check: ingest.CheckEmail, in: strings.Repeat("a", 65) + "@example.com", wantErr: ingest.ErrMalformed, wantMsg: "64 bytes"},
		{name: "EmailCRLF", check: ingest.CheckEmail, in: "a@example.com\r\nBcc: b@example.com", wantErr: ingest.ErrMalformed, wantMsg: "U+000D"},
		{name: "EmailNotAnAddress", check: ingest.CheckEmail, in: "nope", wantErr: ingest.ErrInvalid, wantMsg: "not a valid email address"},
		{name: "EmailWithDisplayName", check: ingest.CheckEmail, in: "Ana <ana@example.com>", wantErr: ingest.ErrInvalid},
		{name: "TimezoneOK", check: ingest.CheckTimezone, in: "Europe/Madrid"},
		{name: "TimezoneUnknown", check: ingest.CheckTimezone, in: "Mars/Olympus", wantErr: ingest.ErrInvalid, wantMsg: "not an IANA time zone"},
		{name: "TimezoneTooLong", check: ingest.CheckTimezone, in: strings.Repeat("Z", 65), wantErr: ingest.ErrMalformed, wantMsg: "limit of 64 bytes"},
		{name: "TimezonePath", check: ingest.CheckTimezone, in: "../../etc/passwd", wantErr: ingest.ErrInvalid},
		{name: "CustomerIDOK", check: ingest.CheckCustomerID, in: strings.Repeat("c", 255)},
		{name: "CustomerIDOverLimit", check: ingest.CheckCustomerID, in: strings.Repeat("c", 256), wantErr: ingest.ErrMalformed, wantMsg: "limit of 255 bytes"},
		{name: "CustomerIDTab", check: ingest.CheckCustomerID, in: "c\t1", wantErr: ingest.ErrMalformed, wantMsg: "U+0009"},
		{name: "StringOK", check: ingest.CheckString, in: "bo@example.com \uFFFD\n"},
		{name: "StringNul", check: ingest.CheckString, in: "b\x00o", wantErr: ingest.ErrMalformed, wantMsg: "NUL"},
		{name: "StringInvalid", check: ingest.CheckString, in: "b\xffo", wantErr: ingest.ErrMalformed, wantMsg: "0xff at byte 1"},
		{name: "KeyOverLimit", check: ingest.CheckIdempotencyKey, in: strings.Repeat("k", 256), wantErr: ingest.ErrMalformed, wantMsg: "limit of 255 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.check("f", tt.in)
			if tt.wantErr == nil {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, tt.wantErr)
			require.ErrorContains(t, err, tt.wantMsg)
			require.True(t, strings.HasPrefix(err.Error(), "f: "), err.Error())
		})
	}
}

func TestAtIndex(t *testing.T) {
	t.Parallel()
	err := ingest.AtIndex(ingest.CheckName("name", "a\nb"), 3)
	var fe *ingest.FieldError
	require.ErrorAs(t, err, &fe)
	require.Equal(t, "[3].name", fe.Field)
	require.ErrorIs(t, err, ingest.ErrMalformed)
	require.Equal(t, "[3]", ingest.AtIndex(&ingest.FieldError{Kind: ingest.ErrInvalid}, 3).(*ingest.FieldError).Field)
}
