/**
 * Bucket URIs and key globs: `s3://<bucket>/<key pattern>`.
 *
 * Pure logic with no imports, so the API (validation, preview), the
 * activities (listing and matching) and the console share one definition of
 * what a pattern means.
 *
 * Glob syntax, matched against the whole object key:
 *   `*`        any run of characters except `/`
 *   `**`       any run of characters including `/`
 *   `**` + `/` at the start of a path segment: zero or more whole directories,
 *              so `a/**` + `/*.csv` matches both `a/x.csv` and `a/b/c/x.csv`
 *              (mid-segment, as in `a**` + `/b`, it needs at least the `/`)
 *   `?`        exactly one character except `/`
 *   `{a,b}`    alternatives; they may be empty, contain wildcards and nest,
 *              but wildcards never join across a brace edge (`{*,}*` is not `**`)
 *   `{N..M}`   the integers N to M (either order), with ClickHouse's padding:
 *              when the smaller bound is written with a leading zero, every
 *              value is zero-padded to the wider bound's width
 *              (`{01..10}`: 01..10, `{0..10}` and `{1..010}`: 0/1..10 unpadded)
 * Everything else is literal, including regex metacharacters, `%`, `+` and `\`.
 *
 * Matching never uses a JavaScript RegExp: the pattern compiles to a
 * Thompson NFA that is simulated one key character at a time (with a bounded
 * cache of the state sets already seen, i.e. a lazily built DFA). Each key
 * character costs at most one pass over the NFA's states, so matching is
 * linear in the key length whatever the pattern, and the pattern's size is
 * capped (GLOB_LIMITS) so that pass stays small.
 */

const MAX_URI_LENGTH = 1024;
/** S3's limit: a key is at most 1024 bytes of UTF-8. */
const MAX_KEY_BYTES = 1024;
const SCHEME = 's3://';
const URI_SHAPE = 's3://<bucket>/<key pattern>';
const WILDCARD_CHARS = /[*?{]/;

/** How complex one key pattern may be; crossing any of these is a `bucketUri` error. */
export const GLOB_LIMITS = {
  /** Alternatives across all the braces of one pattern. */
  maxAlternatives: 256,
  /** Braces inside braces. */
  maxBraceDepth: 8,
  /** Values one `{N..M}` range may stand for. */
  maxRangeValues: 10_000,
  /** Digits in a range bound (keeps every value an exact integer). */
  maxRangeDigits: 15,
  /**
   * Matcher states a pattern compiles to: the most work one key character can
   * cost. A 1,000-character literal needs about 1,000; only patterns made of
   * dozens of wide ranges come near.
   */
  maxStates: 2_048,
} as const;

export class BucketUriError extends Error {
  readonly field = 'bucketUri';
  constructor(readonly reason: string) {
    super(`bucketUri: ${reason}`);
    this.name = 'BucketUriError';
  }
}

export interface BucketUri {
  bucket: string;
  /** Normalised key pattern: never empty, never ends with `/`. */
  pattern: string;
  /** Longest literal prefix of `pattern`, suitable for S3 ListObjectsV2 `Prefix`. */
  listPrefix: string;
}

export function parseBucketUri(uri: string): BucketUri {
  // Checked first so a huge input is rejected before any per-character work.
  if (uri.length > MAX_URI_LENGTH) {
    throw new BucketUriError(`is ${uri.length} characters long; the maximum is ${MAX_URI_LENGTH}`);
  }
  const control = /[\u0000-\u001f\u007f-\u009f]/.exec(uri);
  if (control) {
    const codePoint = control[0].charCodeAt(0).toString(16).toUpperCase().padStart(4, '0');
    throw new BucketUriError(
      `contains control character U+${codePoint} at position ${control.index + 1}; only printable characters are allowed`,
    );
  }
  if (!uri.startsWith(SCHEME)) {
    const otherScheme = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(uri);
    throw new BucketUriError(
      otherScheme
        ? `scheme "${otherScheme[1]}://" is not supported; only s3:// is allowed (${URI_SHAPE})`
        : `"${uri}" must start with s3:// (${URI_SHAPE})`,
    );
  }

  const afterScheme = uri.slice(SCHEME.length);
  const firstSlash = afterScheme.indexOf('/');
  const bucket = firstSlash === -1 ? afterScheme : afterScheme.slice(0, firstSlash);
  const rawPattern = firstSlash === -1 ? '' : afterScheme.slice(firstSlash + 1);

  validateBucketName(bucket);
  const pattern = normalisePattern(rawPattern);
  // Compiling validates braces, ranges and size, and proves some key can match.
  analyse(pattern);
  return { bucket, pattern, listPrefix: literalPrefix(pattern) };
}

export function hasWildcard(s: string): boolean {
  return WILDCARD_CHARS.test(s);
}

/** A key predicate for a (normalised) key pattern; throws BucketUriError for a pattern the syntax refuses. */
export function compileGlob(pattern: string): (key: string) => boolean {
  const matcher = createGlobMatcher(pattern);
  return (key: string) => matcher.matches(key);
}

export interface GlobMatcher {
  matches(key: string): boolean;
  /** NFA states the pattern compiled to. */
  readonly states: number;
  /**
   * Work done so far, in NFA-state visits plus one per key character: the
   * number tests bound to prove matching is linear (a key costs at most
   * key characters x (2 x states + 1), plus one closure of the start state).
   */
  readonly steps: number;
}

/** The matcher behind compileGlob, with its work counter exposed. */
export function createGlobMatcher(pattern: string): GlobMatcher {
  // Syntax and size only: whether any real key can match is parseBucketUri's question.
  return new LazyDfa(buildNfa(parseGlob(pattern), pattern));
}

function validateBucketName(bucket: string): void {
  if (bucket === '') {
    throw new BucketUriError(`bucket name is missing; expected ${URI_SHAPE}`);
  }
  if (bucket.length < 3 || bucket.length > 63) {
    throw new BucketUriError(
      `bucket name "${bucket}" is ${bucket.length} characters long; S3 bucket names must be 3-63 characters`,
    );
  }
  const badChar = /[^a-z0-9.-]/.exec(bucket);
  if (badChar) {
    throw new BucketUriError(
      `bucket name "${bucket}" contains "${badChar[0]}"; S3 bucket names may only contain lowercase letters, digits, dots (.) and hyphens (-)`,
    );
  }
  if (!/^[a-z0-9]/.test(bucket) || !/[a-z0-9]$/.test(bucket)) {
    throw new BucketUriError(`bucket name "${bucket}" must start and end with a lowercase letter or digit`);
  }
  if (bucket.includes('..')) {
    throw new BucketUriError(`bucket name "${bucket}" must not contain two adjacent dots ("..")`);
  }
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(bucket)) {
    throw new BucketUriError(`bucket name "${bucket}" must not be formatted as an IP address`);
  }
}

