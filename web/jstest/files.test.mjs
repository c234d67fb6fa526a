// Tests of pictures and files (files.mjs, and the session's bulk lane)
// against the in-memory relay: chunking and reassembly, missing, reordered
// and altered chunks, cancelling on both sides, members who join midway,
// metadata stripped before anything leaves, nothing in clear on the wire,
// chat going first, and the byte rate kept to.
//   node --test web/jstest/
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { setup, joined, said, warnings } from './room.mjs';
import { STALL_MS, safeName } from '../static/files.mjs';
import { fromBase64, toBase64 } from '../static/bytes.mjs';
import { maxChunkBytes, open, seal, parseChunk, makeChunk, T_CHUNK } from '../static/envelope.mjs';

const sample = (f) => new Uint8Array(readFileSync(new URL('./testdata/' + f, import.meta.url)));
const sockOf = (relay, name) => [...relay.sockets].find((x) => x.conn.session && x.conn.session.name === name);

async function room(names, opts) {
  const { clock, relay, mk } = setup(opts);
  const s = {};
  for (const n of names) s[n] = await joined(relay, mk(n), n, { room: 'photos', passphrase: 'pw' });
  return { clock, relay, s };
}

const got = (s) => s.events.filter((e) => e.type === 'incoming-file').map((e) => e.transfer);
const finished = (s) => [...new Set(got(s))].filter((t) => t.state !== 'receiving');

// big makes a JPEG of about n bytes: the sample's header (with its GPS,
// camera and author data) and a long comment-free scan of filler.
function bigJPEG(n) {
  const src = sample('photo.jpg');
  const sos = Buffer.from(src).indexOf(Buffer.from([0xff, 0xda]));
  const out = new Uint8Array(n);
  out.set(src.subarray(0, src.length - 2));
  for (let i = src.length - 2; i < n - 2; i++) out[i] = (i * 7919) % 251; // never 0xff
  out[n - 2] = 0xff;
  out[n - 1] = 0xd9;
  assert.ok(sos > 0);
  return out;
}

test('a picture with GPS data goes from A to B and C: stripped before it leaves, whole, shown as a picture, nothing in clear on the wire', async () => {
  const { relay, s } = await room(['alice', 'bob', 'carol']);
  const jpeg = bigJPEG(5 << 20);
  const t = await s.alice.sendFile({ name: 'holiday.jpg', type: 'image/jpeg', bytes: jpeg });
  assert.ok(t.removed.includes('EXIF') && t.removed.includes('XMP'), `removed ${t.removed}`);
  await relay.advance(40000, 250);
  for (const who of ['bob', 'carol']) {
    const [r] = finished(s[who]);
    assert.ok(r, `${who} got it`);
    assert.equal(r.state, 'done', `${who}: ${r.why}`);
    assert.equal(r.picture, true);
    assert.equal(r.name, 'holiday.jpg');
    assert.equal(r.size, t.size);
    for (const secret of ['TestCam', 'Alice Example', 'Paris', 'SN123456']) assert.ok(!Buffer.from(r.bytes).includes(secret), `${secret} reached ${who}`);
    assert.deepEqual(Buffer.from(r.bytes).subarray(-1000), Buffer.from(jpeg).subarray(-1000));
  }
  // Every frame on the wire is a padded envelope; neither the picture nor its name is in one.
  let bulk = 0;
  for (const f of relay.log) {
    const env = Buffer.from(fromBase64(f.body));
    assert.ok(!env.includes('holiday') && !env.includes(Buffer.from(jpeg.subarray(-4096, -2048))), 'nothing in clear');
    if (f.bulk && (await open(s.alice.group.frameKey, s.alice.group.ctx, env))[0] === T_CHUNK) bulk++; // acknowledgements are bulk too
  }
  assert.equal(bulk, Math.ceil(t.size / maxChunkBytes(32768)));
  // The time it took is what the byte rate allows, within 1.2x.
  const sentAt = s.alice.events.find((e) => e.type === 'outgoing-file' && e.transfer.state === 'sent');
  assert.ok(sentAt, 'alice saw it sent');
  await relay.advance(5000, 250);
  assert.equal(t.delivery, 'delivered', JSON.stringify([...t.outcome]));
});

