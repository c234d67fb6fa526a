// files.mjs: pictures and files in a room (docs/protocol.md §10.3), with
// no DOM. A file goes as an offer, a normal message of the sender's chain
// (so signed, forward-secret, read only by the members present) carrying a
// fresh file key, the file's size, media type, name and SHA-256; then its
// chunks, each under the file key, as bulk frames the relay passes on and
// never keeps. A receiver shows the file only once every chunk has come and
// the whole matches the signed hash: never a partial or wrong file.
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
  FILE_ID_BYTES, FILE_KEY_BYTES, F_PICTURE, F_STRIPPED, offerContent, cancelContent, makeChunk, openChunk,
  maxChunkBytes, EnvelopeError,
} from './envelope.mjs';

export const PICTURE_TYPES = ['image/jpeg', 'image/png', 'image/webp', 'image/gif'];
export const DEFAULT_MAX_FILE = 10 << 20;
export const MAX_INCOMING = 4;            // files being received at once, all senders together
export const MAX_INCOMING_PER_SENDER = 2;
export const MAX_OUTGOING = 4;            // files waiting to be sent
export const STALL_MS = 30000;            // no chunk for this long: the transfer is reported as broken
export const PROGRESS_EVERY = 0.05;       // progress is reported in steps of 5%

const AES = { name: 'AES-GCM', length: 256 };

export class Transfers {
  constructor({ group, now, onEvent }) {
    this.group = group;
    this.now = now || (() => Date.now());
    this.onEvent = onEvent || (() => {});
    this.maxFile = DEFAULT_MAX_FILE;
    this.outgoing = [];        // {id, key, bytes, chunkSize, chunks, sent, ...}: in order
    this.incoming = new Map(); // keyId + ":" + file id -> transfer
    this.unknown = new Set();  // keyId + ":" + file id of chunks without an offer, reported once
    this.done = new Set();     // … of transfers finished, failed or cancelled: their late chunks are ignored
  }

  setLimits({ file }) { if (file > 0) this.maxFile = file; }

  // ---------------------------------------------------------------- sending

