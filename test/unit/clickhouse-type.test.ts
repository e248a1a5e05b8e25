import { describe, expect, it } from 'vitest';
import { query } from 'chdb';
import { ClickHouseTypeError, parseClickHouseType, type ParsedType } from '../../schemas/clickhouse-type.js';

function typeErrorFrom(text: string): ClickHouseTypeError {
  try {
    parseClickHouseType(text);
  } catch (e) {
    if (e instanceof ClickHouseTypeError) return e;
    throw e;
  }
  throw new Error(`expected parseClickHouseType(${JSON.stringify(text)}) to throw`);
}

describe('parseClickHouseType: valid types', () => {
  it.each<[input: string, expected: ParsedType]>([
    ['UInt64', { text: 'UInt64', base: 'UInt64', nullable: false }],
    ['String', { text: 'String', base: 'String', nullable: false }],
    ['Bool', { text: 'Bool', base: 'Bool', nullable: false }],
    ['DateTime', { text: 'DateTime', base: 'DateTime', nullable: false }],
    ["DateTime('Europe/Berlin')", { text: "DateTime('Europe/Berlin')", base: 'DateTime', nullable: false }],
    ['Nullable(String)', { text: 'Nullable(String)', base: 'String', nullable: true }],
    ['LowCardinality(String)', { text: 'LowCardinality(String)', base: 'String', nullable: false }],
    ['LowCardinality(Nullable(String))', { text: 'LowCardinality(Nullable(String))', base: 'String', nullable: true }],
    ["DateTime64(3, 'UTC')", { text: "DateTime64(3, 'UTC')", base: 'DateTime64', nullable: false }],
    ['DateTime64(9)', { text: 'DateTime64(9)', base: 'DateTime64', nullable: false }],
    ['DateTime64(0)', { text: 'DateTime64(0)', base: 'DateTime64', nullable: false }],
    ['Nullable(DateTime64(6))', { text: 'Nullable(DateTime64(6))', base: 'DateTime64', nullable: true }],
    ['Decimal(18, 4)', { text: 'Decimal(18, 4)', base: 'Decimal', nullable: false }],
    ['Decimal(76, 76)', { text: 'Decimal(76, 76)', base: 'Decimal', nullable: false }],
    ['Decimal64(4)', { text: 'Decimal64(4)', base: 'Decimal64', nullable: false }],
    ['Array(Nullable(Int32))', { text: 'Array(Nullable(Int32))', base: 'Array', nullable: false }],
    ['Array(Array(String))', { text: 'Array(Array(String))', base: 'Array', nullable: false }],
    ['Map(String, UInt64)', { text: 'Map(String, UInt64)', base: 'Map', nullable: false }],
    ['Map(LowCardinality(String), Array(Float64))', { text: 'Map(LowCardinality(String), Array(Float64))', base: 'Map', nullable: false }],
    ['Tuple(a String, b Int32)', { text: 'Tuple(a String, b Int32)', base: 'Tuple', nullable: false }],
    ['Tuple(String, Int32)', { text: 'Tuple(String, Int32)', base: 'Tuple', nullable: false }],
    ['Tuple(a Nullable(String), b Array(Int8))', { text: 'Tuple(a Nullable(String), b Array(Int8))', base: 'Tuple', nullable: false }],
    ["Enum8('a' = 1, 'b' = -2)", { text: "Enum8('a' = 1, 'b' = -2)", base: 'Enum8', nullable: false }],
    ["Enum16('it\\'s' = 1000)", { text: "Enum16('it\\'s' = 1000)", base: 'Enum16', nullable: false }],
    ['FixedString(16)', { text: 'FixedString(16)', base: 'FixedString', nullable: false }],
    ['UUID', { text: 'UUID', base: 'UUID', nullable: false }],
    ['IPv6', { text: 'IPv6', base: 'IPv6', nullable: false }],
  ])('%s', (input, expected) => {
    expect(parseClickHouseType(input)).toEqual(expected);
  });
});

