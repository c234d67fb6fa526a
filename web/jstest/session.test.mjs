// Tests of the page's session logic (session.mjs: joining, resuming,
// catch-up, receipts, resends, the rate-kept lanes) with no DOM, with the
// real group (group.mjs on MLS) against an in-memory relay speaking relay
// protocol version 2 (fakerelay.mjs) on a fake clock:
//   node --test web/jstest/
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setup, joined, shown, warnings, members, states, said, epochs, FAST, ROOM, PASS } from './room.mjs';
import { MAX_BULK, MAX_ORDERED } from '../static/session.mjs';
import { deriveRoom } from '../static/roomkey.mjs';
import { prepareName } from '../static/names.mjs';
import { context, seal, T_MLS } from '../static/envelope.mjs';
import { toBase64, randomBytes, concat } from '../static/bytes.mjs';

test('joining: the relay learns a room id, never the room name or the passphrase; the form holds no passphrase after', async () => {
  const { relay, mk } = setup();
  const a = await joined(relay, mk('a'), 'alice');
  assert.ok(a.events.some((e) => e.type === 'joined' && /^\d{4} \d{4}$/.test(e.check)));
  const sent = JSON.stringify([...relay.log, ...[...relay.sockets].flatMap((x) => x.sent)]);
  assert.doesNotMatch(sent, /book club|Book Club|correct horse/i);
  const join = [...relay.sockets][0].sent.find((f) => f.type === 'join');
  assert.match(join.room, /^[A-Za-z0-9_-]{22}$/);
  assert.equal(a.pass, null, 'the passphrase is dropped once the keys exist');
});

test('a wrong passphrase lands in another, empty room: nobody there, nothing seen, and the friends see nobody new', async () => {
  const { relay, mk } = setup();
  const a = await joined(relay, mk('a'), 'alice');
  const b = await joined(relay, mk('b'), 'bob');
  const x = await joined(relay, mk('x'), 'xavier', { passphrase: 'wrong horse' });
  a.send('only for friends');
  await relay.advance(2000);
  assert.deepEqual(shown(b), ['alice: only for friends']);
  assert.deepEqual(shown(x), []);
  assert.deepEqual(members(x), ['xavier']);
  assert.equal(x.events.filter((e) => e.type === 'members').pop().alone, true);
  assert.deepEqual(members(a).sort(), ['alice', 'bob']);
  const codes = [a, b, x].map((s) => s.events.find((e) => e.type === 'joined').check);
  assert.equal(codes[0], codes[1]);
  assert.notEqual(codes[0], codes[2]);
});

test('a refused join stops with the relay’s reason and forgets the passphrase and the keys', async () => {
  const { relay, mk } = setup();
  await joined(relay, mk('a'), 'alice');
  const b = mk('b');
  b.start({ room: 'book club', name: 'ALICE', passphrase: 'correct horse' });
  await relay.settle();
  const stop = b.events.find((e) => e.type === 'stopped');
  assert.ok(stop && stop.field === 'name' && stop.code === 'name_taken', JSON.stringify(b.events.slice(-3)));
  assert.equal(b.pass, null);
  assert.equal(b.keys, null);
  assert.equal(b.group, null);
});

test('names are prepared as the relay prepares them; look-alike tricks are refused before sending', () => {
  assert.deepEqual(prepareName('  bob   smith '), { name: 'bob smith' });
  assert.deepEqual(prepareName('Ａｌｉｃｅ'), { name: 'Alice' });
  for (const bad of ['Alice\u034f', 'Alice\ufe0f', '\u3164', '\u115f', 'Al\u2800ice', 'Alice\u{E0100}', '\u202eecilA', 'Al\u200dice', '   ', 'x'.repeat(33)]) {
    assert.ok(prepareName(bad).error, JSON.stringify(bad));
  }
});

