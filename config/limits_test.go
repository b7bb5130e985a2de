package config_test

import (
	"testing"
	"time"

	"github.com/taskql/server/api"
	"github.com/taskql/server/config"
)

func TestLoadLimitsDefaults(t *testing.T) {
	for _, tt := range []struct {
		name    string
		vars    map[string]string
		metrics bool
		// suggestionsOff: production answers no "Did you mean …?".
		suggestionsOff bool
	}{
		{"production", prod(nil), false, true},
		{"development", map[string]string{"AUTH_JWT_SECRET": "0123456789abcdef0123456789abcdef"}, true, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := config.Load(env(tt.vars))
			if err != nil {
				t.Fatal(err)
			}
			want := api.Limits{
				MaxCost: api.DefaultMaxCost, MaxDepth: api.DefaultMaxDepth, MaxTokens: api.DefaultMaxTokens,
				MaxSelections: api.DefaultMaxSelections, MaxSetSelections: api.DefaultMaxSetSelections,
				MaxResponseBytes: api.DefaultMaxResponseBytes, ExecutionTimeout: api.DefaultExecutionTimeout,
				CostBudget: api.DefaultCostBudget, CostRefill: api.DefaultCostRefill,
				DisableSuggestions: tt.suggestionsOff,
			}
			if c.Limits != want {
				t.Errorf("Limits = %+v, want %+v", c.Limits, want)
			}
			if h := (config.HTTPTimeouts{ReadHeader: 10 * time.Second, Read: 30 * time.Second, Write: 60 * time.Second, Idle: 120 * time.Second}); c.HTTP != h {
				t.Errorf("HTTP = %+v, want %+v", c.HTTP, h)
			}
			if c.MetricsEnabled != tt.metrics || c.MetricsToken != "" {
				t.Errorf("metrics enabled %v token %q, want %v and none", c.MetricsEnabled, c.MetricsToken, tt.metrics)
			}
		})
	}
}

func TestLoadLimitsSettings(t *testing.T) {
	c, err := config.Load(env(prod(map[string]string{
		"GRAPHQL_MAX_COST": "9000", "GRAPHQL_MAX_DEPTH": "12", "GRAPHQL_MAX_TOKENS": "2000",
		"GRAPHQL_EXECUTION_TIMEOUT": "3s", "GRAPHQL_INTROSPECTION": "false", "GRAPHQL_SUGGESTIONS": "0",
		"GRAPHQL_MAX_SELECTIONS": "300", "GRAPHQL_MAX_SET_SELECTIONS": "40", "GRAPHQL_MAX_RESPONSE_BYTES": "1000000",
		"COST_REFILL_PER_SECOND": "0.5", "COST_BUDGET": "9000",
		"HTTP_READ_HEADER_TIMEOUT": "2", "HTTP_READ_TIMEOUT": "5s", "HTTP_WRITE_TIMEOUT": "1m", "HTTP_IDLE_TIMEOUT": "90s",
		"METRICS_ENABLED": "true", "METRICS_TOKEN": "a-long-enough-metrics-token",
	})))
	if err != nil {
		t.Fatal(err)
	}
	want := api.Limits{MaxCost: 9000, MaxDepth: 12, MaxTokens: 2000, ExecutionTimeout: 3 * time.Second,
		MaxSelections: 300, MaxSetSelections: 40, MaxResponseBytes: 1000000,
		CostRefill: 0.5, CostBudget: 9000, DisableIntrospection: true, DisableSuggestions: true}
	if c.Limits != want {
		t.Errorf("Limits = %+v, want %+v", c.Limits, want)
	}
	if h := (config.HTTPTimeouts{ReadHeader: 2 * time.Second, Read: 5 * time.Second, Write: time.Minute, Idle: 90 * time.Second}); c.HTTP != h {
		t.Errorf("HTTP = %+v, want %+v", c.HTTP, h)
	}
	if !c.MetricsEnabled || c.MetricsToken != "a-long-enough-metrics-token" {
		t.Errorf("metrics %v %q", c.MetricsEnabled, c.MetricsToken)
	}
}

func TestLoadLimitsRefusesBadValuesNamingTheVariable(t *testing.T) {
	for _, tt := range []struct{ variable, value string }{
		{"GRAPHQL_MAX_COST", "0"},
		{"GRAPHQL_MAX_DEPTH", "-1"},
		{"GRAPHQL_MAX_TOKENS", "lots"},
		{"GRAPHQL_EXECUTION_TIMEOUT", "0s"},
		{"GRAPHQL_EXECUTION_TIMEOUT", "60s"}, // not shorter than HTTP_WRITE_TIMEOUT
		{"GRAPHQL_INTROSPECTION", "maybe"},
		{"GRAPHQL_SUGGESTIONS", "yes please"},
		{"GRAPHQL_MAX_SELECTIONS", "0"},
		{"GRAPHQL_MAX_SET_SELECTIONS", "many"},
		{"GRAPHQL_MAX_RESPONSE_BYTES", "10MB"},
		{"COST_REFILL_PER_SECOND", "0"},
		{"COST_REFILL_PER_SECOND", "NaN"},
		{"COST_REFILL_PER_SECOND", "+Inf"},
		{"COST_BUDGET", "1.5"},
		{"COST_BUDGET", "4999"}, // below GRAPHQL_MAX_COST: an operation at the limit could never run
		{"HTTP_READ_HEADER_TIMEOUT", "soon"},
		{"HTTP_IDLE_TIMEOUT", "-5s"},
		{"METRICS_ENABLED", "on"},
		{"METRICS_TOKEN", "short"},
	} {
		t.Run(tt.variable+"="+tt.value, func(t *testing.T) {
			_, err := config.Load(env(prod(map[string]string{tt.variable: tt.value})))
			wantConfigError(t, err, tt.variable)
		})
	}
}