describe('parseClickHouseType: canonical text', () => {
  // Spacing is normalised, so equal types compare equal as text.
  it.each([
    ['Decimal(18,4)', 'Decimal(18, 4)'],
    ['  Decimal( 18 ,  4 )  ', 'Decimal(18, 4)'],
    ['Map(String,UInt64)', 'Map(String, UInt64)'],
    ['Tuple(a String,b Int32)', 'Tuple(a String, b Int32)'],
    ['Tuple( a  String ,  b Int32 )', 'Tuple(a String, b Int32)'],
    ["Enum8('a'=1,'b'=-2)", "Enum8('a' = 1, 'b' = -2)"],
    ["DateTime64(3,'UTC')", "DateTime64(3, 'UTC')"],
    ['Nullable( String )', 'Nullable(String)'],
    ['LowCardinality( Nullable( String ) )', 'LowCardinality(Nullable(String))'],
    ['Array( Nullable( Int32 ) )', 'Array(Nullable(Int32))'],
    ['FixedString( 16 )', 'FixedString(16)'],
  ])('%s -> %s', (input, canonical) => {
    expect(parseClickHouseType(input).text).toBe(canonical);
    // Canonical text is a fixed point.
    expect(parseClickHouseType(canonical).text).toBe(canonical);
  });
});

describe('parseClickHouseType: invalid types', () => {
  it.each<[input: string, reason: RegExp]>([
    ['Strin', /unknown ClickHouse type 'Strin'/],
    ['string', /unknown ClickHouse type 'string'/],
    ['Nullable(Array(Int8))', /Array cannot be inside Nullable/],
    ['Nullable(Map(String, String))', /Map cannot be inside Nullable/],
    ['Nullable(Tuple(String))', /Tuple cannot be inside Nullable/],
    ['Nullable(Nullable(String))', /Nullable\(Nullable\(\.\.\.\)\) is not allowed/],
    ['DateTime64(12)', /DateTime64 precision 12 is out of range 0-9/],
    ['Decimal(5, 6)', /Decimal scale 6 is larger than precision 5/],
    ['Decimal(0, 0)', /Decimal precision 0 is out of range 1-76/],
    ['Decimal(77, 2)', /Decimal precision 77 is out of range 1-76/],
    ['UInt64(3)', /UInt64 takes no arguments/],
    ['String(10)', /String takes no arguments/],
    ['FixedString(0)', /FixedString\(N\) needs N >= 1/],
    ['FixedString', /expected '\('/],
    ['Array(', /expected a type name at position 7/],
    ['Array(String', /expected '\)'/],
    ['Map(String)', /expected ','/],
    ['Tuple()', /expected a type name/],
    ["Enum8('a' = )", /expected a number/],
    ['Enum8(a = 1)', /expected a quoted string/],
    ['', /expected a type name at position 1/],
    ['   ', /expected a type name/],
    ['String extra', /unexpected 'extra' after the type/],
    ['String)', /unexpected '\)' after the type/],
    ['Int32; DROP TABLE x', /';' is not allowed in a type \(at position 6\): a type is not a statement/],
  ])('%j is rejected', (input, reason) => {
    const err = typeErrorFrom(input);
    expect(err).toBeInstanceOf(ClickHouseTypeError);
    expect(err.reason).toMatch(reason);
    expect(err.message).toBe(err.reason);
  });

  it('rejects a type longer than 2000 characters before parsing it', () => {
    const long = `Array(${'String'.padEnd(2001, ' ')})`;
    expect(typeErrorFrom(long).reason).toMatch(/longer than 2000 characters/);
  });

  it('handles deep nesting within the length cap', () => {
    // 2000 characters is the cap; nesting up to it parses, and an unclosed one fails cleanly.
    const deep = 'Array('.repeat(280) + 'String' + ')'.repeat(280);
    expect(deep.length).toBeLessThanOrEqual(2000);
    expect(parseClickHouseType(deep).base).toBe('Array');
    expect(typeErrorFrom('Array('.repeat(280) + 'String').reason).toMatch(/expected '\)'/);
  });
});

