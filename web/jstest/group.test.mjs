// Tests of protocol version 2 (group.mjs and the modules under it) on
// Node's own Web Crypto, through an in-memory hub (fakehub.mjs):
//   node --test web/jstest/
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as nc from 'node:crypto';
import { FakeHub, FAST, deliver, texts, notices } from './fakehub.mjs';
import { deriveRoomKey } from '../static/roomkey.mjs';
import { Sender } from '../static/crypto.mjs';
import { toHex, fromBase64, u32 } from '../static/bytes.mjs';
import { Identity, Peer, context, helloKey } from '../static/identity.mjs';
import { SenderChain, MAX_SKIP } from '../static/chain.mjs';
import {
  sealMessage, sealDistribution, sealHello, parseDistribution, T_HELLO, T_DISTRIBUTION, T_MESSAGE, MAX_ENTRIES, ENTRY_BYTES,
} from '../static/envelope2.mjs';
import { BUFFER_MS, HELLO_WAIT_MS, PENDING_MS } from '../static/group.mjs';

const s = globalThis.crypto.subtle;

// room starts a hub and joins the named members one after another, each
// settling before the next joins.
async function room(names, opts = {}) {
  const hub = new FakeHub(opts);
  const c = {};
  for (const n of names) {
    c[n] = await hub.add(n);
    await hub.settle();
  }
  return { hub, c };
}

async function say(hub, name, text) {
  await hub.send(name, text);
  await hub.settle();
}

function kindOf(f) { return fromBase64(f.body)[1]; }

// cryptoKeys counts the CryptoKey objects reachable from v.
function cryptoKeys(v, seen = new Set()) {
  if (v === null || typeof v !== 'object' || seen.has(v)) return 0;
  seen.add(v);
  if (v instanceof CryptoKey) return 1;
  let n = 0;
  const values = v instanceof Map ? [...v.keys(), ...v.values()] : v instanceof Set ? [...v] : Object.values(v);
  for (const x of values) n += cryptoKeys(x, seen);
  return n;
}

function zero(b) { return b.every((x) => x === 0); }

// ---------------------------------------------------------------- the document

