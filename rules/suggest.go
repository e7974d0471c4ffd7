package rules

// DidYouMean returns a hint such as `did you mean "when"?` naming the
// candidate closest to name, or "" when none is close enough to be a likely
// typo. It is the one suggestion helper: the rules file's unknown keys and
// the command line's unknown config-file keys both use it.
func DidYouMean(name string, candidates []string) string {
	return didYouMean(name, candidates)
}
