package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"syscall"
	"time"
)

// DefaultTimeout bounds a request whose context has no deadline of its own.
const DefaultTimeout = 10 * time.Second

// Client talks to mrouterd's control API over its unix socket.
type Client struct {
	socket  string
	timeout time.Duration
	http    *http.Client
}

// NewClient returns a client for the daemon listening on socket. An empty socket
// means $MROUTERD_SOCKET when set, else DefaultSocket.
func NewClient(socket string) *Client {
	if socket == "" {
		socket = os.Getenv(SocketEnv)
	}
	if socket == "" {
		socket = DefaultSocket
	}
	c := &Client{socket: socket, timeout: DefaultTimeout}
	c.http = &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", c.socket)
		},
		// One request per command: an idle connection would only outlive its use.
		DisableKeepAlives: true,
	}}
	return c
}

// Socket is the path of the control socket the client talks to.
func (c *Client) Socket() string { return c.socket }

// Get fetches path and decodes its JSON reply into out.
func (c *Client) Get(ctx context.Context, path string, out any) error {
	return c.decode(ctx, http.MethodGet, path, out)
}

// Post sends an empty POST to path and decodes its JSON reply into out.
func (c *Client) Post(ctx context.Context, path string, out any) error {
	return c.decode(ctx, http.MethodPost, path, out)
}

func (c *Client) decode(ctx context.Context, method, path string, out any) error {
	body, err := c.Raw(ctx, method, path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("reply of %s %s: %w", method, path, err)
	}
	return nil
}

// Raw sends a request without a body and returns the body of a 2xx reply exactly as
// served. A non-2xx reply becomes an error carrying the daemon's message.
func (c *Client) Raw(ctx context.Context, method, path string) ([]byte, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	// The host is never dialled (the transport always dials the socket) but a URL needs one.
	req, err := http.NewRequestWithContext(ctx, method, "http://mrouterd"+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, c.requestError(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, c.requestError(err)
	}
	if resp.StatusCode/100 != 2 {
		return nil, replyError(resp.Status, body)
	}
	return body, nil
}

// requestError turns a failed exchange into a message that says what to do about it.
func (c *Client) requestError(err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("mrouterd is not running (no control socket at %s)", c.socket)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("permission denied on control socket %s (it needs root or the socket's group)", c.socket)
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("mrouterd did not answer on %s in time", c.socket)
	}
	// The URL in url.Error names a made-up host; the socket path says more.
	if ue := (*url.Error)(nil); errors.As(err, &ue) {
		err = ue.Err
	}
	return fmt.Errorf("control socket %s: %w", c.socket, err)
}

// replyError prefers the daemon's own message; a body that is not an Error still
// leaves the HTTP status to go by.
func replyError(status string, body []byte) error {
	var e Error
	if json.Unmarshal(body, &e) == nil && e.Error != "" {
		return errors.New(e.Error)
	}
	if text := strings.TrimSpace(string(body)); text != "" {
		return fmt.Errorf("mrouterd replied %s: %s", status, text)
	}
	return fmt.Errorf("mrouterd replied %s", status)
}