test('key schedule, envelopes and signatures match docs/protocol.md (recomputed with node:crypto)', async () => {
  const room = 'lobby';
  const server = 'lan:00';
  const pass = 'correct horse';
  // The room secret and the hello key.
  const salt = nc.createHash('sha256').update(`onionchat/1 salt\0${server}\0${room}`).digest();
  const secret = nc.pbkdf2Sync(pass, salt, FAST, 32, 'sha256');
  const hk = Buffer.from(nc.hkdfSync('sha256', secret, Buffer.alloc(0), 'onionchat/2 hello', 32));

  // Session keys made extractable here only, so that node:crypto can check
  // the ECDH step; the page makes them non-extractable.
  const mk = async () => {
    const ecdh = await s.generateKey({ name: 'ECDH', namedCurve: 'P-256' }, true, ['deriveBits']);
    const sig = await s.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify']);
    const ecdhPub = new Uint8Array(await s.exportKey('raw', ecdh.publicKey));
    const sigPub = new Uint8Array(await s.exportKey('raw', sig.publicKey));
    const id = await Peer.import(ecdhPub, sigPub);
    return new Identity(ecdh, sig, ecdhPub, sigPub, id.keyId, id.code);
  };
  const alice = await mk();
  const bob = await mk();
  const sigKeyObject = (i) => nc.KeyObject.from(i.sig.publicKey);
  const verifies = (i, data, sig) => nc.verify('sha256', data, { key: sigKeyObject(i), dsaEncoding: 'ieee-p1363' }, sig);
  const open = (key, iv, ad, ctAndTag) => {
    const d = nc.createDecipheriv('aes-256-gcm', key, iv);
    d.setAAD(ad);
    d.setAuthTag(ctAndTag.subarray(ctAndTag.length - 16));
    return Buffer.concat([d.update(ctAndTag.subarray(0, ctAndTag.length - 16)), d.final()]);
  };
  const C = Buffer.concat([Buffer.from('onionchat/2\0'), Buffer.from(room), Buffer.from([0])]);
  assert.deepEqual(Buffer.from(context(room)), C);

  // Key id and safety code.
  assert.equal(toHex(alice.keyId), nc.createHash('sha256').update(alice.ecdhPub).update(alice.sigPub).digest('hex').slice(0, 16));
  const h = nc.createHash('sha256').update(sigKeyObject(alice).export({ format: 'der', type: 'spki' })).digest();
  const groups = [0, 1, 2, 3, 4].map((i) => String(Number(h.readUIntBE(i * 5, 5) % 100000)).padStart(5, '0'));
  assert.equal(alice.code, groups.join(' '));
  assert.match(alice.code, /^\d{5} \d{5} \d{5} \d{5} \d{5}$/);

  // Hello: 02 01 | iv | AES-GCM(hello key, ad = C 02 01, flags | ecdh | sig | chain id | len | name | signature).
  const roomKey = await deriveRoomKey(pass, server, room, FAST);
  const chainId = new Uint8Array(8).fill(7);
  const hello = await sealHello({ helloKey: await helloKey(roomKey), identity: alice, room, name: 'alice', flags: 1, chainId });
  assert.deepEqual([...hello.subarray(0, 2)], [2, T_HELLO]);
  const inner = open(hk, hello.subarray(2, 14), Buffer.concat([C, Buffer.from([2, 1])]), hello.subarray(14));
  assert.equal(inner[0], 1);
  assert.deepEqual(inner.subarray(1, 66), Buffer.from(alice.ecdhPub));
  assert.deepEqual(inner.subarray(66, 131), Buffer.from(alice.sigPub));
  assert.deepEqual(inner.subarray(131, 139), Buffer.from(chainId));
  assert.equal(inner[139], 5);
  assert.equal(inner.subarray(140, 145).toString(), 'alice');
  assert.ok(verifies(alice, Buffer.concat([C, Buffer.from([2, 1]), inner.subarray(0, 145)]), inner.subarray(145)));

  // Chain: message key = HMAC(chain, 01), next = HMAC(chain, 02); the old key is zeroed.
  const ck0 = Buffer.alloc(32, 0x42);
  const chain = new SenderChain(new Uint8Array(8).fill(9), 5, new Uint8Array(ck0));
  const before = chain.key;
  const { counter, messageKey } = await chain.next();
  const mk0 = nc.createHmac('sha256', ck0).update(Buffer.from([1])).digest();
  const ck1 = nc.createHmac('sha256', ck0).update(Buffer.from([2])).digest();
  assert.equal(counter, 5);
  assert.equal(chain.counter, 6);
  assert.deepEqual(Buffer.from(chain.key), ck1);
  assert.ok(zero(before), 'the replaced chain key is zeroed');

  // Message: 02 03 | chain id | counter | iv | AES-GCM(message key, ad = C | first 14 bytes) | ECDSA over C | rest.
  const msg = await sealMessage({ identity: alice, room, chainId: chain.id, counter, messageKey, inner: { s: 'alice', t: 'hi', ts: 1 } });
  assert.deepEqual([...msg.subarray(0, 2)], [2, T_MESSAGE]);
  assert.deepEqual([...msg.subarray(10, 14)], [0, 0, 0, 5]);
  const body = msg.subarray(0, msg.length - 64);
  assert.ok(verifies(alice, Buffer.concat([C, body]), msg.subarray(msg.length - 64)));
  const pt = open(mk0, msg.subarray(14, 26), Buffer.concat([C, msg.subarray(0, 14)]), body.subarray(26));
  assert.deepEqual(JSON.parse(pt), { s: 'alice', t: 'hi', ts: 1 });

  // Distribution: the chain key wrapped under HKDF(ECDH(alice, bob), info = "onionchat/2 pairwise" 0 room 0 lo hi).
  const bobPeer = await Peer.import(bob.ecdhPub, bob.sigPub);
  const dist = await sealDistribution({ identity: alice, room, chainId: chain.id, counter: 6, key: chain.key, recipients: [{ keyId: bob.keyId, pairwise: await alice.pairwise(bobPeer, room) }] });
  assert.deepEqual([...dist.subarray(0, 2)], [2, T_DISTRIBUTION]);
  assert.equal(dist.length, 24 + ENTRY_BYTES + 64);
  assert.ok(verifies(alice, Buffer.concat([C, dist.subarray(0, dist.length - 64)]), dist.subarray(dist.length - 64)));
  const shared = nc.diffieHellman({ privateKey: nc.KeyObject.from(bob.ecdh.privateKey), publicKey: nc.KeyObject.from(alice.ecdh.publicKey) });
  const [lo, hi] = Buffer.compare(Buffer.from(alice.ecdhPub), Buffer.from(bob.ecdhPub)) < 0 ? [alice.ecdhPub, bob.ecdhPub] : [bob.ecdhPub, alice.ecdhPub];
  const pw = Buffer.from(nc.hkdfSync('sha256', shared, Buffer.alloc(0), Buffer.concat([Buffer.from('onionchat/2 pairwise\0'), Buffer.from(room), Buffer.from([0]), lo, hi]), 32));
  const e = dist.subarray(24, 24 + ENTRY_BYTES);
  assert.deepEqual(e.subarray(0, 8), bob.keyId);
  const ad = Buffer.concat([C, Buffer.from([2, 2]), alice.keyId, chain.id, Buffer.from(u32(6)), bob.keyId]);
  assert.deepEqual(open(pw, e.subarray(8, 20), ad, e.subarray(20)), Buffer.from(chain.key));
});