test('receipts: a message shows sent, then delivered once every member has it; alone, it reached nobody', async () => {
  const { relay, mk } = setup();
  const a = await joined(relay, mk('a'), 'alice');
  const lonely = a.send('anyone?');
  await relay.advance(1500);
  assert.equal(lonely.state, 'nobody');
  const b = await joined(relay, mk('b'), 'bob');
  const c = await joined(relay, mk('c'), 'carol');
  const m = a.send('hello both');
  await relay.advance(3000);
  assert.deepEqual(states(a, m), ['sending', 'sent', 'delivered']);
  assert.deepEqual([shown(b), shown(c)], [['alice: hello both'], ['alice: hello both']]);
});

test('a member cut off (TCP reset) while the others speak for 20 s gets all of it on return, in order, once; senders saw waiting, then delivered', async () => {
  const { relay, mk } = setup();
  const a = await joined(relay, mk('a'), 'alice');
  const b = await joined(relay, mk('b'), 'bob');
  let away = false;
  const c = await joined(relay, mk('c', { connect: (u) => (away ? relay.dead() : relay.connect(u)) }), 'carol');
  away = true;
  relay.drop('carol');
  const items = [];
  for (let i = 0; i < 10; i++) {
    items.push([a, a.send('a' + i)], [b, b.send('b' + i)]);
    await relay.advance(2000);
  }
  await relay.advance(2000);
  assert.ok(items.every(([, it]) => it.state === 'waiting'), items.map(([, i]) => i.state).join());
  away = false; // carol's page reconnects by itself (backoff), resumes, catches up
  await relay.advance(35000);
  // Each sender's messages in order, once; between senders, the relay's order.
  for (const n of ['alice', 'bob']) {
    assert.deepEqual(shown(c).filter((x) => x.startsWith(n)), [...Array(10).keys()].map((i) => `${n}: ${n[0]}${i}`));
  }
  assert.equal(shown(c).length, 20);
  for (const [s, it] of items) assert.deepEqual(states(s, it), ['sending', 'sent', 'waiting', 'delivered']);
  assert.deepEqual(warnings(c), []);
});

test('a half-open connection is noticed within 2.5 ping intervals; the page resumes and misses nothing', async () => {
  const { relay, mk, clock } = setup({ limits: { ping: 2000 } });
  const a = await joined(relay, mk('a'), 'alice');
  const b = await joined(relay, mk('b'), 'bob');
  relay.blackhole('bob');
  const t0 = clock.now();
  const items = [];
  for (let i = 0; i < 5; i++) { items.push(a.send('h' + i)); await relay.advance(1000); }
  await relay.advance(10000);
  assert.deepEqual(shown(b), [0, 1, 2, 3, 4].map((i) => 'alice: h' + i));
  const back = b.events.findIndex((e) => e.type === 'reconnected');
  assert.ok(back >= 0, 'bob reconnected by himself');
  assert.ok(items.every((it) => it.state === 'delivered'));
  assert.ok(clock.now() - t0 <= 15000);
});

test('a connection that hangs before the relay speaks is given up and tried again', async () => {
  const { relay, mk } = setup();
  const a = await joined(relay, mk('a'), 'alice');
  relay.silent = true; // the network swallows new connections
  relay.drop('alice');
  await relay.advance(40000, 500);
  assert.equal(a.joined, false);
  relay.silent = false;
  await relay.advance(40000, 500);
  assert.equal(a.joined, true, 'alice is back once the network is');
});

