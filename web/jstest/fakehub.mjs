// fakehub.mjs: an in-memory stand-in for the hub, for the version 2 tests.
// It relays like the real one (each sender's frames in order, broadcasts
// to everyone else, `to` to one member, join and leave events, an optional
// backlog without sender names) and records every frame it relays, so a
// test can replay the transcript into another client.
import { deriveRoomKey } from '../static/roomkey.mjs';
import { toBase64 } from '../static/bytes.mjs';
import { Group } from '../static/group.mjs';

export const FAST = 1000; // PBKDF2 iterations for tests that are not about the iteration count

export class FakeHub {
  constructor({ room = 'r', server = 'srv', history = 0 } = {}) {
    this.room = room;
    this.server = server;
    this.historyMax = history;
    this.backlog = [];      // base64 bodies of broadcast messages
    this.clients = new Map(); // name -> client
    this.order = [];        // names in join order
    this.transcript = [];   // every frame relayed: {from, body, to?}
    this.timers = [];
    this.clock = 1700000000000;
  }

  now = () => this.clock;
  setTimer = (fn) => { this.timers.push(fn); };

  async group(name, pass) {
    const roomKey = await deriveRoomKey(pass, this.server, this.room, FAST);
    return Group.create({ roomKey, room: this.room, name, now: this.now, setTimer: this.setTimer });
  }

  // add joins a new client with its own keys and returns it; its events are
  // kept in client.events.
  async add(name, pass = 'pw', group) {
    const c = { name, inbox: [], events: [], group: group || await this.group(name, pass) };
    c.group.onFrame = (fr) => this.relay(c, fr);
    c.group.onEvent = (ev) => c.events.push(ev);
    this.attach(c);
    return c;
  }

  // attach puts a client into the room (used by add, and to bring back an
  // old client object).
  attach(c) {
    this.clients.set(c.name, c);
    this.order.push(c.name);
    for (const o of this.others(c)) o.inbox.push({ kind: 'join', name: c.name });
    c.inbox.push({ kind: 'welcome', members: this.order.slice(), history: this.backlog.length });
    for (const body of this.backlog) c.inbox.push({ history: true, age: 1, body });
  }

  others(c) { return [...this.clients.values()].filter((o) => o !== c); }

  relay(c, { body, to }) {
    if (!this.clients.has(c.name)) return; // left: its frames go nowhere
    const b64 = toBase64(body);
    const f = to ? { from: c.name, to, body: b64 } : { from: c.name, body: b64 };
    this.transcript.push(f);
    if (to) {
      const t = this.clients.get(to);
      if (t) t.inbox.push({ ...f });
      return;
    }
    for (const o of this.others(c)) o.inbox.push({ ...f });
    if (this.historyMax > 0) {
      this.backlog.push(b64);
      if (this.backlog.length > this.historyMax) this.backlog.shift();
    }
  }

  leave(name) {
    const c = this.clients.get(name);
    this.clients.delete(name);
    this.order = this.order.filter((n) => n !== name);
    for (const o of this.clients.values()) o.inbox.push({ kind: 'leave', name });
    return c;
  }

  // send seals text in name's client (which relays it through onFrame)
  // and returns the envelope.
  async send(name, text) {
    return this.clients.get(name).group.seal(text);
  }

  // settle delivers every queued frame and fires every armed timer until
  // nothing moves.
  async settle() {
    for (let rounds = 0; rounds < 1000; rounds++) {
      let moved = false;
      for (const c of [...this.clients.values()]) {
        while (c.inbox.length) {
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
}

export async function deliver(c, item) {
  switch (item.kind) {
    case 'welcome': return c.group.welcome(item);
    case 'join': return c.group.join(item.name, !!item.resumed);
    case 'leave': return c.group.leave(item.name);
    default: return c.group.receive(item);
  }
}

// texts returns the messages a client showed, as "sender: text".
export function texts(c) {
  return c.events.filter((e) => e.type === 'message').map((e) => `${e.sender}: ${e.text}`);
}

export function notices(c) {
  return c.events.filter((e) => e.type === 'notice').map((e) => e.text);
}