function normalisePattern(rawPattern: string): string {
  // `s3://bucket` and `s3://bucket/` both mean "the objects at the top level",
  // mirroring how a directory listing behaves rather than "everything".
  if (rawPattern === '') return '*';
  // A leading `/` or a `//` is kept: S3 keys may contain both (`s3://b//x` is
  // the key `/x`), and the preview warns since they are usually typos.
  // A trailing slash names a "directory"; like the bucket root, that means its
  // direct children. A key that itself ends in `/` is named as `dir{/}`.
  return rawPattern.endsWith('/') ? `${rawPattern}*` : rawPattern;
}

function literalPrefix(pattern: string): string {
  const firstWildcard = pattern.search(WILDCARD_CHARS);
  return firstWildcard === -1 ? pattern : pattern.slice(0, firstWildcard);
}

// ---------------------------------------------------------------------------
// Parsing

/** `{N..M}` as ClickHouse reads it. */
export interface NumericRange {
  /** As written, braces excluded: `01..10`. */
  text: string;
  from: number;
  to: number;
  low: number;
  high: number;
  /** Every value is zero-padded to this many digits; 0 = written without padding. */
  width: number;
  count: number;
}

type GlobNode =
  | { type: 'literal'; text: string }
  /** `?`: one character, not `/`. */
  | { type: 'one-char' }
  /** `*`: any run within one path segment. */
  | { type: 'star' }
  /** `**` not followed by `/`: any run, `/` included. */
  | { type: 'globstar' }
  /** `**` + `/`: zero or more whole directories at a segment start, otherwise anything ending in `/`. */
  | { type: 'directories' }
  | { type: 'alternatives'; options: GlobNode[][] }
  | { type: 'range'; range: NumericRange };

