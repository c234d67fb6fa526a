// group.mjs: one browser session's view of one room under protocol version
// 4 (docs/protocol.md §10–§12): the room's MLS group (RFC 9420, through
// mls.mjs), and the few rules MLS leaves to the application:
//
//   - the group is the room: whoever is a leaf of its ratchet tree can read
//     what is sent next, and is on the member list (away ones marked as
//     reconnecting); a leaf is named by its credential, the name the relay
//     stored, and is present while the relay session it last said it
//     speaks through ("here", signed inside the group) is;
//   - admission is the passphrase: the room's GroupInfo travels sealed under
//     the frame key, the relay keeps the latest, and a newcomer joins by an
//     external commit; the first member makes the group;
//   - the relay is the Delivery Service: it relays one commit per epoch (the
//     first it gets) and refuses the others; every page takes the first
//     valid commit of its epoch in the relay's order, and a page that finds
//     the relay's commit invalid may send another over it;
//   - a member gone (the relay said it left, or it has not been back for
//     GRACE_MS, a constant of this page, never the relay's) is removed by a
//     commit before anyone here sends again;
//   - room messages carry their sender's count and hash chain in the epoch;
//     every page acknowledges what it has, signed, inside the group:
//     "delivered" is every member's word, and a member shown another
//     history than the others finds out;
//   - every notice one sender's frames cause shares one budget.
//
// It does no I/O: relay events go in (welcome, caughtUp, join/away/back/
// leave, receive, onInfo, commitResult), frames to send come out through
// onFrame in the order they must go, and what people should see comes out
// through onEvent as typed events that view.mjs puts into words.

import { toHex, fromBase64, fromBase64url, toBase64url, equal, concat, subtle, u32 } from './bytes.mjs';
import * as mls from './mls.mjs';
import { publicBytes, safetyCode, newSigningPair } from './identity.mjs';
import {
  T_MLS, T_GROUPINFO, T_CHUNK, K_TEXT, K_OFFER, K_CANCEL, K_DECLINE, K_HERE, K_RECEIVED, K_ACK, HASH_BYTES, ACK_ENTRY_BYTES, SID_BYTES,
  EnvelopeError, context, seal, open, roomContent, parseContent, ackContent, chainNext, textPayload, readText,
  maxTextBytes, BUCKETS, makeChunk, parseChunk, importFileKey,
} from './envelope.mjs';

export const MAX_TEXT_CHARS = 8000;
export const GRACE_MS = 180000;         // a member not back this long is removed (a page constant, never the relay's)
export const REMOVE_STAGGER_MS = 3000;  // members wait their turn to commit a removal: the first present leaf at once
export const HERE_WAIT_MS = 30000;      // a session of a leaf's name that has not said it is that leaf by then is someone new
export const REFRESH_EVERY_MS = 30000;  // the relay's GroupInfo is older than ours: refresh it at most this often
export const INFO_WAIT_MS = 10000;      // others present but no GroupInfo: ask, then make the group
export const JOIN_RETRY_MS = 1000;      // an external commit that lost: try again after this (times the attempt) …
export const JOIN_RETRY_MAX_MS = 10000; // … at most this
export const HELD_MAX = 200;            // frames of a later epoch waiting for its commit, all senders
export const HELD_MS = 20000;           // … reported after this long
export const GAP_MS = 20000;            // a room message still missing this long is reported
export const ACK_EVERY_MS = 2000;       // acknowledgements: at most one per this
export const WAITING_AFTER_MS = 3000;   // a message not yet acknowledged by everyone this long shows "waiting"
export const NOTICE_EVERY_MS = 5000;    // problems with one sender's frames: one notice per this, the rest counted
export const SEEN_MAX = 5000;           // bodies remembered, to drop copies silently
export const MAX_OUT = 500;             // own room messages whose delivery is followed
export const MAX_CHAIN_HEADS = 256;     // chain values kept per sender and epoch, to compare acknowledgements
export const MAX_OVERRIDES = 4;         // commits this page sends over ones the relay took for one epoch
export const COMMITS_PER_WINDOW = 20;   // one member's commits per COMMIT_WINDOW_MS beyond which the page says so
export const COMMIT_WINDOW_MS = 60000;

const LABEL_FILE = 'onionchat/4 file';

// Group is this page session in one room.
export class Group {
  // create makes this page session's signing key (or uses a kept one).
  // keys are the room's derived keys (roomkey.mjs: roomId, frameKey).
  static async create({ keys, signing, now, setTimer, clearTimer, maxBucket }) {
    const pair = signing || await newSigningPair();
    const pub = await publicBytes(pair);
    return new Group({ pair, pub, code: await safetyCode(pub), cs: await mls.suite(), keys, now, setTimer, clearTimer, maxBucket });
  }

  constructor({ pair, pub, code, cs, keys, now, setTimer, clearTimer, maxBucket }) {
    this.pair = pair;
    this.pub = pub;
    this.code = code;
    this.cs = cs;
    this.signer = mls.register(pair);
    this.roomId = keys.roomId;
    this.groupId = fromBase64url(keys.roomId);
    this.frameKey = keys.frameKey;
    this.ctx = context(keys.roomId);
    this.now = now || (() => Date.now());
    this.setTimer = setTimer || ((fn, ms) => setTimeout(fn, ms));
    this.clearTimer = clearTimer || ((t) => clearTimeout(t));
    this.setLimits({ maxBucket });
    this.onFrame = () => {}; // {type: "msg"|"commit"|"info", body, bulk?, epoch?, info?, over?, kind, tag?, token?}
    this.onEvent = () => {};

    this.name = '';
    this.sid = '';
    this.state = null;          // the MLS group state, once a member
    this.removed = false;       // our copy of the group is not the room's any more: we join again
    this.pending = null;        // our commit (or external join) the relay has not yet taken or refused
    this.joining = null;        // {attempts, timer}: not a member (yet, or again)
    this.joinedAt = -1;         // the epoch we joined at: frames of earlier epochs are not ours to read
    this.sessions = new Map();  // sid -> {name, away, at}: the relay's sessions in the room, ours excluded
    this.leafSeen = new Map();  // leaf index -> {name, code, key, sid, lastHere, leftAt}
    this.codes = new Map();     // name -> safety code first seen under it in this page session
    this.changed = new Set();   // names whose code changed in this page session
    this.hubInfo = null;        // the sealed GroupInfo the relay keeps (base64), as last heard
    this.infoWaitSince = 0;
    this.newSession = false;    // a new relay session: compare, say where we are
    this.needHere = false;
    this.catchingUp = false;
    this.earlier = 0;
    this.winners = new Map();   // epoch -> {seq, valid}: the commit the relay took for it
    this.overridden = new Map(); // epoch -> how many commits we sent over the relay's for it
    this.future = [];           // {f, epoch, at, who}: frames of a later epoch than ours, in order
    this.seen = new Set();      // hex(SHA-256(body)) of frames handled
    this.gens = new Map();      // `${leaf}:${epoch}:${generation}` -> hex hash of the body
    this.chains = new Map();    // `${leaf}:${epoch}` -> {leaf, epoch, name, next, head, heads, missing, missingSince, pending}
    this.mine = { epoch: -1, index: 0, head: new Uint8Array(HASH_BYTES) }; // our own chain
    this.outs = [];             // own room messages followed for delivery
    this.exporters = new Map(); // epoch -> exporter secret (current and previous epoch only)
    this.wantsToSend = false;   // the session has messages waiting (set by it)
    this.removalSince = 0;
    this.ackAt = -Infinity;
    this.ackTimer = 0;
    this.suppressed = new Map(); // source -> {at, n, name}
    this.commitCounts = new Map(); // name -> {n, since}: commits followed, per member
    this.introduced = false;
    this.lastList = '';
    this.destroyed = false;
    this.queue = Promise.resolve();
  }

