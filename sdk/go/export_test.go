package sessiond

// ConnectionStopped returns the channel closed when the current connection of a client made
// by Dial stops.
func ConnectionStopped(c *Client) <-chan struct{} {
	t := c.transport.(*tcpTransport)
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.cur.stopped
}