function parseGlob(pattern: string): GlobNode[] {
  let pos = 0;
  let alternatives = 0;

  // Reads until end of input or, inside braces, the `,` or `}` that ends the
  // current alternative (left for the caller to consume).
  function parseSequence(braceDepth: number): GlobNode[] {
    const nodes: GlobNode[] = [];
    let literal = '';
    const flushLiteral = () => {
      if (literal !== '') nodes.push({ type: 'literal', text: literal });
      literal = '';
    };

    while (pos < pattern.length) {
      const ch = pattern[pos]!;
      if (ch === '*') {
        flushLiteral();
        let runEnd = pos;
        while (pattern[runEnd] === '*') runEnd++;
        // Three or more stars mean the same as two.
        if (runEnd - pos === 1) {
          nodes.push({ type: 'star' });
        } else if (pattern[runEnd] === '/') {
          // `**/` twice in a row means what it means once.
          if (nodes[nodes.length - 1]?.type !== 'directories') nodes.push({ type: 'directories' });
          runEnd++; // the slash belongs to the node so "zero directories" can consume nothing
        } else {
          nodes.push({ type: 'globstar' });
        }
        pos = runEnd;
      } else if (ch === '?') {
        flushLiteral();
        nodes.push({ type: 'one-char' });
        pos++;
      } else if (ch === '{') {
        flushLiteral();
        nodes.push(parseBraces(braceDepth + 1));
      } else if (braceDepth > 0 && (ch === ',' || ch === '}')) {
        break;
      } else if (ch === '}') {
        throw new BucketUriError(
          `key pattern "${pattern}" has an unmatched "}" at position ${pos + 1}; every "}" needs an earlier "{"`,
        );
      } else {
        // Commas outside braces are ordinary key characters.
        literal += ch;
        pos++;
      }
    }
    flushLiteral();
    return nodes;
  }

  function parseBraces(depth: number): GlobNode {
    const openedAt = pos++;
    if (depth > GLOB_LIMITS.maxBraceDepth) {
      throw new BucketUriError(
        `key pattern "${pattern}" nests braces more than ${GLOB_LIMITS.maxBraceDepth} deep at position ${openedAt + 1}`,
      );
    }
    const options: GlobNode[][] = [];
    for (;;) {
      const optionStart = pos;
      const option = parseSequence(depth);
      if (pos >= pattern.length) {
        throw new BucketUriError(
          `key pattern "${pattern}" has an unclosed "{" at position ${openedAt + 1}; every "{" needs a matching "}"`,
        );
      }
      const range = parseRange(pattern.slice(optionStart, pos), optionStart);
      options.push(range ? [{ type: 'range', range }] : option);
      if (pattern[pos++] === '}') break;
    }
    alternatives += options.length;
    if (alternatives > GLOB_LIMITS.maxAlternatives) {
      throw new BucketUriError(
        `key pattern "${pattern}" has more than ${GLOB_LIMITS.maxAlternatives} alternatives in its braces; split it into several data sources or use a wildcard`,
      );
    }
    if (options.length === 1 && options[0]!.length === 0) {
      throw new BucketUriError(
        `key pattern "${pattern}" has empty braces "{}" at position ${openedAt + 1}; write {,x} for an optional part, or ? for a literal brace`,
      );
    }
    // `{1..3}` on its own is the range itself, so the preview can name it as one.
    const only = options.length === 1 && options[0]!.length === 1 ? options[0]![0]! : undefined;
    return only?.type === 'range' ? only : { type: 'alternatives', options };
  }

  function parseRange(text: string, at: number): NumericRange | undefined {
    const bounds = /^(\d+)\.\.(\d+)$/.exec(text);
    if (!bounds) {
      // Shell-style ranges that look meant as one but that ClickHouse does not have.
      if (/^(?:[+-]?\d+|[A-Za-z])\.\.(?:[+-]?\d+|[A-Za-z])(?:\.\.[+-]?\d+)?$/.test(text)) {
        throw new BucketUriError(
          `key pattern "${pattern}" has "{${text}}" at position ${at}; ranges are {N..M} with non-negative integers N and M (no letters, signs or steps): list the values as {a,b,c} instead`,
        );
      }
      return undefined;
    }
    const [, first, last] = bounds as unknown as [string, string, string];
    if (first.length > GLOB_LIMITS.maxRangeDigits || last.length > GLOB_LIMITS.maxRangeDigits) {
      throw new BucketUriError(
        `key pattern "${pattern}" has the range {${text}} at position ${at} with a bound longer than ${GLOB_LIMITS.maxRangeDigits} digits`,
      );
    }
    const from = Number(first);
    const to = Number(last);
    const low = Math.min(from, to);
    const high = Math.max(from, to);
    const count = high - low + 1;
    if (count > GLOB_LIMITS.maxRangeValues) {
      throw new BucketUriError(
        `key pattern "${pattern}" has the range {${text}} at position ${at}, which stands for ${count} values; the maximum is ${GLOB_LIMITS.maxRangeValues} (split it, e.g. 2024{01..12}{01..31} rather than {20240101..20241231})`,
      );
    }
    // ClickHouse's rule: the bound with the smaller value decides. If it is
    // written with a leading zero (and is not just "0"), values are padded to
    // the wider bound's width; otherwise they are plain numbers.
    const smaller = from <= to ? first : last;
    const width = smaller.length > 1 && smaller.startsWith('0') ? Math.max(first.length, last.length) : 0;
    return { text, from, to, low, high, width, count };
  }

  const nodes = parseSequence(0);
  return nodes;
}