  setLimits({ maxBucket } = {}) {
    this.maxBucket = maxBucket || BUCKETS[BUCKETS.length - 1];
    this.maxTextBytes = maxTextBytes(this.maxBucket);
  }

  get epoch() { return this.state ? mls.epochOf(this.state) : -1; }
  get me() { return this.state ? mls.ownIndex(this.state) : -1; }
  get member() { return !!this.state && !this.removed; }

  // ---------------------------------------------------------------- inputs

  // Every input runs after the previous one has finished, so frames are
  // handled in arrival order and frames come out in the order they must go.
  // An input that fails is reported; sealRoom's errors go to its caller.
  run(fn, report = true) {
    const p = this.queue.then(() => (this.destroyed ? undefined : fn()));
    this.queue = p.catch((e) => { if (report) this.onEvent({ type: 'internal', error: String((e && e.message) || e) }); });
    return report ? this.queue : p;
  }

  // welcome: we joined. you and sid are ours; members are the relay's
  // [{name, sid, away}], ours included; resumed says the relay took back
  // our session; info is the room's sealed GroupInfo the relay keeps, if any.
  welcome({ you, sid, members, resumed = false, info }) {
    return this.run(async () => {
      const same = resumed && sid === this.sid;
      this.name = you;
      this.sid = sid;
      this.catchingUp = true;
      const now = this.now();
      this.sessions = new Map(members.filter((m) => m.sid !== sid).map((m) => [m.sid, { name: m.name, away: !!m.away, at: now }]));
      if (typeof info === 'string' && info) this.hubInfo = info;
      else if (!same) this.hubInfo = null;
      if (!same) {
        this.newSession = true;
        this.needHere = true;
      }
      if (this.pending) {
        // Our commit went out on the connection that dropped: the relay's
        // GroupInfo says whether it was taken (ours is the latest) or not.
        const p = this.pending;
        this.pending = null;
        if (p.info === info) {
          this.winners.set(p.epoch, { seq: 0, valid: true });
          await this.taken(p);
        } else {
          mls.wipe(p.consumed);
        }
      }
      this.membersChanged();
    });
  }

  // caughtUp: every catch-up frame that followed the welcome has been
  // handed to receive. Now the page takes its place in the room's group:
  // joins it, makes it, or checks its copy against the relay's.
  caughtUp() {
    return this.run(async () => {
      this.catchingUp = false;
      this.reportEarlier();
      await this.settle();
      this.membersChanged();
    });
  }

  join({ name, sid }) {
    return this.run(async () => {
      this.sessions.set(sid, { name, away: false, at: this.now() });
      this.membersChanged();
    });
  }

  away({ sid }) { return this.run(async () => this.setAway(sid, true)); }
  back({ sid }) { return this.run(async () => this.setAway(sid, false)); }

  setAway(sid, away) {
    const s = this.sessions.get(sid);
    if (!s) return;
    s.away = away;
    this.membersChanged();
  }

  leave({ sid }) {
    return this.run(async () => {
      if (!this.sessions.delete(sid)) return;
      for (const l of this.leafSeen.values()) if (l.sid === sid) l.leftAt = this.now();
      this.membersChanged();
      await this.settle();
    });
  }

  // receive handles a msg frame from the relay: {sid, from, to, body, seq,
  // old, bulk, commit}.
  receive(f) { return this.run(() => this.handle(f)); }

  // onInfo: the relay sent the room's sealed GroupInfo (one was stored, or
  // we asked for it).
  onInfo(body) {
    return this.run(async () => {
      if (typeof body !== 'string' || !body) return;
      this.hubInfo = body;
      if (this.member) this.newSession = true; // compare it with ours
      if (!this.catchingUp) await this.settle();
    });
  }

  // commitResult: the relay took our commit (ok, with its seq) or refused
  // it (another was first for that epoch).
  commitResult(token, { ok, seq }) {
    return this.run(async () => {
      const p = this.pending;
      if (!p || p.token !== token) return;
      this.pending = null;
      if (ok) {
        this.winners.set(p.epoch, { seq, valid: true });
        await this.taken(p);
        await this.settle();
        return;
      }
      mls.wipe(p.consumed);
      if (p.join) {
        // Another commit was first: the relay's GroupInfo is newer now.
        this.hubInfo = null;
        this.joining.attempts++;
        this.joining.tried = this.now();
        this.onFrame({ type: 'info', kind: 'info' });
        return;
      }
      // A member's change is planned again: after the winner is read, or
      // over it if it was found invalid.
      await this.settle();
    });
  }

