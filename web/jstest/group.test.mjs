// Tests of protocol version 3's room logic (group.mjs and the modules under
// it) on Node's own Web Crypto, through an in-memory relay (fakehub.mjs):
// confidentiality, sessions, reconnects and restarts, and each attack of a
// hostile member or relay that the protocol must stop:
//   node --test web/jstest/
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeHub, FAST, deliver, texts, notices } from './fakehub.mjs';
import { Group, HELD_MS, PENDING_MS, GAP_MS, HELLO_WAIT_MS, ANSWER_BURST, ANSWER_RATE, HELD_UNVERIFIED } from '../static/group.mjs';
import { context, newSigningPair } from '../static/identity.mjs';
import { MAX_SKIP } from '../static/chain.mjs';
import { seal, open, T_MESSAGE, T_DISTRIBUTION, T_HELLO } from '../static/envelope.mjs';
import { toBase64, fromBase64, randomBytes } from '../static/bytes.mjs';

// room starts a relay and joins the named members one after another, each
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
  await hub.say(name, text);
  await hub.settle();
}

// kindOf opens a relayed frame's outer layer and returns its inner kind.
async function kindOf(hub, f) {
  const k = await hub.roomKeys('pw');
  return (await open(k.frameKey, context(k.roomId), fromBase64(f.body)))[0];
}

async function frameKinds(hub, fs) { return Promise.all(fs.map((f) => kindOf(hub, f))); }

// junk makes an envelope a passphrase holder could make: the right outer
// layer, garbage inside, of the given inner kind.
async function junk(hub, kind, n = 200) {
  const k = await hub.roomKeys('pw');
  const inner = randomBytes(n);
  inner[0] = kind;
  return toBase64(await seal(k.frameKey, context(k.roomId), inner));
}

function cryptoKeys(v, seen = new Set()) {
  if (v === null || typeof v !== 'object' || seen.has(v)) return 0;
  seen.add(v);
  if (v instanceof CryptoKey) return 1;
  let n = 0;
  const values = v instanceof Map ? [...v.keys(), ...v.values()] : v instanceof Set ? [...v] : Object.values(v);
  for (const x of values) n += cryptoKeys(x, seen);
  return n;
}

// ---------------------------------------------------------------- confidentiality

test('a recorded transcript plus the passphrase decrypts nothing (hellos open: the passphrase was right)', async () => {
  const { hub, c } = await room(['alice', 'bob']);
  await say(hub, 'alice', 'the plan');
  await say(hub, 'bob', 'agreed');
  const spy = await hub.group('pw');
  const events = [];
  spy.onEvent = (e) => events.push(e);
  spy.onFrame = () => {};
  await spy.welcome({ you: 'spy', sid: 'c3B5c3B5c3B5c3B5c3B5cw', members: [{ name: 'alice', sid: c.alice.sid }, { name: 'bob', sid: c.bob.sid }] });
  for (const f of hub.transcript) await spy.receive(f);
  await spy.caughtUp();
  await spy.queue;
  assert.deepEqual(events.filter((e) => e.type === 'message'), []);
  assert.equal(spy.memberList().filter((m) => !m.self && m.code).length, 2, 'both hellos opened and verified');
});

test('a message signed by A but relayed as from B is rejected', async () => {
  const { hub, c } = await room(['alice', 'bob', 'carol']);
  const body = await c.alice.group.seal('from alice');
  hub.transcript.length = 0;
  for (const x of Object.values(c)) x.inbox = [];
  hub.send(c.bob, { body: toBase64(body) }); // the relay puts bob's session on alice's frame
  await hub.settle();
  assert.deepEqual(texts(c.carol), []);
  assert.ok(notices(c.carol).some((n) => /relayed as from bob is not signed by bob’s key/.test(n)), notices(c.carol).join('\n'));
});

