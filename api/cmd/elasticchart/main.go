// Command elasticchart draws the timeline of an autoscaling run as a PNG:
// the load, the instances and the p95 latency against time, one panel
// each, sharing the time axis. scripts/elastic.sh writes the timeline
// while it runs and calls this for docs/img/elastic-ramp.png.
//
//	elasticchart -in timeline.csv -out docs/img/elastic-ramp.png -title "Load ramp"
//
// The CSV has a header and these columns (extra ones are ignored):
// t_seconds, offered_rps, measured_rps, instances, desired, p95_ms. An
// empty field (p95 before enough requests) leaves a gap.
package main

import (
	"flag"
	"fmt"
	"os"
)

func main() {
	in := flag.String("in", "", "timeline CSV `file` (required)")
	out := flag.String("out", "elastic.png", "PNG `file` to write")
	title := flag.String("title", "Autoscaling run", "chart `title`")
	flag.Parse()
	if err := run(*in, *out, *title); err != nil {
		fmt.Fprintln(os.Stderr, "elasticchart:", err)
		os.Exit(1)
	}
}

func run(in, out, title string) error {
	if in == "" {
		return fmt.Errorf("-in is missing: give the timeline CSV")
	}
	f, err := os.Open(in)
	if err != nil {
		return err
	}
	defer f.Close()
	points, err := readTimeline(f)
	if err != nil {
		return fmt.Errorf("%s: %w", in, err)
	}
	w, err := os.Create(out)
	if err != nil {
		return err
	}
	if err := render(w, points, title); err != nil {
		w.Close()
		return err
	}
	return w.Close()
}
