package galerahealth

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
)

// DefaultSocket is the server socket of Debian's MariaDB packages.
const DefaultSocket = "/run/mysqld/mysqld.sock"

// ClientConfig holds the connection settings of the [client] group of a
// MariaDB option file (the my.cnf format).
type ClientConfig struct {
	User     string
	Password string
	Socket   string // used when Host is empty or "localhost", as the mariadb client does
	Host     string
	Port     int // default 3306
}

// ErrNoUser is returned when the option file names no user.
var ErrNoUser = errors.New("no user in the [client] group: add a line user=NAME")

// Network returns the network and address for the MySQL driver: the Unix
// socket for a local server, else TCP to host:port.
func (c ClientConfig) Network() (network, address string) {
	if c.Host == "" || c.Host == "localhost" {
		socket := c.Socket
		if socket == "" {
			socket = DefaultSocket
		}
		return "unix", socket
	}
	port := c.Port
	if port == 0 {
		port = 3306
	}
	return "tcp", net.JoinHostPort(c.Host, strconv.Itoa(port))
}

// LoadClientConfig reads the [client] group of the option file at path.
func LoadClientConfig(path string) (ClientConfig, error) {
	f, err := os.Open(path)
	if err != nil {
		return ClientConfig{}, fmt.Errorf("open client config: %w", err)
	}
	defer f.Close()

	cfg, err := ParseClientConfig(f)
	if err != nil {
		return ClientConfig{}, fmt.Errorf("client config %s: %w", path, err)
	}
	return cfg, nil
}

// ParseClientConfig reads the [client] group of an option file. It accepts
// what the mariadb client accepts for these keys: '#' and ';' comments,
// dashes or underscores in names, and values in single or double quotes.
// Other groups and other keys are ignored.
func ParseClientConfig(r io.Reader) (ClientConfig, error) {
	var cfg ClientConfig
	inClient := false
	scanner := bufio.NewScanner(r)

	for lineNo := 1; scanner.Scan(); lineNo++ {
		line := strings.TrimSpace(scanner.Text())
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		if line[0] == '[' {
			group := strings.TrimSpace(strings.Trim(line, "[]"))
			inClient = group == "client"
			continue
		}
		if !inClient {
			continue
		}

		key, value, err := parseOption(line)
		if err != nil {
			return ClientConfig{}, fmt.Errorf("line %d: %w", lineNo, err)
		}
		if err := cfg.set(key, value); err != nil {
			return ClientConfig{}, fmt.Errorf("line %d: %w", lineNo, err)
		}
	}
	if err := scanner.Err(); err != nil {
		return ClientConfig{}, fmt.Errorf("read: %w", err)
	}

	if cfg.User == "" {
		return ClientConfig{}, ErrNoUser
	}
	return cfg, nil
}

func (c *ClientConfig) set(key, value string) error {
	switch key {
	case "user":
		c.User = value
	case "password":
		c.Password = value
	case "socket":
		c.Socket = value
	case "host":
		c.Host = value
	case "port":
		port, err := strconv.Atoi(value)
		if err != nil || port < 1 || port > 65535 {
			return fmt.Errorf("invalid port %q: want a number from 1 to 65535", value)
		}
		c.Port = port
	}
	return nil
}

// parseOption splits "key = value" and normalizes the key to lower case with
// underscores. A key without "=" is a boolean option with an empty value.
func parseOption(line string) (key, value string, err error) {
	key, value, _ = strings.Cut(line, "=")
	key = strings.ReplaceAll(strings.ToLower(strings.TrimSpace(key)), "-", "_")
	value = strings.TrimSpace(value)

	if n := len(value); n >= 2 && (value[0] == '"' || value[0] == '\'') {
		if value[n-1] != value[0] {
			return "", "", fmt.Errorf("value of %s has an unclosed quote", key)
		}
		value = value[1 : n-1]
	} else if i := strings.IndexByte(value, '#'); i >= 0 {
		// An unquoted value ends at a comment, as in the mariadb client.
		value = strings.TrimSpace(value[:i])
	}
	return key, value, nil
}