  // taken makes our commit p, which the relay took, our state.
  async taken(p) {
    this.hubInfo = p.info;
    this.newSession = false;
    if (p.join) {
      this.leafSeen.clear();
      this.introduced = false;
    }
    await this.adopt(p.newState, p.consumed);
    if (p.join) {
      this.joining = null;
      this.joinedAt = this.epoch;
      this.bindByName();
      this.needHere = true;
      this.onEvent({ type: 'in-group', epoch: this.epoch, again: p.again });
    }
    this.membersChanged();
  }

  // seal encrypts text as a room message and hands the frame to onFrame:
  // {type: "msg", body, kind: "message", tag}. It resolves to the body.
  seal(text, tag) {
    if (typeof text !== 'string' || text.length === 0) return Promise.reject(new Error('empty message'));
    if (text.length > MAX_TEXT_CHARS) return Promise.reject(new Error(`message longer than ${MAX_TEXT_CHARS} characters`));
    return this.sealRoom(K_TEXT, new TextEncoder().encode(text), tag);
  }

  // sealRoom sends a room message of kind with payload: a text, a file
  // offer, a file cancelled or declined, or our "here".
  sealRoom(kind, payload, tag) {
    return this.run(() => this.sendRoom(kind, payload, tag), false);
  }

  async sendRoom(kind, payload, tag) {
    if (!this.canSend(kind === K_HERE)) throw new Error('not ready to send');
    if (payload.length > this.maxTextBytes) throw new Error('message too long for this server’s frame limit');
    const e = this.epoch;
    if (this.mine.epoch !== e) this.mine = { epoch: e, index: 0, head: new Uint8Array(HASH_BYTES) };
    const content = roomContent(kind, this.mine.index, this.mine.head, this.now(), payload);
    const head = await chainNext(this.mine.head, content);
    const body = await this.application(content);
    const out = {
      epoch: e, index: this.mine.index, chain: toHex(head), tag, at: this.now(), state: '',
      required: new Set(this.others().map((l) => l.index)), acked: new Set(), missed: new Set(),
    };
    if (tag && tag.file) tag.file.required = new Map(this.others().map((l) => [l.index, l.name]));
    this.mine.index++;
    this.mine.head = head;
    this.onFrame({ type: 'msg', body, kind: kind === K_HERE ? 'here' : kind === K_TEXT ? 'message' : 'file', tag });
    if (kind === K_TEXT || kind === K_OFFER) {
      this.outs.push(out);
      while (this.outs.length > MAX_OUT) this.finishOut(this.outs[0], 'unknown');
      if (out.required.size === 0) this.finishOut(out, 'nobody');
    }
    return body;
  }

  // canSend says whether a room message may be sealed now: we are in the
  // room's group, caught up, we said where we are, no change of ours is in
  // flight and nobody gone waits to be removed. Our "here" (only a session
  // id) may go while someone gone still waits.
  canSend(here = false) {
    return this.member && !this.pending && !this.catchingUp && !this.newSession && (here || (!this.needHere && this.gone().length === 0));
  }

  // fileKey derives the key of file id sent by leaf in epoch, from that
  // epoch's exporter secret, if this page still holds it.
  async fileKey(epoch, leaf, id, usage) {
    const secret = this.exporters.get(epoch);
    if (!secret) return null;
    const raw = await mls.exporter(secret, LABEL_FILE, concat(u32(leaf), id), 32);
    return importFileKey(raw, usage);
  }

  // sealChunk makes the envelope of one piece of a file of ours, under the
  // current epoch's key (files.mjs); it goes out as a bulk frame.
  // It resolves to null when the group may not send now (someone gone
  // waits to be removed): the chunk goes later, under the next epoch's key.
  sealChunk({ id, index, data }) {
    return this.run(async () => {
      if (!this.canSend()) return null;
      const epoch = this.epoch;
      const fileKey = await this.fileKey(epoch, this.me, id, 'encrypt');
      const inner = await makeChunk({ fileKey, ctx: this.ctx, id, epoch, index, data });
      return seal(this.frameKey, this.ctx, inner, this.maxBucket);
    }, false);
  }

  // sweep reports what waited too long and does what timers hold back. The
  // session calls it every second; tests call it with their own clock.
  sweep() {
    return this.run(async () => {
      const now = this.now();
      let behind = false;
      this.future = this.future.filter((h) => {
        if (now - h.at < HELD_MS) return true;
        this.problem(h.who, 'later-epoch');
        behind = true;
        return false;
      });
      // Frames of a later epoch whose commit never came: the room moved on
      // without us (the relay withheld a commit, or lost it). We join the
      // room's group again, in place of our own leaf.
      if (behind && this.member && !this.pending && now - (this.resyncedAt || -Infinity) >= REFRESH_EVERY_MS) {
        this.resyncedAt = now;
        await this.resync('behind');
      }
      for (const c of this.chains.values()) {
        if (c.missing > 0 && now - c.missingSince >= GAP_MS) {
          this.onEvent({ type: 'problem', what: 'missing', name: c.name, count: c.missing });
          c.missing = 0;
        }
      }
      for (const o of this.outs) {
        if (!o.state && now - o.at >= WAITING_AFTER_MS && [...o.required].some((l) => !o.acked.has(l) && !o.missed.has(l) && this.statusOf(l) !== 'here')) {
          o.state = 'waiting';
          this.onEvent({ type: 'delivery', tag: o.tag, state: 'waiting' });
        }
      }
      for (const [src, s] of this.suppressed) {
        if (now - s.at >= NOTICE_EVERY_MS) {
          this.suppressed.delete(src);
          if (s.n) this.onEvent({ type: 'problem', what: 'more', name: s.name, count: s.n });
        }
      }
      this.reportEarlier();
      if (!this.catchingUp) await this.settle();
      this.membersChanged(true);
    });
  }

  // destroy forgets everything (Leave): the group state, the signing
  // handle, the exporter secrets.
  destroy() {
    this.destroyed = true;
    this.clearTimer(this.ackTimer);
    mls.unregister(this.signer);
    for (const s of this.exporters.values()) s.fill(0);
    this.exporters.clear();
    if (this.pending) mls.wipe(this.pending.consumed);
    this.pending = null;
    this.state = null;
    this.sessions.clear();
    this.chains.clear();
    this.leafSeen.clear();
  }

