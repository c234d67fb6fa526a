// files.mjs: pictures and files in a room (docs/protocol.md §10.3), with
// no DOM. A file goes as an offer, a room message (so signed, and read only
// by the group's members when it is sent) carrying the file's size, media
// type, name and SHA-256; then its chunks, as bulk frames the relay passes
// on and never keeps, each under a key the MLS exporter gives for the
// epoch it is sent in, the sender and the file: a member removed while a
// file is on its way reads none of the chunks sent after. A receiver shows
// the file only once every chunk has come and the whole matches the signed
// hash: never a partial or wrong file.
//
// Pictures (JPEG, PNG, WebP, GIF, told by their bytes) lose their location
// and camera data before they leave (strip.mjs); everything else, SVG
// included, is offered as a download under a safe name and never shown.
//
// Transfers is driven by the session: offer() from the page, nextChunk()
// when the bulk lane may send, onOffer/onChunk/onCancel from the group's
// events, sweep() every second. It reports through onEvent.

import { toHex, randomBytes, subtle } from './bytes.mjs';
import { stripMetadata, pictureType, StripError, NotCleanable } from './strip.mjs';
import {
  FILE_ID_BYTES, F_PICTURE, F_STRIPPED, K_OFFER, K_CANCEL, K_DECLINE, K_RECEIVED, DECLINED, offerPayload, parseOffer,
  openChunk, maxChunkBytes, EnvelopeError,
} from './envelope.mjs';
import { concat } from './bytes.mjs';

export const PICTURE_TYPES = ['image/jpeg', 'image/png', 'image/webp', 'image/gif'];
export const DEFAULT_MAX_FILE = 10 << 20;
export const MAX_INCOMING = 4;            // files being received at once, all senders together
export const MAX_INCOMING_PER_SENDER = 2;
export const MAX_OUTGOING = 4;            // files waiting to be sent
export const STALL_MS = 30000;            // no chunk for this long: the transfer is reported as broken
export const MIN_RATE = 8 << 10;          // bytes a second a transfer must keep up, after STALL_MS, to keep its slot
export const MIN_CHUNK = 1024;            // smaller pieces (but for a file of one) are refused
export const PROGRESS_EVERY = 0.05;       // progress is reported in steps of 5%

// NotSent says why a file of ours was not offered: why is a code view.mjs
// words.
export class NotSent extends Error {
  constructor(why, args = {}) { super(why); this.why = why; this.args = args; }
}

export class Transfers {
  constructor({ group, now, onEvent }) {
    this.group = group;
    this.now = now || (() => Date.now());
    this.onEvent = onEvent || (() => {});
    this.maxFile = DEFAULT_MAX_FILE;
    this.outgoing = [];        // {id, key, bytes, chunkSize, chunks, sent, ...}: in order
    this.incoming = new Map(); // sender leaf + ":" + file id -> transfer
    this.unknown = new Set();  // sender leaf + ":" + file id of chunks without an offer, reported once
    this.done = new Set();     // … of transfers finished, failed or cancelled: their late chunks are ignored
    this.recent = [];          // our transfers sent whole lately: a receiver may still decline one
  }

  setLimits({ file }) { if (file > 0) this.maxFile = file; }

  // ---------------------------------------------------------------- sending