for (const first of ['alice', 'bob']) {
  test(`a server restart, ${first} back first: every message of the first 10 s reaches the other, once`, async () => {
    const { relay, mk, clock } = setup();
    const a = await joined(relay, mk('a', { random: () => (first === 'alice' ? 0 : 1) }), 'alice');
    const b = await joined(relay, mk('b', { random: () => (first === 'alice' ? 1 : 0) }), 'bob');
    a.send('before');
    await relay.advance(2000);
    relay.restart();
    const sentBy = { alice: [], bob: [] };
    const items = [];
    const t0 = clock.now();
    for (let t = 0; t < 10000; t += 250) {
      await relay.advance(250);
      for (const [s, n] of [[a, 'alice'], [b, 'bob']]) {
        if (s.joined && s.since >= 0 && (t / 250) % 4 === (n === 'alice' ? 0 : 2)) { items.push([s, s.send(`${n} ${t}`)]); sentBy[n].push(`${n}: ${n} ${t}`); }
      }
    }
    await relay.advance(8000);
    // What each page said of its messages was true: never "reached
    // nobody" while the other could still get them, and delivered in the end.
    for (const [s, it] of items) {
      assert.ok(!states(s, it).includes('nobody'), `${it.text}: ${states(s, it)}`);
      assert.equal(it.state, 'delivered', `${it.text}: ${states(s, it)}`);
    }
    assert.ok(sentBy.alice.length > 5 && sentBy.bob.length > 5, `both spoke within 10 s of ${clock.now() - t0} ms`);
    assert.deepEqual(shown(b), ['alice: before', ...sentBy.alice]);
    assert.deepEqual(shown(a), sentBy.bob);
    for (const s of [a, b]) assert.deepEqual(warnings(s), [], s.label);
  });
}

test('a server restart: what the first page back says alone (its "here", a message) reaches the others when they are back; nobody is removed', async () => {
  // The relay keeps nothing sent while nobody else is in the room (not
  // even away): the page sends it again when a member comes back.
  const { relay, mk } = setup();
  let down = false;
  const later = (u) => (down ? relay.dead() : relay.connect(u));
  const a = await joined(relay, mk('a'), 'alice');
  const b = await joined(relay, mk('b', { connect: later }), 'bob');
  const c = await joined(relay, mk('c', { connect: later }), 'carol');
  down = true;
  relay.restart();
  await relay.advance(5000);
  assert.ok(a.joined && !b.joined && !c.joined);
  a.send('alone after the restart');
  await relay.advance(2000);
  down = false;
  await relay.advance(60000, 500);
  for (const s of [b, c]) assert.deepEqual(shown(s), ['alice: alone after the restart'], s.label);
  for (const s of [a, b, c]) {
    assert.deepEqual(warnings(s), [], s.label);
    assert.deepEqual(s.group.memberList().map((m) => `${m.name}:${m.status}`).sort(), ['alice:here', 'bob:here', 'carol:here'], s.label);
  }
  assert.equal(new Set(epochs(a, b, c)).size, 1);
});

test('a message written into a dying connection is sent again after the reconnect, and shown once', async () => {
  const { relay, mk } = setup();
  const a = await joined(relay, mk('a'), 'alice');
  const b = await joined(relay, mk('b'), 'bob');
  const m = a.send('into the void?');
  await a.flush();
  // The relay never saw it: the connection died with the frame on it.
  relay.inbound = relay.inbound.filter((x) => x.f.type !== 'msg');
  relay.drop('alice');
  await relay.advance(6000);
  assert.deepEqual(shown(b), ['alice: into the void?']);
  assert.equal(m.state, 'delivered');
  // And after a restart, what was sent but not yet delivered is resent; bob drops the copy he has.
  const m2 = a.send('second');
  await relay.settle();
  relay.drop('bob');
  relay.restart();
  await relay.advance(10000);
  assert.deepEqual(shown(b), ['alice: into the void?', 'alice: second']);
  assert.equal(m2.state, 'delivered');
});

test('away longer than the window: the member left, its message reached nobody, and on return it is a new session told what is gone', async () => {
  const { relay, mk } = setup({ limits: { window: 20000 } });
  const a = await joined(relay, mk('a'), 'alice');
  let away = false;
  const b = await joined(relay, mk('b', { connect: (u) => (away ? relay.dead() : relay.connect(u)) }), 'bob');
  away = true;
  relay.drop('bob');
  const m = a.send('you will miss this');
  await relay.advance(25000);
  assert.equal(m.state, 'nobody', 'it never reached bob, who left');
  assert.ok(said(a).includes('info: bob left.'), said(a).join('\n'));
  away = false;
  await relay.advance(40000);
  assert.ok(b.joined);
  assert.deepEqual(shown(b), []);
  const back = a.send('bob is back');
  await relay.advance(3000);
  assert.deepEqual(shown(b), ['alice: bob is back']);
  assert.equal(back.state, 'delivered');
});

