// Tests of protocol version 4's own layouts (roomkey.mjs, identity.mjs,
// envelope.mjs, and what mls.mjs takes from ts-mls) on Node's Web Crypto,
// each recomputed with node:crypto from docs/protocol.md, and the
// known-answer vector web/kat_test.go recomputes with Go:
//   node --test web/jstest/
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as nc from 'node:crypto';
import { readFileSync } from 'node:fs';
import { setup, joined, shown, warnings, FAST } from './room.mjs';
import { PBKDF2_ITERATIONS, deriveRoomSecret, roomKeys, deriveRoom, roomSalt, normRoom } from '../static/roomkey.mjs';
import { safetyCode, newSigningPair, publicBytes } from '../static/identity.mjs';
import * as mls from '../static/mls.mjs';
import {
  BUCKETS, OUTER_BYTES, EnvelopeError, context, seal, open, roomContent, parseContent, ackContent, chainNext, makeChunk,
  parseChunk, openChunk, importFileKey, maxBucketFor, maxTextBytes, maxChunkBytes, K_TEXT, K_ACK, T_MLS, T_GROUPINFO, T_CHUNK,
} from '../static/envelope.mjs';
import { toHex, fromHex, fromBase64, toBase64, enc, concat, u32 } from '../static/bytes.mjs';

const s = globalThis.crypto.subtle;
const kat = JSON.parse(readFileSync(new URL('./kat.json', import.meta.url)));

const gcmOpen = (key, iv, ad, ctAndTag) => {
  const d = nc.createDecipheriv(key.length === 16 ? 'aes-128-gcm' : 'aes-256-gcm', key, iv);
  d.setAAD(ad);
  d.setAuthTag(ctAndTag.subarray(ctAndTag.length - 16));
  return Buffer.concat([d.update(ctAndTag.subarray(0, ctAndTag.length - 16)), d.final()]);
};

test('the iteration count is 600,000 (OWASP); the room secret and frame key are not extractable', async () => {
  assert.equal(PBKDF2_ITERATIONS, 600000);
  const secret = await deriveRoomSecret('pw', 'srv', 'room', FAST);
  assert.equal(secret.extractable, false);
  const keys = await roomKeys(secret);
  assert.equal(keys.frameKey.extractable, false);
  assert.equal(keys.frameKey.algorithm.name, 'AES-GCM');
  assert.equal(keys.frameKey.algorithm.length, 256);
});

test('known-answer vector (the same as web/kat_test.go computes with Go)', async () => {
  assert.equal(toHex(await roomSalt(kat.server, kat.room)), kat.salt);
  const keys = await deriveRoom(kat.passphrase, kat.server, kat.room); // full 600,000 iterations
  assert.equal(keys.roomId, kat.roomId);
  assert.equal(keys.checkCode, kat.checkCode);
  assert.equal(await safetyCode(fromHex(kat.signingPublic)), kat.safetyCode);
  const content = roomContent(K_TEXT, kat.roomIndex, fromHex(kat.previous), kat.time, enc.encode(kat.text));
  assert.equal(toHex(content), kat.content);
  assert.equal(toHex(await chainNext(fromHex(kat.previous), content)), kat.chain);
  // ts-mls's exporter, which Go computes from RFC 9420 §8.5 alone.
  const raw = await mls.exporter(fromHex(kat.exporterSecret), 'onionchat/4 file', concat(u32(kat.leaf), fromHex(kat.fileId)), 32);
  assert.equal(toHex(raw), kat.fileKey);
  const ctx = context(kat.roomId);
  const fileKey = await importFileKey(raw, 'encrypt');
  const chunk = await makeChunk({ fileKey, ctx, id: fromHex(kat.fileId), epoch: kat.epoch, index: kat.index, data: fromHex(kat.data) });
  assert.equal(toHex(chunk), kat.chunk);
  assert.equal(toHex(await seal(keys.frameKey, ctx, chunk, undefined, fromHex(kat.envelopeIv))), kat.envelope);
  assert.equal(toHex(await open(keys.frameKey, ctx, fromHex(kat.envelope))), kat.chunk);
  const dk = await importFileKey(fromHex(kat.fileKey), 'decrypt');
  assert.equal(toHex(await openChunk({ fileKey: dk, ctx, parsed: parseChunk(fromHex(kat.chunk)) })), kat.data);
});