test('a PDF arrives as a download with the same bytes and a safe name; it is never shown as a picture', async () => {
  const { relay, s } = await room(['alice', 'bob']);
  const pdf = new TextEncoder().encode('%PDF-1.7\n' + 'x'.repeat(100000) + '\n%%EOF\n');
  await s.alice.sendFile({ name: '../../report\u202egpj.pdf', type: 'application/pdf', bytes: pdf });
  await relay.advance(5000, 250);
  const [r] = finished(s.bob);
  assert.equal(r.state, 'done');
  assert.equal(r.picture, false);
  assert.deepEqual(r.bytes, pdf);
  assert.equal(r.name, 'reportgpj.pdf');
  // Claiming to be a picture does not make a file one.
  const svg = new TextEncoder().encode('<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>');
  await s.alice.sendFile({ name: 'x.svg', type: 'image/svg+xml', bytes: svg });
  await relay.advance(3000, 250);
  const svgGot = finished(s.bob).find((x) => x.name === 'x.svg');
  assert.equal(svgGot.picture, false);
  assert.equal(svgGot.type, 'application/octet-stream');
});

test('cancelled by the sender: nobody is left with a file; cancelled by a receiver: only that one stops', async () => {
  const { relay, s } = await room(['alice', 'bob', 'carol']);
  const t = await s.alice.sendFile({ name: 'big.bin', type: 'application/octet-stream', bytes: new Uint8Array(2 << 20) });
  await relay.advance(3000, 250);
  s.alice.cancelFile(t);
  await relay.advance(5000, 250);
  for (const who of ['bob', 'carol']) {
    const [r] = finished(s[who]);
    assert.equal(r.state, 'cancelled', who);
    assert.equal(r.bytes, null);
    assert.equal(r.parts, null);
    assert.equal(s[who].files.incoming.size, 0);
  }
  assert.equal(s.alice.files.outgoing.length, 0);
  // Now bob cancels his copy of the next one; carol gets it whole.
  await s.alice.sendFile({ name: 'next.bin', type: 'application/octet-stream', bytes: new Uint8Array(300000).fill(7) });
  await relay.advance(500, 250);
  const bobs = got(s.bob).find((x) => x.name === 'next.bin');
  s.bob.cancelFile(bobs);
  await relay.advance(5000, 250);
  assert.equal(bobs.state, 'cancelled');
  assert.equal(finished(s.carol).find((x) => x.name === 'next.bin').state, 'done');
});

test('text goes first: a message typed while a file is on its way arrives within a second, and no frame is over the relay’s limits', async () => {
  const { relay, s, clock } = await room(['alice', 'bob']);
  await s.alice.sendFile({ name: 'big.bin', type: 'application/octet-stream', bytes: new Uint8Array(3 << 20).fill(1) });
  await relay.advance(2000, 100);
  const t0 = clock.now();
  s.alice.send('still here');
  let seen = -1;
  for (let i = 0; i < 20 && seen < 0; i++) {
    await relay.advance(100, 100);
    if (s.bob.events.some((e) => e.type === 'message' && e.text === 'still here')) seen = clock.now() - t0;
  }
  assert.ok(seen >= 0 && seen <= 1000, `the message took ${seen} ms`);
  await relay.advance(30000, 250);
  assert.equal(relay.dropped, 0, 'the page kept to the frame and byte rates');
  assert.equal(finished(s.bob)[0].state, 'done');
});

test('the file takes what the announced byte rate allows, within 1.2x', async () => {
  const { relay, s, clock } = await room(['alice', 'bob'], { limits: { bytes: 256 << 10 } });
  const size = 4 << 20;
  const t0 = clock.now();
  await s.alice.sendFile({ name: 'f.bin', type: 'application/octet-stream', bytes: new Uint8Array(size).fill(3) });
  let took = 0;
  for (let i = 0; i < 400 && !took; i++) {
    await relay.advance(250, 250);
    if (finished(s.bob).length) took = clock.now() - t0;
  }
  const wire = size * (4 / 3) * (32768 / maxChunkBytes(32768)); // base64 and padding
  const allowed = (wire / (256 << 10)) * 1000;
  assert.ok(took > 0 && took <= 1.2 * allowed, `took ${took} ms; the byte rate allows ${Math.round(allowed)} ms`);
  assert.equal(relay.dropped, 0);
});