test('after C leaves, C (keeping its state, sent every frame) reads nothing said after', async () => {
  const { hub, c } = await room(['alice', 'bob', 'carol']);
  await say(hub, 'alice', 'before');
  const carol = hub.leave('carol');
  await hub.settle();
  const from = hub.transcript.length;
  await say(hub, 'alice', 'after 1');
  await say(hub, 'bob', 'after 2');
  for (const f of hub.transcript.slice(from)) await carol.group.receive(f);
  await carol.group.queue;
  assert.deepEqual(texts(carol), ['alice: before']);
  assert.deepEqual(texts(c.bob), ['alice: before', 'alice: after 1']);
  // Each remaining member started a fresh epoch with its next message.
  assert.equal(c.alice.group.chain.epoch, 2);
  assert.equal(c.bob.group.chain.epoch, 2);
});

test('reordered messages are read once each; replays are dropped; gaps are bounded', async () => {
  const { hub, c } = await room(['alice', 'bob']);
  c.bob.inbox = [];
  const sent = [];
  for (let i = 0; i < 5; i++) {
    await c.alice.group.seal('m' + i);
    sent.push(c.bob.inbox.pop());
  }
  for (const f of [sent[3], sent[1], sent[0], sent[4], sent[2], sent[2], sent[0]]) await deliver(c.bob, f);
  await c.bob.group.queue;
  assert.deepEqual(texts(c.bob).sort(), ['alice: m0', 'alice: m1', 'alice: m2', 'alice: m3', 'alice: m4']);
  assert.equal(notices(c.bob).length, 0);
  // A jump beyond the skip bound is refused with a notice.
  c.bob.inbox = [];
  for (let i = 0; i <= MAX_SKIP + 1; i++) await c.alice.group.seal('skip' + i);
  const last = c.bob.inbox.pop();
  await deliver(c.bob, last);
  await c.bob.group.queue;
  assert.ok(notices(c.bob).some((n) => /more than the 100 this page skips/.test(n)));
});

test('chain keys advance and old ones are dropped; the session keys are non-extractable', async () => {
  const { hub, c } = await room(['alice', 'bob']);
  const g = c.alice.group;
  assert.equal(g.identity.ecdh.privateKey.extractable, false);
  assert.equal(g.identity.sig.privateKey.extractable, false);
  const k0 = g.chain.key;
  await say(hub, 'alice', 'one');
  assert.ok(k0.every((x) => x === 0), 'the sender zeroes the chain key it replaced');
  const peer = [...c.bob.group.peers.values()][0];
  assert.equal(peer.chain.next, 1);
  assert.equal(peer.chain.key.extractable, false);
  assert.equal(peer.chain.skipped.size, 0);
  await say(hub, 'alice', 'two');
  assert.equal(peer.chain.next, 2);
  // No room secret is kept: only the room id and the frame key.
  assert.equal(Object.keys(g).some((k) => /secret|pass/i.test(k)), false);
});

test('snapshots for members whose hello never comes are zeroed after the bound', async () => {
  const { hub, c } = await room(['alice']);
  await hub.add('ghost', 'pw', { mute: true });
  await hub.settle();
  const s = [...c.alice.group.snapshots.values()][0];
  assert.ok(s && s.snap.key.some((x) => x !== 0));
  await hub.tick(PENDING_MS + 1000);
  assert.equal(c.alice.group.snapshots.size, 0);
  assert.ok(s.snap.key.every((x) => x === 0));
  await hub.tick(HELLO_WAIT_MS);
  assert.ok(notices(c.alice).some((n) => /ghost has not sent their keys/.test(n)));
});

// ---------------------------------------------------------------- joining

test('a newcomer is told how many earlier messages it cannot read, and reads what follows', async () => {
  const { hub, c } = await room(['alice', 'bob']);
  await say(hub, 'alice', 'old 1');
  await say(hub, 'bob', 'old 2');
  const carol = await hub.add('carol');
  await hub.settle();
  await say(hub, 'alice', 'new');
  assert.deepEqual(texts(carol), ['alice: new']);
  const earlier = carol.events.filter((e) => e.type === 'earlier').reduce((n, e) => n + e.count, 0);
  assert.equal(earlier, 2);
  assert.deepEqual(notices(carol).filter((n) => n.startsWith('⚠')), []);
  assert.deepEqual(texts(c.bob), ['alice: old 1', 'alice: new']);
});

