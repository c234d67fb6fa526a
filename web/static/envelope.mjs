// envelope.mjs: the byte layout of protocol version 3's envelopes, and the
// encryption, padding and signature of each (docs/protocol.md §10). All
// integers are big-endian.
//
// Every envelope has one outer layer, sealed under the room's frame key
// (roomkey.mjs), which only passphrase holders have:
//
//   envelope = 03 ‖ iv(12) ‖ AES-256-GCM(frame key, iv, ad = C ‖ 03, inner ‖ 80 ‖ 00…)
//
// padded so that the envelope is exactly one of BUCKETS bytes long. The
// relay sees the version byte and the bucket, nothing else: not the kind of
// frame, not its length. C = "onionchat/3" 00 room id 00 (identity.mjs).
//
// The inner frame is one of:
//
// hello (01), who I am in this session:
//   01 ‖ flags(1) ‖ sid(16) ‖ ecdh pub(65) ‖ signing pub(65) ‖ epoch(4) ‖ name length(1) ‖ name ‖ sig(64)
//   sig = ECDSA(signing key, C ‖ everything before sig)
// distribution (02), one chain position wrapped for each recipient:
//   02 ‖ sender key id(8) ‖ epoch(4) ‖ counter(4) ‖ previous end(4) ‖ n(2) ‖ n × entry ‖ sig(64)
//   entry = recipient key id(8) ‖ iv(12) ‖ AES-GCM(pairwise key, iv, ad, chain key(32)) (48)
//   ad    = C ‖ 02 ‖ sender key id ‖ epoch ‖ counter ‖ recipient key id
//   sig   = ECDSA(signing key, C ‖ everything before sig)
// message (03):
//   03 ‖ epoch(4) ‖ counter(4) ‖ iv(12) ‖ AES-GCM(message key, iv, ad = C ‖ sender key id ‖ first 9 bytes, content) ‖ sig(64)
//   content = kind(1) ‖ time(8, ms since 1970) ‖ payload;  kind 01: payload = text in UTF-8,
//             02: a file offer (offer layout below), 03: a file cancelled (file id)
//   sig = ECDSA(signing key, C ‖ sender key id ‖ everything before sig)
// chunk (04), one piece of a file, under the file key its offer carried:
//   04 ‖ file id(16) ‖ index(4) ‖ AES-GCM(file key, iv = 0(8) ‖ index, ad = C ‖ sender key id ‖ first 21 bytes, data)

import { enc, dec, concat, u32, readU32, u16, readU16, subtle, randomBytes } from './bytes.mjs';
import { verify, PUBLIC_KEY_BYTES, KEY_ID_BYTES, SIGNATURE_BYTES } from './identity.mjs';
import { CHAIN_KEY_BYTES } from './chain.mjs';

export const VERSION = 3;
export const T_HELLO = 0x01;
export const T_DISTRIBUTION = 0x02;
export const T_MESSAGE = 0x03;
export const T_CHUNK = 0x04;

export const F_ANNOUNCE = 0x01;   // "I joined in a new session: send me your hello and your chain"
export const F_WANT_CHAIN = 0x02; // "send me your current chain"

export const K_TEXT = 0x01;
export const K_FILE = 0x02;
export const K_CANCEL = 0x03;
export const FILE_ID_BYTES = 16;
export const FILE_KEY_BYTES = 32;
const CHUNK_HEAD = 1 + FILE_ID_BYTES + 4; // 21

export const IV_BYTES = 12;
export const TAG_BYTES = 16;
export const SID_BYTES = 16;
export const MAX_NAME_BYTES = 255;
export const NO_END = 0xffffffff; // "previous end" of a distribution that is not a rekey

// BUCKETS are the only sizes an envelope takes. Powers of two from 512
// bytes: the smallest holds every hello, a one-member handoff and a chat
// message of up to 372 bytes of UTF-8, so the relay cannot tell those apart;
// the largest, 32 KiB (43,692 base64 characters), fits the default 64 KiB
// frame with room to spare. The price is at most twice the bytes; the relay
// learns at most which of 7 sizes, about 3 bits per frame.
export const BUCKETS = [512, 1024, 2048, 4096, 8192, 16384, 32768];
export const OUTER_BYTES = 1 + IV_BYTES + TAG_BYTES; // 29
export const ENTRY_BYTES = KEY_ID_BYTES + IV_BYTES + CHAIN_KEY_BYTES + TAG_BYTES; // 68
const DIST_FIXED = 1 + KEY_ID_BYTES + 4 + 4 + 4 + 2 + SIGNATURE_BYTES; // 87
const MSG_HEAD = 1 + 4 + 4; // 9
export const MSG_FIXED = MSG_HEAD + IV_BYTES + TAG_BYTES + SIGNATURE_BYTES; // 101, plus content
export const CONTENT_FIXED = 1 + 8;
const FRAME_OVERHEAD = 256; // the JSON of a msg frame around its base64 body, generously

