// Tests of protocol version 3's key schedule and envelopes (roomkey.mjs,
// identity.mjs, chain.mjs, envelope.mjs) on Node's own Web Crypto, each
// layout recomputed with node:crypto from docs/protocol.md:
//   node --test web/jstest/
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as nc from 'node:crypto';
import { readFileSync } from 'node:fs';
import { FakeHub, FAST, texts, notices } from './fakehub.mjs';
import {
  PBKDF2_ITERATIONS, deriveRoomSecret, roomKeys, deriveRoom, roomSalt, normRoom,
} from '../static/roomkey.mjs';
import { Identity, Peer, context } from '../static/identity.mjs';
import { SenderChain } from '../static/chain.mjs';
import {
  BUCKETS, OUTER_BYTES, T_HELLO, T_DISTRIBUTION, T_MESSAGE, NO_END, EnvelopeError,
  seal, open, makeHello, parseHello, makeDistribution, parseDistribution, makeMessage, parseMessage, openMessage,
  textContent, maxBucketFor, maxEntries,
} from '../static/envelope.mjs';
import { toHex, fromHex, fromBase64, toBase64, fromBase64url, enc } from '../static/bytes.mjs';

const s = globalThis.crypto.subtle;
const kat = JSON.parse(readFileSync(new URL('./kat.json', import.meta.url)));

// extractable makes an Identity whose private keys node:crypto can read,
// to check the ECDH and ECDSA steps; the page makes them non-extractable.
async function extractable() {
  const ecdh = await s.generateKey({ name: 'ECDH', namedCurve: 'P-256' }, true, ['deriveBits']);
  const sig = await s.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify']);
  return Identity.create({ signing: sig }).then(async (id) => {
    const ecdhPub = new Uint8Array(await s.exportKey('raw', ecdh.publicKey));
    const p = await Peer.import(ecdhPub, id.sigPub);
    return new Identity(ecdh, sig, ecdhPub, id.sigPub, p.keyId, p.code);
  });
}

const gcmOpen = (key, iv, ad, ctAndTag) => {
  const d = nc.createDecipheriv('aes-256-gcm', key, iv);
  d.setAAD(ad);
  d.setAuthTag(ctAndTag.subarray(ctAndTag.length - 16));
  return Buffer.concat([d.update(ctAndTag.subarray(0, ctAndTag.length - 16)), d.final()]);
};
const verifies = (id, data, sig) => nc.verify('sha256', data, { key: nc.KeyObject.from(id.sig.publicKey), dsaEncoding: 'ieee-p1363' }, sig);

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
  const inner = fromHex(kat.inner);
  const ctx = context(kat.roomId);
  assert.equal(toHex(await seal(keys.frameKey, ctx, inner, undefined, fromHex(kat.envelopeIv))), kat.envelope);
  assert.deepEqual(toHex(await open(keys.frameKey, ctx, fromHex(kat.envelope))), kat.inner);
  // The message under the vector's chain key opens, and its signature verifies.
  const chain = new SenderChain(kat.epoch, kat.counter, fromHex(kat.chainKey));
  const { messageKey } = await chain.next();
  const p = parseMessage(inner);
  const c = await openMessage(messageKey, ctx, fromHex(kat.keyId), p);
  assert.deepEqual([c.text, c.time, p.epoch, p.counter], [kat.text, kat.time, kat.epoch, kat.counter]);
  const sigKey = await s.importKey('raw', fromHex(kat.signingPublic), { name: 'ECDSA', namedCurve: 'P-256' }, false, ['verify']);
  const { verifyMessage } = await import('../static/envelope.mjs');
  assert.ok(await verifyMessage(ctx, fromHex(kat.keyId), p, sigKey));
});