test('messages sent while a newcomer’s hello is on its way are kept and read', async () => {
  const { hub, c } = await room(['alice', 'bob']);
  const carol = await hub.add('carol');
  // Alice sees carol join and speaks at once, before carol's hello reaches her.
  await deliver(c.alice, c.alice.inbox.shift());
  await c.alice.group.seal('quick, carol');
  await hub.settle();
  assert.deepEqual(texts(carol), ['alice: quick, carol']);
});

test('two newcomers at once, and a leave during their handshake: everyone present reads everyone', async () => {
  const { hub, c } = await room(['alice', 'bob', 'carol']);
  const dave = await hub.add('dave');
  const erin = await hub.add('erin');
  hub.leave('carol');
  await hub.settle();
  for (const n of ['alice', 'bob', 'dave', 'erin']) await say(hub, n, 'hi from ' + n);
  for (const x of [c.alice, c.bob, dave, erin]) {
    assert.equal(texts(x).length, 3, `${x.name}: ${texts(x).join(', ')} / ${notices(x).join(', ')}`);
  }
});

test('the newcomer answers the whole room with one bundle, not one frame each', async () => {
  const { hub } = await room(['a', 'b', 'c', 'd', 'e']);
  const from = hub.transcript.length;
  await hub.add('new');
  await hub.settle();
  const mine = hub.transcript.slice(from).filter((f) => f.from === 'new');
  assert.deepEqual(await frameKinds(hub, mine), [T_HELLO, T_DISTRIBUTION]);
  assert.ok(!mine[1].to, 'one broadcast bundle');
});

test('a leave costs each member one broadcast frame, with its next message', async () => {
  const { hub } = await room(['a', 'b', 'c', 'd']);
  const from = hub.transcript.length;
  hub.leave('d');
  await hub.settle();
  assert.equal(hub.transcript.length, from, 'nothing is sent until someone speaks');
  await say(hub, 'a', 'x');
  const fs = hub.transcript.slice(from);
  assert.deepEqual(await frameKinds(hub, fs), [T_DISTRIBUTION, T_MESSAGE]);
  assert.ok(fs.every((f) => !f.to));
});

test('safety codes: what A shows for B is what B shows for itself', async () => {
  const { c } = await room(['alice', 'bob']);
  const bobAtAlice = c.alice.group.memberList().find((m) => m.name === 'bob');
  assert.equal(bobAtAlice.code, c.bob.group.code);
  assert.match(c.bob.group.code, /^\d{5} \d{5} \d{5} \d{5} \d{5}$/);
});

test('a name that comes back with other keys is flagged, in the member list and on every message after', async () => {
  const { hub, c } = await room(['alice', 'bob']);
  await say(hub, 'bob', 'before');
  hub.leave('bob');
  await hub.settle();
  const bob2 = await hub.add('bob'); // a new page: new keys
  await hub.settle();
  await say(hub, 'bob', 'after');
  assert.ok(notices(c.alice).some((n) => /bob’s safety code changed/.test(n)));
  assert.equal(c.alice.group.memberList().find((m) => m.name === 'bob').changed, true);
  const msgs = c.alice.events.filter((e) => e.type === 'message');
  assert.deepEqual(msgs.map((m) => [m.text, m.changed, m.code === bob2.group.code]), [['before', false, false], ['after', true, true]]);
});

// ---------------------------------------------------------------- reconnecting

test('a dropped connection that resumes keeps keys and chains: no rekey, no answers, nothing missed', async () => {
  const { hub, c } = await room(['alice', 'bob', 'carol']);
  hub.away('bob');
  await hub.settle();
  await say(hub, 'alice', 'while bob is away');
  await say(hub, 'carol', 'me too');
  const from = hub.transcript.length;
  hub.back('bob');
  await hub.settle();
  assert.deepEqual(texts(c.bob), ['alice: while bob is away', 'carol: me too']);
  assert.equal(hub.transcript.length, from, 'a resumed session sends and causes nothing');
  assert.equal(c.alice.group.chain.epoch, 1);
  assert.equal(c.alice.group.memberList().find((m) => m.name === 'bob').away, false);
});