test('the session keys are non-extractable; the chain a receiver holds is too', async () => {
  const { c } = await room(['alice', 'bob']);
  const g = c.alice.group;
  assert.equal(g.identity.ecdh.privateKey.extractable, false);
  assert.equal(g.identity.sig.privateKey.extractable, false);
  assert.equal(g.helloKey.extractable, false);
  const ch = g.members.get('bob').chain;
  assert.equal(ch.key.extractable, false);
  assert.equal(ch.key.algorithm.name, 'HMAC');
});

// ---------------------------------------------------------------- what the issue asks

test('a recorded transcript plus the passphrase decrypts nothing', async () => {
  const { hub, c } = await room(['alice', 'bob'], { history: 50 });
  await say(hub, 'alice', 'secret one');
  await say(hub, 'bob', 'secret two');
  c.carol = await hub.add('carol');
  await hub.settle();
  await say(hub, 'carol', 'secret three');
  hub.leave('carol');
  await hub.settle();
  await say(hub, 'alice', 'secret four');
  assert.deepEqual(texts(c.bob), ['alice: secret one', 'carol: secret three', 'alice: secret four']);

  // Eve has the passphrase and every frame the hub relayed, in order, with
  // the hub's names, but none of the participants' private keys.
  const eve = { name: 'eve', events: [], group: await hub.group('eve', 'pw') };
  eve.group.onFrame = () => {};
  eve.group.onEvent = (ev) => eve.events.push(ev);
  await eve.group.welcome({ members: ['alice', 'bob', 'carol', 'eve'], history: 0 });
  for (const f of hub.transcript) await eve.group.receive({ ...f, to: undefined });
  for (const body of hub.backlog) await eve.group.receive({ history: true, body });
  await eve.group.sweep();
  hub.clock += BUFFER_MS;
  await eve.group.sweep();
  await eve.group.queue;
  assert.deepEqual(texts(eve), []);
  // The passphrase was right: eve opened the hellos (and learnt public keys and codes, nothing more).
  assert.ok(eve.group.memberList().filter((m) => m.code && !m.self).length >= 2);
  assert.ok(notices(eve).some((n) => n.includes('could not be read')), 'eve is told, not silent');
  const plain = JSON.stringify(eve.events);
  for (const t of ['secret one', 'secret two', 'secret three', 'secret four']) assert.ok(!plain.includes(t));
});

