package agent

import "testing"

func TestGoodConfig(t *testing.T) {
	cfg, _, err := loadConfig("testdata/full.good.yaml")
	if err != nil {
		t.Fatalf("loadConfig: %v", err)
	}
	if got := cfg.Services[0].Address; got != "127.0.0.1" {
		t.Errorf("address template resolved to %q, want 127.0.0.1", got)
	}
	if got := cfg.Services[1].ID; got != "app1-9090" {
		t.Errorf("default id = %q, want app1-9090", got)
	}
	if got := cfg.Services[0].Checks[2].check().Kind; got != "deep" {
		t.Errorf("kind = %q, want deep", got)
	}
}