/** Values of a range in written order (the first `limit`). */
export function rangeValues(range: NumericRange, limit = Infinity): string[] {
  const out: string[] = [];
  const step = range.from <= range.to ? 1 : -1;
  for (let v = range.from; out.length < Math.min(limit, range.count); v += step) out.push(formatRangeValue(range, v));
  return out;
}

function formatRangeValue(range: NumericRange, value: number): string {
  return range.width ? String(value).padStart(range.width, '0') : String(value);
}

/**
 * The digit strings of a range as runs of digit classes, e.g. 07..23 ->
 * 0[7-9] | 1[0-9] | 2[0-3]: at most two runs per digit position, so a range
 * costs O(digits^2) matcher states whatever its count.
 */
function rangeDigitRuns(range: NumericRange): Array<Array<[number, number]>> {
  if (range.width) {
    return digitRuns(formatRangeValue(range, range.low), formatRangeValue(range, range.high));
  }
  const runs: Array<Array<[number, number]>> = [];
  const lowDigits = String(range.low).length;
  const highDigits = String(range.high).length;
  for (let digits = lowDigits; digits <= highDigits; digits++) {
    const lo = Math.max(range.low, digits === 1 ? 0 : 10 ** (digits - 1));
    const hi = Math.min(range.high, 10 ** digits - 1);
    if (lo <= hi) runs.push(...digitRuns(String(lo), String(hi)));
  }
  return runs;
}

/** Runs of digit classes covering the equal-length digit strings a..b. */
function digitRuns(a: string, b: string): Array<Array<[number, number]>> {
  if (a.length === 0) return [[]];
  const a0 = Number(a[0]);
  const b0 = Number(b[0]);
  const restA = a.slice(1);
  const restB = b.slice(1);
  if (a0 === b0) return digitRuns(restA, restB).map((run) => [[a0, a0], ...run]);
  const zeros = '0'.repeat(restA.length);
  const nines = '9'.repeat(restA.length);
  const anyDigits = Array.from({ length: restA.length }, (): [number, number] => [0, 9]);
  const runs: Array<Array<[number, number]>> = [];
  let middleLow = a0;
  let middleHigh = b0;
  if (restA !== zeros) {
    runs.push(...digitRuns(restA, nines).map((run): Array<[number, number]> => [[a0, a0], ...run]));
    middleLow = a0 + 1;
  }
  let tail: Array<Array<[number, number]>> = [];
  if (restB !== nines) {
    tail = digitRuns(zeros, restB).map((run): Array<[number, number]> => [[b0, b0], ...run]);
    middleHigh = b0 - 1;
  }
  if (middleLow <= middleHigh) runs.push([[middleLow, middleHigh], ...anyDigits]);
  return [...runs, ...tail];
}

// ---------------------------------------------------------------------------
// Compilation to a Thompson NFA

// NFA operations (plain numbers: the file is also bundled for the browser, and enums are not erasable syntax).
const Op = {
  /** Consumes the code point `arg`. */
  Char: 0,
  /** Consumes any code point but `/`. */
  NotSlash: 1,
  /** Consumes any code point. */
  Any: 2,
  /** Consumes a digit in `arg`..`arg2`. */
  Digit: 3,
  /** Epsilon to every state in `outs`. */
  Split: 4,
  /** Epsilon to `next`, only at the start of the key or just after a `/`. */
  SegmentStart: 5,
  Match: 6,
} as const;
type Op = (typeof Op)[keyof typeof Op];