test('a message signed by A but claiming sender B is rejected', async () => {
  const { hub, c } = await room(['alice', 'bob', 'carol']);
  await say(hub, 'bob', 'b0');
  const A = c.alice.group;
  const bobInCarol = c.carol.group.members.get('bob').chain;
  const next = bobInCarol.next;

  // Alice holds bob's chain (every member does): she encrypts under it,
  // claims to be bob and signs with her own key.
  const k = await A.members.get('bob').chain.keyFor(next);
  const forged = await sealMessage({ identity: A.identity, room: 'r', chainId: A.members.get('bob').chain.id, counter: next, messageKey: k.messageKey, inner: { s: 'bob', t: 'forged', ts: 1 } });
  // Relayed as from bob (a lying server): bob's key did not sign it.
  await c.carol.group.receive({ from: 'bob', body: Buffer.from(forged).toString('base64') });
  // Relayed as from alice (an honest server): alice used bob's chain.
  await c.carol.group.receive({ from: 'alice', body: Buffer.from(forged).toString('base64') });
  // Alice's own chain with bob's name inside, relayed either way.
  const own = await sealOwn(A, { s: 'bob', t: 'forged too', ts: 1 });
  await c.carol.group.receive({ from: 'bob', body: own });
  await c.carol.group.receive({ from: 'alice', body: own });
  await c.carol.group.queue;
  assert.deepEqual(texts(c.carol), ['bob: b0']);
  const n = notices(c.carol);
  assert.ok(n.some((t) => t.includes('relayed as from bob is not signed by bob’s key')), n.join('\n'));
  assert.ok(n.some((t) => t.includes('relayed as from alice uses bob’s key')), n.join('\n'));
  assert.ok(n.some((t) => t.includes('from alice says it is from “bob”')), n.join('\n'));
  // Nothing moved: bob's real next message still opens.
  assert.equal(bobInCarol.next, next);
  await say(hub, 'bob', 'b1');
  assert.deepEqual(texts(c.carol), ['bob: b0', 'bob: b1']);
});

// sealOwn makes a message under g's own chain with any inner content, as a
// dishonest page could.
async function sealOwn(g, inner) {
  const chainId = g.chain.id;
  const { counter, messageKey } = await g.chain.next();
  const env = await sealMessage({ identity: g.identity, room: g.room, chainId, counter, messageKey, inner });
  return Buffer.from(env).toString('base64');
}

test('after C leaves, C (keeping its state) cannot decrypt what is sent after', async () => {
  const { hub, c } = await room(['alice', 'bob', 'carol']);
  await say(hub, 'alice', 'before');
  assert.deepEqual(texts(c.carol), ['alice: before']);
  const aliceChain = toHex(c.alice.group.chain.id);
  const mark = hub.transcript.length;
  const carol = hub.leave('carol');
  await hub.settle();
  // Everyone left started a fresh chain and sent it in one frame, to the others only.
  assert.notEqual(toHex(c.alice.group.chain.id), aliceChain);
  const bundles = hub.transcript.slice(mark).filter((f) => kindOf(f) === T_DISTRIBUTION);
  assert.deepEqual(bundles.map((f) => [f.from, f.to]), [['alice', undefined], ['bob', undefined]]);
  for (const f of bundles) {
    const d = parseDistribution(fromBase64(f.body));
    assert.equal(d.entries.length, 1);
    assert.ok(!d.entries.some((e) => toHex(e.keyId) === toHex(carol.group.identity.keyId)));
  }
  await say(hub, 'alice', 'after 1');
  await say(hub, 'bob', 'after 2');
  assert.deepEqual(texts(c.bob), ['alice: before', 'alice: after 1']);
  // A server that kept relaying to carol: she gets every frame sent after she left.
  for (const f of hub.transcript.slice(mark)) await carol.group.receive({ ...f, to: undefined });
  hub.clock += BUFFER_MS;
  await carol.group.sweep();
  await carol.group.queue;
  assert.deepEqual(texts(carol), ['alice: before']);
  assert.ok(notices(carol).some((n) => n.includes('could not be read')));
});