test('key schedule and every layout of ours match docs/protocol.md (recomputed with node:crypto)', async () => {
  const server = 'local:abc';
  const room = normRoom('  Lobby ');
  const pass = 'correct horse';
  assert.equal(room, 'lobby');
  const salt = nc.createHash('sha256').update(`onionchat/4 salt\0${server}\0${room}`).digest();
  const secret = nc.pbkdf2Sync(pass, salt, FAST, 32, 'sha256');
  const hk = (info, n = 32) => Buffer.from(nc.hkdfSync('sha256', secret, Buffer.alloc(0), info, n));
  const keys = await deriveRoom(pass, server, room, FAST);
  assert.equal(keys.roomId, hk('onionchat/4 room id', 16).toString('base64url'));
  assert.equal(keys.roomId.length, 22);
  const frameKey = hk('onionchat/4 frame');
  const C = Buffer.concat([Buffer.from('onionchat/4\0'), Buffer.from(keys.roomId), Buffer.from([0])]);
  assert.deepEqual(Buffer.from(context(keys.roomId)), C);
  const outer = (env) => {
    assert.equal(env[0], 4);
    assert.ok(BUCKETS.includes(env.length));
    const p = gcmOpen(frameKey, env.subarray(1, 13), Buffer.concat([C, Buffer.from([4])]), env.subarray(13));
    let i = p.length - 1;
    while (p[i] === 0) i--;
    assert.equal(p[i], 0x80, 'padding is 80 00…');
    return p.subarray(0, i);
  };
  // Safety code: SHA-256("onionchat/4 code" 0 ‖ Ed25519 public key), 5 × 5 digits.
  const pair = await newSigningPair();
  const pub = await publicBytes(pair);
  assert.equal(pub.length, 32);
  assert.equal(pair.privateKey.extractable, false);
  const h = nc.createHash('sha256').update(Buffer.concat([Buffer.from('onionchat/4 code\0'), pub])).digest();
  assert.equal(await safetyCode(pub), [0, 1, 2, 3, 4].map((i) => String(Number(h.readUIntBE(i * 5, 5) % 100000)).padStart(5, '0')).join(' '));

  // A room message and an acknowledgement, inside MLS: parsed as laid out.
  const prev = Buffer.alloc(32, 7);
  const c = roomContent(K_TEXT, 9, prev, 1700000000123, enc.encode('hi'));
  assert.deepEqual([c[0], Buffer.from(c).readUInt32BE(1)], [K_TEXT, 9]);
  assert.deepEqual(Buffer.from(c.subarray(5, 37)), prev);
  assert.equal(Number(Buffer.from(c).readBigUInt64BE(37)), 1700000000123);
  assert.equal(Buffer.from(c.subarray(45)).toString(), 'hi');
  const p = parseContent(c);
  assert.deepEqual([p.kind, p.index, p.time, dec(p.payload)], [K_TEXT, 9, 1700000000123, 'hi']);
  assert.deepEqual(Buffer.from(await chainNext(prev, c)), nc.createHash('sha256').update(Buffer.concat([Buffer.from('onionchat/4 chain'), prev, c])).digest());
  const ack = ackContent([{ leaf: 2, epoch: 5, index: 3, chain: new Uint8Array(32).fill(1) }]);
  assert.deepEqual([ack[0], Buffer.from(ack).readUInt16BE(1), Buffer.from(ack).readUInt32BE(3), Number(Buffer.from(ack).readBigUInt64BE(7)), Buffer.from(ack).readUInt32BE(15)], [K_ACK, 1, 2, 5, 3]);
  assert.deepEqual(parseContent(ack).entries[0].epoch, 5);

  // A chunk: 03 ‖ file id ‖ epoch ‖ index ‖ AES-GCM(file key, iv = 0 ‖ index, ad = C ‖ head).
  const fk = Buffer.alloc(32, 9);
  const id = Buffer.alloc(16, 3);
  const ch = outer(await seal(keys.frameKey, C, await makeChunk({ fileKey: await importFileKey(new Uint8Array(fk), 'encrypt'), ctx: C, id, epoch: 6, index: 1, data: enc.encode('piece') })));
  assert.equal(ch[0], T_CHUNK);
  assert.deepEqual(Buffer.from(ch.subarray(1, 17)), id);
  assert.deepEqual([Number(ch.readBigUInt64BE(17)), ch.readUInt32BE(25)], [6, 1]);
  const iv = Buffer.concat([Buffer.alloc(8), Buffer.from([0, 0, 0, 1])]);
  assert.equal(gcmOpen(fk, iv, Buffer.concat([C, ch.subarray(0, 29)]), ch.subarray(29)).toString(), 'piece');
});

