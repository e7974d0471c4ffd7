package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/knadh/koanf/parsers/yaml"
	koanfenv "github.com/knadh/koanf/providers/env/v2"
	"github.com/knadh/koanf/providers/file"
	"github.com/knadh/koanf/providers/posflag"
	"github.com/knadh/koanf/v2"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/ciclohq/ciclo/rules"
)

// setting is one configuration value. Its one declaration gives the flag
// --Key, the environment variable Env and the config-file key Key, which
// all parse the same way (see config.go for how to add one).
type setting struct {
	Key    string       // flag name and config-file key, e.g. "smtp-url"
	Env    string       // environment variable, e.g. "CICLO_SMTP_URL"; "" for none
	Value  settingValue // where the value lands and its default: text, integer, duration, boolean, list
	Usage  string       // flag help; " (env NAME)" is appended
	NoFile bool         // not a config-file key (only --config itself)
}

// settingValue is a typed setting: a pflag.Value that also decodes what the
// environment, the config file and the other layers hold.
type settingValue interface {
	pflag.Value
	// decode turns a layer's value (text from the environment, a YAML
	// scalar or list from the file, a typed value) into the typed value.
	decode(raw any) (any, error)
	// assign stores a value decode returned.
	assign(v any)
	// get is the current typed value.
	get() any
}

// typed is a settingValue of Go type T.
type typed[T any] struct {
	p      *T
	kind   string // the pflag type name: help shows it
	parse  func(string) (T, error)
	format func(T) string
	list   bool // a list: YAML lists, comma-separated text, repeated flags add
	added  bool // a flag has replaced the default list
}

func (v *typed[T]) String() string {
	if v.p == nil {
		return ""
	}
	return v.format(*v.p)
}

func (v *typed[T]) Type() string { return v.kind }
func (v *typed[T]) get() any     { return *v.p }
func (v *typed[T]) assign(x any) { *v.p = x.(T) }

// Set is the flag's parser; a repeated list flag adds to the list.
func (v *typed[T]) Set(s string) error {
	x, err := v.parse(s)
	if err != nil {
		return err
	}
	if l, ok := any(v.p).(*[]string); ok && v.added {
		*l = append(*l, any(x).([]string)...)
		return nil
	}
	*v.p, v.added = x, true
	return nil
}

func (v *typed[T]) decode(raw any) (any, error) {
	switch r := raw.(type) {
	case T:
		return r, nil
	case nil:
		return v.parse("")
	case string:
		return v.parse(r)
	case []any:
		if !v.list {
			return nil, errors.New("a single value, not a list")
		}
		parts := make([]string, len(r))
		for i, e := range r {
			switch e.(type) {
			case map[string]any, []any:
				return nil, errors.New("a list of values, not of mappings or lists")
			}
			parts[i] = fmt.Sprint(e)
		}
		return v.parse(strings.Join(parts, ","))
	case map[string]any:
		return nil, errors.New("a value, not a mapping")
	default: // a YAML number or boolean
		return v.parse(fmt.Sprint(r))
	}
}

// text is a string setting.
func text(p *string, def string) settingValue {
	*p = def
	return &typed[string]{p: p, kind: "string", parse: func(s string) (string, error) { return s, nil },
		format: func(s string) string { return s }}
}

// integer is an int setting.
func integer(p *int, def int) settingValue {
	*p = def
	return &typed[int]{p: p, kind: "int", format: strconv.Itoa, parse: func(s string) (int, error) {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			return 0, errors.New("not an integer")
		}
		return n, nil
	}}
}

// duration is a time.Duration setting such as 30s or 24h.
func duration(p *time.Duration, def time.Duration) settingValue {
	*p = def
	return &typed[time.Duration]{p: p, kind: "duration", format: time.Duration.String, parse: func(s string) (time.Duration, error) {
		d, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil {
			return 0, errors.New("not a duration such as 30s or 24h")
		}
		return d, nil
	}}
}

