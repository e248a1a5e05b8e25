import { SqlTokenError, tokenize } from './sql-tokens.js';

/**
 * A small parser for ClickHouse column types. Spec validation uses it so a bad
 * type is rejected with a reason *before* anything is created, instead of
 * surfacing later as a failed CREATE TABLE inside a workflow.
 */
const SIMPLE_TYPES = new Set([
  'UInt8', 'UInt16', 'UInt32', 'UInt64', 'UInt128', 'UInt256',
  'Int8', 'Int16', 'Int32', 'Int64', 'Int128', 'Int256',
  'Float32', 'Float64', 'BFloat16', 'Bool', 'Boolean', 'String', 'UUID', 'Date', 'Date32',
  'IPv4', 'IPv6', 'JSON', 'Dynamic', 'Time',
  'Point', 'Ring', 'LineString', 'MultiLineString', 'Polygon', 'MultiPolygon', 'Geometry',
]);

/**
 * ClickHouse's case-insensitive type names and SQL-compatibility aliases (as
 * listed by `system.data_type_families`), keyed in upper case, to the family
 * they stand for. Multi-word aliases (`DOUBLE PRECISION`) are included.
 */
const TYPE_ALIASES: Readonly<Record<string, string>> = {
  BOOL: 'Bool', BOOLEAN: 'Bool', DATE: 'Date', DATE32: 'Date32', DATETIME: 'DateTime', DATETIME32: 'DateTime',
  DATETIME64: 'DateTime64', TIMESTAMP: 'DateTime', DECIMAL: 'Decimal', DECIMAL32: 'Decimal32', DECIMAL64: 'Decimal64',
  DECIMAL128: 'Decimal128', DECIMAL256: 'Decimal256', DEC: 'Decimal', FIXED: 'Decimal', NUMERIC: 'Decimal',
  ENUM: 'Enum', JSON: 'JSON', TIME: 'Time', TIME64: 'Time64', BINARY: 'FixedString',
  FLOAT: 'Float32', REAL: 'Float32', SINGLE: 'Float32', DOUBLE: 'Float64', 'DOUBLE PRECISION': 'Float64',
  INET4: 'IPv4', INET6: 'IPv6',
  BYTE: 'Int8', INT1: 'Int8', 'INT1 SIGNED': 'Int8', TINYINT: 'Int8', 'TINYINT SIGNED': 'Int8',
  SMALLINT: 'Int16', 'SMALLINT SIGNED': 'Int16',
  INT: 'Int32', 'INT SIGNED': 'Int32', INTEGER: 'Int32', 'INTEGER SIGNED': 'Int32', MEDIUMINT: 'Int32', 'MEDIUMINT SIGNED': 'Int32',
  BIGINT: 'Int64', 'BIGINT SIGNED': 'Int64', SIGNED: 'Int64',
  'INT1 UNSIGNED': 'UInt8', 'TINYINT UNSIGNED': 'UInt8', 'SMALLINT UNSIGNED': 'UInt16', YEAR: 'UInt16',
  'INT UNSIGNED': 'UInt32', 'INTEGER UNSIGNED': 'UInt32', 'MEDIUMINT UNSIGNED': 'UInt32',
  'BIGINT UNSIGNED': 'UInt64', BIT: 'UInt64', SET: 'UInt64', UNSIGNED: 'UInt64',
  ...Object.fromEntries(
    [
      'BINARY LARGE OBJECT', 'BINARY VARYING', 'BLOB', 'BYTEA', 'CHAR', 'CHAR LARGE OBJECT', 'CHAR VARYING', 'CHARACTER',
      'CHARACTER LARGE OBJECT', 'CHARACTER VARYING', 'CLOB', 'LONGBLOB', 'LONGTEXT', 'MEDIUMBLOB', 'MEDIUMTEXT',
      'NATIONAL CHAR', 'NATIONAL CHAR VARYING', 'NATIONAL CHARACTER', 'NATIONAL CHARACTER LARGE OBJECT',
      'NATIONAL CHARACTER VARYING', 'NCHAR', 'NCHAR LARGE OBJECT', 'NCHAR VARYING', 'NVARCHAR', 'TEXT', 'TINYBLOB',
      'TINYTEXT', 'VARBINARY', 'VARCHAR', 'VARCHAR2',
    ].map((a) => [a, 'String']),
  ),
};
/** The aliases with more than one word, longest first, for greedy matching. */
const MULTI_WORD_ALIASES = Object.keys(TYPE_ALIASES).filter((a) => a.includes(' ')).sort((a, b) => b.length - a.length);

