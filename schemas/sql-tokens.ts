/**
 * A tokenizer for ClickHouse SQL, with ClickHouse's own quoting rules: the SQL
 * guard and the column-type parser read *tokens*, never lines or patterns of
 * text, so a quote, a comment or a control character inside a name cannot
 * change what they see.
 *
 * Rules (ClickHouse's Lexer): `'...'` strings, `` `...` `` and `"..."`
 * identifiers (each with backslash escapes and a doubled quote as the quote
 * itself), `$tag$...$tag$` heredoc strings, `--` and `#` line comments,
 * nested `/* *\/` comments. Anything this tokenizer cannot read is an error,
 * never skipped.
 */

export type TokenKind = 'word' | 'quoted' | 'string' | 'number' | 'punct' | 'comment';

export interface Token {
  kind: TokenKind;
  /** The token as written. */
  text: string;
  /** Offset in the source. */
  at: number;
}

export class SqlTokenError extends Error {
  constructor(readonly reason: string, readonly at: number) {
    super(reason);
  }
}

/** Control characters (C0, DEL, C1) and Unicode line/paragraph separators: never allowed inside a name. */
export const CONTROL_CHARS = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/u;
/** Also invisible format characters (zero-width, bidirectional overrides), which make two names look alike. */
export const NAME_FORBIDDEN_CHARS = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\p{Cf}]/u;

const WHITESPACE = new Set([' ', '\t', '\n', '\r', '\f', '\v']);
const PUNCT = ['->', '::', '<=>', '<=', '>=', '!=', '<>', '==', '||', '(', ')', '[', ']', '{', '}', ',', '.', ';', '+', '-', '*', '/', '%', '=', '<', '>', '?', ':', '@', '^'];

function isWordStart(ch: string): boolean {
  return /[A-Za-z_]/.test(ch) || ch.charCodeAt(0) >= 0x80;
}
function isWordChar(ch: string): boolean {
  return /[A-Za-z0-9_$]/.test(ch) || ch.charCodeAt(0) >= 0x80;
}

/** End (exclusive) of a quoted token starting at `start` with quote `q`. */
function quotedEnd(src: string, start: number, q: string): number {
  for (let i = start + 1; i < src.length; i++) {
    const ch = src[i]!;
    if (ch === '\\') i++;
    else if (ch === q) {
      if (src[i + 1] === q) i++;
      else return i + 1;
    }
  }
  throw new SqlTokenError(`unclosed ${q} quote`, start);
}

/**
 * The tokens of `src`. Comments are returned (kind `comment`) so callers can
 * refuse them where they are not allowed; whitespace is dropped.
 */
export function tokenize(src: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  while (i < src.length) {
    const ch = src[i]!;
    const start = i;
    if (WHITESPACE.has(ch)) {
      i++;
      continue;
    }
    if (ch === '-' && src[i + 1] === '-') {
      while (i < src.length && src[i] !== '\n') i++;
      out.push({ kind: 'comment', text: src.slice(start, i), at: start });
      continue;
    }
    if (ch === '#') {
      // ClickHouse reads `# ` and `#!` as a comment to the end of the line; `#` otherwise is an error there too.
      if (src[i + 1] !== ' ' && src[i + 1] !== '!') throw new SqlTokenError("unexpected '#'", start);
      while (i < src.length && src[i] !== '\n') i++;
      out.push({ kind: 'comment', text: src.slice(start, i), at: start });
      continue;
    }
    if (ch === '/' && src[i + 1] === '*') {
      let depth = 0;
      while (i < src.length) {
        if (src[i] === '/' && src[i + 1] === '*') {
          depth++;
          i += 2;
        } else if (src[i] === '*' && src[i + 1] === '/') {
          depth--;
          i += 2;
          if (depth === 0) break;
        } else i++;
      }
      if (depth !== 0) throw new SqlTokenError('unclosed /* comment', start);
      out.push({ kind: 'comment', text: src.slice(start, i), at: start });
      continue;
    }
    if (ch === "'" || ch === '`' || ch === '"') {
      i = quotedEnd(src, i, ch);
      out.push({ kind: ch === "'" ? 'string' : 'quoted', text: src.slice(start, i), at: start });
      continue;
    }
    if (ch === '$') {
      const m = /^\$([A-Za-z0-9_]*)\$/.exec(src.slice(i));
      if (m) {
        const close = src.indexOf(m[0], i + m[0].length);
        if (close === -1) throw new SqlTokenError(`unclosed ${m[0]} string`, start);
        i = close + m[0].length;
        out.push({ kind: 'string', text: src.slice(start, i), at: start });
        continue;
      }
    }
    if (/[0-9]/.test(ch) || (ch === '.' && /[0-9]/.test(src[i + 1] ?? ''))) {
      const m = /^(0x[0-9A-Fa-f_]+|0b[01_]+|(\d[\d_]*)?\.?\d*([eE][+-]?\d+)?)/.exec(src.slice(i));
      i += Math.max(1, m![0].length);
      // A number directly followed by letters (`1e`, `123abc`) is one token to ClickHouse's lexer too.
      while (i < src.length && isWordChar(src[i]!)) i++;
      out.push({ kind: 'number', text: src.slice(start, i), at: start });
      continue;
    }
    if (isWordStart(ch)) {
      while (i < src.length && isWordChar(src[i]!)) i++;
      out.push({ kind: 'word', text: src.slice(start, i), at: start });
      continue;
    }
    const p = PUNCT.find((s) => src.startsWith(s, i));
    if (!p) throw new SqlTokenError(`unexpected character ${JSON.stringify(ch)}`, start);
    i += p.length;
    out.push({ kind: 'punct', text: p, at: start });
  }
  return out;
}

/**
 * The name a quoted identifier stands for, or null when it uses an escape
 * other than an escaped quote or backslash (`\n`, `\x0A`, ...): a name that
 * needs an escape is refused rather than decoded, so no spelling of a
 * control character can reach ClickHouse's printed tree.
 */
export function quotedName(token: Token): string | null {
  const q = token.text[0]!;
  const body = token.text.slice(1, -1);
  let out = '';
  for (let i = 0; i < body.length; i++) {
    const ch = body[i]!;
    if (ch === '\\') {
      const next = body[i + 1];
      if (next !== '\\' && next !== q && next !== "'" && next !== '"' && next !== '`') return null;
      out += next;
      i++;
    } else if (ch === q) {
      out += q;
      i++;
    } else out += ch;
  }
  return out;
}

/** True when `t` is the bare word `word` (keywords are case-insensitive). */
export function isWord(t: Token | undefined, word: string): boolean {
  return t?.kind === 'word' && t.text.toUpperCase() === word;
}