  // memberList is what the member list shows: every leaf of the group, ours
  // first, then the relay's sessions that are still joining.
  memberList() {
    const out = [{ name: this.name, self: true, code: this.code, status: this.member ? 'here' : 'joining', changed: false, away: false }];
    const names = new Set([this.name]);
    if (this.member) {
      for (const l of this.others()) {
        const seen = this.leafSeen.get(l.index);
        const st = this.statusOf(l.index);
        names.add(l.name);
        out.push({ name: l.name, self: false, code: seen ? seen.code : '', status: st, changed: this.changed.has(l.name), away: st !== 'here' });
      }
    }
    for (const s of this.sessions.values()) {
      if (names.has(s.name)) continue;
      names.add(s.name);
      out.push({ name: s.name, self: false, code: '', status: 'joining', changed: false, away: !!s.away });
    }
    return out;
  }

  // alone says whether nobody else is in the room.
  alone() { return this.others().length === 0 && this.sessions.size === 0; }

  // ---------------------------------------------------------------- membership

  others() { return this.member ? mls.leaves(this.state).filter((l) => l.index !== this.me) : []; }

  // statusOf says where leaf is: "here" while the relay session it said it
  // speaks through is live, "reconnecting" otherwise.
  statusOf(leaf) {
    if (leaf === this.me) return 'here';
    const l = this.leafSeen.get(leaf);
    const s = l && l.sid && this.sessions.get(l.sid);
    return s && !s.away ? 'here' : 'reconnecting';
  }

  // gone lists the leaves to remove before anyone sends again: the relay
  // said their session left, they have not been here for GRACE_MS, or
  // someone new holds their name.
  gone() {
    if (!this.member) return [];
    const now = this.now();
    const out = [];
    for (const l of this.others()) {
      const seen = this.leafSeen.get(l.index);
      if (!seen) continue;
      if (this.statusOf(l.index) === 'here') { seen.lastHere = now; continue; }
      const other = [...this.sessions.entries()].find(([sid, s]) => s.name === seen.name && sid !== seen.sid && !s.away);
      if (seen.leftAt || now - seen.lastHere >= GRACE_MS
        || (other && now - Math.max(other[1].at, seen.lastHere) >= HERE_WAIT_MS)) out.push(l.index);
    }
    return out;
  }

  // bindByName takes the relay's word for which session is which leaf, once,
  // when we join: what members said before we joined is not ours to read.
  bindByName() {
    for (const l of this.leafSeen.values()) {
      for (const [sid, s] of this.sessions) if (s.name === l.name) l.sid = sid;
    }
  }

  // refresh records what this page knows of each leaf after a change of
  // the tree: new leaves (a code to show, a changed code to flag), leaves
  // gone (what they did not acknowledge is marked missed).
  async refresh(by, from) {
    const now = this.now();
    const present = new Set();
    const joined = [];
    for (const l of mls.leaves(this.state)) {
      present.add(l.index);
      const had = this.leafSeen.get(l.index);
      if (had && equal(had.key, l.key)) continue;
      const code = await safetyCode(l.key);
      const sid = from && from.name === l.name ? from.sid : '';
      this.leafSeen.set(l.index, { name: l.name, code, key: l.key, sid, lastHere: now, leftAt: 0 });
      if (l.index === this.me) continue;
      const was = this.codes.get(l.name);
      if (was !== undefined && was !== code) this.changed.add(l.name);
      if (was === undefined) this.codes.set(l.name, code);
      joined.push({ name: l.name, code, was });
    }
    const left = [];
    for (const [i, l] of this.leafSeen) {
      if (present.has(i)) continue;
      // Removed while still here (the relay did not say it left): said as
      // a removal, by whom.
      const s = l.sid && this.sessions.get(l.sid);
      const forced = !!(by && s && !s.away && !l.leftAt);
      this.leafSeen.delete(i);
      for (const o of this.outs) if (o.required.has(i) && !o.acked.has(i)) o.missed.add(i);
      left.push({ name: l.name, forced });
    }
    if (this.introduced) {
      for (const j of joined) {
        const again = left.findIndex((x) => x.name === j.name);
        if (again >= 0) left.splice(again, 1);
        this.onEvent({ type: 'member-joined', name: j.name, code: j.code, again: again >= 0 || j.was !== undefined, changedFrom: j.was !== undefined && j.was !== j.code ? j.was : '' });
      }
      for (const x of left) this.onEvent({ type: 'member-left', name: x.name, by: x.forced ? by : '' });
    }
    this.introduced = true;
    for (const o of [...this.outs]) this.checkOut(o);
  }

  // ---------------------------------------------------------------- taking our place

  // settle does what the page's place in the group needs now: make or join
  // the group, compare our copy with the relay's, say where we are, remove
  // who is gone. It runs after every input that may change it, and in sweep.
  async settle() {
    if (this.catchingUp || this.pending || this.destroyed) return undefined;
    const now = this.now();
    if (!this.member) return this.becomeMember(now);
    if (this.newSession) {
      // A new relay session (a server restart, or away too long): is the
      // relay's GroupInfo our group at our epoch?
      const verdict = await this.compareInfo();
      if (verdict === 'ahead') return this.resync('behind');
      this.newSession = false;
      if (verdict === 'none') this.onFrame({ type: 'info', body: await this.sealedInfo(this.state), kind: 'info' });
      if (verdict === 'behind' && now - (this.refreshedAt || -Infinity) >= REFRESH_EVERY_MS) {
        this.refreshedAt = now;
        await this.commit([], 'refresh');
        return undefined;
      }
    }
    if (this.needHere) {
      this.needHere = false;
      await this.sendRoom(K_HERE, fromBase64url(this.sid));
    }
    return this.planRemoval(now);
  }

  async becomeMember(now) {
    const j = this.joining || (this.joining = { attempts: 0, at: now });
    if (j.attempts > 0 && now - (j.tried || 0) < Math.min(JOIN_RETRY_MAX_MS, JOIN_RETRY_MS * j.attempts)) return undefined;
    if (this.hubInfo) {
      j.tried = now;
      return this.externalJoin();
    }
    if (j.attempts > 0) {
      // Our join lost, and the relay's newer GroupInfo has not come: ask.
      j.tried = now;
      j.attempts++;
      this.onFrame({ type: 'info', kind: 'info' });
      return undefined;
    }
    if (this.sessions.size === 0) return this.makeGroup();
    // Others are here but the relay has no GroupInfo (it restarted and
    // nobody with the group is back yet, or the first member's is on its
    // way): ask, and after a while make the group ourselves.
    if (!this.infoWaitSince) {
      this.infoWaitSince = now;
      this.onFrame({ type: 'info', kind: 'info' });
      return undefined;
    }
    if (now - this.infoWaitSince >= INFO_WAIT_MS) return this.makeGroup();
    return undefined;
  }