  // offer prepares a file {name, type, bytes, asFile} and sends its offer;
  // it returns the transfer, whose progress comes as {type:
  // "outgoing-file"}. A photo that cannot be cleaned (strip.mjs) is a
  // NotCleanable error unless asFile says the sender chose to send it as
  // a file anyway.
  async offer(file) {
    if (this.outgoing.length >= MAX_OUTGOING) throw new NotSent('busy', { max: MAX_OUTGOING });
    if (file.bytes.length > this.maxFile) throw new NotSent('too-large', { max: this.maxFile });
    const chunkSize = maxChunkBytes(this.group.maxBucket);
    if (chunkSize < 1024) throw new NotSent('frames-too-small');
    let bytes = file.bytes;
    let flags = 0;
    let removed = [];
    let type = file.type || 'application/octet-stream';
    let stripped;
    try {
      stripped = stripMetadata(bytes);
    } catch (e) {
      if (e instanceof NotCleanable && file.asFile) stripped = null; // the sender chose to send it as it is
      else if (e instanceof StripError) throw new NotSent('not-cleaned', { detail: e.message });
      else throw e;
    }
    if (stripped) {
      bytes = stripped.bytes;
      type = stripped.type;
      removed = stripped.removed;
      flags = F_PICTURE | (removed.length ? F_STRIPPED : 0);
    } else if (PICTURE_TYPES.includes(type) || type === 'image/svg+xml') {
      type = 'application/octet-stream'; // says it is a picture, is not one we show
    }
    const id = randomBytes(FILE_ID_BYTES);
    const out = {
      id, idHex: toHex(id), name: file.name || 'file', type, size: bytes.length, removed, picture: !!(flags & F_PICTURE),
      chunkSize, chunks: Math.ceil(bytes.length / chunkSize), sent: 0, bytes, state: 'offering', reported: 0,
      outcome: new Map(), delivery: '', missed: [],
    };
    const hash = new Uint8Array(await subtle().digest('SHA-256', bytes));
    out.sha256 = toHex(hash);
    await this.group.sealRoom(K_OFFER, offerPayload({ id, size: out.size, chunkSize, hash, flags, type, name: out.name }), { file: out });
    out.state = out.chunks ? 'sending' : 'sent';
    if (out.chunks) this.outgoing.push(out);
    else this.recent.push(out);
    this.report(out, true);
    return out;
  }

  // hasChunk says whether a chunk may go now: one waits, and the group may
  // send (nobody gone waits to be removed: a removed member must not get
  // a key for what follows).
  hasChunk() { return this.outgoing.length > 0 && this.group.canSend(); }

  // nextChunk encrypts the next chunk to send and returns its envelope, or
  // null.
  async nextChunk() {
    const out = this.outgoing[0];
    if (!out) return null;
    const i = out.sent;
    const data = out.bytes.subarray(i * out.chunkSize, Math.min(out.size, (i + 1) * out.chunkSize));
    const body = await this.group.sealChunk({ id: out.id, index: i, data });
    if (!body || this.outgoing[0] !== out || out.sent !== i) return null; // not now, or cancelled meanwhile
    out.sent++;
    if (out.sent === out.chunks) {
      this.outgoing.shift();
      out.state = 'sent';
      this.recent.push(out);
      if (this.recent.length > 16) this.recent.shift();
    }
    this.report(out);
    if (out.state === 'sent') out.bytes = null; // the page has shown it (as a blob of its own)
    return body;
  }

  // cancel stops a transfer of ours (everyone is told) or one we receive
  // (we stop, and its sender is told we declined it).
  async cancel(t) {
    if (t.incoming) {
      if (t.state !== 'receiving') return;
      await this.finish(t, 'cancelled', 'you-cancelled');
      return;
    }
    const i = this.outgoing.indexOf(t);
    if (i < 0) return;
    this.outgoing.splice(i, 1);
    t.state = 'cancelled';
    t.bytes = null;
    this.report(t, true);
    await this.group.sealRoom(K_CANCEL, t.id, null);
  }

  // The sender learns what became of a file at each receiver: received
  // whole (K_RECEIVED), or declined, refused or failed (K_DECLINE, why);
  // members removed meanwhile did not get it. Delivered once every member
  // of the group when it was offered has it.

  onReceived(ev) { this.heard(ev, 'received'); }

  // onDecline: a receiver cancelled a file of ours, refused it or could
  // not take it whole; the sender is told who, and why.
  onDecline(ev) {
    const t = this.heard(ev, DECLINED[ev.why] || 'cancelled');
    if (t) this.onEvent({ type: 'file-declined', transfer: t, by: ev.sender, why: DECLINED[ev.why] || 'cancelled' });
  }

  heard(ev, what) {
    const id = toHex(ev.fileId);
    const t = this.outgoing.find((x) => x.idHex === id) || this.recent.find((x) => x.idHex === id);
    if (!t || !t.required || !t.required.has(ev.leaf) || t.outcome.has(ev.leaf)) return null;
    t.outcome.set(ev.leaf, what);
    this.settle(t);
    return t;
  }

  // settle ends a file of ours once every receiver is accounted for.
  settle(t) {
    if (t.delivery || !t.required || t.state === 'cancelled') return;
    for (const [leaf, name] of t.required) {
      const l = this.group.leafSeen.get(leaf);
      if (!t.outcome.has(leaf) && (!l || l.name !== name)) t.outcome.set(leaf, 'left');
    }
    if (t.outcome.size < t.required.size) return;
    const got = [...t.outcome.values()].filter((x) => x === 'received').length;
    t.delivery = t.required.size && got === t.required.size ? 'delivered' : got === 0 ? 'nobody' : 'partly';
    t.missed = [...t.outcome].filter(([, x]) => x !== 'received').map(([leaf, x]) => ({ name: t.required.get(leaf), why: x }));
    this.report(t, true);
  }