test('key schedule and every layout match docs/protocol.md (recomputed with node:crypto)', async () => {
  const server = 'local:abc';
  const room = normRoom('  Lobby ');
  const pass = 'correct horse';
  assert.equal(room, 'lobby');
  const salt = nc.createHash('sha256').update(`onionchat/3 salt\0${server}\0${room}`).digest();
  const secret = nc.pbkdf2Sync(pass, salt, FAST, 32, 'sha256');
  const hk = (info, n = 32) => Buffer.from(nc.hkdfSync('sha256', secret, Buffer.alloc(0), info, n));
  const keys = await deriveRoom(pass, server, room, FAST);
  assert.equal(keys.roomId, hk('onionchat/3 room id', 16).toString('base64url'));
  assert.equal(keys.roomId.length, 22);
  const frameKey = hk('onionchat/3 frame');
  const C = Buffer.concat([Buffer.from('onionchat/3\0'), Buffer.from(keys.roomId), Buffer.from([0])]);
  assert.deepEqual(Buffer.from(context(keys.roomId)), C);
  const outer = (env) => {
    assert.equal(env[0], 3);
    const p = gcmOpen(frameKey, env.subarray(1, 13), Buffer.concat([C, Buffer.from([3])]), env.subarray(13));
    let i = p.length - 1;
    while (p[i] === 0) i--;
    assert.equal(p[i], 0x80, 'padding is 80 00…');
    return p.subarray(0, i);
  };

  const alice = await extractable();
  const bob = await extractable();
  // Key id and safety code.
  assert.equal(toHex(alice.keyId), nc.createHash('sha256').update(alice.ecdhPub).update(alice.sigPub).digest('hex').slice(0, 16));
  const h = nc.createHash('sha256').update(nc.KeyObject.from(alice.sig.publicKey).export({ format: 'der', type: 'spki' })).digest();
  assert.equal(alice.code, [0, 1, 2, 3, 4].map((i) => String(Number(h.readUIntBE(i * 5, 5) % 100000)).padStart(5, '0')).join(' '));

  // Hello: 01 | flags | sid | ecdh | signing | epoch | len | name | sig over C ‖ all before.
  const sid = 'AAECAwQFBgcICQoLDA0ODw';
  const hello = outer(await seal(keys.frameKey, C, await makeHello({ identity: alice, ctx: C, flags: 1, sid: fromBase64url(sid), epoch: 7, name: 'alice' })));
  assert.deepEqual([hello[0], hello[1]], [T_HELLO, 1]);
  assert.equal(Buffer.from(hello.subarray(2, 18)).toString('base64url'), sid);
  assert.deepEqual(hello.subarray(18, 83), Buffer.from(alice.ecdhPub));
  assert.deepEqual(hello.subarray(83, 148), Buffer.from(alice.sigPub));
  assert.equal(hello.readUInt32BE(148), 7);
  assert.equal(hello[152], 5);
  assert.equal(hello.subarray(153, 158).toString(), 'alice');
  assert.ok(verifies(alice, Buffer.concat([C, hello.subarray(0, 158)]), hello.subarray(158)));
  assert.equal(hello.length, 158 + 64);
  assert.equal(parseHello(hello).name, 'alice');

  // Distribution: 02 | sender key id | epoch | counter | previous end | n | entries | sig.
  const ck = Buffer.alloc(32, 0x42);
  const pw = await alice.pairwise(await Peer.import(bob.ecdhPub, bob.sigPub), keys.roomId);
  const dist = outer(await seal(keys.frameKey, C, await makeDistribution({ identity: alice, ctx: C, epoch: 2, counter: 9, prevEnd: 4, key: new Uint8Array(ck), recipients: [{ keyId: bob.keyId, pairwise: pw }] })));
  assert.equal(dist[0], T_DISTRIBUTION);
  assert.deepEqual(dist.subarray(1, 9), Buffer.from(alice.keyId));
  assert.deepEqual([dist.readUInt32BE(9), dist.readUInt32BE(13), dist.readUInt32BE(17), dist.readUInt16BE(21)], [2, 9, 4, 1]);
  const entry = dist.subarray(23, 23 + 68);
  assert.deepEqual(entry.subarray(0, 8), Buffer.from(bob.keyId));
  // The pairwise key: HKDF over the ECDH x-coordinate, info names the room and both public keys in order.
  const shared = nc.diffieHellman({ privateKey: nc.KeyObject.from(bob.ecdh.privateKey), publicKey: nc.KeyObject.from(alice.ecdh.publicKey) });
  const [lo, hi] = Buffer.compare(Buffer.from(alice.ecdhPub), Buffer.from(bob.ecdhPub)) <= 0 ? [alice.ecdhPub, bob.ecdhPub] : [bob.ecdhPub, alice.ecdhPub];
  const pk = Buffer.from(nc.hkdfSync('sha256', shared, Buffer.alloc(0), Buffer.concat([Buffer.from(`onionchat/3 pairwise\0${keys.roomId}\0`), lo, hi]), 32));
  const ad = Buffer.concat([C, Buffer.from([2]), Buffer.from(alice.keyId), Buffer.from([0, 0, 0, 2, 0, 0, 0, 9]), Buffer.from(bob.keyId)]);
  assert.deepEqual(gcmOpen(pk, entry.subarray(8, 20), ad, entry.subarray(20)), ck);
  assert.ok(verifies(alice, Buffer.concat([C, dist.subarray(0, dist.length - 64)]), dist.subarray(dist.length - 64)));
  assert.equal(parseDistribution(dist).prevEnd, 4);

  // Chain: message key = HMAC(chain, 01), next = HMAC(chain, 02); the old key is zeroed.
  const chain = new SenderChain(2, 9, new Uint8Array(ck));
  const before = chain.key;
  const { counter, messageKey } = await chain.next();
  const mk = nc.createHmac('sha256', ck).update(Buffer.from([1])).digest();
  assert.deepEqual(Buffer.from(chain.key), nc.createHmac('sha256', ck).update(Buffer.from([2])).digest());
  assert.ok(before.every((x) => x === 0), 'the replaced chain key is zeroed');

  // Message: 03 | epoch | counter | iv | AES-GCM(mk, ad = C ‖ key id ‖ head, kind | time | text) | sig over C ‖ key id ‖ all before.
  const msg = outer(await seal(keys.frameKey, C, await makeMessage({ identity: alice, ctx: C, epoch: 2, counter, messageKey, content: textContent('hi', 1700000000123) })));
  assert.equal(msg[0], T_MESSAGE);
  assert.deepEqual([msg.readUInt32BE(1), msg.readUInt32BE(5)], [2, 9]);
  const plain = gcmOpen(mk, msg.subarray(9, 21), Buffer.concat([C, Buffer.from(alice.keyId), msg.subarray(0, 9)]), msg.subarray(21, msg.length - 64));
  assert.equal(plain[0], 1);
  assert.equal(Number(plain.readBigUInt64BE(1)), 1700000000123);
  assert.equal(plain.subarray(9).toString(), 'hi');
  assert.ok(verifies(alice, Buffer.concat([C, Buffer.from(alice.keyId), msg.subarray(0, msg.length - 64)]), msg.subarray(msg.length - 64)));
});

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