test('while the browser still holds earlier chunks (tor stalled), no more are handed to it, and text typed meanwhile goes next', async () => {
  const { relay, s, clock } = await room(['alice', 'bob']);
  await s.alice.sendFile({ name: 'stall.bin', type: 'application/octet-stream', bytes: new Uint8Array(2 << 20).fill(5) });
  await relay.advance(2000, 100);
  const ws = s.alice.ws;
  const chunks = () => ws.sent.filter((f) => f.bulk).length;
  const before = chunks();
  assert.ok(before > 0, 'chunks went before the stall');
  ws.bufferedAmount = 200 << 10; // tor stopped taking bytes
  await relay.advance(3000, 100);
  assert.equal(chunks(), before, 'no chunk is queued in the browser behind a stall');
  s.alice.send('typed during the stall');
  await relay.advance(200, 100);
  const last = ws.sent[ws.sent.length - 1];
  assert.ok(last && !last.bulk && last.type === 'msg', 'the typed message is the next frame');
  ws.bufferedAmount = 0;
  const t0 = clock.now();
  for (let i = 0; i < 400 && !finished(s.bob).length; i++) await relay.advance(250, 250);
  assert.equal(finished(s.bob)[0]?.state, 'done', `the file arrived after the stall (${clock.now() - t0} ms)`);
  assert.ok(s.bob.events.some((e) => e.type === 'message' && e.text === 'typed during the stall'));
  assert.equal(relay.dropped, 0);
});

// ---------------------------------------------------------------- chunks gone wrong

// pair is alice and bob (and mallory, a member too), with alice's chunks
// to bob held by the relay, for a test to hand over in the order it
// chooses.
async function pair() {
  const { clock, relay, s } = await room(['alice', 'bob', 'mallory']);
  const bs = sockOf(relay, 'bob');
  const held = [];
  relay.tamper = (sock, f) => {
    if (sock === bs && f.type === 'msg' && f.bulk && f.from === 'alice') { held.push(f); return null; }
    return f;
  };
  const g = s.alice.group;
  const send = async (bytes) => {
    const t = await s.alice.sendFile({ name: 'f.bin', type: 'application/octet-stream', bytes });
    await relay.advance(3000, 250);
    const chunks = [];
    for (const f of held) {
      const inner = await open(g.frameKey, g.ctx, fromBase64(f.body));
      if (inner[0] === T_CHUNK) chunks[parseChunk(inner).index] = f;
    }
    return { t, chunks };
  };
  const deliver = async (list) => {
    for (const f of list) { relay.outbound.push({ sock: bs, f }); await relay.settle(); }
  };
  return { clock, relay, s, send, deliver };
}

const results = (b) => b.events.filter((e) => e.type === 'incoming-file' && e.transfer.state !== 'receiving').map((e) => e.transfer);

test('chunks out of order make the same file; a copy of a chunk changes nothing', async () => {
  const { s, send, deliver } = await pair();
  const bytes = new Uint8Array(100000).map((_, i) => i % 251);
  const { chunks } = await send(bytes);
  assert.equal(chunks.length, 4);
  await deliver([chunks[3], chunks[1], chunks[0], chunks[1], chunks[2]]);
  const [r] = results(s.bob);
  assert.equal(r.state, 'done');
  assert.deepEqual(r.bytes, bytes);
});

test('a missing chunk: the transfer is reported broken after a while, and no partial file is shown', async () => {
  const { relay, s, send, deliver } = await pair();
  const { chunks } = await send(new Uint8Array(100000).fill(5));
  await deliver([chunks[0], chunks[1], chunks[3]]);
  assert.deepEqual(results(s.bob), []);
  await relay.advance(STALL_MS + 2000, 1000);
  const [r] = results(s.bob);
  assert.equal(r.state, 'failed');
  assert.deepEqual([r.why, r.whyArgs.got, r.whyArgs.chunks], ['stalled', 3, 4]);
  assert.equal(r.bytes, null);
  // Its sender learns it did not arrive whole at bob.
  await relay.advance(3000, 500);
  const out = s.alice.events.filter((e) => e.type === 'outgoing-file').pop().transfer;
  assert.deepEqual([out.delivery, out.missed], ['partly', [{ name: 'bob', why: 'failed' }]]);
});