for (const first of ['alice', 'bob']) {
  test(`a server restart: ${first} rejoins first and speaks at once; the other reads it, once, with the keys it kept`, async () => {
    const { hub, c } = await room(['alice', 'bob', 'carol']);
    await say(hub, 'alice', 'before the restart');
    const all = hub.restart();
    const order = [first, ...['alice', 'bob', 'carol'].filter((n) => n !== first)];
    const byName = Object.fromEntries(all.map((x) => [x.name, x]));
    hub.attach(byName[order[0]]);
    await hub.settle();
    await say(hub, first, 'right after the restart');
    for (const n of order.slice(1)) { hub.attach(byName[n]); await hub.settle(); }
    await say(hub, order[1], 'back too');
    for (const x of all) {
      const want = [...new Set(['alice: before the restart', `${first}: right after the restart`, `${order[1]}: back too`])]
        .filter((t) => !t.startsWith(x.name + ':'));
      assert.deepEqual(texts(x), want, `${x.name}: ${notices(x).join(' / ')}`);
      assert.deepEqual(notices(x).filter((n) => n.startsWith('⚠')), [], x.name);
    }
    assert.equal(c.alice.group.chain.epoch, 1, 'nobody left: no rekey');
  });
}

test('someone who does not come back after a restart is dropped after the window: the next message rekeys', async () => {
  const { hub, c } = await room(['alice', 'bob', 'carol'], { window: 60000 });
  const all = hub.restart();
  hub.attach(all[0]);
  hub.attach(all[1]);
  await hub.settle();
  await hub.tick(30000);
  await say(hub, 'alice', 'carol is still away');
  assert.equal(c.alice.group.chain.epoch, 1);
  await hub.tick(40000);
  await say(hub, 'alice', 'carol is gone');
  assert.equal(c.alice.group.chain.epoch, 2);
  assert.deepEqual(texts(c.bob), ['alice: carol is still away', 'alice: carol is gone']);
});

// ---------------------------------------------------------------- issue: a hello belongs to one session

test('a hello recorded and replayed under her name after she left is refused; a real rejoin works', async () => {
  const { hub, c } = await room(['alice', 'bob']);
  const hers = hub.transcript.filter((f) => f.from === 'alice');
  const helloBodies = [];
  for (const f of hers) if ((await kindOf(hub, f)) === T_HELLO) helloBodies.push(f.body);
  hub.leave('alice');
  await hub.settle();
  // Mallory joins as "alice" (the name is free) and replays alice's hellos.
  const mallory = await hub.add('alice', 'pw', { mute: true });
  await hub.settle();
  const from = hub.transcript.length;
  for (let i = 0; i < 50; i++) hub.send(mallory, { body: helloBodies[i % helloBodies.length] });
  await hub.settle();
  assert.ok(notices(c.bob).some((n) => /belongs to another session/.test(n)), notices(c.bob).join('\n'));
  assert.equal(c.bob.group.memberList().find((m) => m.name === 'alice').code, '', 'no code shown for the replayer');
  const answers = hub.transcript.slice(from).filter((f) => f.from === 'bob');
  assert.equal(answers.length, 0, '50 replays made bob send nothing');
  // The real alice, on a new page, joins and is read.
  hub.leave('alice');
  await hub.settle();
  const alice2 = await hub.add('alice');
  await hub.settle();
  await say(hub, 'alice', 'it is really me');
  assert.deepEqual(texts(c.bob).slice(-1), ['alice: it is really me']);
  assert.equal(c.bob.group.memberList().find((m) => m.name === 'alice').code, alice2.group.code);
});