test('attack 3: a hostile member at the relay’s full rate for 60 s cannot make the room silence itself', async () => {
  const { relay, mk, clock } = setup();
  const a = await joined(relay, mk('a'), 'alice');
  const b = await joined(relay, mk('b'), 'bob');
  const keys = await deriveRoom(PASS, relay.server, ROOM.trim().toLowerCase(), FAST);
  const ctx = context(keys.roomId);
  const env = async (inner) => toBase64(await seal(keys.frameKey, ctx, inner));
  // Mallory: a real page with the passphrase, which also sends whatever
  // the test makes, at the relay's full rate, and comes back as a new page
  // every 5 s.
  let m = await joined(relay, mk('m'), 'mallory');
  let maxQ = 0;
  const sentA = [];
  const sentB = [];
  const start = clock.now();
  for (let t = 0; t < 60000; t += 100) {
    const k = (t / 100) % 10;
    const epoch = a.group.epoch;
    try {
      if (k < 3) relay.inject('mallory', { type: 'msg', body: await env(concat(new Uint8Array([T_MLS]), randomBytes(200))) });
      else if (k < 5) relay.inject('mallory', { type: 'commit', epoch, body: await env(concat(new Uint8Array([T_MLS]), randomBytes(300))), info: await env(randomBytes(100)) });
      else if (k < 7) relay.inject('mallory', { type: 'msg', body: await env(randomBytes(100)), bulk: true });
      else relay.inject('mallory', { type: 'msg', body: toBase64(randomBytes(512)) });
    } catch { /* mallory is between pages */ }
    if ((t / 100) % 50 === 0 && t > 0) {
      m.leave();
      m = mk('m');
      m.start({ room: ROOM, name: 'mallory', passphrase: PASS });
    }
    if (t % 2000 === 0) { sentA.push('alice: a' + t); a.send('a' + t); }
    if (t % 2000 === 1000) { sentB.push('bob: b' + t); b.send('b' + t); }
    await relay.advance(100, 100);
    for (const s of [a, b]) { const q = s.stats(); maxQ = Math.max(maxQ, q.ordered + q.bulk); }
  }
  await relay.advance(10000);
  assert.equal(clock.now() - start, 70000);
  assert.deepEqual(shown(b).filter((x) => x.startsWith('alice')), sentA);
  assert.deepEqual(shown(a).filter((x) => x.startsWith('bob')), sentB);
  assert.ok(maxQ <= MAX_BULK + MAX_ORDERED, `queues stayed bounded (max ${maxQ})`);
  assert.ok(maxQ <= 40, `queues stayed short (max ${maxQ})`);
  const honest = [...relay.sockets].filter((x) => x.conn.session && x.conn.session.name !== 'mallory');
  assert.equal(honest.reduce((n, x) => n + (x.dropped || 0), 0), 0, 'no honest frame was over the rate');
  // The pages were told, but not flooded with notices: one per 5 s for
  // mallory's frames, and the count of the rest.
  assert.ok(warnings(a).length <= 40, `${warnings(a).length} notices:\n${warnings(a).slice(0, 20).join('\n')}`);
  assert.ok(warnings(a).some((w) => /more frames? from mallory were refused/.test(w)), warnings(a).join('\n'));
  // Her junk commits, each the first the relay took for its epoch, did not
  // freeze the room: her last page, an honest one, got in, and everyone
  // shares the room's keys.
  assert.ok(m.group && m.group.member, 'a newcomer still joins');
  assert.deepEqual(members(a).sort(), ['alice', 'bob', 'mallory']);
  assert.equal(new Set(epochs(a, b, m)).size, 1, epochs(a, b, m).join());
});
