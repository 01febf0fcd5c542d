package main

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/mrouterd/mrouterd/router/api"
)

// restartWait is how long restart waits for the new program to answer.
const restartWait = 30 * time.Second

// runRestart asks for a restart in place and waits until the new program answers,
// so that a service manager's reload (or an upgrade script) knows how it went.
func runRestart(s *session) error {
	var rs api.Restart
	if err := s.client.Post(s.ctx, api.PathRestart, &rs); err != nil {
		return err
	}
	if !s.json {
		fmt.Fprintf(s.out, "restarting in place: mrouterd %s -> %s\n", dash(rs.From), dash(rs.To))
	}
	after, err := waitForNewProgram(s, rs.Started)
	if err != nil {
		return err
	}
	if s.json {
		return json.NewEncoder(s.out).Encode(rs)
	}
	_, err = fmt.Fprintf(s.out, "mrouterd %s running; %s\n", dash(after.Version), holdSummary(after.Hold))
	return err
}

// runReload reloads the config; when the daemon restarts in place instead (the
// program on disk is new), it waits for the new program like restart.
func runReload(s *session) error {
	body, err := s.client.Raw(s.ctx, "POST", api.PathReload)
	if err != nil {
		return err
	}
	var rl api.Reload
	if err := json.Unmarshal(body, &rl); err != nil {
		return fmt.Errorf("unexpected reply from mrouterd: %w", err)
	}
	if s.json {
		err = writeBody(s.out, body)
	} else {
		err = renderReload(s.out, rl)
	}
	if err != nil || rl.Restart == nil {
		return err
	}
	after, err := waitForNewProgram(s, rl.Restart.Started)
	if err != nil || s.json {
		return err
	}
	_, err = fmt.Fprintf(s.out, "mrouterd %s running; %s\n", dash(after.Version), holdSummary(after.Hold))
	return err
}

// waitForNewProgram polls the daemon until the program that answers is not the
// one started at started.
func waitForNewProgram(s *session, started string) (api.Status, error) {
	deadline := time.Now().Add(restartWait)
	for {
		var after api.Status
		err := s.client.Get(s.ctx, api.PathStatus, &after)
		if err == nil && after.Started != started {
			return after, nil
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = fmt.Errorf("still the program started at %s", after.Started)
			}
			return api.Status{}, fmt.Errorf("no new mrouterd within %s: %w", restartWait, err)
		}
		select {
		case <-s.ctx.Done():
			return api.Status{}, s.ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func holdSummary(h *api.RestartHold) string {
	if h == nil {
		return "nothing was adopted"
	}
	return fmt.Sprintf("%d adopted entries held for %s while the protocols rebuild", h.Entries, duration(h.ExpiresS))
}