/* Types ClickHouse rejects (checked against chDB: `CAST(defaultValueOfTypeName(T), T)`) are rejected up front, with the reason. */
describe('parseClickHouseType: agrees with ClickHouse on edge cases', () => {
  it.each([
    // "Nested type LowCardinality(String) cannot be inside Nullable type":
    // the Nullable check looks at inner.base, which LowCardinality has already unwrapped to String.
    'Nullable(LowCardinality(String))',
    // "DataTypeLowCardinality is supported only for numbers, strings, Date or DateTime".
    'LowCardinality(Array(String))',
    // "Value 1000 for element 'a' exceeds range of Enum8".
    "Enum8('a' = 1000)",
    // "Negative scales and scales larger than precision are not supported".
    'Decimal32(12)',
  ])('%s is rejected', (input) => {
    expect(typeErrorFrom(input)).toBeInstanceOf(ClickHouseTypeError);
  });

  // ClickHouse accepts bare DateTime64 (precision 3); the parser demands an argument.
  it('DateTime64 without arguments is accepted', () => {
    expect(parseClickHouseType('DateTime64').base).toBe('DateTime64');
  });
});

describe('parseClickHouseType: every type a file can feed', () => {
  it.each<[input: string, expected: ParsedType]>([
    ['SimpleAggregateFunction(sum, UInt64)', { text: 'SimpleAggregateFunction(sum, UInt64)', base: 'UInt64', nullable: false }],
    ['SimpleAggregateFunction(anyLast, Nullable(String))', { text: 'SimpleAggregateFunction(anyLast, Nullable(String))', base: 'String', nullable: true }],
    ['SimpleAggregateFunction(groupUniqArrayArray( 10 ), Array(String))', { text: 'SimpleAggregateFunction(groupUniqArrayArray(10), Array(String))', base: 'Array', nullable: false }],
    ['JSON(max_dynamic_paths=100,  a.b UInt32, SKIP c)', { text: 'JSON(max_dynamic_paths=100, a.b UInt32, SKIP c)', base: 'JSON', nullable: false }],
    ['json', { text: 'JSON', base: 'JSON', nullable: false }],
    ['Dynamic(max_types=8)', { text: 'Dynamic(max_types=8)', base: 'Dynamic', nullable: false }],
    ['Variant(String, UInt64)', { text: 'Variant(String, UInt64)', base: 'Variant', nullable: false }],
    ['Nested(a String, b Array(UInt8))', { text: 'Nested(a String, b Array(UInt8))', base: 'Nested', nullable: false }],
    ['Tuple(date Date, f Float64)', { text: 'Tuple(date Date, f Float64)', base: 'Tuple', nullable: false }],
    ['Tuple(a BIGINT UNSIGNED, b TEXT)', { text: 'Tuple(a UInt64, b String)', base: 'Tuple', nullable: false }],
    ['Point', { text: 'Point', base: 'Point', nullable: false }],
    ['Time64(6)', { text: 'Time64(6)', base: 'Time64', nullable: false }],
    ["Enum('a', 'b', 'c')", { text: "Enum8('a' = 1, 'b' = 2, 'c' = 3)", base: 'Enum8', nullable: false }],
    ["Enum('big' = 1000)", { text: "Enum16('big' = 1000)", base: 'Enum16', nullable: false }],
    ['BIGINT UNSIGNED', { text: 'UInt64', base: 'UInt64', nullable: false }],
    ['Nullable(double precision)', { text: 'Nullable(Float64)', base: 'Float64', nullable: true }],
    ['VARCHAR(255)', { text: 'String', base: 'String', nullable: false }],
    ['INT(11)', { text: 'Int32', base: 'Int32', nullable: false }],
    ['BINARY(16)', { text: 'FixedString(16)', base: 'FixedString', nullable: false }],
    ['TIMESTAMP', { text: 'DateTime', base: 'DateTime', nullable: false }],
    ["timestamp(3, 'UTC')", { text: "DateTime64(3, 'UTC')", base: 'DateTime64', nullable: false }],
    ['DECIMAL', { text: 'Decimal(10, 0)', base: 'Decimal', nullable: false }],
    ['numeric(12)', { text: 'Decimal(12, 0)', base: 'Decimal', nullable: false }],
    ['datetime64(6)', { text: 'DateTime64(6)', base: 'DateTime64', nullable: false }],
    ['DateTime32', { text: 'DateTime', base: 'DateTime', nullable: false }],
    ['bool', { text: 'Bool', base: 'Bool', nullable: false }],
  ])('%s', (input, expected) => {
    expect(parseClickHouseType(input)).toEqual(expected);
  });

  it.each<[input: string, reason: RegExp]>([
    ['AggregateFunction(uniq, String)', /^AggregateFunction columns hold partial aggregation states, which files cannot provide/],
    ['Array(AggregateFunction(sum, UInt64))', /^AggregateFunction columns/],
    ['SimpleAggregateFunction(uniq, String)', /SimpleAggregateFunction does not support uniq; use one of any, /],
    ['SimpleAggregateFunction(sum)', /expected ','/],
    ['IntervalDay', /IntervalDay cannot be the type of a table column/],
    ['Nothing', /Nothing cannot be the type of a table column/],
    ['Nullable(Variant(String))', /Variant cannot be inside Nullable/],
    ['Nested(String)', /Nested elements need a name and a type/],
    ['JSON(a UInt8', /unclosed '\('/],
    ['nullable(String)', /unknown ClickHouse type 'nullable'/],
    ['Tuple(date Date, Float64)', /Tuple elements must all have names, or none/],
    ["Enum('a', 'b' = 5)", /Enum elements must all be 'name' = number, or all be 'name' alone/],
  ])('%j is rejected', (input, reason) => {
    expect(typeErrorFrom(input).reason).toMatch(reason);
  });
});

