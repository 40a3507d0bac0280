package main

import (
	"bytes"
	"image/png"
	"math"
	"strings"
	"testing"
)

const timeline = `t_seconds,offered_rps,measured_rps,instances,desired,p95_ms
0,10,9.5,2,2,
2,20,18,2,3,12.5
4,30,29,3,3,11
`

func TestReadTimeline(t *testing.T) {
	points, err := readTimeline(strings.NewReader(timeline))
	if err != nil {
		t.Fatal(err)
	}
	if len(points) != 3 {
		t.Fatalf("got %d points, want 3", len(points))
	}
	if !math.IsNaN(points[0].p95ms) {
		t.Errorf("empty p95 = %g, want NaN", points[0].p95ms)
	}
	if points[2].instances != 3 || points[1].desired != 3 {
		t.Errorf("points = %+v, want instances 3 at t=4 and desired 3 at t=2", points)
	}
}

func TestReadTimelineMissingColumn(t *testing.T) {
	_, err := readTimeline(strings.NewReader("t_seconds,offered_rps\n0,1\n1,2\n"))
	if err == nil || !strings.Contains(err.Error(), "measured_rps") {
		t.Errorf("err = %v, want one naming the missing column measured_rps", err)
	}
}

func TestRenderWritesPNG(t *testing.T) {
	points, err := readTimeline(strings.NewReader(timeline))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := render(&buf, points, "test"); err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(&buf)
	if err != nil {
		t.Fatalf("output is not a PNG: %v", err)
	}
	if b := img.Bounds(); b.Dx() < 500 || b.Dy() < 400 {
		t.Errorf("image is %dx%d, want at least 500x400", b.Dx(), b.Dy())
	}
}
