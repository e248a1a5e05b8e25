import { describe, expect, it } from 'vitest';
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
    ["Enum8('a')", /expected '='/],
    ['Enum8(a = 1)', /expected a quoted string/],
    ['', /expected a type name at position 1/],
    ['   ', /expected a type name/],
    ['String extra', /unexpected 'extra' after the type/],
    ['String)', /unexpected '\)' after the type/],
    ['Int32; DROP TABLE x', /unexpected '; DROP TABLE x' after the type/],
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