test('a file of ours is delivered once every member has it whole; one who declines is named', async () => {
  const { relay, s } = await room(['alice', 'bob', 'carol']);
  const t = await s.alice.sendFile({ name: 'a.bin', type: 'application/octet-stream', bytes: new Uint8Array(100000).fill(4) });
  await relay.advance(6000, 250);
  assert.equal(t.delivery, 'delivered');
  const t2 = await s.alice.sendFile({ name: 'b.bin', type: 'application/octet-stream', bytes: new Uint8Array(900000).fill(5) });
  await relay.advance(300, 100);
  s.carol.cancelFile(got(s.carol).find((x) => x.name === 'b.bin'));
  await relay.advance(10000, 250);
  assert.deepEqual([t2.delivery, t2.missed], ['partly', [{ name: 'carol', why: 'cancelled' }]]);
  const alone = await room(['dave']);
  const t3 = await alone.s.dave.sendFile({ name: 'c.bin', type: 'application/octet-stream', bytes: new Uint8Array(1000) });
  await alone.relay.advance(3000, 250);
  assert.equal(t3.delivery, 'nobody');
});

test('receive slots: offers of tiny pieces are refused, a trickle loses its place, the sender learns why, and a friend’s file gets through', async () => {
  const { relay, s } = await room(['alice', 'bob', 'mallory', 'eve']);
  const { offerPayload, K_OFFER } = await import('../static/envelope.mjs');
  const offer = (who, id, size, chunkSize, name) => s[who].group.sealRoom(K_OFFER,
    offerPayload({ id, size, chunkSize, hash: new Uint8Array(32), flags: 0, type: 'application/octet-stream', name }), null);
  // mallory and eve each offer two files of 1-byte pieces: refused.
  for (const who of ['mallory', 'eve']) for (let i = 0; i < 2; i++) await offer(who, randomBytesN(16), 4000, 1, 'tiny');
  await relay.advance(3000, 250);
  const refused = finished(s.alice).filter((x) => x.name === 'tiny');
  assert.equal(refused.length, 4);
  assert.ok(refused.every((x) => x.state === 'refused' && x.why === 'too-small'));
  // Then two 10 MiB files each, and a piece of each every 25 s (which kept
  // clear of the stall timeout): they take alice's four slots at first …
  const slow = [];
  for (const who of ['mallory', 'eve']) {
    for (let i = 0; i < 2; i++) { const id = randomBytesN(16); slow.push([who, id]); await offer(who, id, 10 << 20, 31 << 10, 'slow'); }
  }
  await relay.advance(1000, 250);
  assert.equal(s.alice.files.incoming.size, 4);
  for (let t = 0, k = 0; t < 60000; t += 1000) {
    if (t % 25000 === 0) {
      for (const [who, id] of slow) {
        const body = await s[who].group.sealChunk({ id, index: k, data: new Uint8Array(31 << 10) });
        if (body) relay.inject(who, { type: 'msg', body: toBase64(body), bulk: true });
      }
      k++;
    }
    await relay.advance(1000, 500);
  }
  // … and lose them: they fell behind the least rate a file must keep.
  assert.equal(s.alice.files.incoming.size, 0);
  const lost = finished(s.alice).filter((x) => x.name === 'slow');
  assert.ok(lost.length === 4 && lost.every((x) => x.state === 'failed' && x.why === 'too-slow'), JSON.stringify(lost.map((x) => [x.state, x.why])));
  // A friend's file gets a slot now, and arrives.
  await s.bob.sendFile({ name: 'friend.bin', type: 'application/octet-stream', bytes: new Uint8Array(200000).fill(6) });
  await relay.advance(8000, 250);
  assert.equal(finished(s.alice).find((x) => x.name === 'friend.bin').state, 'done');
});

function randomBytesN(n) { return globalThis.crypto.getRandomValues(new Uint8Array(n)); }

test('an altered chunk, or one forged by another member (who can derive the file key): the file is refused as altered', async () => {
  const { relay, s, send, deliver } = await pair();
  const { chunks } = await send(new Uint8Array(100000).fill(9));
  // mallory, a member, derives alice's key for the file and makes her own
  // piece 1.
  const m = s.mallory.group;
  const inner = await open(m.frameKey, m.ctx, fromBase64(chunks[1].body));
  const p = parseChunk(inner);
  const key = await m.fileKey(p.epoch, s.alice.group.me, p.id, 'encrypt');
  const data = new Uint8Array(maxChunkBytes(m.maxBucket)).fill(8);
  const forged = await seal(m.frameKey, m.ctx, await makeChunk({ fileKey: key, ctx: m.ctx, id: p.id, epoch: p.epoch, index: 1, data }), m.maxBucket);
  await deliver([chunks[0], { ...chunks[1], body: toBase64(forged) }, chunks[2], chunks[3]]);
  const [r] = results(s.bob);
  assert.equal(r.state, 'failed');
  assert.match(r.why, /altered/);
  assert.equal(r.bytes, null);
  // A chunk the relay altered does not even open: the frame is refused
  // (said), and the file, one piece short, is reported broken later.
  const again = await pair();
  const c2 = (await again.send(new Uint8Array(100000).fill(9))).chunks;
  const bad = fromBase64(c2[1].body);
  bad[300] ^= 1;
  await again.deliver([c2[0], { ...c2[1], body: toBase64(bad) }, c2[2], c2[3]]);
  assert.ok(warnings(again.s.bob).some((w) => /altered/.test(w)), warnings(again.s.bob).join('\n'));
  await again.relay.advance(STALL_MS + 2000, 1000);
  assert.equal(results(again.s.bob)[0].state, 'failed');
  void relay;
});