  async makeGroup() {
    const kp = await mls.keyPackage(this.name, this.signer, this.pub);
    const state = await mls.createGroup(this.groupId, kp.publicPackage, kp.privatePackage, [], this.cs, mls.CONFIG);
    this.infoWaitSince = 0;
    this.leafSeen.clear();
    this.introduced = false;
    await this.adopt(state, []);
    this.joining = null;
    this.joinedAt = this.epoch;
    this.newSession = false;
    this.needHere = false;
    this.onFrame({ type: 'info', body: await this.sealedInfo(state), kind: 'info' });
    this.onEvent({ type: 'in-group', epoch: this.epoch, created: true });
    this.membersChanged();
  }

  // externalJoin joins the group of the relay's GroupInfo by an external
  // commit, in place of our own old leaf if it is there. A leaf of our name
  // with another key (a page of ours that was closed) waits to be removed.
  async externalJoin() {
    const gi = await this.openInfo(this.hubInfo);
    if (!gi) {
      // Not the room's GroupInfo (a hostile member's commit carried junk):
      // a member puts the right one back; ask again later.
      this.hubInfo = null;
      this.joining.attempts++;
      return this.problem('', 'bad-info');
    }
    const tree = this.treeLeaves(gi);
    const mine = tree.find((l) => l.name === this.name && equal(l.key, this.pub));
    if (!mine && tree.some((l) => l.name === this.name)) {
      if (!this.joining.waitedOld) this.onEvent({ type: 'waiting-old-self' });
      this.joining.waitedOld = true;
      this.hubInfo = null;
      this.joining.tried = this.now();
      this.joining.attempts = Math.max(1, this.joining.attempts);
      this.onFrame({ type: 'info', kind: 'info' });
      return undefined;
    }
    const kp = await mls.keyPackage(this.name, this.signer, this.pub);
    let r;
    try {
      r = await mls.joinGroupExternal(gi, kp.publicPackage, kp.privatePackage, !!mine, this.cs, undefined, mls.CONFIG);
    } catch (e) {
      this.hubInfo = null;
      this.joining.attempts++;
      return this.problem('', 'bad-info', { detail: String(e && e.message) });
    }
    const epoch = Number(gi.groupContext.epoch);
    const msg = mls.encode({ version: 'mls10', wireformat: 'mls_public_message', publicMessage: r.publicMessage });
    const body = await this.sealInner(T_MLS, msg);
    const info = await this.sealedInfo(r.newState);
    const token = {};
    this.pending = { token, epoch, newState: r.newState, consumed: [], join: true, again: !!this.state, info };
    this.onFrame({ type: 'commit', epoch, body, info, kind: 'commit', token });
    return undefined;
  }

  treeLeaves(gi) {
    let tree;
    try { tree = mls.ratchetTreeFromExtension(gi); } catch { tree = undefined; }
    return tree ? mls.leaves({ ratchetTree: tree }) : [];
  }

  // resync leaves our copy of the group and joins the relay's again.
  async resync(why) {
    this.onEvent({ type: 'rejoining', why });
    this.removed = true;
    this.joining = { attempts: 0 };
    this.newSession = false;
    if (!this.hubInfo) this.onFrame({ type: 'info', kind: 'info' });
    return this.settle();
  }

  // compareInfo says how the relay's GroupInfo stands to our state: "none"
  // (it has none), "same", "ahead" (a later epoch, or another group at ours:
  // the relay's is the room's), or "behind" (an earlier epoch, or unreadable).
  async compareInfo() {
    if (!this.hubInfo) return 'none';
    const gi = await this.openInfo(this.hubInfo);
    if (!gi) return 'behind';
    const e = Number(gi.groupContext.epoch);
    if (e > this.epoch) return 'ahead';
    if (e < this.epoch) return 'behind';
    return equal(gi.confirmationTag, this.state.confirmationTag) ? 'same' : 'ahead';
  }

  async openInfo(b64) {
    try {
      const inner = await open(this.frameKey, this.ctx, fromBase64(b64));
      if (inner[0] !== T_GROUPINFO) return null;
      const m = mls.decode(inner.subarray(1));
      if (!m || m.wireformat !== 'mls_group_info' || !equal(m.groupInfo.groupContext.groupId, this.groupId)) return null;
      return m.groupInfo;
    } catch {
      return null;
    }
  }

  sealInner(kind, bytes) { return seal(this.frameKey, this.ctx, concat(new Uint8Array([kind]), bytes), this.maxBucket); }

  async sealedInfo(state) { return this.sealInner(T_GROUPINFO, await mls.groupInfo(state)); }

  // planRemoval removes who is gone, and puts the room's GroupInfo back at
  // the relay when the commit it took for our epoch was invalid and someone
  // is joining (the relay keeps the GroupInfo of the commit it took): at
  // once if messages wait or this page is the first present leaf,
  // otherwise after its turn.
  async planRemoval(now) {
    if (!this.member || this.pending || this.catchingUp) return;
    const gone = this.gone();
    const w = this.winners.get(this.epoch);
    const joiningSoon = w && !w.valid && [...this.sessions.values()].some((x) => !x.away && !this.leafByName(x.name));
    if (gone.length === 0 && !joiningSoon) { this.removalSince = 0; return; }
    if (!this.removalSince) this.removalSince = now;
    const present = mls.leaves(this.state).filter((l) => this.statusOf(l.index) === 'here').map((l) => l.index).sort((a, b) => a - b);
    const rank = Math.max(0, present.indexOf(this.me));
    if (!this.wantsToSend && now - this.removalSince < rank * REMOVE_STAGGER_MS) return;
    await this.commit(gone.map((i) => ({ proposalType: 'remove', remove: { removed: i } })), gone.length ? 'remove' : 'refresh');
  }

  leafByName(name) {
    for (const l of this.leafSeen.values()) if (l.name === name) return l;
    return null;
  }

