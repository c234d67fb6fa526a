// view.mjs: everything the page draws: the views, the message list,
// notices, the member list with safety codes, the status line and the
// title. User-supplied text (names, messages) only ever reaches the page
// through textContent; the server's CSP (Trusted Types) refuses innerHTML
// anyway.

export const $ = (id) => document.getElementById(id);

const MAX_ITEMS = 2000;

export function setState(s) { document.documentElement.dataset.state = s; }

export function show(id) {
  for (const v of ['unsupported', 'join-view', 'chat-view']) $(v).hidden = v !== id;
}

export function status(text) { $('status').textContent = text; }

export function title(room, unread) {
  const base = room ? `${room} — onionchat` : 'onionchat';
  document.title = unread ? `(${unread}) ${base}` : base;
}

export function clearMessages() { $('messages').replaceChildren(); }

// el makes an element of tag with class className and text as its text:
// user data always goes in as text, never as markup.
function el(tag, className, text = '') {
  const e = document.createElement(tag);
  e.className = className;
  e.textContent = text;
  return e;
}

export function addMessage(sender, text, time, opts = {}) {
  const li = el('li', 'msg');
  if (opts.own) li.classList.add('own');
  if (opts.pending) li.classList.add('pending');
  if (opts.history) li.classList.add('history');
  const head = el('div', 'head');
  const when = document.createElement('time');
  const d = new Date(time);
  when.dateTime = isNaN(d) ? '' : d.toISOString();
  when.textContent = isNaN(d) ? '' : d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  head.append(el('span', 'sender', sender), ' ', when);
  if (opts.history) head.append(el('span', 'tag', ' earlier'));
  li.append(head, el('div', 'text', text));
  append(li);
  return li;
}

export function notice(text, kind) {
  append(el('li', 'notice' + (kind ? ' ' + kind : ''), text));
}

function append(li) {
  const ol = $('messages');
  const atEnd = ol.scrollHeight - ol.scrollTop - ol.clientHeight < 40;
  ol.append(li);
  while (ol.children.length > MAX_ITEMS) ol.firstElementChild.remove();
  if (atEnd) ol.scrollTop = ol.scrollHeight;
}

const STATUS_TEXT = {
  waiting: 'waiting for keys…',
  unopenable: 'different passphrase?',
  old: 'older version: should reload',
};

// members draws the member list: each entry is {name, self, code, status,
// changed}; code is the member's safety code once their hello arrived.
export function members(list) {
  $('members').replaceChildren(...list.map((m) => {
    const li = el('li', 'member');
    li.dataset.status = m.status;
    li.append(el('span', 'name', m.name));
    if (m.self) {
      li.classList.add('me');
      li.append(el('span', 'tag', ' (you)'));
    }
    if (m.changed) {
      li.classList.add('changed');
      li.append(el('span', 'tag warn', ' code changed'));
    }
    li.append(el('span', m.code ? 'code' : 'code none', m.code || STATUS_TEXT[m.status] || ''));
    return li;
  }));
  $('member-count').textContent = list.length ? `(${list.length})` : '';
}

export function myCode(code) { $('my-code').textContent = code || ''; }