test('answers are budgeted: a burst of new sessions gets at most the burst at once, the rest at the rate', async () => {
  const { hub, c } = await room(['alice']);
  const n = ANSWER_BURST + 10;
  for (let i = 0; i < n; i++) await hub.add('m' + i);
  await hub.settle();
  const answered = () => hub.transcript.filter((f) => f.from === 'alice' && f.to).length / 2;
  assert.ok(answered() <= ANSWER_BURST + 1, `answered ${answered()} at once`);
  await hub.tick(Math.ceil((10 / ANSWER_RATE) * 1000) + 1000);
  assert.equal(answered(), n, 'every session answered once in the end');
  assert.equal(notices(c.alice).filter((x) => x.startsWith('⚠')).length, 0);
});

test('keep my safety code: a reload keeps the code and is not flagged; another device is', async () => {
  const signing = await newSigningPair();
  const { hub, c } = await room(['alice']);
  await hub.add('bob', 'pw', { signing });
  await hub.settle();
  const code = c.alice.group.memberList().find((m) => m.name === 'bob').code;
  hub.leave('bob');
  await hub.settle();
  const reloaded = await hub.add('bob', 'pw', { signing }); // new page, same kept key
  await hub.settle();
  assert.equal(reloaded.group.code, code);
  assert.equal(c.alice.group.memberList().find((m) => m.name === 'bob').changed, false);
  assert.deepEqual(notices(c.alice).filter((x) => /changed/.test(x)), []);
  hub.leave('bob');
  await hub.settle();
  await hub.add('bob'); // another device
  await hub.settle();
  assert.ok(notices(c.alice).some((x) => /bob’s safety code changed/.test(x)));
  // The kept key is the signing key only, and non-extractable.
  assert.equal(signing.privateKey.extractable, false);
  assert.notEqual(reloaded.group.identity.ecdh, undefined);
});

// ---------------------------------------------------------------- issue: a hostile member or relay

test('attack 1: chain ids belong to their sender: Mallory cannot occupy Alice’s or Bob’s chain at Carol', async () => {
  const { hub, c } = await room(['alice', 'bob', 'mallory']);
  // Mallory keeps copies of every key frame alice and bob send.
  const carol = await hub.add('carol');
  // Before alice's and bob's answers reach carol, mallory sends carol keys
  // of her own under their epochs and key ids.
  const theirs = hub.transcript.filter((f) => (f.from === 'alice' || f.from === 'bob'));
  for (const f of theirs) hub.send(c.mallory, { body: f.body, to: 'carol' });
  hub.send(c.mallory, { body: await junk(hub, T_DISTRIBUTION, 300), to: 'carol' });
  await hub.settle();
  await say(hub, 'alice', 'carol, hi from alice');
  await say(hub, 'bob', 'and from bob');
  assert.deepEqual(texts(carol), ['alice: carol, hi from alice', 'bob: and from bob']);
  for (const n of notices(carol)) assert.doesNotMatch(n, /alice|bob/, 'no notice blames alice or bob');
});

test('attack 2: no replay after any amount of churn: 1,000 key frames, then Bob’s old handoff and message come back', async () => {
  const { hub, c } = await room(['alice', 'bob', 'mallory']);
  await say(hub, 'bob', 'yes, send the money');
  const old = hub.transcript.filter((f) => f.from === 'bob');
  // Mallory sends 1,000 valid key frames (fresh chains for everyone).
  for (let i = 0; i < 1000; i++) {
    c.mallory.group.needRekey = true;
    await c.mallory.group.seal('.');
  }
  await hub.settle();
  // A hostile relay replays all of bob's old frames to alice.
  for (const f of old) c.alice.inbox.push({ ...f });
  await hub.settle();
  await say(hub, 'bob', 'next real message');
  assert.deepEqual(texts(c.alice).filter((t) => t.startsWith('bob')), ['bob: yes, send the money', 'bob: next real message']);
  // What alice keeps per member is constant: two chains and a few numbers.
  const p = c.alice.group.peers.get(c.alice.group.members.get(c.mallory.sid).keyId);
  assert.ok(p.chain && p.prev && p.chain.epoch === 1001);
  assert.ok(cryptoKeys(p) <= 6, 'constant state per peer');
});

