import { describe, expect, it } from 'vitest';
import { quotedName, tokenize, SqlTokenError } from '../../schemas/sql-tokens.js';
import { ClickHouseTypeError, parseClickHouseType } from '../../schemas/clickhouse-type.js';

const kinds = (src: string) => tokenize(src).map((t) => `${t.kind}:${t.text}`);

describe('tokenize: ClickHouse quoting, not lines', () => {
  it.each<[string, string[]]>([
    ['SELECT 1', ['word:SELECT', 'number:1']],
    ["'a''b' 'c\\'d'", ["string:'a''b'", "string:'c\\'d'"]],
    ['`a``b` "c\\"d"', ['quoted:`a``b`', 'quoted:"c\\"d"']],
    ['$$x -- y$$ $tag$ a $$ b $tag$', ['string:$$x -- y$$', 'string:$tag$ a $$ b $tag$']],
    ['a -- c\nb', ['word:a', 'comment:-- c', 'word:b']],
    ['a # c\nb', ['word:a', 'comment:# c', 'word:b']],
    ['a /* x /* nested */ still */ b', ['word:a', 'comment:/* x /* nested */ still */', 'word:b']],
    ["'--' `/*` \"#\"", ["string:'--'", 'quoted:`/*`', 'quoted:"#"']],
    ['x -> f(x)', ['word:x', 'punct:->', 'word:f', 'punct:(', 'word:x', 'punct:)']],
    ['a.b 1.5e3 0x1F', ['word:a', 'punct:.', 'word:b', 'number:1.5e3', 'number:0x1F']],
  ])('%j', (src, expected) => {
    expect(kinds(src)).toEqual(expected);
  });

  it.each(["'open", '`open', '"open', '/* open', '$$ open', 'a #b'])('%j is an error, never skipped', (src) => {
    expect(() => tokenize(src)).toThrow(SqlTokenError);
  });

  it('a quoted name decodes escaped quotes and backslashes, and refuses every other escape', () => {
    const [a, b, n, x] = tokenize('`a\\`b` "c""d" `a\\nb` `a\\x0Ab`');
    expect(quotedName(a!)).toBe('a`b');
    expect(quotedName(b!)).toBe('c"d');
    expect(quotedName(n!)).toBeNull();
    expect(quotedName(x!)).toBeNull();
  });
});

describe('parseClickHouseType: nothing but a type', () => {
  it.each<[string, RegExp]>([
    ["JSON(/*'*/ max_dynamic_paths = 1)) ENGINE = Memory; SELECT * FROM file($$/etc/hostname$$, LineAsString) INTO OUTFILE $$/tmp/x$$; CREATE TABLE IF NOT EXISTS pwn (a String --')", /comments are not allowed in a type/],
    ["Dynamic(/*'*/ max_types = 1) --')", /comments are not allowed/],
    ["SimpleAggregateFunction(groupArrayArray(/*'*/ 1), Array(String))", /comments are not allowed/],
    ['UInt64 -- x', /comments are not allowed/],
    ['UInt64 # x', /comments are not allowed/],
    ['DateTime($$UTC$$)', /\$\$ strings are not allowed/],
    ['UInt64; SELECT 1', /';' is not allowed in a type/],
    ['Nullable(String)\u0000', /control characters/],
    ['JSON(`a\u2028b` UInt32)', /control characters/],
    ['JSON("a" UInt32)', /double-quoted names are not allowed/],
    ['JSON(max_dynamic_paths = file(1))', /expected a number/],
    ['JSON(max_dynamic_paths = 1) ENGINE = Memory', /unexpected/],
    ['Dynamic(max_types = 1, x UInt8)', /expected '\)'/],
    ['Dynamic(other = 1)', /Dynamic takes max_types, not other/],
    ["SimpleAggregateFunction(groupArrayArray('x'), Array(String))", /expected a number/],
    ['JSON(`a\\nb` UInt32)', /may escape only/],
  ])('%j is refused: %s', (type, reason) => {
    let err: unknown;
    try {
      parseClickHouseType(type);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ClickHouseTypeError);
    expect((err as ClickHouseTypeError).reason).toMatch(reason);
  });

  it.each<[string, string]>([
    ['JSON(max_dynamic_paths = 4, `a -- b`.c UInt32, SKIP x.y, SKIP REGEXP \'z.*\')', "JSON(max_dynamic_paths=4, `a -- b`.c UInt32, SKIP x.y, SKIP REGEXP 'z.*')"],
    ['JSON(`we``ird`.`x\\\\y` String)', 'JSON(`we\\`ird`.`x\\\\y` String)'],
    ['Dynamic( max_types = 8 )', 'Dynamic(max_types=8)'],
    ['SimpleAggregateFunction(groupArrayArray( 10 ), Array(String))', 'SimpleAggregateFunction(groupArrayArray(10), Array(String))'],
  ])('%j is printed back from what was read: %s', (type, text) => {
    expect(parseClickHouseType(type).text).toBe(text);
  });
});