test('reordered messages are read once each; replays are dropped; gaps are bounded', async () => {
  const { hub, c } = await room(['alice', 'bob']);
  const bodies = [];
  for (let i = 0; i < 5; i++) bodies.push(await c.alice.group.seal(`m${i}`));
  // The hub would deliver them in order; this test delivers them to bob by hand.
  c.bob.inbox = [];
  const ch = c.bob.group.members.get('alice').chain;
  const b64 = (i) => ({ from: 'alice', body: Buffer.from(bodies[i]).toString('base64') });
  await c.bob.group.receive(b64(2));
  await c.bob.group.queue;
  assert.deepEqual([...ch.skipped.keys()], [0, 1]);
  for (const i of [0, 1, 4, 3]) await c.bob.group.receive(b64(i));
  await c.bob.group.queue;
  assert.deepEqual(texts(c.bob), ['alice: m2', 'alice: m0', 'alice: m1', 'alice: m4', 'alice: m3']);
  assert.equal(ch.skipped.size, 0);
  assert.equal(ch.next, 5);
  // A replay of any of them: dropped, silently, with nothing changed.
  const before = c.bob.events.length;
  for (const i of [0, 3, 4]) await c.bob.group.receive(b64(i));
  await c.bob.group.queue;
  assert.equal(c.bob.events.length, before);
  // A jump of more than MAX_SKIP messages is refused with a notice.
  for (let i = 0; i <= MAX_SKIP + 1; i++) await c.alice.group.chain.next();
  const far = await c.alice.group.seal('far');
  await c.bob.group.receive({ from: 'alice', body: Buffer.from(far).toString('base64') });
  await c.bob.group.queue;
  assert.ok(notices(c.bob).some((n) => n.includes(`more than the ${MAX_SKIP}`)), notices(c.bob).join('\n'));
  assert.equal(ch.next, 5);
});

test('chain keys advance and old ones are dropped (asserted on the state)', async () => {
  const { hub, c } = await room(['alice', 'bob']);
  const A = c.alice.group;
  // Sender: one raw chain key, replaced and zeroed at every message.
  const k0 = A.chain.key;
  const n0 = A.chain.counter;
  await say(hub, 'alice', 'one');
  assert.ok(zero(k0), 'the previous chain key is zeroed');
  assert.notEqual(A.chain.key, k0);
  assert.equal(A.chain.counter, n0 + 1);
  assert.deepEqual(Object.keys(A.chain).sort(), ['counter', 'id', 'key']);
  assert.equal(A.pending.size, 0, 'no snapshot left once everyone has our chain');
  // Receiver: one HMAC key for the chain, replaced at every message, plus skipped keys only.
  const ch = c.bob.group.members.get('alice').chain;
  const key1 = ch.key;
  await say(hub, 'alice', 'two');
  assert.notEqual(ch.key, key1);
  assert.equal(ch.next, n0 + 2);
  assert.equal(cryptoKeys(ch), 1);
  // Skip two (they are lost in transit): two message keys kept, no more.
  await A.seal('lost 1');
  await A.seal('lost 2');
  c.bob.inbox = [];
  await say(hub, 'alice', 'three');
  assert.equal(ch.skipped.size, 2);
  assert.equal(cryptoKeys(ch), 3);
  // The bound: at most MAX_SKIP skipped keys per sender.
  for (let i = 0; i < MAX_SKIP - 1; i++) await A.seal('lost');
  c.bob.inbox = [];
  await say(hub, 'alice', 'four');
  assert.equal(ch.skipped.size, MAX_SKIP);
  // A leave: the chain is retired; what is remembered holds no key.
  c.carol = await hub.add('carol');
  await hub.settle();
  hub.leave('carol');
  await hub.settle();
  assert.equal(c.bob.group.members.get('alice').chain.next, 0, 'alice started a fresh chain');
  const r = c.bob.group.retired.get(toHex(ch.id));
  assert.equal(cryptoKeys(r), 0);
  assert.equal(ch.key, null);
  assert.equal(ch.skipped.size, 0);
  // The snapshot kept for carol while her hello was on its way was zeroed when she got it.
  assert.equal(A.pending.size, 0);
});

test('snapshots for members whose hello never comes are zeroed after the bound', async () => {
  const { hub, c } = await room(['alice']);
  await c.alice.group.join('silent');
  await c.alice.group.queue;
  const snap = c.alice.group.pending.get('silent').snap;
  hub.clock += PENDING_MS;
  await c.alice.group.sweep();
  await c.alice.group.queue;
  assert.equal(c.alice.group.pending.size, 0);
  assert.ok(zero(snap.key));
});

