package main

import (
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"

	"github.com/spf13/pflag"
	"gopkg.in/yaml.v3"
)

// flagEnvRE finds the environment variable a flag's usage names, as in
// "(env CICLO_ADDR)": every flag of serve documents its variable this way.
var flagEnvRE = regexp.MustCompile(`\(env ([A-Z][A-Z0-9_]*)`)

// applyConfigFile sets, from the YAML file at path, every flag that was
// neither given on the command line nor through its environment variable,
// so precedence is flags > environment > file > defaults. The file's keys
// are flag names (database-url, smtp-url, email-workers…); a list value
// sets a list flag. Unknown keys and values a flag rejects are errors
// naming the key. An empty path does nothing.
func applyConfigFile(fs *pflag.FlagSet, path string) error {
	if path == "" {
		return nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read config file: %w", err)
	}
	var values map[string]any
	if err := yaml.Unmarshal(data, &values); err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, key := range keys {
		fl := fs.Lookup(key)
		if fl == nil || key == "config" {
			return fmt.Errorf("config file %s: unknown key %q: keys are the flag names of `ciclo serve --help`", path, key)
		}
		if fl.Changed {
			continue
		}
		if m := flagEnvRE.FindStringSubmatch(fl.Usage); m != nil {
			if v, ok := os.LookupEnv(m[1]); ok && v != "" {
				continue
			}
		}
		val, err := configValue(values[key])
		if err != nil {
			return fmt.Errorf("config file %s: key %q: %w", path, key, err)
		}
		if sv, ok := fl.Value.(pflag.SliceValue); ok {
			err = sv.Replace(strings.Split(val, ","))
		} else {
			err = fl.Value.Set(val)
		}
		if err != nil {
			return fmt.Errorf("config file %s: key %q: %w", path, key, err)
		}
	}
	return nil
}

// configValue turns a YAML scalar or list into a flag's text.
func configValue(v any) (string, error) {
	switch v := v.(type) {
	case nil:
		return "", nil
	case []any:
		parts := make([]string, len(v))
		for i, x := range v {
			s, err := configValue(x)
			if err != nil {
				return "", err
			}
			parts[i] = s
		}
		return strings.Join(parts, ","), nil
	case map[string]any:
		return "", fmt.Errorf("a value, not a mapping")
	default:
		return fmt.Sprint(v), nil
	}
}
