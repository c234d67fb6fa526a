// fakerelay.mjs: an in-memory relay that speaks relay protocol version 2
// as JSON frames over fake WebSockets (docs/protocol.md §1–§6), with a fake
// clock, for the page's tests: the server frame, joins with resume and
// since, sids, seqs, kept frames and catch-up, away/back/leave, `sent`, the
// Delivery Service (one commit per epoch, the first; `over` one found
// invalid; the room's sealed GroupInfo kept and handed out), the
// per-connection rate (frames over it are dropped with rate_limited),
// transport drops and server restarts. A test can also be the relay's
// enemy: `tamper` sees and may change or drop every frame the relay
// sends, `inject` sends any frame as any session. The Go hub is the real
// thing and is tested in package hub; this one exists so that the page's
// logic can be tested without a browser.
import { toBase64url, randomBytes } from '../static/bytes.mjs';

export const LIMITS = { frame: 65536, rate: 10, burst: 40, members: 100, ping: 20000, window: 180000, bytes: 192 << 10, file: 10 << 20 };

// Clock is a fake time source with timers, shared by the relay and the
// sessions under test.
export class Clock {
  constructor(t = 1700000000000) { this.t = t; this.timers = new Map(); this.nextId = 1; }
  now = () => this.t;
  setTimer = (fn, ms) => { const id = this.nextId++; this.timers.set(id, { at: this.t + Math.max(0, ms | 0), fn }); return id; };
  clearTimer = (id) => { this.timers.delete(id); };
  setRepeat = (fn, ms) => { const id = this.nextId++; this.timers.set(id, { at: this.t + ms, fn, every: ms }); return id; };
  clearRepeat = (id) => { this.timers.delete(id); };
  // due runs the timers due by now, earliest first; it returns whether any ran.
  due() {
    let ran = false;
    for (;;) {
      let best = null;
      for (const [id, t] of this.timers) if (t.at <= this.t && (!best || t.at < best[1].at)) best = [id, t];
      if (!best) return ran;
      const [id, t] = best;
      if (t.every) t.at += t.every; else this.timers.delete(id);
      t.fn();
      ran = true;
    }
  }
}

class FakeSocket {
  constructor(relay, peer) {
    this.relay = relay;
    this.peer = peer;
    this.readyState = 0;
    this.onopen = null;
    this.onmessage = null;
    this.onclose = null;
    this.sent = [];          // every frame the client sent, parsed
    this.conn = null;
  }

  send(data) {
    if (this.readyState !== 1) throw new Error('send on a closed socket');
    const f = JSON.parse(data);
    this.sent.push(f);
    this.relay.inbound.push({ sock: this, f, n: data.length });
  }

  close(code = 1000) {
    if (this.readyState >= 2) return;
    this.readyState = 3;
    if (this.blackholed) return; // the close frame never arrives: the relay finds out when the page resumes
    this.relay.closed(this, code, code !== 4001);
  }
}

export class FakeRelay {
  constructor({ server = 'local:test', limits = {}, clock = new Clock() } = {}) {
    this.server = server;
    this.limits = { ...LIMITS, ...limits };
    this.clock = clock;
    this.inbound = [];   // {sock, f}: client frames not yet handled
    this.outbound = [];  // {sock, f | close}: server frames not yet delivered
    this.sockets = new Set();
    this.rooms = new Map();
    this.sessions = [];  // sessions under test, awaited by settle
    this.dropped = 0;    // frames dropped for the rate
    this.log = [];       // every relayed msg frame: {room, sid, from, to, seq, body, commit}
    this.tamper = null;  // (sock, f) => f, a changed f, or null to drop it: a hostile relay
  }

  connect = (url) => {
    const s = new FakeSocket(this, url);
    if (this.silent) { s.readyState = 0; s.conn = { session: null }; return s; } // never answers
    this.sockets.add(s);
    s.conn = { tokens: this.limits.burst, at: this.clock.now(), bytes: 4 * this.limits.frame, session: null };
    this.outbound.push({ sock: s, open: true });
    this.outbound.push({ sock: s, f: { v: 2, type: 'server', server: this.server, limits: this.limits } });
    return s;
  };

