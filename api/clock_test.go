package api

import (
	"encoding/json"
	"testing"
	"time"
)

func TestClockStrictlyIncreases(t *testing.T) {
	fixed := time.Date(2026, 12, 4, 10, 0, 0, 123456789, time.UTC)
	c := &Clock{Now: func() time.Time { return fixed }}
	a, b := c.Next(), c.Next()
	if !b.After(a) {
		t.Errorf("second timestamp %s is not after %s", b, a)
	}
	if a.Nanosecond()%1000 != 0 {
		t.Errorf("timestamp %s has sub-microsecond digits", a)
	}
}

func TestClockSurvivesStepBack(t *testing.T) {
	now := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	c := &Clock{Now: func() time.Time { return now }}
	first := c.Next()
	now = now.Add(-time.Hour)
	if second := c.Next(); !second.After(first) {
		t.Errorf("after the clock stepped back, got %s, want after %s", second, first)
	}
}

func TestClockIsUTC(t *testing.T) {
	tokyo := time.FixedZone("JST", 9*3600)
	c := &Clock{Now: func() time.Time { return time.Date(2026, 12, 4, 19, 0, 0, 0, tokyo) }}
	if got := c.Next(); got.Location() != time.UTC || got.Hour() != 10 {
		t.Errorf("Next() = %s, want 10:00 UTC", got)
	}
}

func TestTimestampJSON(t *testing.T) {
	ts := Timestamp{time.Date(2026, 12, 4, 10, 15, 0, 5000, time.UTC)}
	b, err := json.Marshal(ts)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), `"2026-12-04T10:15:00.000005Z"`; got != want {
		t.Errorf("Marshal = %s, want %s", got, want)
	}
	var back Timestamp
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !back.Equal(ts.Time) {
		t.Errorf("round trip = %s, want %s", back, ts)
	}
}
