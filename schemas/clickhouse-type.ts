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
]);

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
  stringLit(): string {
    this.skipSpace();
    const m = /^'((?:[^'\\]|\\.)*)'/.exec(this.src.slice(this.pos));
    if (!m) throw new ClickHouseTypeError(`expected a quoted string at position ${this.pos + 1} of '${this.src}'`);
    this.pos += m[0].length;
    return m[0];
  }
}

function parseInner(c: Cursor): { text: string; base: string; nullable: boolean } {
  const name = c.ident();
  const open = c.peek() === '(';
  const noArgs = () => {
    if (open) throw new ClickHouseTypeError(`${name} takes no arguments`);
  };
  switch (name) {
    case 'Nullable': {
      c.expect('(');
      const inner = parseInner(c);
      c.expect(')');
      if (inner.nullable) throw new ClickHouseTypeError('Nullable(Nullable(...)) is not allowed');
      if (/^(Array|Map|Tuple)$/.test(inner.base) || inner.text.startsWith('LowCardinality(')) {
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
    case 'Tuple': {
      c.expect('(');
      const parts: string[] = [];
      for (;;) {
        // Named tuple elements: `name Type`.
        const save = c.pos;
        const first = c.ident();
        if (/^[A-Za-z_]/.test(c.peek() ?? '') ) {
          const t = parseInner(c);
          parts.push(`${first} ${t.text}`);
        } else {
          c.pos = save;
          parts.push(parseInner(c).text);
        }
        if (c.peek() === ',') { c.pos++; continue; }
        break;
      }
      c.expect(')');
      return { text: `Tuple(${parts.join(', ')})`, base: 'Tuple', nullable: false };
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
      c.expect('(');
      const p = c.int();
      c.expect(',');
      const s = c.int();
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
      c.expect('(');
      const items: string[] = [];
      for (;;) {
        const lit = c.stringLit();
        c.expect('=');
        c.skipSpace();
        const neg = c.peek() === '-' ? (c.pos++, '-') : '';
        const value = Number(`${neg}${c.int()}`);
        const [min, max] = name === 'Enum8' ? [-128, 127] : [-32768, 32767];
        if (value < min || value > max) throw new ClickHouseTypeError(`${name} value ${value} is out of range ${min}-${max}`);
        items.push(`${lit} = ${value}`);
        if (c.peek() === ',') { c.pos++; continue; }
        break;
      }
      c.expect(')');
      return { text: `${name}(${items.join(', ')})`, base: name, nullable: false };
    }
    default:
      if (SIMPLE_TYPES.has(name)) {
        noArgs();
        return { text: name, base: name, nullable: false };
      }
      throw new ClickHouseTypeError(`unknown ClickHouse type '${name}'`);
  }
}

/** Parse and canonicalise a ClickHouse type; throws ClickHouseTypeError with a reason. */
export function parseClickHouseType(text: string): ParsedType {
  if (text.length > 2000) throw new ClickHouseTypeError('type is longer than 2000 characters');
  const c = new Cursor(text);
  const t = parseInner(c);
  c.skipSpace();
  if (c.pos !== text.length) throw new ClickHouseTypeError(`unexpected '${text.slice(c.pos)}' after the type`);
  return t;
}

export function isTimeType(base: string): boolean {
  return base === 'DateTime' || base === 'DateTime64' || base === 'Date' || base === 'Date32';
}
