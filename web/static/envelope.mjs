// envelope.mjs: the byte layouts of protocol version 4 (docs/protocol.md
// §10): the outer layer every frame's body has, the inner frames, and the
// contents of the room's MLS application messages. All integers are
// big-endian. No keys are kept here.
//
// Every body the page sends is an envelope, sealed under the room's frame
// key (roomkey.mjs), which only passphrase holders have:
//
//   envelope = 04 ‖ iv(12) ‖ AES-256-GCM(frame key, iv, ad = C ‖ 04, inner ‖ 80 ‖ 00…)
//
// padded so that it is exactly one of BUCKETS bytes long. The relay sees
// the version byte and the size, nothing else. C = "onionchat/4" 00 room id 00.
//
// inner = 01 ‖ MLSMessage     a commit or an application message (RFC 9420 §6)
//       | 02 ‖ MLSMessage     the room's GroupInfo, with its ratchet tree (§12.4.3)
//       | 03 ‖ chunk          one piece of a file, under a key from the MLS exporter
//   chunk = file id(16) ‖ epoch(8) ‖ index(4) ‖ AES-GCM(file key, iv = 0(8) ‖ index, ad = C ‖ 03 ‖ first 28 bytes, data)
//
// An application message's content (inside MLS, so encrypted and signed by
// its sender's leaf) is one of:
//
//   room messages (in the room's kept stream, with the sender's own count
//   and chain in the epoch, so that gaps and split views show):
//     kind(1) ‖ index(4) ‖ previous(32) ‖ time(8) ‖ payload
//     kind 01 text (UTF-8), 02 file offer (below), 03 file cancelled (file id),
//          04 file declined or refused by a receiver (file id, why (1)),
//          05 here: the relay session id (16) this leaf speaks through from now on,
//          06 file received whole by a receiver (file id)
//   acknowledgements (bulk, never kept):
//     10 ‖ n(2) ‖ n × (sender leaf(4) ‖ epoch(8) ‖ index(4) ‖ chain(32))
//   offer payload = file id(16) ‖ size(8) ‖ chunk size(4) ‖ SHA-256(32) ‖ flags(1) ‖ type length(1) ‖ type ‖ name

import { enc, dec, concat, u32, readU32, u16, readU16, subtle, randomBytes } from './bytes.mjs';

export const VERSION = 4;
export const T_MLS = 0x01;
export const T_GROUPINFO = 0x02;
export const T_CHUNK = 0x03;

export const K_TEXT = 0x01;
export const K_OFFER = 0x02;
export const K_CANCEL = 0x03;
export const K_DECLINE = 0x04;
export const K_HERE = 0x05;
export const K_RECEIVED = 0x06;
export const K_ACK = 0x10;
export const ROOM_KINDS = [K_TEXT, K_OFFER, K_CANCEL, K_DECLINE, K_HERE, K_RECEIVED];

// Why a receiver declined a file (K_DECLINE): the words are view.mjs's.
export const DECLINED = ['cancelled', 'busy', 'too-large', 'too-small', 'failed'];

export const F_PICTURE = 0x01;
export const F_STRIPPED = 0x02;

export const FILE_ID_BYTES = 16;
export const SID_BYTES = 16;
export const HASH_BYTES = 32;
export const IV_BYTES = 12;
export const TAG_BYTES = 16;
export const CHUNK_HEAD = 1 + FILE_ID_BYTES + 8 + 4; // 29
export const ROOM_HEAD = 1 + 4 + HASH_BYTES + 8; // 45
export const ACK_ENTRY_BYTES = 4 + 8 + 4 + HASH_BYTES; // 48

// BUCKETS are the only sizes an envelope takes. Powers of two from 512
// bytes: the smallest holds a text of a few hundred bytes, a "here" and an
// acknowledgement for a few members, so the relay cannot tell them apart;
// the largest, 32 KiB (43,692 base64 characters), fits the default 64 KiB
// frame, and holds a room's GroupInfo up to about 130 members. The relay
// learns at most which of 7 sizes, about 3 bits per frame.
export const BUCKETS = [512, 1024, 2048, 4096, 8192, 16384, 32768];
export const OUTER_BYTES = 1 + IV_BYTES + TAG_BYTES; // 29
const FRAME_OVERHEAD = 256; // the JSON of a frame around its base64 body, generously
// MLS_OVERHEAD is what a PrivateMessage adds to its content, generously:
// header, sender data, signature (64), AEAD tag and length prefixes.
export const MLS_OVERHEAD = 160;

// An EnvelopeError says why a body was refused: kind is "version", "size",
// "key" (could not be opened: altered), "padding" (opened, but not padded
// as this protocol pads: altered) or "format".
export class EnvelopeError extends Error {
  constructor(kind, message, version) { super(message); this.kind = kind; this.version = version; }
}

const gcm = (iv, additionalData) => ({ name: 'AES-GCM', iv, additionalData, tagLength: 128 });

// context is the prefix of every additional data of this version: it binds
// the version and the room.
export function context(roomId) {
  const z = new Uint8Array([0]);
  return concat(enc.encode('onionchat/4'), z, enc.encode(roomId), z);
}