const SLASH = 0x2f;

interface Nfa {
  op: Op[];
  arg: number[];
  arg2: number[];
  next: number[];
  outs: number[][];
  start: number;
  /** Code points that some Char or Digit state tests, plus `/`: everything else behaves alike. */
  classOf: Map<number, number>;
  classCount: number;
}

function buildNfa(nodes: GlobNode[], pattern: string): Nfa {
  const nfa: Nfa = { op: [], arg: [], arg2: [], next: [], outs: [], start: 0, classOf: new Map([[SLASH, 1]]), classCount: 2 };
  const add = (op: Op, next: number, arg = 0, arg2 = 0): number => {
    if (nfa.op.length >= GLOB_LIMITS.maxStates) {
      throw new BucketUriError(
        `key pattern "${pattern}" is too complex: it needs more than ${GLOB_LIMITS.maxStates} matcher states; use fewer alternatives or smaller ranges`,
      );
    }
    nfa.op.push(op);
    nfa.arg.push(arg);
    nfa.arg2.push(arg2);
    nfa.next.push(next);
    nfa.outs.push([]);
    return nfa.op.length - 1;
  };
  const useClass = (cp: number) => {
    if (!nfa.classOf.has(cp)) nfa.classOf.set(cp, nfa.classCount++);
  };

  const match = add(Op.Match, -1);

  // Built back to front: each node is compiled knowing the state after it.
  function sequence(seq: readonly GlobNode[], next: number): number {
    for (let i = seq.length - 1; i >= 0; i--) next = node(seq[i]!, next);
    return next;
  }

  function loop(consume: typeof Op.NotSlash | typeof Op.Any, next: number): number {
    const split = add(Op.Split, -1);
    nfa.outs[split] = [add(consume, split), next];
    return split;
  }

  function node(n: GlobNode, next: number): number {
    switch (n.type) {
      case 'literal': {
        const codePoints = Array.from(n.text, (c) => c.codePointAt(0)!);
        for (let i = codePoints.length - 1; i >= 0; i--) {
          useClass(codePoints[i]!);
          next = add(Op.Char, next, codePoints[i]!);
        }
        return next;
      }
      case 'one-char':
        return add(Op.NotSlash, next);
      case 'star':
        return loop(Op.NotSlash, next);
      case 'globstar':
        return loop(Op.Any, next);
      case 'directories': {
        // Either nothing (at a segment start) or any run that ends in `/`.
        const run = add(Op.Split, -1);
        nfa.outs[run] = [add(Op.Any, run), add(Op.Char, next, SLASH)];
        const split = add(Op.Split, -1);
        nfa.outs[split] = [add(Op.SegmentStart, next), run];
        return split;
      }
      case 'alternatives': {
        const split = add(Op.Split, -1);
        nfa.outs[split] = n.options.map((option) => sequence(option, next));
        return split;
      }
      case 'range': {
        for (let d = 0x30; d <= 0x39; d++) useClass(d);
        const split = add(Op.Split, -1);
        nfa.outs[split] = rangeDigitRuns(n.range).map((run) => {
          let s = next;
          for (let i = run.length - 1; i >= 0; i--) s = add(Op.Digit, s, 0x30 + run[i]![0], 0x30 + run[i]![1]);
          return s;
        });
        return split;
      }
    }
  }

  nfa.start = sequence(nodes, match);
  return nfa;
}

function consumes(nfa: Nfa, state: number, cp: number): boolean {
  switch (nfa.op[state]) {
    case Op.Char:
      return nfa.arg[state] === cp;
    case Op.NotSlash:
      return cp !== SLASH;
    case Op.Any:
      return true;
    case Op.Digit:
      return cp >= nfa.arg[state]! && cp <= nfa.arg2[state]!;
    default:
      return false;
  }
}

// ---------------------------------------------------------------------------
// Simulation: the NFA's state sets, cached as DFA states while the cache is small

/** Cached DFA states per matcher, and NFA-state ids stored across them: memory stays bounded. */
const DFA_CACHE_MAX_STATES = 2_000;
const DFA_CACHE_MAX_IDS = 500_000;

interface DfaState {
  /** Sorted ids of the consuming NFA states in the set. */
  states: number[];
  accepting: boolean;
}