// ---------------------------------------------------------------- joining

test('a newcomer is told how many earlier messages it cannot read, and reads what follows', async () => {
  const { hub, c } = await room(['alice', 'bob'], { history: 50 });
  await say(hub, 'alice', 'old 1');
  await say(hub, 'bob', 'old 2');
  await say(hub, 'alice', 'old 3');
  c.carol = await hub.add('carol');
  await hub.settle();
  assert.deepEqual(texts(c.carol), []);
  assert.ok(notices(c.carol).includes('3 earlier messages are encrypted with keys from before you joined; this page cannot read them.'), notices(c.carol).join('\n'));
  await say(hub, 'alice', 'new');
  assert.deepEqual(texts(c.carol), ['alice: new']);
  assert.deepEqual(notices(c.carol).filter((n) => n.startsWith('⚠')), []);
});

test('messages sent while a newcomer’s hello is on its way are kept and read', async () => {
  const { hub, c } = await room(['alice', 'bob']);
  c.carol = await hub.add('carol');
  // Alice and bob learn of carol's join, and talk before her hello reaches them.
  for (const n of ['alice', 'bob']) await deliver(c[n], c[n].inbox.shift());
  await c.alice.group.seal('while you were joining');
  await c.bob.group.seal('me too');
  await hub.settle();
  assert.deepEqual(texts(c.carol).sort(), ['alice: while you were joining', 'bob: me too']);
  // And carol's first words, sent before anyone had her chain, reach everyone.
  assert.deepEqual(notices(c.carol).filter((n) => n.startsWith('⚠')), []);
});

test('two newcomers at once, and a leave during their handshake: everyone present reads everyone', async () => {
  const { hub, c } = await room(['alice', 'bob', 'carol']);
  c.xena = await hub.add('xena');
  c.yuri = await hub.add('yuri');
  hub.leave('carol');
  await hub.settle();
  const present = ['alice', 'bob', 'xena', 'yuri'];
  for (const n of present) await say(hub, n, `from ${n}`);
  for (const n of present) {
    const want = present.filter((o) => o !== n).map((o) => `${o}: from ${o}`);
    assert.deepEqual(texts(c[n]), want, n);
    assert.deepEqual(notices(c[n]).filter((t) => t.startsWith('⚠')), [], n);
  }
  assert.deepEqual(texts(c.carol), []);
});

test('a message that crossed the join (sent before the sender knew) gets a clear notice', async () => {
  const { hub, c } = await room(['alice', 'bob']);
  c.carol = await hub.add('carol');
  await c.alice.group.seal('crossed'); // alice has not seen carol's join yet
  await hub.settle();
  assert.deepEqual(texts(c.carol), []);
  assert.ok(notices(c.carol).some((n) => n.includes('from alice could not be read: it was sent before alice’s keys reached this page')));
  assert.deepEqual(texts(c.bob), ['alice: crossed']);
});

test('the newcomer answers the whole room with one bundle, not one frame each', async () => {
  const names = Array.from({ length: 8 }, (_, i) => `m${i}`);
  const { hub } = await room(names);
  const mark = hub.transcript.length;
  await hub.add('new');
  await hub.settle();
  const mine = hub.transcript.slice(mark).filter((f) => f.from === 'new');
  assert.deepEqual(mine.map((f) => [kindOf(f), f.to]), [[T_HELLO, undefined], [T_DISTRIBUTION, undefined]]);
  assert.equal(parseDistribution(fromBase64(mine[1].body)).entries.length, 8);
  // Each member answered the newcomer alone: its hello and its chain.
  const answers = hub.transcript.slice(mark).filter((f) => f.to === 'new');
  assert.equal(answers.length, 16);
});