  // commit sends a commit of ours with proposals (none: a fresh path only),
  // over the relay's commit for this epoch if we found that one invalid.
  async commit(proposals, reason) {
    const epoch = this.epoch;
    const r = await mls.createCommit({ state: this.state, cipherSuite: this.cs }, { extraProposals: proposals });
    const body = await this.sealInner(T_MLS, mls.encode(r.commit));
    const info = await this.sealedInfo(r.newState);
    const token = {};
    this.pending = { token, epoch, newState: r.newState, consumed: r.consumed, reason, info };
    const frame = { type: 'commit', epoch, body, info, kind: 'commit', token };
    const w = this.winners.get(epoch);
    const n = this.overridden.get(epoch) || 0;
    if (w && !w.valid && n < MAX_OVERRIDES) {
      frame.over = w.seq;
      this.overridden.set(epoch, n + 1);
    }
    this.onFrame(frame);
  }

  // adopt makes state ours: the epoch's exporter secret kept (and the one
  // before it), what changed in the tree, and the frames that waited for
  // this epoch read.
  async adopt(state, consumed, by = '', from = null) {
    const prevEpoch = this.epoch;
    this.state = state;
    this.removed = false;
    mls.wipe(consumed);
    const e = this.epoch;
    if (e !== prevEpoch) {
      this.exporters.set(e, new Uint8Array(state.keySchedule.exporterSecret));
      for (const [k, s] of this.exporters) if (k < e - 1) { s.fill(0); this.exporters.delete(k); }
      for (const [k] of this.winners) if (k < e - 64) this.winners.delete(k);
      this.onEvent({ type: 'epoch', epoch: e });
    }
    await this.refresh(by, from);
    const ready = this.future.filter((h) => h.epoch <= e);
    this.future = this.future.filter((h) => h.epoch > e);
    for (const h of ready) await this.handle(h.f);
  }

  // ---------------------------------------------------------------- frames

  async handle(f) {
    if (f.sid === this.sid) return undefined;
    const s = this.sessions.get(f.sid);
    if (s && typeof f.from === 'string' && f.from !== s.name) return undefined; // the relay contradicts itself
    const who = s ? s.name : (typeof f.from === 'string' ? f.from : '');
    let env;
    try { env = fromBase64(typeof f.body === 'string' ? f.body : ''); } catch { env = new Uint8Array(0); }
    const hash = toHex(new Uint8Array(await subtle().digest('SHA-256', env)));
    if (this.seen.has(hash)) return undefined; // a copy: a resend after a reconnect, or a replay of one
    if (f.to) return this.problem(who, 'direct');
    // A commit the relay took that is not one is still what it took for
    // its epoch: a later commit goes over it.
    const bad = (what, extra) => (f.commit !== undefined ? this.badCommit(f, who, 'bad-commit', { detail: what }) : this.problem(who, what, extra));
    let inner;
    try {
      inner = await open(this.frameKey, this.ctx, env);
    } catch (e) {
      if (!(e instanceof EnvelopeError)) throw e;
      if (e.kind === 'version') return bad('version', { version: e.version });
      return bad('altered');
    }
    if (f.commit !== undefined && inner[0] !== T_MLS) return bad('bad-commit');
    switch (inner[0]) {
      case T_MLS: {
        const m = mls.decode(inner.subarray(1));
        if (!m) return bad('altered');
        if (f.commit !== undefined) return this.onCommit(f, who, m, hash);
        if (m.wireformat !== 'mls_private_message' || m.privateMessage.contentType !== 'application') return this.problem(who, 'not-ordered');
        return this.onApplication(f, who, m.privateMessage, hash);
      }
      case T_CHUNK:
        if (!f.bulk) return this.problem(who, 'wrong-lane');
        return this.onChunk(f, who, inner);
      default:
        return this.problem(who, 'unknown-kind');
    }
  }

  remember(hash) {
    this.seen.add(hash);
    if (this.seen.size > SEEN_MAX) this.seen.delete(this.seen.values().next().value);
  }

  // onCommit reads a commit the relay took for its epoch (f.commit): the
  // first valid one for our epoch is the one we follow.
  async onCommit(f, who, m, hash) {
    const label = Number(f.commit);
    if (!this.member) return undefined; // not ours to read; a join of ours hears of it from the relay
    if (label < this.epoch) return undefined; // an epoch we are past
    if (label > this.epoch) return this.hold(f, label, who);
    const w = this.winners.get(label);
    if (w && w.valid) return undefined; // we follow this epoch's commit already
    const pub = m.wireformat === 'mls_public_message';
    const content = pub ? m.publicMessage.content : null;
    const msgEpoch = pub ? Number(content.epoch) : m.wireformat === 'mls_private_message' ? Number(m.privateMessage.epoch) : -1;
    const isCommit = pub ? content.contentType === 'commit' : m.wireformat === 'mls_private_message' && m.privateMessage.contentType === 'commit';
    let err = !isCommit || msgEpoch !== label ? 'not a commit of its epoch' : this.commitPolicy(m);
    let r;
    if (!err) {
      try {
        r = await mls.processMessage(m, this.state, mls.emptyPskIndex, (inc) => this.proposalPolicy(inc, pub), this.cs);
        if (r.kind !== 'newState' || r.actionTaken !== 'accept') err = 'refused';
      } catch (e) {
        err = String((e && e.message) || e);
      }
    }
    if (err) {
      if (r) mls.wipe(r.consumed);
      return this.badCommit(f, who, 'bad-commit', { detail: err });
    }
    this.remember(hash);
    this.winners.set(label, { seq: f.seq, valid: true });
    if (!pub) this.countCommit(who);
    if (r.newState.groupActiveState && r.newState.groupActiveState.kind !== 'active') {
      mls.wipe(r.consumed);
      this.onEvent({ type: 'removed-you', by: who });
      return this.resync('removed');
    }
    await this.adopt(r.newState, r.consumed, pub ? '' : who, pub ? { name: who, sid: f.sid } : null);
    this.membersChanged();
    return this.settle();
  }

  // badCommit records that the commit the relay took for f.commit, our
  // epoch, is invalid: our next commit goes over it.
  badCommit(f, who, what, extra) {
    const label = Number(f.commit);
    if (this.member && label === this.epoch) {
      const w = this.winners.get(label);
      if (!w || !w.valid) this.winners.set(label, { seq: f.seq, valid: false });
    }
    this.problem(who, what, extra);
    return this.settle();
  }