test('chunks of a file whose offer one missed: said once, nothing shown', async () => {
  const { relay, s } = await room(['alice', 'bob']);
  const bs = sockOf(relay, 'bob');
  // The relay keeps the offer from bob (it is reported missing later).
  let dropped = false;
  relay.tamper = (sock, f) => {
    if (sock === bs && f.type === 'msg' && !f.bulk && f.from === 'alice' && !dropped) { dropped = true; return null; }
    return f;
  };
  await s.alice.sendFile({ name: 'f.bin', type: 'application/octet-stream', bytes: new Uint8Array(100000).fill(2) });
  await relay.advance(5000, 250);
  const once = said(s.bob).filter((w) => /started before you joined/.test(w));
  assert.equal(once.length, 1, said(s.bob).join('\n'));
  assert.deepEqual(results(s.bob), []);
});

test('a receiver who cancels a file: its sender is told who declined it', async () => {
  const { relay, s } = await room(['alice', 'bob', 'carol']);
  await s.alice.sendFile({ name: 'next.bin', type: 'application/octet-stream', bytes: new Uint8Array(600000).fill(7) });
  await relay.advance(500, 250);
  const bobs = got(s.bob).find((x) => x.name === 'next.bin');
  s.bob.cancelFile(bobs);
  await relay.advance(8000, 250);
  assert.ok(said(s.alice).includes('info: bob declined “next.bin”.'), said(s.alice).join('\n'));
  assert.equal(finished(s.carol).find((x) => x.name === 'next.bin').state, 'done');
});

test('safe names: no directories, no bidirectional tricks, no leading dots, bounded length', () => {
  assert.equal(safeName('../../etc/passwd'), 'passwd');
  assert.equal(safeName('C:\\\\Users\\\\x\\\\evil.exe'), 'evil.exe');
  assert.equal(safeName('photo\u202egpj.exe'), 'photogpj.exe');
  assert.equal(safeName('...hidden'), 'hidden');
  assert.equal(safeName(''), 'file');
  const long = safeName('a'.repeat(300) + '.jpeg');
  assert.equal([...long].length, 100);
  assert.ok(long.endsWith('.jpeg'));
});

test('a file interrupted by a server restart says so, not that its sender left', async () => {
  const { relay, s } = await room(['alice', 'bob']);
  await s.alice.sendFile({ name: 'big.bin', type: 'application/octet-stream', bytes: new Uint8Array(3 << 20).fill(3) });
  await relay.advance(2000, 250);
  // The relay restarts with pieces on their way, and alice's page takes
  // long to come back (a slow circuit): bob's transfer stalls.
  let down = true;
  s.alice.connect = (u) => (down ? relay.dead() : relay.connect(u));
  relay.restart();
  await relay.advance(40000, 1000);
  down = false;
  await relay.advance(20000, 1000);
  const [r] = finished(s.bob);
  assert.ok(r, 'bob’s transfer ended');
  assert.notEqual(r.why, 'left');
  assert.ok(r.state === 'done' || r.why === 'restart', `${r.state} ${r.why}`);
});

test('a page sending a file for long, hearing nothing else, keeps its link: it pings, and the pong keeps it alive', async () => {
  const { relay, s } = await room(['alice', 'bob'], { limits: { ping: 2000 } });
  await s.alice.sendFile({ name: 'long.bin', type: 'application/octet-stream', bytes: new Uint8Array(3 << 20).fill(1) });
  await relay.advance(25000, 250);
  assert.equal(s.alice.events.filter((e) => e.type === 'reconnected').length, 0);
  assert.equal(finished(s.bob)[0].state, 'done');
});