/** The functions ClickHouse accepts in SimpleAggregateFunction (from its own error message). */
const SIMPLE_AGGREGATE_FUNCTIONS = new Set([
  'any', 'any_respect_nulls', 'anyLast', 'anyLast_respect_nulls', 'min', 'max', 'sum', 'sumWithOverflow',
  'groupBitAnd', 'groupBitOr', 'groupBitXor', 'sumMap', 'minMap', 'maxMap', 'groupArrayArray', 'groupArrayLastArray',
  'groupUniqArrayArray', 'groupUniqArrayArrayMap', 'sumMappedArrays', 'minMappedArrays', 'maxMappedArrays',
]);

/** Types that cannot be wrapped in Nullable (ClickHouse refuses them). */
const NOT_NULLABLE = /^(Array|Map|Tuple|Variant|Dynamic|Nested)$/;

export class ClickHouseTypeError extends Error {
  constructor(readonly reason: string) {
    super(reason);
  }
}

export interface ParsedType {
  /** Canonical text of the type. */
  text: string;
  nullable: boolean;
  /** The base type name without wrappers, e.g. DateTime64 for Nullable(DateTime64(3)). */
  base: string;
}

class Cursor {
  pos = 0;
  constructor(readonly src: string) {}
  skipSpace() {
    while (this.pos < this.src.length && /\s/.test(this.src[this.pos]!)) this.pos++;
  }
  peek(): string | undefined {
    this.skipSpace();
    return this.src[this.pos];
  }
  expect(ch: string) {
    if (this.peek() !== ch) throw new ClickHouseTypeError(`expected '${ch}' at position ${this.pos + 1} of '${this.src}'`);
    this.pos++;
  }
  ident(): string {
    this.skipSpace();
    const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(this.src.slice(this.pos));
    if (!m) throw new ClickHouseTypeError(`expected a type name at position ${this.pos + 1} of '${this.src}'`);
    this.pos += m[0].length;
    return m[0];
  }
  int(): number {
    this.skipSpace();
    const m = /^\d+/.exec(this.src.slice(this.pos));
    if (!m) throw new ClickHouseTypeError(`expected a number at position ${this.pos + 1} of '${this.src}'`);
    this.pos += m[0].length;
    return Number(m[0]);
  }
  /**
   * A type name: one identifier, or a multi-word SQL alias such as
   * `DOUBLE PRECISION` when the following words complete one.
   */
  typeName(): string {
    const first = this.ident();
    const rest = this.src.slice(this.pos);
    for (const alias of MULTI_WORD_ALIASES) {
      const words = alias.split(' ');
      if (words[0] !== first.toUpperCase()) continue;
      const m = new RegExp(`^${words.slice(1).map((w) => `\\s+${w}`).join('')}(?![A-Za-z0-9_])`, 'i').exec(rest);
      if (m) {
        this.pos += m[0].length;
        return alias;
      }
    }
    return first;
  }
  stringLit(): string {
    this.skipSpace();
    const m = /^'((?:[^'\\]|\\.)*)'/.exec(this.src.slice(this.pos));
    if (!m) throw new ClickHouseTypeError(`expected a quoted string at position ${this.pos + 1} of '${this.src}'`);
    this.pos += m[0].length;
    return m[0];
  }
}