// maxBucketFor returns the largest bucket whose base64 fits a relay frame
// of frameBytes (with room for a second body of up to `beside` bytes in
// the same frame).
export function maxBucketFor(frameBytes, beside = 0) {
  let best = 0;
  for (const b of BUCKETS) if (4 * Math.ceil(b / 3) + (beside ? 4 * Math.ceil(beside / 3) : 0) + FRAME_OVERHEAD <= frameBytes) best = b;
  return best;
}

// bucketFor returns the bucket an inner frame of n bytes is padded to, or
// 0 if it does not fit maxBucket.
export function bucketFor(n, maxBucket = BUCKETS[BUCKETS.length - 1]) {
  const need = OUTER_BYTES + n + 1;
  for (const b of BUCKETS) if (b >= need && b <= maxBucket) return b;
  return 0;
}

// maxTextBytes is the longest UTF-8 text a room message can carry in maxBucket.
export function maxTextBytes(maxBucket) { return maxBucket - OUTER_BYTES - 1 - 1 - MLS_OVERHEAD - ROOM_HEAD; }

// maxChunkBytes is the most file data one chunk carries in maxBucket,
// rounded down to whole KiB (to 64 bytes in the smallest bucket).
export function maxChunkBytes(maxBucket) {
  const n = maxBucket - OUTER_BYTES - 1 - CHUNK_HEAD - TAG_BYTES;
  return n >= 1024 ? Math.floor(n / 1024) * 1024 : Math.floor(n / 64) * 64;
}

// ---------------------------------------------------------------- outer layer

function outerAD(ctx) { return concat(ctx, new Uint8Array([VERSION])); }

// seal pads inner to its bucket and encrypts it under the frame key.
// ivForTest exists only for the known-answer vector.
export async function seal(frameKey, ctx, inner, maxBucket, ivForTest) {
  const b = bucketFor(inner.length, maxBucket);
  if (!b) throw new EnvelopeError('size', `a frame of ${inner.length} bytes does not fit the largest envelope`);
  const padded = new Uint8Array(b - OUTER_BYTES);
  padded.set(inner);
  padded[inner.length] = 0x80;
  const iv = ivForTest || randomBytes(IV_BYTES);
  try {
    const ct = new Uint8Array(await subtle().encrypt(gcm(iv, outerAD(ctx)), frameKey, padded));
    return concat(new Uint8Array([VERSION]), iv, ct);
  } finally {
    padded.fill(0);
  }
}

// open checks the version and size, decrypts, and removes and checks the
// padding: an envelope whose padding is not 80 00… is altered.
export async function open(frameKey, ctx, env) {
  if (env.length < 1) throw new EnvelopeError('format', 'empty envelope');
  if (env[0] !== VERSION) throw new EnvelopeError('version', `envelope of protocol version ${env[0]}`, env[0]);
  if (!BUCKETS.includes(env.length)) throw new EnvelopeError('size', `an envelope of ${env.length} bytes is not of a padded size`);
  let p;
  try {
    p = new Uint8Array(await subtle().decrypt(gcm(env.subarray(1, 1 + IV_BYTES), outerAD(ctx)), frameKey, env.subarray(1 + IV_BYTES)));
  } catch {
    throw new EnvelopeError('key', 'the envelope could not be opened');
  }
  let i = p.length - 1;
  while (i >= 0 && p[i] === 0) i--;
  if (i < 1 || p[i] !== 0x80) {
    p.fill(0);
    throw new EnvelopeError('padding', 'the envelope is not padded as it should be');
  }
  return p.subarray(0, i);
}

// ---------------------------------------------------------------- room message contents

// roomContent lays out a room message: kind, the sender's index of it in
// the epoch, the chain hash of the sender's previous one, the time, the
// payload.
export function roomContent(kind, index, previous, time, payload) {
  const t = new Uint8Array(8);
  new DataView(t.buffer).setBigUint64(0, BigInt(Math.max(0, Math.floor(time))));
  return concat(new Uint8Array([kind]), u32(index), previous, t, payload);
}

// parseContent reads an application message's content: a room message
// {kind, index, previous, time, payload} or an acknowledgement {kind,
// entries}. It throws EnvelopeError("format") for anything else.
export function parseContent(c) {
  if (c.length < 1) throw new EnvelopeError('format', 'empty content');
  const kind = c[0];
  if (kind === K_ACK) {
    if (c.length < 3) throw new EnvelopeError('format', 'acknowledgement too short');
    const n = readU16(c, 1);
    if (c.length !== 3 + n * ACK_ENTRY_BYTES) throw new EnvelopeError('format', 'acknowledgement of the wrong length');
    const entries = [];
    for (let i = 0, o = 3; i < n; i++, o += ACK_ENTRY_BYTES) {
      const v = new DataView(c.buffer, c.byteOffset + o + 4, 8);
      entries.push({ leaf: readU32(c, o), epoch: Number(v.getBigUint64(0)), index: readU32(c, o + 12), chain: c.slice(o + 16, o + ACK_ENTRY_BYTES) });
    }
    return { kind, entries };
  }
  if (!ROOM_KINDS.includes(kind)) throw new EnvelopeError('format', `unknown content kind ${kind}`);
  if (c.length < ROOM_HEAD) throw new EnvelopeError('format', 'room message too short');
  const time = Number(new DataView(c.buffer, c.byteOffset + 37, 8).getBigUint64(0));
  return { kind, index: readU32(c, 1), previous: c.slice(5, 37), time, payload: c.subarray(ROOM_HEAD) };
}

