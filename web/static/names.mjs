// names.mjs: how the page prepares a name before it sends it, the same way
// the relay does (docs/protocol.md §7, the PRECIS Nickname profile of RFC
// 8266): other spaces become the ASCII space, runs of spaces one, spaces at
// both ends go, NFKC. It also refuses early, with the relay's reasons, what
// the relay would refuse for the characters alone; the relay has the last
// word (scripts, look-alikes of present members), and the welcome says the
// name as stored, which is what everyone sees.

export const MAX_NAME_CHARS = 32;

const SPACES = /[\p{Zs}\t]+/gu;
const FORBIDDEN = /[\p{Cc}\p{Cf}\p{Cs}\p{Co}\p{Cn}\p{Default_Ignorable_Code_Point}\u2800\u2028\u2029]/u;
const MARKS_RUN = /\p{M}{4,}/u;
const LETTER_OR_DIGIT = /[\p{L}\p{N}]/u;

// prepareName returns {name} as the relay will store it, or {error}: why it
// cannot be a name, as a code view.mjs words ("empty", "too-long",
// "invisible", "marks", "no-letter").
export function prepareName(raw) {
  const name = raw.replace(SPACES, ' ').trim().normalize('NFKC').replace(SPACES, ' ').trim();
  if (!name) return { error: 'empty' };
  if ([...name].length > MAX_NAME_CHARS) return { error: 'too-long' };
  if (FORBIDDEN.test(name)) return { error: 'invisible' };
  if (MARKS_RUN.test(name)) return { error: 'marks' };
  if (!LETTER_OR_DIGIT.test(name)) return { error: 'no-letter' };
  return { name };
}