  // dead is a connection attempt that fails (no route, the server down):
  // the page sees it close with 1006.
  dead = () => {
    const s = new FakeSocket(this, 'dead');
    s.readyState = 3;
    s.conn = { session: null };
    this.outbound.push({ sock: s, close: 1006 });
    return s;
  };

  watch(...sessions) { this.sessions.push(...sessions); }

  room(id) {
    if (!this.rooms.has(id)) this.rooms.set(id, { id, seq: 0, kept: [], members: new Map(), info: '', commits: new Map() });
    return this.rooms.get(id);
  }

  push(sock, f) {
    if (!sock || sock.readyState !== 1 || sock.blackholed) return;
    if (this.tamper) {
      f = this.tamper(sock, f);
      if (!f) return;
    }
    this.outbound.push({ sock, f });
  }

  // ---------------------------------------------------------------- client frames

  handle(sock, f, n) {
    if (sock.blackholed) return;
    const c = sock.conn;
    const now = this.clock.now();
    c.tokens = Math.min(this.limits.burst, c.tokens + ((now - c.at) / 1000) * this.limits.rate);
    c.bytes = Math.min(4 * this.limits.frame, c.bytes + ((now - c.at) / 1000) * this.limits.bytes);
    c.at = now;
    if (c.tokens < 1 || c.bytes < n) {
      this.dropped++;
      sock.dropped = (sock.dropped || 0) + 1;
      this.push(sock, { v: 2, type: 'error', code: 'rate_limited', message: 'too many frames' });
      return;
    }
    c.tokens--;
    c.bytes -= n;
    if (f.v !== 2) return this.push(sock, { v: 2, type: 'error', code: 'bad_version', message: 'this page is an older version of onionchat: reload the page' });
    switch (f.type) {
      case 'join': return this.join(sock, f);
      case 'msg': return this.msg(sock, f);
      case 'commit': return this.commit(sock, f);
      case 'info': return this.info(sock, f);
      case 'ping': return this.push(sock, { v: 2, type: 'pong' });
    }
    return undefined;
  }

  join(sock, f) {
    const err = (code, message) => this.push(sock, { v: 2, type: 'error', code, message, ref: f.id });
    if (sock.conn.session) return err('already_joined', 'this connection has joined a room already');
    if (!/^[A-Za-z0-9_-]{22}$/.test(f.room)) return err('bad_room', 'not a room id');
    const r = this.room(f.room);
    const key = f.name.toLowerCase();
    let s = [...r.members.values()].find((m) => m.key === key);
    let resumed = false;
    if (s && f.resume && f.resume === s.resume) {
      resumed = true;
      if (s.sock) { const old = s.sock; s.sock = null; this.push(old, { v: 2, type: 'error', code: 'replaced', message: 'replaced' }); this.kill(old, 4000); }
    } else if (s) {
      return err('name_taken', 'someone in this room uses that name');
    } else {
      s = { sid: toBase64url(randomBytes(16)), name: f.name, key, resume: toBase64url(randomBytes(18)), joinSeq: r.seq, away: false };
    }
    const wasAway = s.away;
    s.sock = sock;
    s.away = false;
    s.room = r;
    sock.conn.session = s;
    const since = resumed && Number.isSafeInteger(f.since) ? f.since : 0;
    const catchup = r.kept.filter((k) => k.seq > since);
    const gap = resumed && r.kept.length && r.kept[0].seq > since + 1 ? r.kept[0].seq - since - 1 : 0;
    if (!resumed) {
      for (const m of r.members.values()) this.push(m.sock, { v: 2, type: 'join', name: s.name, sid: s.sid });
      r.members.set(s.sid, s);
    } else if (wasAway) {
      for (const m of r.members.values()) if (m !== s) this.push(m.sock, { v: 2, type: 'back', name: s.name, sid: s.sid });
    }
    const members = [...r.members.values()].map((m) => (m.away ? { name: m.name, sid: m.sid, away: true } : { name: m.name, sid: m.sid }));
    const w = { v: 2, type: 'welcome', room: r.id, you: s.name, sid: s.sid, resume: s.resume, server: this.server, members, limits: this.limits, seq: r.seq, resumed, catchup: catchup.length, gap };
    if (r.info) w.info = r.info;
    this.push(sock, w);
    for (const k of catchup) {
      const sender = r.members.get(k.sid);
      const m = { v: 2, type: 'msg', seq: k.seq, sid: k.sid, body: k.body, old: true };
      if (k.commit !== undefined) m.commit = k.commit;
      if (sender) m.from = sender.name;
      this.push(sock, m);
    }
  }