  report(t, force) {
    const p = t.chunks ? (t.incoming ? t.got : t.sent) / t.chunks : 1;
    if (!force && t.state !== 'sent' && t.state !== 'done' && p - t.reported < PROGRESS_EVERY) return;
    t.reported = p;
    this.onEvent({ type: t.incoming ? 'incoming-file' : 'outgoing-file', transfer: t, progress: p });
  }

  // ---------------------------------------------------------------- receiving

  async onOffer(ev) {
    let o;
    try { o = parseOffer(ev.payload); } catch { return undefined; }
    if (!(o.chunkSize > 0)) return undefined;
    const key = ev.leaf + ':' + toHex(o.id);
    const t = {
      incoming: true, key, id: o.id, leaf: ev.leaf, sender: ev.sender, code: ev.code, changed: ev.changed, time: ev.time,
      name: safeName(o.name), type: o.type, size: o.size, picture: !!(o.flags & F_PICTURE), stripped: !!(o.flags & F_STRIPPED),
      chunkSize: o.chunkSize, chunks: Math.ceil(o.size / o.chunkSize), got: 0, parts: null, at: this.now(), state: 'receiving', reported: 0,
      keys: new Map(), hash: o.hash, started: this.now(), bytesIn: 0,
    };
    const refuse = (why, args) => this.finish(t, 'refused', why, args);
    if (this.incoming.has(key) || this.done.has(key)) return undefined;
    if (o.size > this.maxFile) return refuse('too-large', { max: this.maxFile });
    if (o.chunkSize > maxChunkBytes(this.group.maxBucket) || t.chunks > (1 << 20)) return refuse('bad-chunks');
    if (t.chunks > 1 && o.chunkSize < MIN_CHUNK) return refuse('too-small');
    if (this.incoming.size >= MAX_INCOMING || [...this.incoming.values()].filter((x) => x.leaf === ev.leaf).length >= MAX_INCOMING_PER_SENDER) {
      return refuse('busy');
    }
    t.parts = new Array(t.chunks);
    this.incoming.set(key, t);
    this.report(t, true);
    if (t.chunks === 0) await this.complete(t);
    return undefined;
  }

  async onChunk(ev) {
    const key = ev.leaf + ':' + toHex(ev.parsed.id);
    const t = this.incoming.get(key);
    if (!t) {
      if (!this.done.has(key) && !this.unknown.has(key)) {
        this.unknown.add(key);
        while (this.unknown.size > 1000) this.unknown.delete(this.unknown.values().next().value);
        this.onEvent({ type: 'file-unknown', sender: ev.sender });
      }
      return;
    }
    const i = ev.parsed.index;
    if (i >= t.chunks) return this.finish(t, 'failed', 'altered');
    if (!t.parts || t.parts[i]) return undefined; // a copy (of the last piece, too, while the whole is checked)
    let data;
    try {
      const e = ev.parsed.epoch;
      if (!t.keys.has(e)) t.keys.set(e, await this.group.fileKey(e, t.leaf, t.id, 'decrypt'));
      const fileKey = t.keys.get(e);
      if (!fileKey) return this.finish(t, 'failed', 'old-keys');
      data = await openChunk({ fileKey, ctx: this.group.ctx, parsed: ev.parsed });
    } catch (e) {
      if (!(e instanceof EnvelopeError)) throw e;
      return this.finish(t, 'failed', 'altered');
    }
    if (t.state !== 'receiving' || !t.parts || t.parts[i]) return undefined;
    const want = i === t.chunks - 1 ? t.size - i * t.chunkSize : t.chunkSize;
    if (data.length !== want) return this.finish(t, 'failed', 'altered');
    t.parts[i] = data;
    t.got++;
    t.bytesIn += data.length;
    t.at = this.now();
    if (t.got === t.chunks) return this.complete(t);
    this.report(t);
    return undefined;
  }

