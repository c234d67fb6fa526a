// fakehub.mjs: an in-memory stand-in for the relay (docs/protocol.md
// §1–§4), for the group tests. It relays like the real one: each sender's
// frames in order, broadcasts to every other member with the room's next
// seq, `to` to one member, join/away/back/leave events, the room's kept
// frames as catch-up after a welcome (all of them for a new session, those
// after `since` for a resumed one), and a server restart that forgets every
// session and kept frame. It records every frame it relays, so a test can
// replay the transcript into another client, and lets a test send raw
// frames as any session (a hostile member, or a hostile relay).
import { deriveRoom } from '../static/roomkey.mjs';
import { toBase64, toBase64url, randomBytes } from '../static/bytes.mjs';
import { Group } from '../static/group.mjs';

export const FAST = 1000; // PBKDF2 iterations for tests that are not about the iteration count

export class FakeHub {
  constructor({ room = 'r', server = 'srv', window = 180000 } = {}) {
    this.room = room;
    this.server = server;
    this.window = window;
    this.seq = 0;
    this.kept = [];           // {seq, sid, body, at}: broadcast frames of the window
    this.clients = new Map(); // name -> client (in the room: live or away)
    this.order = [];          // names in join order
    this.transcript = [];     // every frame relayed: {from, sid, body, to?, seq?}
    this.timers = [];
    this.clock = 1700000000000;
    this.keys = new Map();    // passphrase -> room keys
  }

  now = () => this.clock;
  setTimer = (fn) => { this.timers.push(fn); };

  async roomKeys(pass) {
    if (!this.keys.has(pass)) this.keys.set(pass, await deriveRoom(pass, this.server, this.room, FAST));
    return this.keys.get(pass);
  }

  async group(pass, opts = {}) {
    return Group.create({ keys: await this.roomKeys(pass), now: this.now, setTimer: this.setTimer, window: this.window, ...opts });
  }

  // add makes a client with its own keys and joins it; its events are kept
  // in client.events.
  async add(name, pass = 'pw', opts = {}) {
    const { mute, group, ...gopts } = opts;
    const c = { name, pass, inbox: [], events: [], since: 0, group: group || await this.group(pass, gopts) };
    // A mute client's page sends nothing (its frames are the test's to make).
    c.group.onFrame = mute ? () => {} : (fr) => this.relay(c, fr);
    c.group.onEvent = (ev) => c.events.push(ev);
    this.attach(c);
    return c;
  }

  // attach joins a client as a new session (a fresh sid), as after a
  // reconnect that could not resume, or a server restart.
  attach(c) {
    c.sid = toBase64url(randomBytes(16));
    c.away = false;
    this.clients.set(c.name, c);
    this.order.push(c.name);
    for (const o of this.others(c)) o.inbox.push({ kind: 'join', name: c.name, sid: c.sid });
    c.inbox.push({ kind: 'welcome', you: c.name, sid: c.sid, members: this.members(), resumed: false });
    for (const k of this.kept) c.inbox.push(this.catchup(k));
    c.inbox.push({ kind: 'caughtUp' });
  }

  members() {
    return this.order.map((n) => {
      const c = this.clients.get(n);
      return c.away ? { name: n, sid: c.sid, away: true } : { name: n, sid: c.sid };
    });
  }

  catchup(k) {
    const sender = [...this.clients.values()].find((o) => o.sid === k.sid);
    const f = { sid: k.sid, body: k.body, seq: k.seq, old: true };
    if (sender) f.from = sender.name;
    return f;
  }

  others(c) { return [...this.clients.values()].filter((o) => o !== c); }

  relay(c, { body, to }) {
    if (this.clients.get(c.name) !== c || c.away) return; // left or away: its frames go nowhere
    this.send(c, { body: toBase64(body), to });
  }

  // send relays a base64 body as c's session, as the hub would: a test uses
  // it to make a member say anything.
  send(c, { body, to }) {
    const f = to ? { from: c.name, sid: c.sid, to, body } : { from: c.name, sid: c.sid, body, seq: ++this.seq };
    this.transcript.push(f);
    if (to) {
      const t = this.clients.get(to);
      if (t && !t.away) t.inbox.push({ ...f });
      return;
    }
    this.kept.push({ seq: f.seq, sid: c.sid, body, at: this.clock });
    this.kept = this.kept.filter((k) => this.clock - k.at <= this.window);
    for (const o of this.others(c)) if (!o.away) o.inbox.push({ ...f });
  }

  // away drops a member's connection: its session stays for the window.
  away(name) {
    const c = this.clients.get(name);
    c.away = true;
    c.inbox = [];
    for (const o of this.others(c)) o.inbox.push({ kind: 'away', name, sid: c.sid });
  }

  // back resumes an away member's session: the frames after its since.
  back(name) {
    const c = this.clients.get(name);
    c.away = false;
    for (const o of this.others(c)) o.inbox.push({ kind: 'back', name, sid: c.sid });
    c.inbox.push({ kind: 'welcome', you: c.name, sid: c.sid, members: this.members(), resumed: true });
    for (const k of this.kept) if (k.seq > c.since) c.inbox.push(this.catchup(k));
    c.inbox.push({ kind: 'caughtUp' });
  }

  leave(name) {
    const c = this.clients.get(name);
    this.clients.delete(name);
    this.order = this.order.filter((n) => n !== name);
    for (const o of this.clients.values()) o.inbox.push({ kind: 'leave', name, sid: c.sid });
    if (!this.clients.size) this.kept = [];
    return c;
  }

  // restart forgets every session and kept frame, as a server restart does;
  // the clients keep their pages (groups) and rejoin with attach.
  restart() {
    const all = [...this.clients.values()];
    this.clients.clear();
    this.order = [];
    this.kept = [];
    this.seq = 0;
    for (const c of all) c.inbox = [];
    return all;
  }

  // send seals text in name's client (which relays it through onFrame)
  // and returns the envelope.
  async say(name, text) {
    return this.clients.get(name).group.seal(text);
  }

  // settle delivers every queued frame and fires every armed timer until
  // nothing moves.
  async settle() {
    for (let rounds = 0; rounds < 2000; rounds++) {
      let moved = false;
      for (const c of [...this.clients.values()]) {
        while (c.inbox.length && this.clients.get(c.name) === c) {
          moved = true;
          await deliver(c, c.inbox.shift());
        }
      }
      if (!moved && this.timers.length) {
        for (const fn of this.timers.splice(0)) fn();
        moved = true;
      }
      for (const c of this.clients.values()) await c.group.queue;
      if (!moved) return;
    }
    throw new Error('the room never settled');
  }

  // tick moves the clock and runs every client's sweep.
  async tick(ms) {
    this.clock += ms;
    for (const c of this.clients.values()) await c.group.sweep();
    await this.settle();
  }
}

export async function deliver(c, item) {
  switch (item.kind) {
    case 'welcome': return c.group.welcome(item);
    case 'caughtUp': return c.group.caughtUp();
    case 'join': return c.group.join(item);
    case 'away': return c.group.away(item);
    case 'back': return c.group.back(item);
    case 'leave': return c.group.leave(item);
    default:
      if (item.seq) c.since = Math.max(c.since, item.seq);
      return c.group.receive(item);
  }
}

// texts returns the messages a client showed, as "sender: text".
export function texts(c) {
  return c.events.filter((e) => e.type === 'message').map((e) => `${e.sender}: ${e.text}`);
}

export function notices(c) {
  return c.events.filter((e) => e.type === 'notice').map((e) => e.text);
}