// An EnvelopeError says why an envelope was refused: kind is "version",
// "size", "key" (could not be opened: altered), "padding" (opened, but
// not padded as this protocol pads: altered), "format" or "signature".
export class EnvelopeError extends Error {
  constructor(kind, message, version) { super(message); this.kind = kind; this.version = version; }
}

const gcm = (iv, additionalData) => ({ name: 'AES-GCM', iv, additionalData, tagLength: 128 });

// maxBucketFor returns the largest bucket whose base64 fits a relay frame
// of frameBytes.
export function maxBucketFor(frameBytes) {
  let best = 0;
  for (const b of BUCKETS) if (4 * Math.ceil(b / 3) + FRAME_OVERHEAD <= frameBytes) best = b;
  return best;
}

// bucketFor returns the bucket an inner frame of n bytes is padded to, or
// 0 if it does not fit maxBucket.
export function bucketFor(n, maxBucket = BUCKETS[BUCKETS.length - 1]) {
  const need = OUTER_BYTES + n + 1;
  for (const b of BUCKETS) if (b >= need && b <= maxBucket) return b;
  return 0;
}

// maxTextBytes is the longest UTF-8 text a message can carry in maxBucket.
export function maxTextBytes(maxBucket) { return maxBucket - OUTER_BYTES - 1 - MSG_FIXED - CONTENT_FIXED; }

// maxChunkBytes is the most file data one chunk carries in maxBucket,
// rounded down to whole KiB (to 64 bytes in the smallest bucket).
export function maxChunkBytes(maxBucket) {
  const n = maxBucket - OUTER_BYTES - 1 - CHUNK_HEAD - TAG_BYTES;
  return n >= 1024 ? Math.floor(n / 1024) * 1024 : Math.floor(n / 64) * 64;
}

// maxEntries is how many recipients one distribution can carry in maxBucket.
export function maxEntries(maxBucket) { return Math.floor((maxBucket - OUTER_BYTES - 1 - DIST_FIXED) / ENTRY_BYTES); }

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

// ---------------------------------------------------------------- hello

export async function makeHello({ identity, ctx, flags, sid, epoch, name }) {
  const nameBytes = enc.encode(name);
  if (nameBytes.length > MAX_NAME_BYTES) throw new Error('name too long');
  if (sid.length !== SID_BYTES) throw new Error('bad session id');
  const body = concat(new Uint8Array([T_HELLO, flags]), sid, identity.ecdhPub, identity.sigPub, u32(epoch),
    new Uint8Array([nameBytes.length]), nameBytes);
  return concat(body, await identity.sign(concat(ctx, body)));
}

export function parseHello(inner) {
  const fixed = 2 + SID_BYTES + 2 * PUBLIC_KEY_BYTES + 4 + 1;
  if (inner.length < fixed + SIGNATURE_BYTES) throw new EnvelopeError('format', 'hello too short');
  const nameLen = inner[fixed - 1];
  if (inner.length !== fixed + nameLen + SIGNATURE_BYTES) throw new EnvelopeError('format', 'hello has the wrong length');
  let o = 1;
  const flags = inner[o++];
  const sid = inner.slice(o, o += SID_BYTES);
  const ecdhPub = inner.slice(o, o += PUBLIC_KEY_BYTES);
  const sigPub = inner.slice(o, o += PUBLIC_KEY_BYTES);
  const epoch = readU32(inner, o);
  o += 5;
  let name;
  try {
    name = dec.decode(inner.subarray(o, o + nameLen));
  } catch {
    throw new EnvelopeError('format', 'hello name is not UTF-8');
  }
  const cut = fixed + nameLen;
  return { flags, sid, ecdhPub, sigPub, epoch, name, signed: inner.subarray(0, cut), sig: inner.subarray(cut) };
}

// ---------------------------------------------------------------- distribution

function entryAD(ctx, senderKeyId, epoch, counter, recipientKeyId) {
  return concat(ctx, new Uint8Array([T_DISTRIBUTION]), senderKeyId, u32(epoch), u32(counter), recipientKeyId);
}

// makeDistribution wraps one chain position (epoch, counter, raw key) for
// each recipient {keyId, pairwise} and signs the whole frame. prevEnd is,
// for a rekey, the counter at which the previous epoch ended; NO_END
// otherwise.
export async function makeDistribution({ identity, ctx, epoch, counter, prevEnd = NO_END, key, recipients }) {
  const entries = [];
  for (const r of recipients) {
    const iv = randomBytes(IV_BYTES);
    const ct = new Uint8Array(await subtle().encrypt(gcm(iv, entryAD(ctx, identity.keyId, epoch, counter, r.keyId)), r.pairwise, key));
    entries.push(r.keyId, iv, ct);
  }
  const body = concat(new Uint8Array([T_DISTRIBUTION]), identity.keyId, u32(epoch), u32(counter), u32(prevEnd), u16(recipients.length), ...entries);
  return concat(body, await identity.sign(concat(ctx, body)));
}

