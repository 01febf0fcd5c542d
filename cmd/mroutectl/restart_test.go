package main

import (
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/mrouterd/mrouterd/router/api"
)

// restartingDaemon answers like a daemon that restarts in place: the program
// started at "A" hands over, and the one started at "B" answers after a few polls.
func restartingDaemon(t *testing.T, reloadReply string) string {
	var polls atomic.Int32
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+api.PathRestart, func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(`{"from":"1.0","to":"1.1","started":"A"}` + "\n"))
	})
	mux.HandleFunc("POST "+api.PathReload, func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(reloadReply + "\n"))
	})
	mux.HandleFunc("GET "+api.PathStatus, func(w http.ResponseWriter, _ *http.Request) {
		if polls.Add(1) < 3 {
			_, _ = w.Write([]byte(`{"version":"1.0","started":"A"}` + "\n"))
			return
		}
		_, _ = w.Write([]byte(`{"version":"1.1","started":"B","restart_hold":{"from":"1.0","entries":4,"expires_s":69}}` + "\n"))
	})
	return serveUnix(t, mux)
}

func TestRunRestart(t *testing.T) {
	socket := restartingDaemon(t, "")
	status, out, errOut := runCLI("-s", socket, "restart")
	want := "restarting in place: mrouterd 1.0 -> 1.1\n" +
		"mrouterd 1.1 running; 4 adopted entries held for 1m9s while the protocols rebuild\n"
	if status != 0 || out != want {
		t.Errorf("restart: status %d, stdout %q, stderr %q", status, out, errOut)
	}
}

func TestRunReloadRestarts(t *testing.T) {
	socket := restartingDaemon(t, `{"changed":true,"summary":["the program on disk is new: restarting in place (1.0 -> 1.1)"],`+
		`"restart":{"from":"1.0","to":"1.1","started":"A"}}`)
	status, out, errOut := runCLI("-s", socket, "reload")
	want := "the program on disk is new: restarting in place (1.0 -> 1.1)\n" +
		"mrouterd 1.1 running; 4 adopted entries held for 1m9s while the protocols rebuild\n"
	if status != 0 || out != want {
		t.Errorf("reload: status %d, stdout %q, stderr %q", status, out, errOut)
	}
}