test('attack 4: waiting messages are kept per sender: 200 junk messages do not push out Bob’s message; only their sender is blamed', async () => {
  const { hub, c } = await room(['alice', 'bob']);
  const mallory = await hub.add('mallory', 'pw', { mute: true }); // never sends a valid hello
  await hub.settle();
  const carol = await hub.add('carol');
  // Bob sees carol join and speaks before carol has his keys.
  await deliver(c.bob, c.bob.inbox.shift());
  await c.bob.group.seal('welcome, carol');
  for (let i = 0; i < 200; i++) hub.send(mallory, { body: await junk(hub, T_MESSAGE, 120) });
  await hub.settle();
  await hub.tick(HELD_MS + 1000);
  assert.deepEqual(texts(carol), ['bob: welcome, carol']);
  const blamed = notices(carol).filter((n) => n.startsWith('⚠'));
  assert.ok(blamed.length > 0 && blamed.every((n) => /mallory/.test(n) && !/bob/.test(n)), blamed.join('\n'));
  assert.ok(carol.group.members.get(mallory.sid).held.length <= HELD_UNVERIFIED);
});

test('attack 5a: everyone sees the same room: a room message sent to one member alone is refused', async () => {
  const { hub, c } = await room(['alice', 'bob', 'mallory']);
  c.alice.inbox = [];
  c.mallory.group.onFrame = (fr) => hub.relay(c.mallory, { ...fr, to: fr.kind === 'message' ? 'alice' : fr.to });
  await c.mallory.group.seal('meeting moved to 5pm');
  await hub.settle();
  assert.deepEqual(texts(c.alice), []);
  assert.ok(notices(c.alice).some((n) => /mallory sent a room message to you alone/.test(n)));
});

test('attack 5b: a relay that drops messages is seen: “k messages from X did not reach you”', async () => {
  const { hub, c } = await room(['alice', 'bob', 'carol']);
  c.bob.inbox = [];
  for (const t of ['one', 'two', 'three']) await c.alice.group.seal(t);
  c.bob.inbox.splice(1, 1); // the relay drops "two" for bob
  await hub.settle();
  assert.deepEqual(texts(c.bob), ['alice: one', 'alice: three']);
  await hub.tick(GAP_MS + 1000);
  assert.ok(notices(c.bob).some((n) => /1 message from alice did not reach you/.test(n)), notices(c.bob).join('\n'));
  // The last messages before a new epoch: the rekey says where the old one ended.
  c.bob.inbox = [];
  await c.alice.group.seal('four');
  await c.alice.group.seal('five');
  c.bob.inbox = []; // both dropped
  hub.leave('carol');
  await hub.settle();
  await say(hub, 'alice', 'six');
  await hub.tick(GAP_MS + 1000);
  assert.ok(notices(c.bob).some((n) => /2 messages from alice did not reach you/.test(n)), notices(c.bob).join('\n'));
  // A dropped message that arrives after it was reported is reported as late, not shown, not silent.
  assert.deepEqual(texts(c.bob).slice(-1), ['alice: six']);
});

test('a departed member who comes back with the same page keeps her code, is said to be back, and reads only what follows', async () => {
  const { hub, c } = await room(['alice', 'bob', 'carol']);
  const carol = hub.leave('carol');
  await hub.settle();
  await say(hub, 'alice', 'while carol is gone');
  hub.attach(carol); // the same page, the same keys, a new session
  await hub.settle();
  await say(hub, 'alice', 'carol is back');
  assert.ok(notices(c.alice).some((n) => /carol is back, with the same safety code/.test(n)));
  assert.deepEqual(texts(carol), ['alice: carol is back']);
  assert.equal(c.alice.group.memberList().find((m) => m.name === 'carol').changed, false);
});

test('destroy (Leave) zeroes our chain keys and forgets every member', async () => {
  const { hub, c } = await room(['alice', 'bob']);
  await say(hub, 'alice', 'x');
  const key = c.alice.group.chain.key;
  c.alice.group.destroy();
  assert.ok(key.every((b) => b === 0));
  assert.equal(c.alice.group.members.size, 0);
  assert.equal(c.alice.group.peers.size, 0);
  assert.equal(FAST, 1000);
});
