// The known-answer vector of envelope version 1, which pages no longer
// speak: kept so that the protocol's history stays checkable against
// web/kat_test.go (Go's own PBKDF2, HKDF and AES-GCM).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { deriveRoomKey, roomSalt, senderKey, Sender, Receiver, toHex, fromHex } from './v1/crypto.mjs';

const kat = JSON.parse(readFileSync(new URL('./v1/kat.json', import.meta.url)));

test('version 1 known-answer vector (the same as web/kat_test.go computes with Go)', async () => {
  assert.equal(toHex(await roomSalt(kat.serverId, kat.room)), kat.salt);
  const k = await deriveRoomKey(kat.passphrase, kat.serverId, kat.room); // full 600,000 iterations
  const s = new Sender(fromHex(kat.senderId), await senderKey(k, fromHex(kat.senderId)), kat.room, kat.name);
  const env = await s.seal(kat.text, kat.time, fromHex(kat.iv));
  assert.equal(toHex(env), kat.envelope);
  const got = await new Receiver(k, kat.room).open(fromHex(kat.envelope), kat.name);
  assert.equal(got.text, kat.text);
});
