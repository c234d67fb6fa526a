// replay.mjs: replays what the relay sent to each connection of a recorded
// session into a fresh version 3 client per connection, one that knows the
// passphrase but none of the participants' private keys (it has its own),
// and prints what it could read as JSON. The browser tests run it on a real
// recording (internal/e2e); it is not a test file itself.
//
//   node web/jstest/replay.mjs < {"passphrase", "server", "room", "streams": [[frame, ...], ...]}
//   -> {"streams", "frames", "messages": ["sender: text", ...], "hellos", "notices"}
//
// hellos counts the other members' hellos it opened and verified: the proof
// that it had the right passphrase, so reading nothing means something.
import { readFileSync } from 'node:fs';
import { deriveRoom } from '../static/roomkey.mjs';
import { Group, HELD_MS } from '../static/group.mjs';

const input = JSON.parse(readFileSync(0, 'utf8'));
const keys = await deriveRoom(input.passphrase, input.server, input.room);
let clock = Date.now();
const out = { streams: 0, frames: 0, messages: [], hellos: 0, notices: 0 };
for (const stream of input.streams || []) {
  let g = null;
  const events = [];
  for (const f of stream || []) {
    if (f.type === 'welcome') {
      if (!g) {
        g = await Group.create({ keys, now: () => clock, setTimer: () => {} });
        g.onFrame = () => {};
        g.onEvent = (e) => events.push(e);
      }
      await g.welcome({ you: f.you, sid: f.sid, members: f.members || [], resumed: !!f.resumed });
      if (!f.catchup) await g.caughtUp();
    } else if (!g) {
      continue;
    } else if (f.type === 'join' || f.type === 'away' || f.type === 'back' || f.type === 'leave') {
      await g[f.type]({ name: f.name, sid: f.sid });
    } else if (f.type === 'msg') {
      out.frames++;
      await g.receive(f);
    }
  }
  if (!g) continue;
  clock += HELD_MS;
  await g.sweep();
  await g.queue;
  out.streams++;
  out.messages.push(...events.filter((e) => e.type === 'message').map((e) => `${e.sender}: ${e.text}`));
  out.hellos += g.memberList().filter((m) => !m.self && m.code).length;
  out.notices += events.filter((e) => e.type === 'notice').length;
}
console.log(JSON.stringify(out));