/** ClickHouse's own answer: the type name it stores for `t`. */
function clickHouseTypeName(t: string): string {
  return query(`SELECT toTypeName(defaultValueOfTypeName('${t.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'))`, 'TabSeparatedRaw').trim().replace(/\(\s+/g, '(').replace(/\s+/g, ' ');
}

describe('parseClickHouseType: agrees with chDB', () => {
  it('resolves every alias and case-insensitive name ClickHouse lists to the same family', () => {
    const rows = query("SELECT name, alias_to FROM system.data_type_families WHERE alias_to != '' AND name NOT IN ('GEOMETRY') FORMAT JSONEachRow", 'JSONEachRow')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { name: string; alias_to: string });
    expect(rows.length).toBeGreaterThan(50);
    const args: Record<string, string> = { Decimal: '(10, 2)', FixedString: '(16)', Enum: "('a' = 1)" };
    for (const { name, alias_to } of rows) {
      const t = `${name}${args[alias_to] ?? ''}`;
      expect([t, parseClickHouseType(t).text]).toEqual([t, clickHouseTypeName(t)]);
    }
  });

  it.each([
    'SimpleAggregateFunction(sum, UInt64)',
    'SimpleAggregateFunction(anyLast, Nullable(String))',
    'Variant(String, UInt64)',
    'Nested(a String, b UInt32)',
    "Enum('a', 'b', 'c')",
    "timestamp(3, 'UTC')",
    'decimal(12)',
    'DECIMAL',
    'Time64',
    'datetime32',
    'MultiPolygon',
    'Tuple(date Date, f Float64)',
    'Tuple(a BIGINT UNSIGNED, b TEXT)',
  ])('%s has the same canonical text as in ClickHouse', (t) => {
    expect(parseClickHouseType(t).text).toBe(clickHouseTypeName(t));
  });
});