export function parseDistribution(inner) {
  const head = DIST_FIXED - SIGNATURE_BYTES;
  if (inner.length < DIST_FIXED) throw new EnvelopeError('format', 'distribution too short');
  const n = readU16(inner, head - 2);
  if (inner.length !== DIST_FIXED + n * ENTRY_BYTES) throw new EnvelopeError('format', 'distribution has the wrong length');
  let o = 1;
  const senderKeyId = inner.slice(o, o += KEY_ID_BYTES);
  const epoch = readU32(inner, o);
  const counter = readU32(inner, o + 4);
  const prevEnd = readU32(inner, o + 8);
  const entries = [];
  for (let i = 0, p = head; i < n; i++, p += ENTRY_BYTES) {
    entries.push({
      keyId: inner.subarray(p, p + KEY_ID_BYTES),
      iv: inner.subarray(p + KEY_ID_BYTES, p + KEY_ID_BYTES + IV_BYTES),
      wrapped: inner.subarray(p + KEY_ID_BYTES + IV_BYTES, p + ENTRY_BYTES),
    });
  }
  const cut = inner.length - SIGNATURE_BYTES;
  return { senderKeyId, epoch, counter, prevEnd, entries, signed: inner.subarray(0, cut), sig: inner.subarray(cut) };
}

// unwrapEntry opens the entry addressed to this page straight into a
// non-extractable HMAC chain key.
export async function unwrapEntry({ ctx, parsed, entry, pairwise }) {
  const ad = entryAD(ctx, parsed.senderKeyId, parsed.epoch, parsed.counter, entry.keyId);
  try {
    return await subtle().unwrapKey('raw', entry.wrapped, pairwise, gcm(entry.iv, ad),
      { name: 'HMAC', hash: 'SHA-256', length: 256 }, false, ['sign']);
  } catch {
    throw new EnvelopeError('key', 'chain key could not be unwrapped');
  }
}

// ---------------------------------------------------------------- message

function messageAD(ctx, senderKeyId, head) { return concat(ctx, senderKeyId, head); }

// content encodes what a message carries: its kind, time and payload.
export function textContent(text, time) {
  const t = enc.encode(text);
  const c = new Uint8Array(CONTENT_FIXED + t.length);
  c[0] = K_TEXT;
  c.set(u32(Math.floor(time / 0x100000000)), 1);
  c.set(u32(time % 0x100000000), 5);
  c.set(t, CONTENT_FIXED);
  return c;
}

export function parseContent(c) {
  if (c.length < CONTENT_FIXED) throw new EnvelopeError('format', 'message content too short');
  const time = readU32(c, 1) * 0x100000000 + readU32(c, 5);
  if (c[0] !== K_TEXT) return { kind: c[0], time, payload: c.subarray(CONTENT_FIXED) };
  let text;
  try {
    text = dec.decode(c.subarray(CONTENT_FIXED));
  } catch {
    throw new EnvelopeError('format', 'message text is not UTF-8');
  }
  return { kind: K_TEXT, time, text };
}

export async function makeMessage({ identity, ctx, epoch, counter, messageKey, content, ivForTest }) {
  const head = concat(new Uint8Array([T_MESSAGE]), u32(epoch), u32(counter));
  const iv = ivForTest || randomBytes(IV_BYTES);
  const ct = new Uint8Array(await subtle().encrypt(gcm(iv, messageAD(ctx, identity.keyId, head)), messageKey, content));
  const body = concat(head, iv, ct);
  return concat(body, await identity.sign(concat(ctx, identity.keyId, body)));
}

export function parseMessage(inner) {
  if (inner.length < MSG_FIXED) throw new EnvelopeError('format', 'message too short');
  const cut = inner.length - SIGNATURE_BYTES;
  return {
    head: inner.subarray(0, MSG_HEAD),
    epoch: readU32(inner, 1),
    counter: readU32(inner, 5),
    iv: inner.subarray(MSG_HEAD, MSG_HEAD + IV_BYTES),
    ct: inner.subarray(MSG_HEAD + IV_BYTES, cut),
    signed: inner.subarray(0, cut),
    sig: inner.subarray(cut),
  };
}

// openMessage decrypts a parsed message whose signature was checked.
export async function openMessage(messageKey, ctx, senderKeyId, parsed) {
  let c;
  try {
    c = new Uint8Array(await subtle().decrypt(gcm(parsed.iv, messageAD(ctx, senderKeyId, parsed.head)), messageKey, parsed.ct));
  } catch {
    throw new EnvelopeError('key', 'message could not be decrypted');
  }
  return parseContent(c);
}