/** Named elements `name Type, ...` of Tuple and Nested; Tuple also allows unnamed ones. */
function elements(c: Cursor, namesRequired: boolean, what: string): string[] {
  c.expect('(');
  const parts: string[] = [];
  for (;;) {
    const save = c.pos;
    let unnamed: string | null = null;
    if (!namesRequired) {
      // An element is unnamed when a whole type ends right there (`Tuple(String, DOUBLE PRECISION)`);
      // otherwise its first word is a name (`Tuple(date Date)`).
      try {
        const t = parseInner(c).text;
        if (c.peek() === ',' || c.peek() === ')') unnamed = t;
      } catch (e) {
        if (!(e instanceof ClickHouseTypeError)) throw e;
      }
    }
    if (unnamed !== null) parts.push(unnamed);
    else {
      c.pos = save;
      const first = c.ident();
      if (!/^[A-Za-z_]/.test(c.peek() ?? '')) {
        if (namesRequired) throw new ClickHouseTypeError(`${what} elements need a name and a type, e.g. ${what}(a String)`);
        c.pos = save;
        parts.push(parseInner(c).text);
      } else parts.push(`${first} ${parseInner(c).text}`);
    }
    if (c.peek() === ',') { c.pos++; continue; }
    break;
  }
  c.expect(')');
  if (!namesRequired && new Set(parts.map((p) => /^[A-Za-z_][A-Za-z0-9_]* [A-Za-z_]/.test(p) && !/^[A-Za-z_][A-Za-z0-9_]*\(/.test(p))).size > 1) {
    throw new ClickHouseTypeError('Tuple elements must all have names, or none');
  }
  return parts;
}

/** Enum values `'a' = 1, 'b' = 2`, or `'a', 'b'` numbered from 1, as in ClickHouse. */
function enumItems(c: Cursor): { items: string[]; min: number; max: number } {
  c.expect('(');
  const items: string[] = [];
  let next = 1;
  let min = Infinity;
  let max = -Infinity;
  let numbered: boolean | undefined;
  for (;;) {
    const lit = c.stringLit();
    let value = next;
    const hasNumber = c.peek() === '=';
    if (numbered !== undefined && hasNumber !== numbered) {
      throw new ClickHouseTypeError("Enum elements must all be 'name' = number, or all be 'name' alone");
    }
    numbered = hasNumber;
    if (hasNumber) {
      c.pos++;
      c.skipSpace();
      const neg = c.peek() === '-' ? (c.pos++, '-') : '';
      value = Number(`${neg}${c.int()}`);
    }
    next = value + 1;
    min = Math.min(min, value);
    max = Math.max(max, value);
    items.push(`${lit} = ${value}`);
    if (c.peek() === ',') { c.pos++; continue; }
    break;
  }
  c.expect(')');
  return { items, min, max };
}

function parseInner(c: Cursor): { text: string; base: string; nullable: boolean } {
  const written = c.typeName();
  // Case-insensitive names and SQL aliases resolve to the family ClickHouse stores.
  const aliased = TYPE_ALIASES[written.toUpperCase()];
  const name = aliased ?? written;
  const open = c.peek() === '(';
  const noArgs = () => {
    if (open) throw new ClickHouseTypeError(`${name} takes no arguments`);
  };
  // SQL aliases of integers, floats and strings take a display width (`INT(11)`, `VARCHAR(255)`) that ClickHouse ignores.
  if (aliased !== undefined && aliased !== written && open && /^(U?Int\d+|Float\d+|String)$/.test(aliased)) {
    c.expect('(');
    c.int();
    c.expect(')');
    return { text: aliased, base: aliased, nullable: false };
  }
  switch (name) {
    case 'Nullable': {
      c.expect('(');
      const inner = parseInner(c);
      c.expect(')');
      if (inner.nullable) throw new ClickHouseTypeError('Nullable(Nullable(...)) is not allowed');
      if (NOT_NULLABLE.test(inner.base) || inner.text.startsWith('LowCardinality(')) {
        throw new ClickHouseTypeError(`${inner.text.startsWith('LowCardinality(') ? 'LowCardinality' : inner.base} cannot be inside Nullable (write LowCardinality(Nullable(...)) instead)`);
      }
      return { text: `Nullable(${inner.text})`, base: inner.base, nullable: true };
    }
    case 'LowCardinality': {
      c.expect('(');
      const inner = parseInner(c);
      c.expect(')');
      if (/^(Array|Map|Tuple|JSON|Dynamic)$/.test(inner.base) || inner.text.startsWith('LowCardinality(')) {
        throw new ClickHouseTypeError(`LowCardinality cannot wrap ${inner.base}`);
      }
      return { text: `LowCardinality(${inner.text})`, base: inner.base, nullable: inner.nullable };
    }
    case 'Array': {
      c.expect('(');
      const inner = parseInner(c);
      c.expect(')');
      return { text: `Array(${inner.text})`, base: 'Array', nullable: false };
    }
    case 'Map': {
      c.expect('(');
      const k = parseInner(c);
      c.expect(',');
      const v = parseInner(c);
      c.expect(')');
      return { text: `Map(${k.text}, ${v.text})`, base: 'Map', nullable: false };
    }
    case 'Tuple':
      return { text: `Tuple(${elements(c, false, 'Tuple').join(', ')})`, base: 'Tuple', nullable: false };
    case 'Nested':
      return { text: `Nested(${elements(c, true, 'Nested').join(', ')})`, base: 'Nested', nullable: false };
    case 'Variant': {
      c.expect('(');
      const parts = [parseInner(c).text];
      while (c.peek() === ',') { c.pos++; parts.push(parseInner(c).text); }
      c.expect(')');
      return { text: `Variant(${parts.join(', ')})`, base: 'Variant', nullable: false };
    }
    case 'SimpleAggregateFunction': {
      // The column stores plain values of T, merged with f: files can feed it like a T column.
      c.expect('(');
      const fn = c.ident();
      if (!SIMPLE_AGGREGATE_FUNCTIONS.has(fn)) {
        throw new ClickHouseTypeError(`SimpleAggregateFunction does not support ${fn}; use one of ${[...SIMPLE_AGGREGATE_FUNCTIONS].join(', ')}`);
      }
      // Parameters (groupArrayArray(10)) are numbers only, printed back from the numbers read.
      let params = '';
      if (c.peek() === '(') {
        c.expect('(');
        const ps = [c.int()];
        while (c.peek() === ',') { c.pos++; ps.push(c.int()); }
        c.expect(')');
        params = `(${ps.join(', ')})`;
      }
      c.expect(',');
      const inner = parseInner(c);
      c.expect(')');
      return { text: `SimpleAggregateFunction(${fn}${params}, ${inner.text})`, base: inner.base, nullable: inner.nullable };
    }
    case 'AggregateFunction':
      throw new ClickHouseTypeError(
        'AggregateFunction columns hold partial aggregation states, which files cannot provide (they are written by -State functions in materialized views); use SimpleAggregateFunction(f, T) or the plain type',
      );
    case 'JSON':
    case 'Dynamic': {
      // Arguments are parsed one by one and printed back from what was read, never copied as text.
      if (!open) return { text: name, base: name, nullable: false };
      const args = name === 'JSON' ? jsonArguments(c) : dynamicArguments(c);
      return { text: args.length === 0 ? name : `${name}(${args.join(', ')})`, base: name, nullable: false };
    }
    case 'Nothing':
      throw new ClickHouseTypeError('Nothing cannot be the type of a table column');
    case 'DateTime32':
      noArgs();
      return { text: 'DateTime', base: 'DateTime', nullable: false };
    case 'Time64': {
      if (!open) return { text: 'Time64(3)', base: name, nullable: false };
      c.expect('(');
      const p = c.int();
      c.expect(')');
      if (p > 9) throw new ClickHouseTypeError(`Time64 precision ${p} is out of range 0-9`);
      return { text: `Time64(${p})`, base: name, nullable: false };
    }
    case 'Enum': {
      const { items, min, max } = enumItems(c);
      const sized = min >= -128 && max <= 127 ? 'Enum8' : 'Enum16';
      if (min < -32768 || max > 32767) throw new ClickHouseTypeError(`Enum value ${min < -32768 ? min : max} is out of range -32768-32767`);
      return { text: `${sized}(${items.join(', ')})`, base: sized, nullable: false };
    }
    case 'FixedString': {
      c.expect('(');
      const n = c.int();
      c.expect(')');
      if (n < 1) throw new ClickHouseTypeError('FixedString(N) needs N >= 1');
      return { text: `FixedString(${n})`, base: name, nullable: false };
    }
    case 'DateTime': {
      if (!open) return { text: 'DateTime', base: name, nullable: false };
      c.expect('(');
      if (/\d/.test(c.peek() ?? '')) {
        // DateTime(p[, tz]) (TIMESTAMP(3) in SQL) is DateTime64.
        const p = c.int();
        if (p > 9) throw new ClickHouseTypeError(`DateTime64 precision ${p} is out of range 0-9`);
        let tz64 = '';
        if (c.peek() === ',') { c.pos++; tz64 = `, ${c.stringLit()}`; }
        c.expect(')');
        return { text: `DateTime64(${p}${tz64})`, base: 'DateTime64', nullable: false };
      }
      const tz = c.stringLit();
      c.expect(')');
      return { text: `DateTime(${tz})`, base: name, nullable: false };
    }
    case 'DateTime64': {
      if (!open) return { text: 'DateTime64(3)', base: name, nullable: false };
      c.expect('(');
      const p = c.int();
      if (p > 9) throw new ClickHouseTypeError(`DateTime64 precision ${p} is out of range 0-9`);
      let tz = '';
      if (c.peek() === ',') { c.pos++; tz = `, ${c.stringLit()}`; }
      c.expect(')');
      return { text: `DateTime64(${p}${tz})`, base: name, nullable: false };
    }
    case 'Decimal': {
      // Decimal = Decimal(10, 0) and Decimal(P) = Decimal(P, 0), as in ClickHouse.
      if (!open) return { text: 'Decimal(10, 0)', base: name, nullable: false };
      c.expect('(');
      const p = c.int();
      let s = 0;
      if (c.peek() === ',') { c.pos++; s = c.int(); }
      c.expect(')');
      if (p < 1 || p > 76) throw new ClickHouseTypeError(`Decimal precision ${p} is out of range 1-76`);
      if (s > p) throw new ClickHouseTypeError(`Decimal scale ${s} is larger than precision ${p}`);
      return { text: `Decimal(${p}, ${s})`, base: name, nullable: false };
    }
    case 'Decimal32': case 'Decimal64': case 'Decimal128': case 'Decimal256': {
      c.expect('(');
      const s = c.int();
      c.expect(')');
      const maxScale = { Decimal32: 9, Decimal64: 18, Decimal128: 38, Decimal256: 76 }[name];
      if (s > maxScale) throw new ClickHouseTypeError(`${name} scale ${s} is out of range 0-${maxScale}`);
      return { text: `${name}(${s})`, base: name, nullable: false };
    }
    case 'Enum8': case 'Enum16': {
      const { items, min, max } = enumItems(c);
      const [lo, hi] = name === 'Enum8' ? [-128, 127] : [-32768, 32767];
      if (min < lo || max > hi) throw new ClickHouseTypeError(`${name} value ${min < lo ? min : max} is out of range ${lo}-${hi}`);
      return { text: `${name}(${items.join(', ')})`, base: name, nullable: false };
    }
    default:
      if (SIMPLE_TYPES.has(name)) {
        noArgs();
        return { text: name, base: name, nullable: false };
      }
      if (/^Interval[A-Z]/.test(name)) throw new ClickHouseTypeError(`${name} cannot be the type of a table column`);
      throw new ClickHouseTypeError(`unknown ClickHouse type '${name}'`);
  }
}

/** `name=N` settings a JSON or Dynamic type takes. */
const JSON_SETTINGS = new Set(['max_dynamic_paths', 'max_dynamic_types']);
const DYNAMIC_SETTINGS = new Set(['max_types']);
const PLAIN = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** A name as ClickHouse reads it unquoted, or backquoted (backslash and backquote escaped). */
function quotePathPart(part: string): string {
  return PLAIN.test(part) ? part : `\`${part.replace(/\\/g, '\\\\').replace(/`/g, '\\`')}\``;
}

