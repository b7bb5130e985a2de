package api

// WithoutFastPath returns cfg with the fast path of fastpath.go off: the
// server then answers as gqlgen alone does, for the differential test.
func WithoutFastPath(cfg Config) Config {
	cfg.fastPath.off = true
	return cfg
}

// WithFastPathHook returns cfg with hook run by the fast path before it
// writes an answer, for the test that a panic there is recovered.
func WithFastPathHook(cfg Config, hook func()) Config {
	cfg.fastPath.beforeWrite = hook
	return cfg
}