// ackContent lays out an acknowledgement of what this page has of each
// sender's room messages.
export function ackContent(entries) {
  const parts = [new Uint8Array([K_ACK]), u16(entries.length)];
  for (const e of entries) {
    const ep = new Uint8Array(8);
    new DataView(ep.buffer).setBigUint64(0, BigInt(e.epoch));
    parts.push(u32(e.leaf), ep, u32(e.index), e.chain);
  }
  return concat(...parts);
}

// chainNext is a sender's chain after one more room message: the hash of
// the previous chain value and the whole content.
export async function chainNext(previous, content) {
  return new Uint8Array(await subtle().digest('SHA-256', concat(enc.encode('onionchat/4 chain'), previous, content)));
}

export function textPayload(text) { return enc.encode(text); }

export function readText(payload) {
  try { return dec.decode(payload); } catch { throw new EnvelopeError('format', 'text is not UTF-8'); }
}

// offerPayload lays out a file offer (without a key: chunks are under keys
// from the MLS exporter of the epoch each is sent in).
export function offerPayload({ id, size, chunkSize, hash, flags, type, name }) {
  const typeBytes = enc.encode(type);
  const nameBytes = enc.encode(name).slice(0, 400);
  if (id.length !== FILE_ID_BYTES || hash.length !== HASH_BYTES || typeBytes.length > 255) throw new Error('bad offer');
  const sz = new Uint8Array(8);
  new DataView(sz.buffer).setBigUint64(0, BigInt(size));
  return concat(id, sz, u32(chunkSize), hash, new Uint8Array([flags, typeBytes.length]), typeBytes, nameBytes);
}

export function parseOffer(p) {
  const fixed = FILE_ID_BYTES + 8 + 4 + HASH_BYTES + 2;
  if (p.length < fixed) throw new EnvelopeError('format', 'offer too short');
  const size = Number(new DataView(p.buffer, p.byteOffset + FILE_ID_BYTES, 8).getBigUint64(0));
  const typeLen = p[fixed - 1];
  if (p.length < fixed + typeLen) throw new EnvelopeError('format', 'offer too short');
  let type;
  let name;
  try {
    type = dec.decode(p.subarray(fixed, fixed + typeLen));
    name = dec.decode(p.subarray(fixed + typeLen));
  } catch {
    throw new EnvelopeError('format', 'offer text is not UTF-8');
  }
  return {
    id: p.slice(0, FILE_ID_BYTES), size, chunkSize: readU32(p, FILE_ID_BYTES + 8), hash: p.slice(FILE_ID_BYTES + 12, FILE_ID_BYTES + 12 + HASH_BYTES),
    flags: p[fixed - 2], type, name,
  };
}

// ---------------------------------------------------------------- chunks

function chunkHead(id, epoch, index) {
  const ep = new Uint8Array(8);
  new DataView(ep.buffer).setBigUint64(0, BigInt(epoch));
  return concat(new Uint8Array([T_CHUNK]), id, ep, u32(index));
}

function chunkIV(index) { return concat(new Uint8Array(8), u32(index)); }

// makeChunk encrypts one piece of a file under the file key of the epoch
// it is sent in.
export async function makeChunk({ fileKey, ctx, id, epoch, index, data }) {
  const head = chunkHead(id, epoch, index);
  const ct = new Uint8Array(await subtle().encrypt(gcm(chunkIV(index), concat(ctx, head)), fileKey, data));
  return concat(head, ct);
}

export function parseChunk(inner) {
  if (inner.length < CHUNK_HEAD + TAG_BYTES) throw new EnvelopeError('format', 'chunk too short');
  const epoch = Number(new DataView(inner.buffer, inner.byteOffset + 1 + FILE_ID_BYTES, 8).getBigUint64(0));
  return { id: inner.slice(1, 1 + FILE_ID_BYTES), epoch, index: readU32(inner, 1 + FILE_ID_BYTES + 8), head: inner.subarray(0, CHUNK_HEAD), ct: inner.subarray(CHUNK_HEAD) };
}

export async function openChunk({ fileKey, ctx, parsed }) {
  try {
    return new Uint8Array(await subtle().decrypt(gcm(chunkIV(parsed.index), concat(ctx, parsed.head)), fileKey, parsed.ct));
  } catch {
    throw new EnvelopeError('key', 'the piece could not be opened');
  }
}

// importFileKey makes an AES-GCM key of 32 exported bytes, which it zeroes.
export async function importFileKey(raw, usage) {
  try {
    return await subtle().importKey('raw', raw, { name: 'AES-GCM', length: 256 }, false, [usage]);
  } finally {
    raw.fill(0);
  }
}
