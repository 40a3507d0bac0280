package galerahealth

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseClientConfig(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  ClientConfig
	}{
		{
			name:  "socket login",
			input: "[client]\nuser = galera_health\npassword = s3cret\nsocket = /run/mysqld/mysqld.sock\n",
			want:  ClientConfig{User: "galera_health", Password: "s3cret", Socket: "/run/mysqld/mysqld.sock"},
		},
		{
			name:  "quoted values and comments",
			input: "# managed\n[client]\n; note\nuser=\"health\"\npassword='a b#c'\nhost = db1 # inline\nport=3307\n",
			want:  ClientConfig{User: "health", Password: "a b#c", Host: "db1", Port: 3307},
		},
		{
			name:  "other groups ignored",
			input: "[mysqld]\nuser=mysql\n[client]\nuser=health\n[mysql]\npassword=other\n",
			want:  ClientConfig{User: "health"},
		},
		{
			name:  "dashes in keys",
			input: "[client]\nUSER=health\nsocket-path=/ignored\n",
			want:  ClientConfig{User: "health"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseClientConfig(strings.NewReader(tt.input))
			if err != nil {
				t.Fatalf("ParseClientConfig: %v", err)
			}
			if got != tt.want {
				t.Errorf("ParseClientConfig = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseClientConfigErrors(t *testing.T) {
	tests := []struct {
		name  string
		input string
	}{
		{"no user", "[client]\npassword=x\n"},
		{"user outside client group", "[mysqld]\nuser=mysql\n"},
		{"invalid port", "[client]\nuser=u\nport=http\n"},
		{"port out of range", "[client]\nuser=u\nport=70000\n"},
		{"unclosed quote", "[client]\nuser=u\npassword=\"abc'\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ParseClientConfig(strings.NewReader(tt.input)); err == nil {
				t.Errorf("ParseClientConfig(%q) returned no error", tt.input)
			}
		})
	}
}

func TestParseClientConfigNoUserSentinel(t *testing.T) {
	_, err := ParseClientConfig(strings.NewReader("[client]\n"))
	if !errors.Is(err, ErrNoUser) {
		t.Errorf("err = %v, want ErrNoUser", err)
	}
}

func TestLoadClientConfigMissingFile(t *testing.T) {
	_, err := LoadClientConfig(filepath.Join(t.TempDir(), "missing.cnf"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("err = %v, want os.ErrNotExist", err)
	}
}

func TestClientConfigNetwork(t *testing.T) {
	tests := []struct {
		name        string
		cfg         ClientConfig
		wantNetwork string
		wantAddress string
	}{
		{"default socket", ClientConfig{}, "unix", DefaultSocket},
		{"localhost uses socket", ClientConfig{Host: "localhost", Socket: "/tmp/s"}, "unix", "/tmp/s"},
		{"tcp default port", ClientConfig{Host: "192.0.2.1"}, "tcp", "192.0.2.1:3306"},
		{"tcp port", ClientConfig{Host: "db1", Port: 3307}, "tcp", "db1:3307"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			network, address := tt.cfg.Network()
			if network != tt.wantNetwork || address != tt.wantAddress {
				t.Errorf("Network() = %s %s, want %s %s", network, address, tt.wantNetwork, tt.wantAddress)
			}
		})
	}
}
