// Tests of the page's crypto module on Node's own Web Crypto:
//   node --test web/jstest/
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import {
  PBKDF2_ITERATIONS, IV_BYTES, SENDER_ID_BYTES, deriveRoomKey, roomSalt, senderKey, Sender, Receiver,
  DecryptError, toHex, fromHex,
} from '../static/crypto.mjs';

const kat = JSON.parse(readFileSync(new URL('./kat.json', import.meta.url)));
const FAST = 1000; // iterations for tests that are not about the iteration count

async function pair(pass = 'pw', { room = 'r', server = 'srv', name = 'alice' } = {}) {
  const k = await deriveRoomKey(pass, server, room, FAST);
  return { sender: await Sender.create(k, room, name), receiver: new Receiver(k, room), key: k };
}

async function rejects(p, kind) {
  await assert.rejects(p, (e) => e instanceof DecryptError && e.kind === kind, `want DecryptError ${kind}`);
}

test('the iteration count is 600,000 (OWASP) and keys are not extractable', async () => {
  assert.equal(PBKDF2_ITERATIONS, 600000);
  const k = await deriveRoomKey('pw', 'srv', 'room');
  assert.equal(k.extractable, false);
  assert.equal(k.algorithm.name, 'HKDF');
  const sk = await senderKey(k, new Uint8Array(SENDER_ID_BYTES));
  assert.equal(sk.extractable, false);
  assert.equal(sk.algorithm.name, 'AES-GCM');
  assert.equal(sk.algorithm.length, 256);
});

test('known-answer vector (the same as web/kat_test.go computes with Go)', async () => {
  assert.equal(toHex(await roomSalt(kat.serverId, kat.room)), kat.salt);
  const k = await deriveRoomKey(kat.passphrase, kat.serverId, kat.room); // full 600,000 iterations
  const s = new Sender(fromHex(kat.senderId), await senderKey(k, fromHex(kat.senderId)), kat.room, kat.name);
  const env = await s.seal(kat.text, kat.time, fromHex(kat.iv));
  assert.equal(toHex(env), kat.envelope);
  const got = await new Receiver(k, kat.room).open(fromHex(kat.envelope), kat.name);
  assert.deepEqual([got.sender, got.text, got.time, got.counter], [kat.name, kat.text, kat.time, 1]);
});

test('round trip, in order, many senders', async () => {
  const k = await deriveRoomKey('pw', 'srv', 'r', FAST);
  const rx = new Receiver(k, 'r');
  const alice = await Sender.create(k, 'r', 'alice');
  const bob = await Sender.create(k, 'r', 'bob');
  for (const [s, text] of [[alice, 'hi bob'], [bob, 'hi alice 👋'], [alice, 'x'.repeat(8000)], [bob, '<img src=x onerror=alert(1)>']]) {
    const m = await rx.open(await s.seal(text), s.name);
    assert.equal(m.text, text);
    assert.equal(m.sender, s.name);
  }
});

test('wrong passphrase fails cleanly', async () => {
  const { sender } = await pair('right');
  const wrong = new Receiver(await deriveRoomKey('wrong', 'srv', 'r', FAST), 'r');
  await rejects(wrong.open(await sender.seal('secret'), 'alice'), 'key');
});

test('same passphrase, other room or other server: unreadable', async () => {
  const { sender } = await pair('pw', { room: 'r', server: 'srv' });
  for (const [room, server] of [['r2', 'srv'], ['r', 'srv2']]) {
    const rx = new Receiver(await deriveRoomKey('pw', server, room, FAST), room);
    await rejects(rx.open(await sender.seal('secret'), 'alice'), 'key');
  }
});

test('altered ciphertext, IV, sender id, tag or additional data fails', async () => {
  const { sender, key } = await pair();
  const env = await sender.seal('do not touch');
  const ivStart = 1 + SENDER_ID_BYTES;
  const ctStart = ivStart + IV_BYTES;
  for (const [what, i] of [['sender id', 1], ['iv', ivStart], ['ciphertext', ctStart], ['tag', env.length - 1]]) {
    const bad = env.slice();
    bad[i] ^= 1;
    await rejects(new Receiver(key, 'r').open(bad, 'alice'), 'key', what);
  }
  // Additional data binds the room: the same envelope replayed into another room fails.
  await rejects(new Receiver(key, 'other room').open(env, 'alice'), 'key');
  // Truncated and version-changed envelopes.
  await rejects(new Receiver(key, 'r').open(env.subarray(0, 20), 'alice'), 'format');
  const v2 = env.slice(); v2[0] = 2;
  await rejects(new Receiver(key, 'r').open(v2, 'alice'), 'version');
});

test('replay rejected, and a relay that renames the sender is caught', async () => {
  const { sender, receiver } = await pair();
  const m1 = await sender.seal('one');
  const m2 = await sender.seal('two');
  await receiver.open(m1, 'alice');
  await receiver.open(m2, 'alice');
  await rejects(receiver.open(m1, 'alice'), 'replay');
  await rejects(receiver.open(m2, 'alice'), 'replay');
  await rejects(receiver.open(await sender.seal('three'), 'mallory'), 'sender');
  // History frames carry no relay sender: accepted on the inner name.
  const m = await receiver.open(await sender.seal('four'));
  assert.equal(m.sender, 'alice');
});

test('10,000 IVs are all distinct', async () => {
  const { sender } = await pair();
  const seen = new Set();
  for (let i = 0; i < 10000; i++) {
    const env = await sender.seal('m');
    seen.add(toHex(env.subarray(1 + SENDER_ID_BYTES, 1 + SENDER_ID_BYTES + IV_BYTES)));
  }
  assert.equal(seen.size, 10000);
  assert.equal(sender.counter, 10000);
});

test('each sender session has its own id and key', async () => {
  const k = await deriveRoomKey('pw', 'srv', 'r', FAST);
  const a = await Sender.create(k, 'r', 'alice');
  const b = await Sender.create(k, 'r', 'alice');
  assert.notEqual(toHex(a.id), toHex(b.id));
  // The envelope's id is a's; patching in b's id makes it fail.
  const env = await a.seal('x');
  env.set(b.id, 1);
  await rejects(new Receiver(k, 'r').open(env, 'alice'), 'key');
});

test('unicode passphrases are normalised (NFC)', async () => {
  const composed = 'caf\u00e9';
  const decomposed = 'cafe\u0301';
  const a = new Receiver(await deriveRoomKey(composed, 's', 'r', FAST), 'r');
  const s = await Sender.create(await deriveRoomKey(decomposed, 's', 'r', FAST), 'r', 'n');
  assert.equal((await a.open(await s.seal('ok'), 'n')).text, 'ok');
});

test('empty and oversized messages are refused before encryption', async () => {
  const { sender } = await pair();
  await assert.rejects(sender.seal(''));
  await assert.rejects(sender.seal('x'.repeat(8001)));
  assert.equal(sender.counter, 0);
});