// boolean is a bool setting; it takes what people write: 1/0, true/false,
// yes/no, on/off in any case. The flag alone (--name) means true.
func boolean(p *bool, def bool) settingValue {
	*p = def
	return &typed[bool]{p: p, kind: "bool", parse: parseBool, format: strconv.FormatBool}
}

func parseBool(s string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "1", "true", "yes", "on":
		return true, nil
	case "0", "false", "no", "off":
		return false, nil
	}
	return false, errors.New("not a boolean: use true or false (or 1/0, yes/no, on/off)")
}

// list is a []string setting: comma-separated in the environment and on
// the command line (where the flag may also repeat), a YAML list or
// comma-separated text in the file.
func list(p *[]string, def []string) settingValue {
	*p = def
	return &typed[[]string]{p: p, kind: "stringSlice", list: true,
		format: func(l []string) string {
			if len(l) == 0 {
				return "" // help shows no default
			}
			return "[" + strings.Join(l, ",") + "]"
		},
		parse: func(s string) ([]string, error) {
			var out []string
			for _, part := range strings.Split(s, ",") {
				if part = strings.TrimSpace(part); part != "" {
					out = append(out, part)
				}
			}
			return out, nil
		}}
}

// settingSet is the settings of one command, resolved with koanf in the
// order defaults < config file < environment < flags.
type settingSet struct {
	list    []setting
	byKey   map[string]*setting
	byEnv   map[string]*setting
	environ func() []string // the environment; tests replace it
	// origin names where each setting's value came from ("--addr",
	// "CICLO_ADDR", "config file ciclo.yaml"); absent: the default.
	origin map[string]string
}

// registerSettings adds a flag per setting to cmd. defaults, by key,
// replace the declared defaults for this command (as text a flag takes).
func registerSettings(cmd *cobra.Command, list []setting, defaults map[string]string) *settingSet {
	s := &settingSet{list: list, byKey: map[string]*setting{}, byEnv: map[string]*setting{}, environ: os.Environ}
	fs := cmd.Flags()
	for i := range s.list {
		st := &s.list[i]
		if _, dup := s.byKey[st.Key]; dup {
			panic("setting " + st.Key + " declared twice")
		}
		s.byKey[st.Key] = st
		usage := st.Usage
		if st.Env != "" {
			if _, dup := s.byEnv[st.Env]; dup {
				panic("environment variable " + st.Env + " declared twice")
			}
			s.byEnv[st.Env] = st
			usage += " (env " + st.Env + ")"
		}
		if def, ok := defaults[st.Key]; ok {
			x, err := st.Value.decode(def)
			if err != nil {
				panic(fmt.Sprintf("default of %s: %v", st.Key, err))
			}
			st.Value.assign(x)
		}
		fl := fs.VarPF(st.Value, st.Key, "", usage)
		if st.Value.Type() == "bool" {
			fl.NoOptDefVal = "true"
		}
	}
	for key := range defaults {
		if s.byKey[key] == nil {
			panic("default for undeclared setting " + key)
		}
	}
	return s
}

// lookupEnv is os.LookupEnv over s.environ; an empty value is unset.
func (s *settingSet) lookupEnv(name string) string {
	for _, kv := range s.environ() {
		if k, v, ok := strings.Cut(kv, "="); ok && k == name {
			return v
		}
	}
	return ""
}

