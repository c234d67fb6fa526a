// Package hub owns onionchat's rooms and live sessions: who is in which room
// under which name, fan-out of opaque message bodies to a room's members, and
// every limit that keeps one client from hurting the others (frame rate,
// connections, rooms, members, bounded send queues, idle and join timeouts).
//
// The hub knows nothing of Tor, TLS, HTTP or HTML. It speaks the JSON frames
// of docs/protocol.md over any transport that implements [Conn]; the wire
// encoding of a frame (for example a WebSocket text frame) comes from the
// [Wire] in its [Config] and is built once per frame, whatever the number of
// receivers.
//
// Message bodies are ciphertext made in the browser. The hub checks their
// size and base64 encoding and never their content. It keeps a member's name
// only while that member's session lives, and a room only while it has
// members; the optional backlog ([Config.HistoryMessages]) lives in memory
// and is wiped with its room. It never logs a name, a room, a peer or a body.
package hub