  // offer prepares a file {name, type, bytes, asFile} and sends its offer;
  // it returns the transfer, whose progress comes as {type:
  // "outgoing-file"}. A photo that cannot be cleaned (strip.mjs) is a
  // NotCleanable error unless asFile says the sender chose to send it as
  // a file anyway.
  async offer(file) {
    if (this.outgoing.length >= MAX_OUTGOING) throw new Error('four files are on their way already; wait for them');
    if (file.bytes.length > this.maxFile) throw new Error(`files can have at most ${mib(this.maxFile)} here`);
    const chunkSize = maxChunkBytes(this.group.maxBucket);
    if (chunkSize < 1024) throw new Error('this server’s frame limit is too small for files');
    let bytes = file.bytes;
    let flags = 0;
    let removed = [];
    let type = file.type || 'application/octet-stream';
    let stripped;
    try {
      stripped = stripMetadata(bytes);
    } catch (e) {
      if (e instanceof NotCleanable && file.asFile) stripped = null; // the sender chose to send it as it is
      else if (e instanceof StripError) throw new Error(`this picture could not be cleaned of its location and camera data (${e.message}), so it was not sent`);
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
    const raw = randomBytes(FILE_KEY_BYTES);
    const out = {
      id, idHex: toHex(id), name: file.name || 'file', type, size: bytes.length, removed, picture: !!(flags & F_PICTURE),
      chunkSize, chunks: Math.ceil(bytes.length / chunkSize), sent: 0, bytes, state: 'offering', reported: 0,
    };
    try {
      out.key = await subtle().importKey('raw', raw, AES, false, ['encrypt']);
      const hash = new Uint8Array(await subtle().digest('SHA-256', bytes));
      out.sha256 = toHex(hash);
      const content = offerContent({ id, key: raw, size: out.size, chunkSize, hash, flags, type, name: out.name }, this.now());
      try {
        await this.group.sealContent(content, { file: out });
      } finally {
        content.fill(0);
      }
    } finally {
      raw.fill(0);
    }
    out.state = out.chunks ? 'sending' : 'sent';
    if (out.chunks) this.outgoing.push(out);
    this.report(out, true);
    return out;
  }

  hasChunk() { return this.outgoing.length > 0; }

  // nextChunk encrypts the next chunk to send and returns its envelope, or
  // null.
  async nextChunk() {
    const out = this.outgoing[0];
    if (!out) return null;
    const i = out.sent;
    const data = out.bytes.subarray(i * out.chunkSize, Math.min(out.size, (i + 1) * out.chunkSize));
    const body = await this.group.sealChunk({ fileKey: out.key, id: out.id, index: i, data });
    if (this.outgoing[0] !== out || out.sent !== i) return null; // cancelled meanwhile
    out.sent++;
    if (out.sent === out.chunks) {
      this.outgoing.shift();
      out.state = 'sent';
      out.key = null;
    }
    this.report(out);
    return body;
  }

  // cancel stops a transfer of ours (everyone is told) or one we receive
  // (only we stop).
  async cancel(t) {
    if (t.incoming) {
      this.finish(t, 'cancelled', 'you cancelled it');
      return;
    }
    const i = this.outgoing.indexOf(t);
    if (i < 0) return;
    this.outgoing.splice(i, 1);
    t.state = 'cancelled';
    t.key = null;
    t.bytes = null;
    this.report(t, true);
    await this.group.sealContent(cancelContent(t.id, this.now()), null);
  }

  report(t, force) {
    const p = t.chunks ? (t.incoming ? t.got : t.sent) / t.chunks : 1;
    if (!force && t.state !== 'sent' && t.state !== 'done' && p - t.reported < PROGRESS_EVERY) return;
    t.reported = p;
    this.onEvent({ type: t.incoming ? 'incoming-file' : 'outgoing-file', transfer: t, progress: p });
  }

  // ---------------------------------------------------------------- receiving

  async onOffer(ev) {
    const o = ev.offer;
    const key = ev.keyId + ':' + toHex(o.id);
    const t = {
      incoming: true, key, id: o.id, sid: ev.sid, sender: ev.sender, code: ev.code, changed: ev.changed, time: ev.time,
      name: safeName(o.name), type: o.type, size: o.size, picture: !!(o.flags & F_PICTURE), stripped: !!(o.flags & F_STRIPPED),
      chunkSize: o.chunkSize, chunks: Math.ceil(o.size / o.chunkSize), got: 0, parts: null, at: this.now(), state: 'receiving', reported: 0,
    };
    const raw = o.key;
    try {
      const refuse = (why) => { this.finish(t, 'refused', why); };
      if (this.incoming.has(key) || this.done.has(key)) return undefined;
      if (o.size > this.maxFile) return refuse(`it is larger than the ${mib(this.maxFile)} this server allows`);
      if (o.chunkSize > maxChunkBytes(this.group.maxBucket) || t.chunks > (1 << 20)) return refuse('its chunks do not fit this server');
      if (this.incoming.size >= MAX_INCOMING || [...this.incoming.values()].filter((x) => x.sid === ev.sid).length >= MAX_INCOMING_PER_SENDER) {
        return refuse('too many files are on their way at once; ask them to send it again later');
      }
      t.fileKey = await subtle().importKey('raw', raw, AES, false, ['decrypt']);
      t.hash = o.hash;
      t.senderKeyId = ev.senderKeyId;
      t.parts = new Array(t.chunks);
      this.incoming.set(key, t);
      this.report(t, true);
      if (t.chunks === 0) await this.complete(t);
    } finally {
      raw.fill(0);
    }
    return undefined;
  }

  async onChunk(ev) {
    const key = ev.keyId + ':' + toHex(ev.parsed.id);
    const t = this.incoming.get(key);
    if (!t) {
      if (!this.done.has(key) && !this.unknown.has(key)) {
        this.unknown.add(key);
        while (this.unknown.size > 1000) this.unknown.delete(this.unknown.values().next().value);
        this.onEvent({ type: 'notice', level: 'error', text: `⚠ ${ev.sender} is sending a file that started before you joined or while you were away; it will not reach you.` });
      }
      return;
    }
    const i = ev.parsed.index;
    if (i >= t.chunks) return this.finish(t, 'failed', 'it was altered (a piece beyond its end)');
    if (t.parts[i]) return undefined; // a copy
    let data;
    try {
      data = await openChunk({ fileKey: t.fileKey, ctx: this.group.ctx, senderKeyId: t.senderKeyId, parsed: ev.parsed });
    } catch (e) {
      if (!(e instanceof EnvelopeError)) throw e;
      return this.finish(t, 'failed', 'it was altered (a piece did not open)');
    }
    if (t.state !== 'receiving') return undefined;
    const want = i === t.chunks - 1 ? t.size - i * t.chunkSize : t.chunkSize;
    if (data.length !== want) return this.finish(t, 'failed', 'it was altered (a piece of the wrong size)');
    t.parts[i] = data;
    t.got++;
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
    if (toHex(hash) !== toHex(t.hash)) return this.finish(t, 'failed', 'it was altered: it is not the file that was offered');
    t.bytes = bytes;
    t.sha256 = toHex(hash);
    // Shown as a picture only if it is one of ours, by its bytes.
    t.picture = t.picture && PICTURE_TYPES.includes(t.type) && pictureType(bytes) === t.type;
    this.finish(t, 'done');
    return undefined;
  }

  onCancel(ev) {
    const t = this.incoming.get(ev.keyId + ':' + toHex(ev.fileId));
    if (t) this.finish(t, 'cancelled', `${t.sender} cancelled it`);
  }

  // finish ends an incoming transfer: done (with its bytes), failed,
  // refused or cancelled; what it held is let go.
  finish(t, state, why) {
    t.state = state;
    t.why = why || '';
    t.parts = null;
    t.fileKey = null;
    if (state !== 'done') t.bytes = null;
    this.incoming.delete(t.key);
    this.done.add(t.key);
    while (this.done.size > 1000) this.done.delete(this.done.values().next().value);
    this.report(t, true);
  }

  sweep() {
    const now = this.now();
    for (const t of [...this.incoming.values()]) {
      if (!this.group.members.has(t.sid)) this.finish(t, 'failed', `${t.sender} left before all of it arrived (${t.got} of ${t.chunks} pieces)`);
      else if (now - t.at >= STALL_MS) this.finish(t, 'failed', `some of it never arrived (${t.got} of ${t.chunks} pieces); ask them to send it again`);
    }
  }

  destroy() {
    for (const t of this.outgoing) { t.key = null; t.bytes = null; }
    this.outgoing = [];
    for (const t of this.incoming.values()) { t.parts = null; t.fileKey = null; }
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