/** A JSON path: `a.b`, with backquoted parts (`` `a b`.c ``); printed back part by part. */
function jsonPath(c: Cursor): string {
  const parts: string[] = [];
  for (;;) {
    c.skipSpace();
    if (c.src[c.pos] === '`') {
      const m = /^`((?:[^`\\]|\\[`\\]|``)*)`(?!`)/.exec(c.src.slice(c.pos));
      if (!m) throw new ClickHouseTypeError(`a quoted path part at position ${c.pos + 1} may escape only \` and \\`);
      c.pos += m[0].length;
      const part = m[1]!.replace(/\\([`\\])|``/g, (all, ch: string | undefined) => ch ?? '`');
      if (part === '') throw new ClickHouseTypeError('a JSON path part must not be empty');
      parts.push(part);
    } else parts.push(c.ident());
    if (c.src[c.pos] !== '.') break;
    c.pos++;
  }
  return parts.map(quotePathPart).join('.');
}

/** `name = N` for one of `allowed`. */
function typeSetting(c: Cursor, allowed: Set<string>, what: string): string {
  const key = c.ident();
  if (!allowed.has(key)) throw new ClickHouseTypeError(`${what} takes ${[...allowed].join(', ')}, not ${key}`);
  c.expect('=');
  return `${key}=${c.int()}`;
}

/** JSON(max_dynamic_paths=N, max_dynamic_types=N, a.b UInt32, SKIP a.c, SKIP REGEXP 'x'). */
function jsonArguments(c: Cursor): string[] {
  c.expect('(');
  const args: string[] = [];
  if (c.peek() === ')') { c.pos++; return args; }
  for (;;) {
    c.skipSpace();
    const save = c.pos;
    const word = /^[A-Za-z_][A-Za-z0-9_]*/.exec(c.src.slice(c.pos))?.[0];
    if (word?.toUpperCase() === 'SKIP') {
      c.pos += word.length;
      c.skipSpace();
      const next = /^[A-Za-z_][A-Za-z0-9_]*/.exec(c.src.slice(c.pos))?.[0];
      if (next?.toUpperCase() === 'REGEXP') {
        c.pos += next.length;
        args.push(`SKIP REGEXP ${c.stringLit()}`);
      } else args.push(`SKIP ${jsonPath(c)}`);
    } else if (word && JSON_SETTINGS.has(word) && /^\s*=/.test(c.src.slice(c.pos + word.length))) {
      args.push(typeSetting(c, JSON_SETTINGS, 'JSON'));
    } else {
      c.pos = save;
      const path = jsonPath(c);
      args.push(`${path} ${parseInner(c).text}`);
    }
    if (c.peek() === ',') { c.pos++; continue; }
    if (c.peek() === undefined) throw new ClickHouseTypeError(`unclosed '(' in '${c.src}'`);
    break;
  }
  c.expect(')');
  return args;
}

/** Dynamic(max_types=N). */
function dynamicArguments(c: Cursor): string[] {
  c.expect('(');
  const args: string[] = [];
  if (c.peek() === ')') { c.pos++; return args; }
  args.push(typeSetting(c, DYNAMIC_SETTINGS, 'Dynamic'));
  c.expect(')');
  return args;
}

/**
 * What may appear in a type's text at all, read token by token with
 * ClickHouse's quoting rules: no comment (`--`, `#`, `/* *\/`), no `$$`
 * string, no `;`, no control character. The parser below then accepts only
 * the type grammar, and its `text` is printed from what it read, so the text
 * a DDL statement splices can carry nothing but a type.
 */
function checkTypeTokens(text: string) {
  if (/[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f\u2028\u2029]/u.test(text)) throw new ClickHouseTypeError('a type must not contain control characters');
  let tokens;
  try {
    tokens = tokenize(text);
  } catch (e) {
    if (e instanceof SqlTokenError) throw new ClickHouseTypeError(`${e.reason} at position ${e.at + 1}`);
    throw e;
  }
  for (const t of tokens) {
    if (t.kind === 'comment') throw new ClickHouseTypeError(`comments are not allowed in a type (at position ${t.at + 1})`);
    if (t.kind === 'string' && t.text.startsWith('$')) throw new ClickHouseTypeError(`$$ strings are not allowed in a type (at position ${t.at + 1}); quote with '...'`);
    if (t.text === ';') throw new ClickHouseTypeError(`';' is not allowed in a type (at position ${t.at + 1}): a type is not a statement`);
    if (t.kind === 'quoted' && t.text.startsWith('"')) throw new ClickHouseTypeError(`double-quoted names are not allowed in a type (at position ${t.at + 1}); use backquotes`);
  }
}

/** Parse and canonicalise a ClickHouse type; throws ClickHouseTypeError with a reason. */
export function parseClickHouseType(text: string): ParsedType {
  if (text.length > 2000) throw new ClickHouseTypeError('type is longer than 2000 characters');
  checkTypeTokens(text);
  const c = new Cursor(text);
  const t = parseInner(c);
  c.skipSpace();
  if (c.pos !== text.length) throw new ClickHouseTypeError(`unexpected '${text.slice(c.pos)}' after the type`);
  return t;
}

/**
 * The text DDL splices for a column type: printed by the parser from what it
 * read (never the text as written), so it can carry nothing but a type.
 */
export function canonicalType(text: string): string {
  return parseClickHouseType(text).text;
}

export function isTimeType(base: string): boolean {
  return base === 'DateTime' || base === 'DateTime64' || base === 'Date' || base === 'Date32';
}