  msg(sock, f) {
    const s = sock.conn.session;
    if (!s) return this.push(sock, { v: 2, type: 'error', code: 'not_joined', message: 'join a room first', ref: f.id });
    const r = s.room;
    if (f.to) {
      const t = [...r.members.values()].find((m) => m.name === f.to);
      if (!t || t === s) return this.push(sock, { v: 2, type: 'error', code: 'no_such_member', message: 'nobody of that name', ref: f.id });
      this.log.push({ room: r.id, sid: s.sid, from: s.name, to: f.to, body: f.body });
      this.push(t.sock, { v: 2, type: 'msg', sid: s.sid, from: s.name, to: t.name, body: f.body });
      return undefined;
    }
    if (f.bulk === true) {
      this.log.push({ room: r.id, sid: s.sid, from: s.name, bulk: true, body: f.body });
      for (const m of r.members.values()) if (m !== s) this.push(m.sock, { v: 2, type: 'msg', sid: s.sid, from: s.name, body: f.body, bulk: true });
      return undefined;
    }
    this.broadcast(r, s, f.body, f.id);
    return undefined;
  }

  // broadcast relays body from s to every other member with the room's next
  // seq, keeps it, and answers s with `sent` if it gave an id.
  broadcast(r, s, body, id, commit) {
    const seq = ++r.seq;
    const to = [...r.members.values()].filter((m) => m !== s);
    r.kept.push({ seq, sid: s.sid, body, at: this.clock.now(), commit });
    this.expire(r);
    this.log.push({ room: r.id, sid: s.sid, from: s.name, seq, body, commit });
    for (const m of to) {
      const f = { v: 2, type: 'msg', seq, sid: s.sid, from: s.name, body };
      if (commit !== undefined) f.commit = commit;
      this.push(m.sock, f);
    }
    if (id) this.push(s.sock, { v: 2, type: 'sent', id, seq });
    return seq;
  }

  // commit is the Delivery Service: the first commit for an epoch wins and
  // is relayed (its GroupInfo kept as the room's); a later one for the same
  // epoch is refused, unless it names the winner's seq in `over` (its
  // sender found it invalid) and that sender has not done so for the epoch.
  commit(sock, f) {
    const s = sock.conn.session;
    if (!s) return this.push(sock, { v: 2, type: 'error', code: 'not_joined', message: 'join a room first', ref: f.id });
    const r = s.room;
    const w = r.commits.get(f.epoch);
    if (w && !(f.over !== undefined && f.over === w.seq && !w.over.has(s.sid))) {
      return this.push(sock, { v: 2, type: 'error', code: 'commit_conflict', message: 'another commit was first for this epoch', ref: f.id, epoch: f.epoch, seq: w.seq });
    }
    const seq = this.broadcast(r, s, f.body, f.id, f.epoch);
    const over = w ? w.over : new Set();
    if (w) over.add(s.sid);
    r.commits.set(f.epoch, { seq, over });
    if (f.info) r.info = f.info;
    return undefined;
  }

  // info keeps a room's first GroupInfo (and tells the room), or answers
  // with the one it keeps.
  info(sock, f) {
    const s = sock.conn.session;
    if (!s) return undefined;
    const r = s.room;
    if (f.body && !r.info) {
      r.info = f.body;
      for (const m of r.members.values()) if (m !== s) this.push(m.sock, { v: 2, type: 'info', body: r.info });
      return undefined;
    }
    if (r.info) this.push(sock, { v: 2, type: 'info', body: r.info });
    return undefined;
  }

  // inject sends a raw frame as the session of name, as a hostile member's
  // page (or a hostile relay) would.
  inject(name, f) {
    for (const sock of this.sockets) {
      const s = sock.conn.session;
      if (s && s.name === name) { this.handle(sock, { v: 2, ...f }, 0); return; }
    }
    throw new Error(`no session ${name}`);
  }

