/**
 * Bucket URIs and key globs: `s3://<bucket>/<key pattern>`.
 *
 * Pure logic with no imports, so both the API (validation) and the activities
 * (listing and matching) share one definition of what a pattern means.
 *
 * Glob syntax, matched against the whole object key:
 *   `*`        any run of characters except `/`
 *   `**`       any run of characters including `/`
 *   `**` + `/` at the start of a path segment: zero or more whole directories,
 *              so `a/**` + `/*.csv` matches both `a/x.csv` and `a/b/c/x.csv`
 *              (mid-segment, as in `a**` + `/b`, it needs at least the `/`)
 *   `?`        exactly one character except `/`
 *   `{a,b}`    alternatives; they may contain wildcards and nest, but wildcards
 *              never join across a brace edge (`{*,}*` is not `**`)
 * Everything else is literal, including regex metacharacters and `\`.
 */

const MAX_URI_LENGTH = 1024;
const SCHEME = 's3://';
const URI_SHAPE = 's3://<bucket>/<key pattern>';
const WILDCARD_CHARS = /[*?{]/;

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
  const pattern = normalisePattern(bucket, rawPattern);
  // Parsing validates brace balance; the tree itself is rebuilt by compileGlob.
  parseGlob(pattern);
  return { bucket, pattern, listPrefix: literalPrefix(pattern) };
}

export function hasWildcard(s: string): boolean {
  return WILDCARD_CHARS.test(s);
}