const dec = (b) => new TextDecoder().decode(b);

test('another passphrase, room or server makes another room id (and the same inputs the same id)', async () => {
  const a = await deriveRoom('pw', 'srv', 'room', FAST);
  assert.equal((await deriveRoom('pw', 'srv', 'room', FAST)).roomId, a.roomId);
  for (const [p, sv, r] of [['pW', 'srv', 'room'], ['pw', 'srv2', 'room'], ['pw', 'srv', 'room2']]) {
    const b = await deriveRoom(p, sv, r, FAST);
    assert.notEqual(b.roomId, a.roomId);
    assert.notEqual(b.checkCode, a.checkCode);
  }
  // Unicode passphrases are NFC-normalised: the same passphrase typed two ways is one room.
  assert.equal((await deriveRoom('caf\u00e9', 's', 'r', FAST)).roomId, (await deriveRoom('cafe\u0301', 's', 'r', FAST)).roomId);
});

test('every body the page sends takes a bucket size: texts of 1 to 5,000 characters, commits, GroupInfo, acknowledgements', async () => {
  const { relay, mk } = setup();
  const alice = await joined(relay, mk('alice'), 'alice');
  const bob = await joined(relay, mk('bob'), 'bob');
  const texts1 = [];
  for (let n = 1; n <= 5000; n = n < 50 ? n + 1 : Math.ceil(n * 1.07)) texts1.push('x'.repeat(n));
  texts1.push('x'.repeat(5000), '\u{1F600}'.repeat(2500), 'a' + '\n'.repeat(4999), 'é'.repeat(5000));
  for (const t of texts1) { alice.send(t); await relay.advance(120, 120); }
  await relay.advance(20000, 500); // at the relay's byte rate
  bob.leave();
  await relay.advance(1000);
  const carol = await joined(relay, mk('carol'), 'carol');
  alice.send('after the leave');
  await relay.advance(3000);
  const g = alice.group;
  const kinds = new Map();
  const frames = [...relay.log, ...[...relay.sockets].flatMap((x) => x.sent.filter((f) => f.type === 'info' && f.body))];
  for (const f of frames) {
    for (const b of [f.body, f.info].filter(Boolean)) {
      const env = fromBase64(b);
      assert.ok(BUCKETS.includes(env.length), `a body of ${env.length} bytes`);
      const inner = await open(g.frameKey, g.ctx, env);
      const k = inner[0] === T_MLS ? (f.commit !== undefined ? 'commit' : f.bulk ? 'ack' : 'message') : inner[0] === T_GROUPINFO ? 'groupinfo' : String(inner[0]);
      kinds.set(k, (kinds.get(k) || new Set()).add(env.length));
    }
  }
  for (const k of ['commit', 'groupinfo', 'ack', 'message']) assert.ok(kinds.has(k), `frame kind ${k} seen: ${[...kinds.keys()]}`);
  // A short message, an acknowledgement and a small room's commit are the same size.
  assert.ok(kinds.get('message').has(512));
  assert.deepEqual([...kinds.get('ack')], [512]);
  assert.equal(shown(bob).length, texts1.length);
  assert.ok(shown(bob).includes('alice: a' + '\n'.repeat(4999)));
  assert.deepEqual(shown(carol), ['alice: after the leave']);
  assert.deepEqual(warnings(alice), []);
});