// resolve sets every setting from, in rising precedence, its default, the
// config file (the "config" setting's value from the flag or the
// environment), the environment and the flags parsed into fs. Every bad
// value is reported, each naming the setting and where it came from, and
// an unknown config-file key is an error with a suggestion.
func (s *settingSet) resolve(fs *pflag.FlagSet) error {
	k := koanf.New(".")
	s.origin = map[string]string{}
	var errs []error

	// The config file: the only setting the file itself cannot set.
	if st := s.byKey["config"]; st != nil {
		path := st.Value.String()
		if fl := fs.Lookup("config"); fl == nil || !fl.Changed {
			path = s.lookupEnv(st.Env)
		}
		if path != "" {
			if err := s.loadFile(k, path); err != nil {
				errs = append(errs, err)
			}
		}
	}

	// The environment: only the variables the settings declare.
	err := k.Load(koanfenv.Provider(".", koanfenv.Opt{EnvironFunc: s.environ, TransformFunc: func(name, raw string) (string, any) {
		st := s.byEnv[name]
		if st == nil || raw == "" {
			return "", nil
		}
		v, err := st.Value.decode(raw)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: %w", name, raw, err))
			return "", nil
		}
		s.origin[st.Key] = name
		return st.Key, v
	}}), nil)
	if err != nil {
		return fmt.Errorf("environment: %w", err)
	}

	// The flags: those given win; the others add their defaults for
	// settings no other layer set.
	err = k.Load(posflag.ProviderWithFlag(fs, ".", k, func(fl *pflag.Flag) (string, any) {
		st := s.byKey[fl.Name]
		if st == nil {
			return "", nil
		}
		if fl.Changed {
			s.origin[st.Key] = "--" + st.Key
		}
		return st.Key, st.Value.get()
	}), nil)
	if err != nil {
		return fmt.Errorf("flags: %w", err)
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	for i := range s.list {
		st := &s.list[i]
		if !k.Exists(st.Key) {
			continue
		}
		v, err := st.Value.decode(k.Get(st.Key))
		if err != nil { // not expected: every layer was decoded already
			return fmt.Errorf("setting %s (%s): %w", st.Key, s.from(st.Key), err)
		}
		st.Value.assign(v)
	}
	return nil
}

// loadFile merges the YAML config file at path into k, its values decoded
// (so a bad one is reported even where the environment or a flag wins).
func (s *settingSet) loadFile(k *koanf.Koanf, path string) error {
	fk := koanf.New(".")
	if err := fk.Load(file.Provider(path), yaml.Parser()); err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	keys := make([]string, 0, len(s.list))
	for _, st := range s.list {
		if !st.NoFile {
			keys = append(keys, st.Key)
		}
	}
	var errs []error
	values := map[string]any{}
	for _, key := range fk.Keys() {
		st := s.byKey[key]
		if st == nil || st.NoFile {
			hint := rules.DidYouMean(key, keys)
			if hint != "" {
				hint = "; " + hint
			}
			errs = append(errs, fmt.Errorf("config file %s: unknown key %q%s (keys are the flag names of `ciclo serve --help`)", path, key, hint))
			continue
		}
		raw := fk.Get(key)
		v, err := st.Value.decode(raw)
		if err != nil {
			errs = append(errs, fmt.Errorf("config file %s: key %q (%v): %w", path, key, raw, err))
			continue
		}
		values[key] = v
		s.origin[key] = "config file " + path
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	return k.Load(layer(values), nil)
}

// from says where a setting's value came from, for error messages.
func (s *settingSet) from(key string) string {
	if o, ok := s.origin[key]; ok {
		return "from " + o
	}
	return "the default"
}

// isSet reports whether the user gave the setting (flag, environment or file).
func (s *settingSet) isSet(key string) bool {
	_, ok := s.origin[key]
	return ok
}

// describe is a setting with its value and origin, as error messages
// start: `rescue-after 2m0s (from CICLO_RESCUE_AFTER)`.
func (s *settingSet) describe(key string) string {
	v := s.byKey[key].Value
	shown := v.String()
	if v.Type() == "string" {
		shown = strconv.Quote(shown)
	}
	return fmt.Sprintf("%s %s (%s)", key, shown, s.from(key))
}

// layer is a koanf provider of values already decoded.
type layer map[string]any

func (l layer) Read() (map[string]any, error) { return l, nil }
func (l layer) ReadBytes() ([]byte, error) {
	return nil, errors.New("a decoded layer has no bytes")
}