  // countCommit says so when one member changes the room's keys unusually
  // often: each change costs every page some work (a commit is valid or not
  // by the group's state alone, never by how often, so that pages agree).
  countCommit(who) {
    const now = this.now();
    const c = this.commitCounts.get(who) || { n: 0, since: now };
    if (now - c.since > COMMIT_WINDOW_MS) { c.n = 0; c.since = now; }
    c.n++;
    this.commitCounts.set(who, c);
    if (c.n === COMMITS_PER_WINDOW + 1) this.problem(who, 'commit-flood');
  }

  // commitPolicy says why a newcomer's commit is refused before MLS reads
  // it, or '': it may replace only its own old leaf (the same name and
  // signature key), and takes no name a leaf already has.
  commitPolicy(m) {
    if (m.wireformat !== 'mls_public_message') return '';
    const c = m.publicMessage.content;
    if (c.sender.senderType !== 'new_member_commit') return 'a commit in clear from a member';
    const path = c.commit && c.commit.path;
    const name = path ? mls.nameOf(path.leafNode) : '';
    if (!name) return 'a newcomer without a name';
    const tree = mls.leaves(this.state);
    const removed = new Set();
    for (const p of c.commit.proposals) {
      if (p.proposalOrRefType !== 'proposal' || p.proposal.proposalType !== 'remove') continue;
      const l = tree.find((x) => x.index === p.proposal.remove.removed);
      if (!l || l.name !== name || !equal(l.key, path.leafNode.signaturePublicKey)) return 'a newcomer removing someone else';
      removed.add(l.index);
    }
    if (tree.some((l) => l.name === name && !removed.has(l.index))) return 'a newcomer under a name a member has';
    return '';
  }

  // proposalPolicy is MLS's callback for what a commit proposes: members
  // only remove (or commit a fresh path); a newcomer only joins.
  proposalPolicy(inc, external) {
    if (inc.kind !== 'commit') return 'reject';
    for (const p of inc.proposals) {
      const t = p.proposal.proposalType;
      if (t === 'remove' || (t === 'external_init' && external)) continue;
      return 'reject';
    }
    return 'accept';
  }

  hold(f, epoch, who) {
    this.future.push({ f, epoch, at: this.now(), who });
    if (this.future.length > HELD_MAX) this.problem(this.future.shift().who, 'later-epoch');
    return undefined;
  }

  // onApplication reads an application message: a room message or an
  // acknowledgement, signed by its sender's leaf.
  async onApplication(f, who, pm, hash) {
    if (!this.member) { this.earlier++; return undefined; }
    const e = Number(pm.epoch);
    if (e > this.epoch) return this.hold(f, e, who);
    if (e < this.joinedAt) { this.earlier++; return undefined; }
    const hist = this.state.historicalReceiverData.get(pm.epoch);
    const secret = e === this.epoch ? this.state.keySchedule.senderDataSecret : hist && hist.senderDataSecret;
    let sd;
    try { sd = secret ? await mls.decryptSenderData(pm, secret, this.cs) : undefined; } catch { sd = undefined; }
    if (!sd) return this.problem(who, 'unreadable');
    const leaf = sd.leafIndex;
    const genKey = `${leaf}:${e}:${sd.generation}`;
    const had = this.gens.get(genKey);
    const seen = this.leafSeen.get(leaf);
    if (had !== undefined && had !== hash) return this.problem(seen ? seen.name : who, 'split', { how: 'twice' });
    let r;
    try {
      r = await mls.processMessage({ version: 'mls10', wireformat: 'mls_private_message', privateMessage: pm }, this.state, mls.emptyPskIndex, () => 'reject', this.cs);
    } catch (err) {
      return this.problem(who, 'unreadable', { detail: String((err && err.message) || err) });
    }
    if (r.kind !== 'applicationMessage') return this.problem(who, 'unreadable');
    this.state = r.newState;
    mls.wipe(r.consumed);
    this.remember(hash);
    this.gens.set(genKey, hash);
    while (this.gens.size > SEEN_MAX) this.gens.delete(this.gens.keys().next().value);
    // Authenticated: from here on the frame is the leaf's, whatever session
    // the relay says it came from (a mismatch is said, once in a while).
    const l = seen || { name: '?', code: '' };
    if (who && l.name !== who) this.problem(l.name, 'relabelled', { session: who });
    let c;
    try { c = parseContent(r.message); } catch { return this.problem(l.name, 'malformed'); }
    if (c.kind === K_ACK) {
      if (!f.bulk) return this.problem(l.name, 'wrong-lane');
      return this.onAck(leaf, l, c.entries);
    }
    if (f.bulk) return this.problem(l.name, 'wrong-lane');
    await this.follow(leaf, e, l, c, r.message);
    this.ackSoon();
    const base = { sender: l.name, leaf, code: l.code, changed: this.changed.has(l.name), time: c.time, old: !!f.old };
    switch (c.kind) {
      case K_TEXT: {
        let text;
        try { text = readText(c.payload); } catch { return this.problem(l.name, 'malformed'); }
        return this.onEvent({ type: 'message', ...base, text });
      }
      case K_HERE: {
        if (c.payload.length !== SID_BYTES) return this.problem(l.name, 'malformed');
        const sid = toBase64url(c.payload);
        const s = this.sessions.get(sid);
        if (sid !== f.sid || (s && s.name !== l.name)) return this.problem(l.name, 'impersonated', { session: s ? s.name : '' });
        if (seen) { seen.sid = sid; seen.leftAt = 0; seen.lastHere = this.now(); }
        // Back in a new relay session, which has none of what the relay
        // kept before (a restart): what it has not acknowledged of ours
        // goes again (copies are dropped).
        const again = this.outs.filter((o) => o.required.has(leaf) && !o.acked.has(leaf) && !o.missed.has(leaf) && o.tag && !o.tag.file).map((o) => o.tag);
        if (again.length) this.onEvent({ type: 'resend', tags: again });
        return this.membersChanged();
      }
      case K_OFFER: return this.onEvent({ type: 'file-offer', ...base, epoch: e, payload: c.payload });
      case K_CANCEL: return this.onEvent({ type: 'file-cancel', ...base, fileId: c.payload.slice(0, 16) });
      case K_DECLINE: return this.onEvent({ type: 'file-decline', ...base, fileId: c.payload.slice(0, 16), why: c.payload[16] | 0 });
      case K_RECEIVED: return this.onEvent({ type: 'file-received', ...base, fileId: c.payload.slice(0, 16) });
    }
    return undefined;
  }