test('a leave costs each member one broadcast frame; a full room’s bundle fits in a frame', async () => {
  const names = Array.from({ length: 6 }, (_, i) => `m${i}`);
  const { hub } = await room(names);
  const mark = hub.transcript.length;
  hub.leave('m5');
  await hub.settle();
  const sent = hub.transcript.slice(mark);
  assert.equal(sent.length, 5);
  assert.ok(sent.every((f) => !f.to && kindOf(f) === T_DISTRIBUTION));
  // 99 recipients (a room of 100): one frame, well under 64 KiB in base64.
  const id = await Identity.create();
  const pw = await s.importKey('raw', new Uint8Array(32), 'AES-GCM', false, ['encrypt']);
  const recipients = Array.from({ length: 99 }, () => ({ keyId: new Uint8Array(8), pairwise: pw }));
  const ch = SenderChain.fresh();
  const b = await sealDistribution({ identity: id, room: 'r', chainId: ch.id, counter: 0, key: ch.key, recipients });
  assert.ok(Buffer.from(b).toString('base64').length < 12000);
  assert.ok(MAX_ENTRIES * ENTRY_BYTES * 4 / 3 < 60000);
});

// ---------------------------------------------------------------- who is who

test('safety codes: what A shows for B is what B shows for itself', async () => {
  const { c } = await room(['alice', 'bob', 'carol']);
  const code = (viewer, name) => c[viewer].group.memberList().find((m) => m.name === name).code;
  for (const a of ['alice', 'bob', 'carol']) {
    assert.match(c[a].group.code, /^\d{5} \d{5} \d{5} \d{5} \d{5}$/);
    for (const b of ['alice', 'bob', 'carol']) assert.equal(code(a, b), c[b].group.code);
  }
  assert.notEqual(c.alice.group.code, c.bob.group.code);
});

test('a name that comes back with other keys is flagged, and its old chain goes', async () => {
  const { hub, c } = await room(['alice', 'bob']);
  const old = c.bob.group.code;
  hub.leave('bob');
  await hub.settle();
  c.bob = await hub.add('bob'); // a reloaded page: new keys
  await hub.settle();
  const n = notices(c.alice);
  assert.ok(n.some((t) => t.includes(`bob’s safety code changed (was ${old}, now ${c.bob.group.code})`)), n.join('\n'));
  assert.equal(c.alice.group.memberList().find((m) => m.name === 'bob').changed, true);
  await say(hub, 'alice', 'hi new bob');
  assert.deepEqual(texts(c.bob), ['alice: hi new bob']);
  // Other keys under a live name (no leave seen): flagged, and alice rekeys.
  const chainBefore = toHex(c.alice.group.chain.id);
  const imposter = await hub.group('bob', 'pw');
  imposter.onFrame = (fr) => c.alice.group.receive({ from: 'bob', body: Buffer.from(fr.body).toString('base64') });
  imposter.onEvent = () => {};
  await imposter.welcome({ members: ['alice', 'bob'] });
  await c.alice.group.queue;
  assert.notEqual(toHex(c.alice.group.chain.id), chainBefore);
  assert.ok(notices(c.alice).filter((t) => t.includes('bob’s safety code changed')).length >= 2);
});

// ---------------------------------------------------------------- the others

test('a wrong passphrase: both sides are told, once, and nothing is shown', async () => {
  const { hub, c } = await room(['alice']);
  c.mallory = await hub.add('mallory', 'not the passphrase');
  await hub.settle();
  await say(hub, 'alice', 'secret');
  await say(hub, 'mallory', 'hi?');
  assert.deepEqual(texts(c.mallory), []);
  assert.deepEqual(texts(c.alice), []);
  const a = notices(c.alice);
  const m = notices(c.mallory);
  assert.equal(a.filter((t) => t === '⚠ mallory’s hello could not be opened: mallory uses a different passphrase, or it was altered.').length, 1, a.join('\n'));
  assert.equal(m.filter((t) => t === '⚠ alice’s hello could not be opened: alice uses a different passphrase, or it was altered.').length, 1, m.join('\n'));
  assert.ok(m.some((t) => t.includes('from alice could not be read: alice uses a different passphrase')), m.join('\n'));
  assert.ok(a.some((t) => t.includes('from mallory could not be read: mallory uses a different passphrase')), a.join('\n'));
  assert.equal(c.alice.group.memberList().find((x) => x.name === 'mallory').status, 'unopenable');
});