class LazyDfa implements GlobMatcher {
  steps = 0;
  private dfa: DfaState[] = [];
  private index = new Map<string, number>();
  /** (DFA state x character class) -> DFA state. */
  private transitions = new Map<number, number>();
  private storedIds = 0;
  private readonly mark: Int32Array;
  private generation = 0;
  private startState: number;

  constructor(private readonly nfa: Nfa) {
    this.mark = new Int32Array(nfa.op.length);
    this.startState = this.intern(this.closure([nfa.start], true));
  }

  get states(): number {
    return this.nfa.op.length;
  }

  matches(key: string): boolean {
    let current = this.startState;
    for (let i = 0; i < key.length; i++) {
      let cp = key.charCodeAt(i);
      // Whole code points, so `?` is one character even outside the BMP.
      if (cp >= 0xd800 && cp <= 0xdbff && i + 1 < key.length) {
        const low = key.charCodeAt(i + 1);
        if (low >= 0xdc00 && low <= 0xdfff) {
          cp = (cp - 0xd800) * 0x400 + (low - 0xdc00) + 0x10000;
          i++;
        }
      }
      current = this.step(current, cp);
      // The dead state: no continuation of the key can match any more.
      const state = this.dfa[current]!;
      if (state.states.length === 0 && !state.accepting) return false;
    }
    return this.dfa[current]!.accepting;
  }

  private step(from: number, cp: number): number {
    this.steps++;
    const cls = this.nfa.classOf.get(cp) ?? 0;
    const cacheKey = from * this.nfa.classCount + cls;
    const cached = this.transitions.get(cacheKey);
    if (cached !== undefined) return cached;
    const seeds: number[] = [];
    for (const s of this.dfa[from]!.states) {
      this.steps++;
      if (consumes(this.nfa, s, cp)) seeds.push(this.nfa.next[s]!);
    }
    const set = this.closure(seeds, cp === SLASH);
    if (this.dfa.length >= DFA_CACHE_MAX_STATES || this.storedIds + set.states.length > DFA_CACHE_MAX_IDS) {
      // Start the cache afresh rather than grow it: only `from` must survive.
      const keep = this.dfa[from]!;
      this.dfa = [];
      this.index.clear();
      this.transitions.clear();
      this.storedIds = 0;
      const kept = this.intern(keep);
      const to = this.intern(set);
      this.transitions.set(kept * this.nfa.classCount + cls, to);
      // The start state must stay addressable for the next key.
      this.startState = this.intern(this.closure([this.nfa.start], true));
      return to;
    }
    const to = this.intern(set);
    this.transitions.set(cacheKey, to);
    return to;
  }

  /** The consuming states reachable from `seeds` without consuming, and whether Match is among them. */
  private closure(seeds: number[], atSegmentStart: boolean): DfaState {
    const gen = ++this.generation;
    const found: number[] = [];
    let accepting = false;
    const stack = seeds.slice();
    while (stack.length) {
      const s = stack.pop()!;
      if (this.mark[s] === gen) continue;
      this.mark[s] = gen;
      this.steps++;
      switch (this.nfa.op[s]) {
        case Op.Split:
          for (const out of this.nfa.outs[s]!) stack.push(out);
          break;
        case Op.SegmentStart:
          if (atSegmentStart) stack.push(this.nfa.next[s]!);
          break;
        case Op.Match:
          accepting = true;
          break;
        default:
          found.push(s);
      }
    }
    return { states: found.sort((a, b) => a - b), accepting };
  }

  private intern(set: DfaState): number {
    const id = `${set.accepting ? 'A' : 'N'}${set.states.join(',')}`;
    const known = this.index.get(id);
    if (known !== undefined) return known;
    this.dfa.push(set);
    this.storedIds += set.states.length;
    this.index.set(id, this.dfa.length - 1);
    return this.dfa.length - 1;
  }
}

// ---------------------------------------------------------------------------
// Analysis: what a pattern can match, for validation and the preview

interface Analysis {
  nodes: GlobNode[];
  nfa: Nfa;
  /** Some key that does not end in `/` can match. */
  matchesFileNames: boolean;
}