test('padding: altered by one byte, or not 80 00…, the envelope does not open, and nothing is shown', async () => {
  const keys = await deriveRoom('pw', 'srv', 'r', FAST);
  const C = context(keys.roomId);
  const inner = enc.encode('\x01abc');
  const env = await seal(keys.frameKey, C, inner);
  assert.equal(env.length, 512);
  for (const i of [env.length - 17, 400, 20, 13]) {
    const bad = env.slice();
    bad[i] ^= 1;
    await assert.rejects(open(keys.frameKey, C, bad), (e) => e instanceof EnvelopeError && e.kind === 'key');
  }
  // A sender that pads otherwise (here: a stray byte after the 80) is refused as altered.
  const raw = await s.importKey('raw', nc.hkdfSync('sha256', Buffer.alloc(1), Buffer.alloc(0), 'x', 32), 'AES-GCM', false, ['encrypt', 'decrypt']);
  const badPad = new Uint8Array(512 - OUTER_BYTES);
  badPad.set(inner);
  badPad[inner.length] = 0x80;
  badPad[badPad.length - 1] = 1;
  const iv = new Uint8Array(12);
  const ct = new Uint8Array(await s.encrypt({ name: 'AES-GCM', iv, additionalData: new Uint8Array([...C, 4]) }, raw, badPad));
  await assert.rejects(open(raw, C, new Uint8Array([4, ...iv, ...ct])), (e) => e.kind === 'padding');
  // Not a bucket size: refused before anything is decrypted.
  await assert.rejects(open(keys.frameKey, C, env.subarray(0, 511)), (e) => e.kind === 'size');

  // In a room: a frame whose padding is altered is said, and nothing is shown.
  const { relay, mk } = setup();
  const alice = await joined(relay, mk('alice'), 'alice');
  const bob = await joined(relay, mk('bob'), 'bob');
  const bs = [...relay.sockets].find((x) => x.conn.session && x.conn.session.name === 'bob');
  relay.tamper = (sock, f) => {
    if (sock !== bs || f.type !== 'msg' || f.bulk) return f;
    const b = fromBase64(f.body);
    b[200] ^= 1;
    return { ...f, body: toBase64(b) };
  };
  alice.send('secret');
  await relay.advance(2000);
  assert.deepEqual(shown(bob), []);
  assert.ok(warnings(bob).some((n) => /could not be opened: it was altered/.test(n)), warnings(bob).join('\n'));
});

test('limits: the largest envelope fits the relay frame beside a commit; a room of 100’s GroupInfo and an 8,000-character text fit', async () => {
  assert.equal(maxBucketFor(65536), 32768);
  assert.equal(maxBucketFor(1024), 512);
  // A commit frame carries the commit and the GroupInfo after it.
  assert.ok(4 * Math.ceil(32768 / 3) + 4 * Math.ceil(4096 / 3) + 256 <= 65536);
  assert.ok(maxTextBytes(32768) >= 3 * 8000, 'an 8,000-character text of 3-byte characters fits');
  assert.ok(maxChunkBytes(32768) >= 31 * 1024);
  // Grow a group to 100 members (only the first member follows each join)
  // and measure what a newcomer and the relay would hold of it.
  const cs = await mls.suite();
  const mkMember = async (name) => {
    const pair = await newSigningPair();
    const h = mls.register(pair);
    return mls.keyPackage(name, h, await publicBytes(pair));
  };
  const first = await mkMember('member 0');
  let state = await mls.createGroup(new Uint8Array(16), first.publicPackage, first.privatePackage, [], cs, mls.CONFIG);
  let commit = 0;
  for (let i = 1; i < 100; i++) {
    const gi = mls.decode(await mls.groupInfo(state)).groupInfo;
    const kp = await mkMember(`member ${String(i).padStart(2, '0')} with a longish name`);
    const r = await mls.joinGroupExternal(gi, kp.publicPackage, kp.privatePackage, false, cs, undefined, mls.CONFIG);
    const msg = mls.encode({ version: 'mls10', wireformat: 'mls_public_message', publicMessage: r.publicMessage });
    commit = Math.max(commit, msg.length);
    state = (await mls.processMessage(mls.decode(msg), state, mls.emptyPskIndex, () => 'accept', cs)).newState;
  }
  const info = await mls.groupInfo(state);
  assert.ok(OUTER_BYTES + 1 + info.length + 1 <= 32768, `a GroupInfo of 100 members is ${info.length} bytes`);
  assert.ok(OUTER_BYTES + 1 + commit + 1 <= 4096, `an external commit at 100 members is ${commit} bytes`);
});
