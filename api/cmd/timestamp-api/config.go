package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"
)

// Config is the whole configuration of the binary. Every field can be set
// by a flag or by the environment variable named in its help; a flag wins.
type Config struct {
	Listen string

	DBAddr            string
	DBUser            string
	DBName            string
	DBPassword        string
	DBPasswordFile    string
	DBMaxOpenConns    int
	DBConnMaxLifetime time.Duration
	DBConnMaxIdleTime time.Duration
	DBDialTimeout     time.Duration
	DBIOTimeout       time.Duration
	DBRetryAttempts   int

	GroupCommit        bool
	GroupCommitWindow  time.Duration
	GroupCommitMaxRows int
	GroupCommitWriters int

	WriteTimeout    time.Duration
	ReadTimeout     time.Duration
	ReadyTimeout    time.Duration
	ShutdownDelay   time.Duration
	ShutdownTimeout time.Duration

	TrustedProxies string
	NodeName       string
	LogFormat      string
	LogLevel       string
}

// envPrefix starts the name of every environment variable the binary reads.
const envPrefix = "TSAPI_"

// parseConfig reads flags from args and variables from getenv. The
// password is read only from the environment or a file, never from a flag,
// because flags show in the process list.
func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (Config, error) {
	var cfg Config
	fs := flag.NewFlagSet("timestamp-api", flag.ContinueOnError)
	fs.SetOutput(stderr)
	env := envReader{getenv: getenv}

	fs.StringVar(&cfg.Listen, "listen", env.str("LISTEN", ":8080"),
		"`address` to serve HTTP on, host:port")
	fs.StringVar(&cfg.DBAddr, "db-addr", env.str("DB_ADDR", "127.0.0.1:3306"),
		"MariaDB `address`, host:port (in the HA layout, HAProxy's database frontend)")
	fs.StringVar(&cfg.DBUser, "db-user", env.str("DB_USER", "timestamp"), "MariaDB `user`")
	fs.StringVar(&cfg.DBName, "db-name", env.str("DB_NAME", "timestamp"), "MariaDB `database`")
	fs.StringVar(&cfg.DBPasswordFile, "db-password-file", env.str("DB_PASSWORD_FILE", ""),
		"`file` holding the MariaDB password (trailing newline ignored); "+
			"else the password comes from $TSAPI_DB_PASSWORD")
	fs.IntVar(&cfg.DBMaxOpenConns, "db-max-open-conns", env.int("DB_MAX_OPEN_CONNS", 32),
		"maximum open database connections (`count`)")
	fs.DurationVar(&cfg.DBConnMaxLifetime, "db-conn-max-lifetime", env.duration("DB_CONN_MAX_LIFETIME", 60*time.Second),
		"close a database connection this long after it opened (`duration`); keep it below HAProxy's and MariaDB's idle timeouts")
	fs.DurationVar(&cfg.DBConnMaxIdleTime, "db-conn-max-idle-time", env.duration("DB_CONN_MAX_IDLE_TIME", 30*time.Second),
		"close a database connection idle this long (`duration`)")
	fs.DurationVar(&cfg.DBDialTimeout, "db-dial-timeout", env.duration("DB_DIAL_TIMEOUT", 2*time.Second),
		"timeout to open one database connection (`duration`)")
	fs.DurationVar(&cfg.DBIOTimeout, "db-io-timeout", env.duration("DB_IO_TIMEOUT", 10*time.Second),
		"timeout of one read or write on a database connection (`duration`)")
	fs.IntVar(&cfg.DBRetryAttempts, "db-retry-attempts", env.int("DB_RETRY_ATTEMPTS", 4),
		"attempts of one insert, the first included, before answering 503 (`count`)")
	fs.BoolVar(&cfg.GroupCommit, "group-commit", env.boolean("GROUP_COMMIT", true),
		"write concurrent POSTs together, one multi-row INSERT and one commit per batch; false gives each its own commit")
	fs.DurationVar(&cfg.GroupCommitWindow, "group-commit-window", env.duration("GROUP_COMMIT_WINDOW", 0),
		"time a batch waits for more rows after its first (`duration`); 0 takes only the rows already waiting")
	fs.IntVar(&cfg.GroupCommitMaxRows, "group-commit-max-rows", env.int("GROUP_COMMIT_MAX_ROWS", 128),
		"maximum rows in one batch (`count`)")
	fs.IntVar(&cfg.GroupCommitWriters, "group-commit-writers", env.int("GROUP_COMMIT_WRITERS", 4),
		"batches in flight at once (`count`)")
	fs.DurationVar(&cfg.WriteTimeout, "write-timeout", env.duration("WRITE_TIMEOUT", 5*time.Second),
		"time budget of one POST /app, retries included (`duration`)")
	fs.DurationVar(&cfg.ReadTimeout, "read-timeout", env.duration("READ_TIMEOUT", 5*time.Second),
		"time budget of the database read of one GET (`duration`)")
	fs.DurationVar(&cfg.ReadyTimeout, "ready-timeout", env.duration("READY_TIMEOUT", time.Second),
		"time the database has to answer a /readyz check (`duration`)")
	fs.DurationVar(&cfg.ShutdownDelay, "shutdown-delay", env.duration("SHUTDOWN_DELAY", 3*time.Second),
		"on SIGTERM, time /readyz fails before the listener closes, so load balancers stop sending (`duration`); "+
			"make it longer than the balancer's check interval times its fall count")
	fs.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", env.duration("SHUTDOWN_TIMEOUT", 20*time.Second),
		"after the delay, time in-flight requests have to finish before the process exits anyway (`duration`)")
	fs.StringVar(&cfg.TrustedProxies, "trusted-proxies", env.str("TRUSTED_PROXIES", ""),
		"comma-separated `addresses` or CIDRs of the load balancers whose X-Forwarded-For is believed; empty trusts none")
	fs.StringVar(&cfg.NodeName, "node-name", env.str("NODE_NAME", ""),
		"`name` stored with every event this instance records (default: the host name)")
	fs.StringVar(&cfg.LogFormat, "log-format", env.str("LOG_FORMAT", "json"), "log `format`: json or text")
	fs.StringVar(&cfg.LogLevel, "log-level", env.str("LOG_LEVEL", "info"), "log `level`: debug, info, warn or error")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: timestamp-api [flags]\n\n"+
			"Serves POST /app and stores each request's UTC time in MariaDB.\n"+
			"Every flag can also be set by the environment variable %s<FLAG>, upper case with _ for -\n"+
			"(for example -db-addr is %sDB_ADDR); a flag wins over its variable.\n"+
			"The database password is read from %sDB_PASSWORD or from -db-password-file.\n\nFlags:\n",
			envPrefix, envPrefix, envPrefix)
		fs.PrintDefaults()
	}

	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected argument %q; see -help", fs.Arg(0))
	}
	if env.err != nil {
		return Config{}, env.err
	}
	cfg.DBPassword = getenv(envPrefix + "DB_PASSWORD")
	if err := cfg.loadPassword(); err != nil {
		return Config{}, err
	}
	if cfg.NodeName == "" {
		host, err := os.Hostname()
		if err != nil {
			return Config{}, fmt.Errorf("read host name for -node-name: %w", err)
		}
		cfg.NodeName = host
	}
	return cfg, cfg.validate()
}