function analyse(pattern: string): Analysis {
  const nodes = parseGlob(pattern);
  const nfa = buildNfa(nodes, pattern);
  const reach = reachableEndings(nfa);
  if (!reach.afterSlash && !reach.afterOther) {
    throw new BucketUriError(`key pattern "${pattern}" can only match an empty key, and S3 keys are never empty`);
  }
  const shortest = minKeyBytes(nodes);
  if (shortest > MAX_KEY_BYTES) {
    throw new BucketUriError(
      `key pattern "${pattern}" only matches keys of ${shortest} bytes or more; S3 keys are at most ${MAX_KEY_BYTES} bytes (UTF-8)`,
    );
  }
  return { nodes, nfa, matchesFileNames: reach.afterOther };
}

/**
 * Whether Match is reachable after consuming at least one character, with the
 * last one a `/` or not. A search over (state, what came last), so the
 * segment-start condition of `**` + `/` is honoured exactly.
 */
function reachableEndings(nfa: Nfa): { afterSlash: boolean; afterOther: boolean } {
  const START = 0;
  const SLASH_LAST = 1;
  const OTHER_LAST = 2;
  const seen = new Uint8Array(nfa.op.length * 3);
  const stack: Array<[number, number]> = [[nfa.start, START]];
  const result = { afterSlash: false, afterOther: false };
  const push = (s: number, last: number) => {
    if (!seen[s * 3 + last]) {
      seen[s * 3 + last] = 1;
      stack.push([s, last]);
    }
  };
  seen[nfa.start * 3 + START] = 1;
  while (stack.length) {
    const [s, last] = stack.pop()!;
    switch (nfa.op[s]) {
      case Op.Match:
        if (last === SLASH_LAST) result.afterSlash = true;
        if (last === OTHER_LAST) result.afterOther = true;
        break;
      case Op.Split:
        for (const out of nfa.outs[s]!) push(out, last);
        break;
      case Op.SegmentStart:
        if (last !== OTHER_LAST) push(nfa.next[s]!, last);
        break;
      case Op.Char:
        push(nfa.next[s]!, nfa.arg[s] === SLASH ? SLASH_LAST : OTHER_LAST);
        break;
      case Op.Any:
        push(nfa.next[s]!, SLASH_LAST);
        push(nfa.next[s]!, OTHER_LAST);
        break;
      default:
        push(nfa.next[s]!, OTHER_LAST);
    }
  }
  return result;
}

function minKeyBytes(nodes: readonly GlobNode[]): number {
  let total = 0;
  for (const n of nodes) {
    switch (n.type) {
      case 'literal':
        total += utf8Length(n.text);
        break;
      case 'one-char':
        total += 1;
        break;
      case 'alternatives':
        total += Math.min(...n.options.map(minKeyBytes));
        break;
      case 'range':
        total += n.range.width || String(n.range.low).length;
        break;
      default:
        break;
    }
  }
  return total;
}

function utf8Length(text: string): number {
  let bytes = 0;
  for (const c of text) {
    const cp = c.codePointAt(0)!;
    bytes += cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
  }
  return bytes;
}

// ---------------------------------------------------------------------------
// The preview's view of a pattern

export interface GlobRangeExpansion {
  /** As written: `{01..10}`. */
  text: string;
  from: number;
  to: number;
  count: number;
  /** Zero-padded to this many digits; 0 = plain numbers. */
  width: number;
  /** The first values, in written order (all of them when `truncated` is false). */
  values: string[];
  truncated: boolean;
}

export interface GlobExtension {
  syntax: string;
  /** What it means here, and how ClickHouse's own s3() glob differs. */
  note: string;
}

export interface GlobDescription extends BucketUri {
  /** The matcher built, in words, part by part. */
  matcher: string;
  ranges: GlobRangeExpansion[];
  /** Syntax this pattern uses that ClickHouse's s3() reads differently. */
  extensions: GlobExtension[];
  /** Things that are legal but likely not what was meant. */
  warnings: string[];
  /** NFA states: the matcher's work per key character is at most this. */
  states: number;
}

const RANGE_PREVIEW_VALUES = 20;

