package wire

// DefaultWebSocketPath is the HTTP path of the WebSocket transport (spec.md, section 6) when
// neither end names another: a wss:// PROXY_HOST without a path, and `serve` without
// --ws-path.
const DefaultWebSocketPath = "/tunnel"