func (c *Config) loadPassword() error {
	if c.DBPasswordFile == "" {
		return nil
	}
	b, err := os.ReadFile(c.DBPasswordFile)
	if err != nil {
		return fmt.Errorf("read database password: %w", err)
	}
	c.DBPassword = strings.TrimRight(string(b), "\r\n")
	return nil
}

func (c Config) validate() error {
	var errs []error
	if c.DBMaxOpenConns < 1 {
		errs = append(errs, fmt.Errorf("-db-max-open-conns is %d; it must be at least 1", c.DBMaxOpenConns))
	}
	if c.GroupCommitMaxRows < 1 || c.GroupCommitWriters < 1 {
		errs = append(errs, fmt.Errorf("-group-commit-max-rows and -group-commit-writers must be at least 1, not %d and %d",
			c.GroupCommitMaxRows, c.GroupCommitWriters))
	}
	if c.GroupCommitWindow < 0 {
		errs = append(errs, fmt.Errorf("-group-commit-window is %s; it must not be negative", c.GroupCommitWindow))
	}
	if c.DBRetryAttempts < 1 {
		errs = append(errs, fmt.Errorf("-db-retry-attempts is %d; it must be at least 1", c.DBRetryAttempts))
	}
	for name, d := range map[string]time.Duration{
		"-db-conn-max-lifetime": c.DBConnMaxLifetime, "-db-conn-max-idle-time": c.DBConnMaxIdleTime,
		"-db-dial-timeout": c.DBDialTimeout, "-db-io-timeout": c.DBIOTimeout,
		"-write-timeout": c.WriteTimeout, "-read-timeout": c.ReadTimeout,
		"-ready-timeout": c.ReadyTimeout, "-shutdown-timeout": c.ShutdownTimeout,
	} {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("%s is %s; it must be positive", name, d))
		}
	}
	if c.ShutdownDelay < 0 {
		errs = append(errs, fmt.Errorf("-shutdown-delay is %s; it must not be negative", c.ShutdownDelay))
	}
	if c.LogFormat != "json" && c.LogFormat != "text" {
		errs = append(errs, fmt.Errorf("-log-format is %q; use json or text", c.LogFormat))
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.LogLevel)); err != nil {
		errs = append(errs, fmt.Errorf("-log-level is %q; use debug, info, warn or error", c.LogLevel))
	}
	return errors.Join(errs...)
}

// trustedProxies splits the comma-separated list.
func (c Config) trustedProxies() []string {
	var list []string
	for _, p := range strings.Split(c.TrustedProxies, ",") {
		if p = strings.TrimSpace(p); p != "" {
			list = append(list, p)
		}
	}
	return list
}

// envReader reads typed defaults from the environment and keeps the first
// malformed value, so that a typo in a unit file fails the start.
type envReader struct {
	getenv func(string) string
	err    error
}

func (e *envReader) str(name, def string) string {
	if v := e.getenv(envPrefix + name); v != "" {
		return v
	}
	return def
}

func (e *envReader) int(name string, def int) int {
	v := e.getenv(envPrefix + name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil && e.err == nil {
		e.err = fmt.Errorf("%s%s=%q is not an integer", envPrefix, name, v)
	}
	return n
}

func (e *envReader) boolean(name string, def bool) bool {
	v := e.getenv(envPrefix + name)
	if v == "" {
		return def
	}
	b, err := strconv.ParseBool(v)
	if err != nil && e.err == nil {
		e.err = fmt.Errorf("%s%s=%q is not a boolean such as true or false", envPrefix, name, v)
	}
	return b
}

func (e *envReader) duration(name string, def time.Duration) time.Duration {
	v := e.getenv(envPrefix + name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil && e.err == nil {
		e.err = fmt.Errorf("%s%s=%q is not a duration such as 500ms or 2s", envPrefix, name, v)
	}
	return d
}