/** Parse a bucket URI and explain what its glob matches (throws BucketUriError like parseBucketUri). */
export function describeBucketUri(uri: string): GlobDescription {
  const parsed = parseBucketUri(uri);
  const { nodes, nfa, matchesFileNames } = analyse(parsed.pattern);
  const ranges: GlobRangeExpansion[] = [];
  const extensions = new Map<string, GlobExtension>();
  const note = (syntax: string, text: string) => extensions.set(syntax, { syntax, note: text });

  const describeSequence = (seq: readonly GlobNode[], depth: number, atStart: boolean): string => {
    if (seq.length === 0) return 'nothing';
    return seq.map((n, i) => describeNode(n, depth, atStart && i === 0)).join(', then ');
  };
  const describeNode = (n: GlobNode, depth: number, atStart: boolean): string => {
    switch (n.type) {
      case 'literal':
        return JSON.stringify(n.text);
      case 'one-char':
        return 'one character except "/" (?)';
      case 'star':
        if (depth > 0) note('wildcards inside braces', 'as in {csv,csv.*}: ClickHouse 26.7 reads braces holding * or ? literally; here the wildcard keeps its meaning');
        return 'any characters except "/" (*)';
      case 'globstar':
        if (depth > 0) note('wildcards inside braces', 'as in {csv,csv.*}: ClickHouse 26.7 reads braces holding * or ? literally; here the wildcard keeps its meaning');
        return 'any characters, "/" included (**)';
      case 'directories':
        if (depth > 0) note('wildcards inside braces', 'as in {csv,csv.*}: ClickHouse 26.7 reads braces holding * or ? literally; here the wildcard keeps its meaning');
        return atStart
          ? 'zero or more directories (**/)'
          : 'zero or more directories at a segment start, otherwise any characters ending in "/" (**/)';
      case 'range': {
        const r = n.range;
        ranges.push({
          text: `{${r.text}}`,
          from: r.from,
          to: r.to,
          count: r.count,
          width: r.width,
          values: rangeValues(r, RANGE_PREVIEW_VALUES),
          truncated: r.count > RANGE_PREVIEW_VALUES,
        });
        if (depth > 0) note('ranges among alternatives', 'as in {1..3,7}: a range may be one alternative of several; ClickHouse 26.7 reads such an alternative literally');
        const shown = rangeValues(r, 3);
        const values = r.count <= 3 ? shown.join(', ') : `${shown[0]}, ${shown[1]}, ..., ${formatRangeValue(r, r.to)}`;
        return `one of ${r.count} numbers ${values}${r.width ? ` (zero-padded to ${r.width} digits)` : ''}`;
      }
      case 'alternatives': {
        if (depth > 0) note('nested braces', 'as in {a,b{1,2}}: ClickHouse 26.7 rejects or misreads nested braces; here they nest');
        if (n.options.some((o) => o.length === 0)) {
          note('empty alternatives', 'as in {,.gz}: an alternative may be empty (an optional part); ClickHouse 26.7 reads such braces literally');
        }
        const options = n.options.map((o) => describeSequence(o, depth + 1, atStart));
        return `one of (${options.join(' | ')})`;
      }
    }
  };

  const matcher = describeSequence(nodes, 0, true);
  if (/\*\*\//.test(parsed.pattern)) {
    note('**/ matches zero directories', 'a/**/x.csv matches a/x.csv too; older ClickHouse versions need at least one directory there');
  }

  const warnings: string[] = [];
  if (parsed.pattern.startsWith('/')) {
    warnings.push(`the key pattern starts with "/": it matches only keys that begin with "/" (s3://${parsed.bucket}//...); S3 keys rarely do, so check for a doubled slash`);
  }
  const doubled = parsed.pattern.indexOf('//');
  if (doubled > 0) {
    warnings.push(`the key pattern has "//" at position ${doubled + 1}: it matches only keys with an empty path segment there; check for a doubled slash`);
  }
  if (!matchesFileNames) {
    warnings.push('the key pattern only matches keys that end in "/": empty ones are folder markers and are never imported; only such keys with content are');
  }
  return { ...parsed, matcher, ranges, extensions: [...extensions.values()], warnings, states: nfa.op.length };
}

/**
 * The warning for a glob that matched nothing in a listing: legitimate (files
 * may come later) but it must be visible, with where it looked.
 */
export function noMatchWarning(uri: BucketUri, listing: { complete: boolean; scanned?: number }): string {
  const where = uri.listPrefix ? `under the prefix "${uri.listPrefix}"` : 'in the whole bucket (the pattern starts with a wildcard)';
  const scope = listing.complete
    ? `no object ${where} of bucket "${uri.bucket}" matches "${uri.pattern}"`
    : `none of the objects listed ${where} of bucket "${uri.bucket}" matches "${uri.pattern}" (the listing stopped after ${listing.scanned ?? 'a bounded number of'} keys)`;
  return `${scope} yet; matching files are imported when they appear`;
}