export function compileGlob(pattern: string): (key: string) => boolean {
  const source = toRegexSource(parseGlob(pattern), { next: 0 });
  // `s`: keys may contain newlines and `**` must still cross them.
  // `u`: `?` then means one character, not one UTF-16 code unit.
  const regex = new RegExp(`^(?:${source})$`, 'su');
  return (key: string) => regex.test(key);
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

function normalisePattern(bucket: string, rawPattern: string): string {
  // `s3://bucket` and `s3://bucket/` both mean "the objects at the top level",
  // mirroring how a directory listing behaves rather than "everything".
  if (rawPattern === '') return '*';
  if (rawPattern.startsWith('/')) {
    throw new BucketUriError(
      `key pattern "${rawPattern}" starts with "/"; S3 keys do not, so write s3://${bucket}/${rawPattern.replace(/^\/+/, '')}`,
    );
  }
  const emptySegment = rawPattern.indexOf('//');
  if (emptySegment !== -1) {
    throw new BucketUriError(
      `key pattern "${rawPattern}" has an empty path segment ("//") at position ${emptySegment + 1}; separate segments with a single "/"`,
    );
  }
  // A trailing slash names a "directory"; like the bucket root, that means its direct children.
  return rawPattern.endsWith('/') ? `${rawPattern}*` : rawPattern;
}

function literalPrefix(pattern: string): string {
  const firstWildcard = pattern.search(WILDCARD_CHARS);
  return firstWildcard === -1 ? pattern : pattern.slice(0, firstWildcard);
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
  | { type: 'alternatives'; options: GlobNode[][] };

type GapNode = Extract<GlobNode, { type: 'star' | 'globstar' | 'directories' }>;

function parseGlob(pattern: string): GlobNode[] {
  let pos = 0;

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
          nodes.push({ type: 'directories' });
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
        const openedAt = pos++;
        const options: GlobNode[][] = [];
        for (;;) {
          options.push(parseSequence(braceDepth + 1));
          if (pos >= pattern.length) {
            throw new BucketUriError(
              `key pattern "${pattern}" has an unclosed "{" at position ${openedAt + 1}; every "{" needs a matching "}"`,
            );
          }
          if (pattern[pos++] === '}') break;
        }
        nodes.push({ type: 'alternatives', options });
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
    return collapseRepeatedDirectories(nodes);
  }

  return parseSequence(0);
}

/**
 * `**` + `/` twice in a row matches exactly what it matches once, but each copy
 * left in the regex multiplies the backtracking on a non-matching key (three
 * copies in front of `*.csv` would otherwise be cubic in the key length).
 */
function collapseRepeatedDirectories(nodes: GlobNode[]): GlobNode[] {
  return nodes.filter((node, i) => !(node.type === 'directories' && nodes[i - 1]?.type === 'directories'));
}

function isGap(node: GlobNode | undefined): node is GapNode {
  return node?.type === 'star' || node?.type === 'globstar' || node?.type === 'directories';
}

function isFixedLength(node: GlobNode | undefined): boolean {
  return node?.type === 'literal' || node?.type === 'one-char';
}

// "Segment start" is decided by the key (start of key or just after a `/`), not
// by the pattern text, so `{a/,b}**` + `/x` behaves exactly like its two spelled-out forms.
const DIRECTORIES_SOURCE = '(?:(?<=^|/)|.*/)';

const GAP_SOURCE: Record<GapNode['type'], { greedy: string; lazy: string }> = {
  star: { greedy: '[^/]*', lazy: '[^/]*?' },
  globstar: { greedy: '.*', lazy: '.*?' },
  // Lazy form tries "no directories" first, then ever longer runs ending in `/`.
  directories: { greedy: DIRECTORIES_SOURCE, lazy: '(?:(?<=^|/)|.*?/)' },
};

/**
 * Translates nodes to RegExp source. A plain translation backtracks
 * polynomially in the number of wildcards (`*a*a*a*b` against a long run of
 * `a`s never finishes), so where it is provably safe a wildcard and the text
 * after it are matched atomically at their earliest fit. JavaScript has no
 * atomic groups; `(?=(?<name>...))\k<name>` stands in, because a lookahead is
 * never re-entered on backtracking and the backreference consumes exactly
 * what it found. See earliestFitEnd for when this loses no matches.
 */
function toRegexSource(nodes: readonly GlobNode[], groupCounter: { next: number }, lazy = false): string {
  let source = '';
  for (let i = 0; i < nodes.length; i++) {
    const node = nodes[i]!;
    const commitEnd = isGap(node) ? earliestFitEnd(nodes, i) : undefined;
    if (isGap(node) && commitEnd !== undefined) {
      const name = `fit${groupCounter.next++}`;
      // Lazy quantifiers make the lookahead's first success the earliest fit.
      const body = toRegexSource(nodes.slice(i + 1, commitEnd), groupCounter, true);
      source += `(?=(?<${name}>${GAP_SOURCE[node.type].lazy}${body}))\\k<${name}>`;
      i = commitEnd - 1;
    } else {
      source += nodeSource(node, groupCounter, lazy);
    }
  }
  return source;
}

/**
 * For the gap at gapIndex, returns the end (exclusive) of the nodes after it
 * that can be committed to their earliest fit together with it, or undefined.
 *
 * 1. `*`, fixed text, then `*`. If a match has the text at p' but it also fits
 *    earlier at p, moving it to p hands the characters in between to the
 *    second `*`. They are all within one segment: the first `*` could not
 *    cross a `/`, nor can the text's characters. (If the text contains a `/`,
 *    after a `*` it fits in only one place.)
 * 2. Any gap, a run of fixed text and `*`s, then `**` or `**` + `/`. The run's
 *    earliest-ending fit is taken; the lazy search finds it because each `*`
 *    is stuck in its segment, so a run that starts later cannot end sooner.
 *    The following gap absorbs whatever the run no longer covers: `**` takes
 *    anything, and `**` + `/` still ends in `/` (its old text did, or it was
 *    empty, which is only allowed right after a `/`).
 */
function earliestFitEnd(nodes: readonly GlobNode[], gapIndex: number): number | undefined {
  let fixedEnd = gapIndex + 1;
  while (isFixedLength(nodes[fixedEnd])) fixedEnd++;
  if (nodes[gapIndex]?.type === 'star' && fixedEnd > gapIndex + 1 && nodes[fixedEnd]?.type === 'star') {
    return fixedEnd;
  }
  let runEnd = gapIndex + 1;
  while (isFixedLength(nodes[runEnd]) || nodes[runEnd]?.type === 'star') runEnd++;
  const following = nodes[runEnd];
  if (runEnd > gapIndex + 1 && (following?.type === 'globstar' || following?.type === 'directories')) {
    return runEnd;
  }
  return undefined;
}

function nodeSource(node: GlobNode, groupCounter: { next: number }, lazy: boolean): string {
  switch (node.type) {
    case 'literal':
      return escapeRegex(node.text);
    case 'one-char':
      return '[^/]';
    case 'star':
    case 'globstar':
    case 'directories':
      return lazy ? GAP_SOURCE[node.type].lazy : GAP_SOURCE[node.type].greedy;
    case 'alternatives':
      return `(?:${node.options.map((option) => toRegexSource(option, groupCounter, lazy)).join('|')})`;
  }
}

// Only syntax characters (and `/`) may be escaped under the `u` flag; escaping
// anything else, such as `-`, would be a RegExp syntax error.
function escapeRegex(text: string): string {
  return text.replace(/[\\^$.*+?()[\]{}|/]/g, '\\$&');
}