  async complete(t) {
    const bytes = new Uint8Array(t.size);
    t.parts.forEach((p, i) => bytes.set(p, i * t.chunkSize));
    t.parts = null;
    const hash = new Uint8Array(await subtle().digest('SHA-256', bytes));
    if (toHex(hash) !== toHex(t.hash)) return this.finish(t, 'failed', 'altered');
    t.bytes = bytes;
    t.sha256 = toHex(hash);
    // Shown as a picture only if it is one of ours, by its bytes.
    t.picture = t.picture && PICTURE_TYPES.includes(t.type) && pictureType(bytes) === t.type;
    this.finish(t, 'done');
    return undefined;
  }

  onCancel(ev) {
    const t = this.incoming.get(ev.leaf + ':' + toHex(ev.fileId));
    if (t) this.finish(t, 'cancelled', 'sender-cancelled');
  }

  // finish ends an incoming transfer: done (with its bytes), failed,
  // refused or cancelled (why: a code view.mjs words); what it held is let
  // go, and its sender is told: received, or why not (unless the sender
  // cancelled or left, or the server restarted under it).
  finish(t, state, why = '', args = {}) {
    t.state = state;
    t.why = why;
    t.whyArgs = args;
    t.parts = null;
    t.keys = null;
    if (state !== 'done') t.bytes = null;
    this.incoming.delete(t.key);
    this.done.add(t.key);
    while (this.done.size > 1000) this.done.delete(this.done.values().next().value);
    this.report(t, true);
    const l = this.group.leafSeen.get(t.leaf);
    if (state === 'done') return this.tell(K_RECEIVED, t.id);
    if (!l || l.name !== t.sender || why === 'sender-cancelled' || why === 'restart') return undefined;
    const code = { 'you-cancelled': 'cancelled', busy: 'busy', 'too-large': 'too-large', 'too-small': 'too-small' }[why] || 'failed';
    return this.tell(K_DECLINE, concat(t.id, new Uint8Array([DECLINED.indexOf(code)])));
  }

  // tell sends the sender of a file what became of it here; it goes when
  // the group may send, and is not worth a failure of its own.
  tell(kind, payload) {
    return this.group.sealRoom(kind, payload, null).catch(() => {});
  }

  // restarted: the relay restarted (a new relay session). Files on their
  // way may have lost pieces with it; one that stalls says so.
  restarted() {
    for (const t of this.incoming.values()) t.restarted = true;
  }

  sweep() {
    const now = this.now();
    for (const t of [...this.incoming.values()]) {
      const l = this.group.leafSeen.get(t.leaf);
      const args = { got: t.got, chunks: t.chunks, sender: t.sender };
      if (!l || l.name !== t.sender) this.finish(t, 'failed', 'left', args);
      else if (now - t.at >= STALL_MS) this.finish(t, 'failed', t.restarted ? 'restart' : 'stalled', args);
      else if (now - t.started > STALL_MS && t.bytesIn < ((now - t.started - STALL_MS) / 1000) * MIN_RATE) this.finish(t, 'failed', 'too-slow', args);
    }
    for (const t of [...this.outgoing, ...this.recent]) this.settle(t);
  }

  destroy() {
    for (const t of this.outgoing) t.bytes = null;
    this.outgoing = [];
    for (const t of this.incoming.values()) { t.parts = null; t.keys = null; }
    this.incoming.clear();
  }
}

// safeName makes a file name safe to download under: no directories, no
// control, format or bidirectional characters (which could make
// "photo‮gpj.exe" look like "photo.jpg"), no leading dots, at most 100
// characters keeping the extension.
export function safeName(name) {
  let n = String(name).normalize('NFC').replace(/[\p{Cc}\p{Cf}\p{Co}\p{Cn}\p{Zl}\p{Zp}]/gu, '');
  n = n.split(/[\\/]/).pop().replace(/[<>:"|?*]/g, '_').trim().replace(/^\.+/, '').replace(/[. ]+$/, '');
  const chars = [...n];
  if (chars.length > 100) {
    const dot = n.lastIndexOf('.');
    const ext = dot > 0 && n.length - dot <= 10 ? n.slice(dot) : '';
    n = chars.slice(0, 100 - [...ext].length).join('') + ext;
  }
  return n || 'file';
}

export function mib(n) {
  if (n >= 1 << 20) return `${(n / (1 << 20)).toFixed(n % (1 << 20) ? 1 : 0)} MiB`;
  if (n >= 1 << 10) return `${(n / (1 << 10)).toFixed(0)} KiB`;
  return `${n} bytes`;
}