  // follow checks a room message's place in its sender's chain for the
  // epoch: the next index, or a gap (reported if it stays one), and the
  // previous chain value as we saw it (else one of us was shown another
  // history).
  async follow(leaf, epoch, l, c, content) {
    const key = `${leaf}:${epoch}`;
    let ch = this.chains.get(key);
    if (!ch) {
      ch = { leaf, epoch, name: l.name, next: 0, head: new Uint8Array(HASH_BYTES), heads: new Map(), missing: 0, missingSince: 0, pending: [] };
      this.chains.set(key, ch);
      for (const [k, x] of this.chains) if (x.epoch < this.epoch - 2) this.chains.delete(k);
    }
    if (c.index > ch.next) {
      ch.missing += c.index - ch.next;
      ch.missingSince = this.now();
    } else if (!equal(c.previous, ch.head)) {
      this.problem(l.name, 'split', { how: 'chain' });
    }
    ch.head = await chainNext(c.previous, content);
    ch.next = c.index + 1;
    ch.heads.set(c.index, toHex(ch.head));
    if (ch.heads.size > MAX_CHAIN_HEADS) ch.heads.delete(ch.heads.keys().next().value);
    ch.pending = ch.pending.filter((p) => {
      const h = ch.heads.get(p.index);
      if (h === undefined) return p.index >= ch.next;
      if (h !== p.chain) this.problem(p.name, 'split', { how: 'theirs', of: ch.name });
      return false;
    });
  }

  // ---------------------------------------------------------------- acknowledgements

  ackSoon() {
    if (this.ackTimer) return;
    const wait = Math.max(0, ACK_EVERY_MS - (this.now() - this.ackAt));
    this.ackTimer = this.setTimer(() => { this.ackTimer = 0; this.run(() => this.sendAck()); }, wait);
  }

  async sendAck() {
    if (!this.member || this.catchingUp) { if (this.member) this.ackSoon(); return; }
    const entries = [];
    for (const ch of this.chains.values()) {
      if (ch.next > 0 && ch.epoch >= this.epoch - 1) entries.push({ leaf: ch.leaf, epoch: ch.epoch, index: ch.next - 1, chain: ch.head });
    }
    if (!entries.length) return;
    this.ackAt = this.now();
    const fit = Math.floor((this.maxTextBytes - 3) / ACK_ENTRY_BYTES);
    const body = await this.application(ackContent(entries.slice(-fit)));
    this.onFrame({ type: 'msg', body, bulk: true, kind: 'ack' });
  }

  // onAck reads leaf's acknowledgement: which of our messages it has (and
  // whether its copy of our chain is ours: else someone sent under our
  // name), and of others' (a chain not as we saw it: one of us was shown
  // another history).
  onAck(leaf, l, entries) {
    for (const a of entries) {
      const chain = toHex(a.chain);
      if (a.leaf === this.me) {
        const at = this.outs.find((o) => o.epoch === a.epoch && o.index === a.index);
        if (at && at.chain !== chain) { this.problem(l.name, 'split', { how: 'yours' }); continue; }
        for (const o of this.outs.filter((x) => x.epoch === a.epoch && x.index <= a.index)) { o.acked.add(leaf); this.checkOut(o); }
        continue;
      }
      const ch = this.chains.get(`${a.leaf}:${a.epoch}`);
      if (!ch) continue;
      const h = ch.heads.get(a.index);
      if (h !== undefined && h !== chain) this.problem(l.name, 'split', { how: 'theirs', of: ch.name });
      else if (h === undefined && a.index >= ch.next) {
        ch.pending.push({ index: a.index, chain, name: l.name });
        if (ch.pending.length > 64) ch.pending.shift();
      }
    }
  }

  checkOut(o) {
    if (o.state === 'delivered' || o.state === 'partly' || o.state === 'nobody') return;
    for (const l of o.required) if (!o.acked.has(l) && !o.missed.has(l)) return;
    if (o.missed.size === 0) this.finishOut(o, 'delivered');
    else this.finishOut(o, o.acked.size === 0 ? 'nobody' : 'partly');
  }

  finishOut(o, state) {
    o.state = state;
    this.outs = this.outs.filter((x) => x !== o);
    this.onEvent({ type: 'delivery', tag: o.tag, state, to: o.required.size, missed: o.missed.size });
  }

  // ---------------------------------------------------------------- chunks

  async onChunk(f, who, inner) {
    if (!this.member) return undefined;
    let parsed;
    try { parsed = parseChunk(inner); } catch { return this.problem(who, 'malformed'); }
    for (const [index, l] of this.leafSeen) {
      if (l.sid === f.sid) return this.onEvent({ type: 'chunk', sender: l.name, leaf: index, parsed });
    }
    return undefined;
  }

  // ---------------------------------------------------------------- sending

  // application seals content as an MLS application message of ours.
  async application(content) {
    const r = await mls.createApplicationMessage(this.state, content, this.cs);
    this.state = r.newState;
    mls.wipe(r.consumed);
    return this.sealInner(T_MLS, mls.encode({ version: 'mls10', wireformat: 'mls_private_message', privateMessage: r.privateMessage }));
  }

  // ---------------------------------------------------------------- notices

  // problem reports a frame that was refused, within one budget per
  // sender: one notice per NOTICE_EVERY_MS, the rest counted.
  problem(name, what, extra = {}) {
    const src = name || '?';
    const now = this.now();
    const s = this.suppressed.get(src);
    if (s && now - s.at < NOTICE_EVERY_MS) { s.n++; return undefined; }
    this.suppressed.set(src, { at: now, n: 0, name: src });
    this.onEvent({ type: 'problem', what, name, ...extra });
    return undefined;
  }

  reportEarlier() {
    if (this.earlier > 0 && !this.catchingUp) {
      this.onEvent({ type: 'earlier', count: this.earlier });
      this.earlier = 0;
    }
  }

  membersChanged(quiet) {
    const list = JSON.stringify(this.memberList().map((m) => [m.name, m.status, m.code, m.changed]));
    if (quiet && list === this.lastList) return;
    this.lastList = list;
    this.onEvent({ type: 'members' });
  }
}
