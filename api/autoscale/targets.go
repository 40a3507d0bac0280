package autoscale

import "net"

// TargetGroup is one entry of Prometheus's HTTP service discovery
// (http_sd_configs): the addresses to scrape and the labels they share.
type TargetGroup struct {
	Targets []string          `json:"targets"`
	Labels  map[string]string `json:"labels"`
}

// ScrapeTargets returns one target group per pool instance that holds a
// slot of b, so that Prometheus scrapes the instances the controller
// started. A slot holds an instance unless it is in maintenance: the
// controller registers an instance once it is ready and puts its slot in
// maintenance after the instance stopped. Each group has the labels
// instance (HOST:PORT) and host, the name of the registered host with the
// slot's address, or the address when no host has it. Static servers are
// left out, because Prometheus scrapes them from its own configuration.
// The result is never nil, as the format wants a JSON array.
func ScrapeTargets(b Backend, prefix string, hosts []Host) []TargetGroup {
	names := make(map[string]string, len(hosts))
	for _, h := range hosts {
		names[h.Address] = h.Name
	}
	groups := []TargetGroup{}
	for _, s := range b.Servers {
		if _, ok := slotIndex(s.Name, prefix); !ok || s.Admin == AdminMaint {
			continue
		}
		address, port, err := net.SplitHostPort(s.Endpoint)
		if err != nil {
			continue
		}
		host, ok := names[address]
		if !ok {
			host = address
		}
		groups = append(groups, TargetGroup{
			Targets: []string{s.Endpoint},
			Labels:  map[string]string{"instance": net.JoinHostPort(host, port), "host": host},
		})
	}
	return groups
}
