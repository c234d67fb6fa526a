// Package hub owns onionchat's rooms and sessions: who is in which room
// under which name and session id, fan-out of opaque message bodies to a
// room's members, the room's recent broadcast frames for members who
// reconnect (catch-up), and every limit that keeps one client from
// hurting the others (frame rate for text and control frames, joins per
// peer, connections, rooms, members, bounded send queues, idle and join
// timeouts, and who keeps a place when the hub is full).
//
// The hub knows nothing of Tor, TLS, HTTP or HTML. It speaks relay
// protocol version 2 (docs/protocol.md §1–7) over any transport that
// implements [Conn]; the wire encoding of a frame (for example a WebSocket
// text frame) comes from the [Wire] in its [Config] and is built once per
// frame, whatever the number of receivers.
//
// Rooms are opaque ids made by the page from the room secret: the hub
// never sees a room's name. Message bodies are ciphertext made in the
// browser; the hub checks their size and base64 encoding and never their
// content. Names are prepared and compared by PRECIS and UTS #39
// skeletons (name.go). A name is kept while its session lives,
// including the [Config.ResumeWindow] during which an away session may
// come back; a room's broadcast frames are kept, in memory only, for that
// window and within [MaxRoomBytes] and a hub-wide cap, and wiped with the
// room when its last session ends. The hub never logs a name, a room, a
// peer or a body.
//
// Several hubs can serve the same rooms behind one address: a [Cluster]
// in the Config (internal/cluster implements it over NATS) carries each
// hub's events to the others, and a hub keeps the others' sessions in its
// rooms beside its own (docs/protocol.md §15). The hub knows nothing of
// how. All of it lives in cluster.go: the rest of the hub tells its
// others of every session and frame, and without a Cluster they are a
// stand-in that does nothing.
package hub