test('every envelope the page sends takes a bucket size: texts of 1 to 5,000 characters and every frame kind', async () => {
  const hub = new FakeHub();
  const a = await hub.add('alice');
  await hub.settle();
  const b = await hub.add('bob');
  await hub.settle();
  const texts1 = [];
  for (let n = 1; n <= 5000; n = n < 50 ? n + 1 : Math.ceil(n * 1.07)) texts1.push('x'.repeat(n));
  texts1.push('x'.repeat(5000), '\u{1F600}'.repeat(2500), '\n'.repeat(5000), 'é'.repeat(5000));
  for (const t of texts1) await hub.say('alice', t);
  await hub.settle();
  hub.leave('bob'); // a rekey comes with alice's next message
  await hub.settle();
  await hub.add('carol');
  await hub.settle();
  await hub.say('alice', 'after the leave');
  await hub.settle();
  const kinds = new Map();
  for (const f of hub.transcript) {
    const env = fromBase64(f.body);
    assert.ok(BUCKETS.includes(env.length), `an envelope of ${env.length} bytes`);
    const inner = await open((await hub.roomKeys('pw')).frameKey, context((await hub.roomKeys('pw')).roomId), env);
    kinds.set(inner[0] + (f.to ? '/direct' : ''), (kinds.get(inner[0] + (f.to ? '/direct' : '')) || new Set()).add(env.length));
  }
  // Hellos (broadcast and direct), handoffs, bundles and messages were all seen.
  for (const k of ['1', '1/direct', '2', '2/direct', '3']) assert.ok(kinds.has(k), `frame kind ${k} seen`);
  // A short message, a hello and a one-member handoff are the same size.
  assert.deepEqual([...kinds.get('1')], [512]);
  assert.deepEqual([...kinds.get('2/direct')], [512]);
  assert.ok(kinds.get('3').has(512));
  assert.equal(texts(b).length, texts1.length);
  assert.ok(texts(b).includes('alice: ' + '\n'.repeat(5000)));
  assert.equal(a.events.filter((e) => e.type === 'notice').length, 0);
});

test('padding: altered by one byte, or not 80 00…, the envelope does not open, and nothing is shown', async () => {
  const keys = await deriveRoom('pw', 'srv', 'r', FAST);
  const C = context(keys.roomId);
  const inner = enc.encode('\x03abc');
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
  const ct = new Uint8Array(await s.encrypt({ name: 'AES-GCM', iv, additionalData: new Uint8Array([...C, 3]) }, raw, badPad));
  await assert.rejects(open(raw, C, new Uint8Array([3, ...iv, ...ct])), (e) => e.kind === 'padding');
  // Not a bucket size: refused before anything is decrypted.
  await assert.rejects(open(keys.frameKey, C, env.subarray(0, 511)), (e) => e.kind === 'size');

  // In a room: a frame whose padding is altered shows a notice and no message.
  const hub = new FakeHub();
  const a = await hub.add('alice');
  await hub.settle();
  const b = await hub.add('bob');
  await hub.settle();
  const body = fromBase64(toBase64(await a.group.seal('secret')));
  hub.transcript.length = 0;
  b.inbox = b.inbox.filter(() => false);
  body[200] ^= 0x01;
  hub.send(a, { body: toBase64(body) });
  await hub.settle();
  assert.deepEqual(texts(b), []);
  assert.ok(notices(b).some((n) => /could not be opened: it was altered/.test(n)), notices(b).join('\n'));
});

test('limits: the largest envelope fits the relay frame; a full room’s bundle and an 8,000-character text fit', () => {
  assert.equal(maxBucketFor(65536), 32768);
  assert.equal(maxBucketFor(1024), 512);
  assert.ok(maxEntries(32768) >= 400, 'a bundle of 400 members fits one frame');
  assert.ok(4 * Math.ceil(32768 / 3) + 256 <= 65536);
  assert.equal(NO_END, 0xffffffff);
});