  expire(r) {
    const now = this.clock.now();
    while (r.kept.length && now - r.kept[0].at > this.limits.window) r.kept.shift();
  }

  // ---------------------------------------------------------------- connections

  kill(sock, code) {
    if (sock.readyState >= 2) return;
    sock.readyState = 3;
    this.outbound.push({ sock, close: code });
    this.closed(sock, code, false);
  }

  // closed ends a connection: a client close (any close frame) is a
  // leave; a transport failure makes the session away.
  closed(sock, code, byClient) {
    this.sockets.delete(sock);
    const s = sock.conn.session;
    sock.conn.session = null;
    if (!s || s.sock !== sock) return;
    s.sock = null;
    const r = s.room;
    if (byClient) return this.leave(r, s);
    s.away = true;
    s.awayAt = this.clock.now();
    for (const m of r.members.values()) if (m !== s) this.push(m.sock, { v: 2, type: 'away', name: s.name, sid: s.sid });
    return undefined;
  }

  leave(r, s) {
    r.members.delete(s.sid);
    for (const m of r.members.values()) this.push(m.sock, { v: 2, type: 'leave', name: s.name, sid: s.sid });
    if (!r.members.size) this.rooms.delete(r.id);
  }

  // drop cuts a client's connection as a failing transport would (no close
  // frame): the page sees 1006 and reconnects; its session is away.
  drop(sessionName) {
    for (const sock of [...this.sockets]) {
      const s = sock.conn.session;
      if (s && s.name === sessionName) this.kill(sock, 1006);
    }
  }

  // blackhole makes a client's connection half-open: nothing goes through
  // either way, and nobody is told.
  blackhole(sessionName) {
    for (const sock of this.sockets) {
      const s = sock.conn.session;
      if (s && s.name === sessionName) sock.blackholed = true;
    }
  }

  // restart forgets everything, as a server restart does.
  restart() {
    for (const sock of [...this.sockets]) { sock.conn.session = null; this.kill(sock, 1001); }
    this.rooms.clear();
    this.inbound = [];
  }

  // sweep ends away sessions whose window has passed.
  sweep() {
    const now = this.clock.now();
    for (const r of [...this.rooms.values()]) {
      this.expire(r);
      for (const s of [...r.members.values()]) if (s.away && now - s.awayAt > this.limits.window) this.leave(r, s);
    }
  }

  // ---------------------------------------------------------------- driving

  // settle delivers frames both ways and runs due timers until nothing
  // moves, awaiting the sessions' crypto in between.
  async settle() {
    for (let round = 0; round < 10000; round++) {
      let moved = false;
      while (this.inbound.length) {
        const { sock, f, n } = this.inbound.shift();
        this.handle(sock, f, n || 0);
        moved = true;
      }
      while (this.outbound.length) {
        const o = this.outbound.shift();
        moved = true;
        if (o.open) { if (o.sock.readyState === 0) { o.sock.readyState = 1; if (o.sock.onopen) o.sock.onopen(); } continue; }
        if (o.close !== undefined) { if (o.sock.onclose) o.sock.onclose({ code: o.close }); continue; }
        if (o.sock.readyState === 1 && o.sock.onmessage) o.sock.onmessage({ data: JSON.stringify(o.f) });
      }
      if (this.clock.due()) moved = true;
      await idle(this.sessions);
      if (!moved && !this.inbound.length && !this.outbound.length) {
        await idle(this.sessions);
        if (!this.inbound.length && !this.outbound.length) return;
      }
    }
    throw new Error('the relay never settled');
  }

  // advance moves the clock by ms in steps of step ms, settling at each.
  async advance(ms, step = 100) {
    const end = this.clock.t + ms;
    while (this.clock.t < end) {
      this.clock.t = Math.min(end, this.clock.t + step);
      this.sweep();
      await this.settle();
    }
  }
}

async function idle(sessions) {
  for (let i = 0; i < 3; i++) {
    for (const s of sessions) {
      if (s.group) await s.group.queue;
      while (s.work && s.work.size) await Promise.allSettled([...s.work]);
      if (s.group) await s.group.queue;
    }
    await new Promise((r) => setImmediate(r));
  }
}