test('a version 1 envelope: “uses an older version … should reload”', async () => {
  const { c } = await room(['alice']);
  const k = await deriveRoomKey('pw', 'srv', 'r', FAST);
  const v1 = await Sender.create(k, 'r', 'old');
  await c.alice.group.join('old');
  await c.alice.group.receive({ from: 'old', body: Buffer.from(await v1.seal('hi')).toString('base64') });
  await c.alice.group.queue;
  assert.ok(notices(c.alice).includes('⚠ A message from old could not be read: old uses an older version of onionchat: they should reload the page.'));
  assert.equal(c.alice.group.memberList().find((m) => m.name === 'old').status, 'old');
});

test('a member who never sends a hello is reported; their messages too, after the bound', async () => {
  const { hub, c } = await room(['alice']);
  await c.alice.group.join('ghost');
  const v2ish = await (await hub.group('ghost', 'pw')).seal('x');
  await c.alice.group.receive({ from: 'ghost', body: Buffer.from(v2ish).toString('base64') });
  hub.clock += Math.max(HELLO_WAIT_MS, BUFFER_MS);
  await c.alice.group.sweep();
  await c.alice.group.queue;
  const n = notices(c.alice);
  assert.ok(n.some((t) => t.includes('ghost has not sent their keys')), n.join('\n'));
  assert.ok(n.some((t) => t.includes('1 message from ghost could not be read: ghost’s hello never arrived')), n.join('\n'));
  assert.equal(c.alice.group.buffer.length, 0);
});

test('a reconnect (resume) keeps keys and chains: no rekey', async () => {
  const { hub, c } = await room(['alice', 'bob']);
  await say(hub, 'alice', 'one');
  const chain = toHex(c.alice.group.chain.id);
  const bobChain = toHex(c.bob.group.chain.id);
  // alice's connection drops and resumes: the hub sends her a welcome, bob a resumed join.
  c.bob.inbox.push({ kind: 'join', name: 'alice', resumed: true });
  c.alice.inbox.push({ kind: 'welcome', members: ['alice', 'bob'], history: 0 });
  await hub.settle();
  assert.equal(toHex(c.alice.group.chain.id), chain);
  assert.equal(toHex(c.bob.group.chain.id), bobChain);
  await say(hub, 'alice', 'two');
  await say(hub, 'bob', 'three');
  assert.deepEqual(texts(c.bob), ['alice: one', 'alice: two']);
  assert.deepEqual(texts(c.alice), ['bob: three']);
  assert.deepEqual([...notices(c.alice), ...notices(c.bob)].filter((n) => n.startsWith('⚠')), []);
});

test('a server restart: everyone rejoins a fresh hub, in any order, and chats on', async () => {
  for (const order of [['alice', 'bob', 'mallory'], ['bob', 'mallory', 'alice'], ['mallory', 'alice', 'bob']]) {
    const { hub, c } = await room(['alice', 'bob']);
    c.mallory = await hub.add('mallory', 'wrong');
    await hub.settle();
    await say(hub, 'alice', 'a0');
    await say(hub, 'bob', 'b0');
    hub.clients.clear();
    hub.order = [];
    for (const n of order) {
      c[n].inbox = [];
      hub.attach(c[n]);
      await hub.settle();
    }
    await say(hub, 'bob', `b1 ${order}`);
    await say(hub, 'alice', `a1 ${order}`);
    assert.deepEqual(texts(c.alice), ['bob: b0', `bob: b1 ${order}`], order.join());
    assert.deepEqual(texts(c.bob), ['alice: a0', `alice: a1 ${order}`], order.join());
  }
});

test('empty and oversized messages are refused before encryption', async () => {
  const { c } = await room(['alice']);
  const n = c.alice.group.chain.counter;
  await assert.rejects(c.alice.group.seal(''));
  await assert.rejects(c.alice.group.seal('x'.repeat(8001)));
  assert.equal(c.alice.group.chain.counter, n);
});

test('frames are distinguishable: version byte 2, then the kind', async () => {
  const { hub } = await room(['alice', 'bob']);
  await say(hub, 'alice', 'x');
  const kinds = new Set(hub.transcript.map((f) => { const b = fromBase64(f.body); return `${b[0]}:${b[1]}`; }));
  assert.deepEqual([...kinds].sort(), ['2:1', '2:2', '2:3']);
});