// ---------------------------------------------------------------- signatures

// verifyHello and verifyDistribution check a frame's signature under the
// signing key of its sender; verifyMessage also binds the sender's key id.
export function verifySigned(ctx, parsed, sigKey) { return verify(sigKey, parsed.sig, concat(ctx, parsed.signed)); }
export function verifyMessage(ctx, senderKeyId, parsed, sigKey) { return verify(sigKey, parsed.sig, concat(ctx, senderKeyId, parsed.signed)); }

// ---------------------------------------------------------------- files

// A file offer is a message (so signed, and under the sender's chain) whose
// content carries what receivers need to take the file's chunks:
//   file id(16) ‖ file key(32) ‖ size(8) ‖ chunk size(4) ‖ SHA-256 of the file(32)
//   ‖ flags(1: 01 picture, 02 metadata removed) ‖ type length(1) ‖ media type ‖ name (UTF-8)
// The hash makes the file whole or nothing: a chunk altered, forged by
// another holder of the file key, or missing, and the file is refused.
export const F_PICTURE = 0x01;
export const F_STRIPPED = 0x02;

export function offerContent({ id, key, size, chunkSize, hash, flags, type, name }, time) {
  const t = enc.encode(type).subarray(0, 255);
  const n = enc.encode(name);
  const p = concat(id, key, u32(Math.floor(size / 0x100000000)), u32(size % 0x100000000), u32(chunkSize), hash,
    new Uint8Array([flags, t.length]), t, n);
  const c = concat(new Uint8Array(CONTENT_FIXED), p);
  c[0] = K_FILE;
  c.set(u32(Math.floor(time / 0x100000000)), 1);
  c.set(u32(time % 0x100000000), 5);
  return c;
}

export function parseOffer(payload) {
  const fixed = FILE_ID_BYTES + FILE_KEY_BYTES + 8 + 4 + 32 + 2;
  if (payload.length < fixed) throw new EnvelopeError('format', 'file offer too short');
  let o = 0;
  const id = payload.slice(o, o += FILE_ID_BYTES);
  const key = payload.slice(o, o += FILE_KEY_BYTES);
  const size = readU32(payload, o) * 0x100000000 + readU32(payload, o + 4);
  o += 8;
  const chunkSize = readU32(payload, o);
  o += 4;
  const hash = payload.slice(o, o += 32);
  const flags = payload[o++];
  const tl = payload[o++];
  if (o + tl > payload.length) throw new EnvelopeError('format', 'file offer too short');
  let type;
  let name;
  try {
    type = dec.decode(payload.subarray(o, o + tl));
    name = dec.decode(payload.subarray(o + tl));
  } catch {
    throw new EnvelopeError('format', 'file offer is not UTF-8');
  }
  if (chunkSize < 1 || size < 0 || !Number.isSafeInteger(size)) throw new EnvelopeError('format', 'bad file offer');
  return { id, key, size, chunkSize, hash, flags, type, name };
}

export function cancelContent(id, time) {
  const c = new Uint8Array(CONTENT_FIXED + FILE_ID_BYTES);
  c[0] = K_CANCEL;
  c.set(u32(Math.floor(time / 0x100000000)), 1);
  c.set(u32(time % 0x100000000), 5);
  c.set(id, CONTENT_FIXED);
  return c;
}

function chunkIV(index) { const iv = new Uint8Array(IV_BYTES); iv.set(u32(index), 8); return iv; }

function chunkAD(ctx, senderKeyId, head) { return concat(ctx, senderKeyId, head); }

// makeChunk encrypts one piece of a file under its file key (an AES-GCM
// CryptoKey). The IV is the index: a file key is used for one file only.
export async function makeChunk({ fileKey, ctx, senderKeyId, id, index, data }) {
  const head = concat(new Uint8Array([T_CHUNK]), id, u32(index));
  const ct = new Uint8Array(await subtle().encrypt(gcm(chunkIV(index), chunkAD(ctx, senderKeyId, head)), fileKey, data));
  return concat(head, ct);
}

export function parseChunk(inner) {
  if (inner.length < CHUNK_HEAD + TAG_BYTES) throw new EnvelopeError('format', 'chunk too short');
  return { head: inner.subarray(0, CHUNK_HEAD), id: inner.slice(1, 1 + FILE_ID_BYTES), index: readU32(inner, 1 + FILE_ID_BYTES), ct: inner.subarray(CHUNK_HEAD) };
}

export async function openChunk({ fileKey, ctx, senderKeyId, parsed }) {
  try {
    return new Uint8Array(await subtle().decrypt(gcm(chunkIV(parsed.index), chunkAD(ctx, senderKeyId, parsed.head)), fileKey, parsed.ct));
  } catch {
    throw new EnvelopeError('key', 'chunk could not be opened');
  }
}
