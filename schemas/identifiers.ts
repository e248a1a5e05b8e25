/**
 * Names that end up in SQL. We validate them strictly *and* quote them, so a
 * name is never the thing standing between user input and the database.
 */
export const DATA_SOURCE_NAME = /^[a-z][a-z0-9_]{0,62}$/;
export const TABLE_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,190}$/;
// Column names from real files are messy (spaces, dashes, dots, unicode); any
// printable text is allowed because it is always backtick-quoted.
export const COLUMN_NAME_MAX = 256;

/** Backtick-quote an identifier for ClickHouse, escaping backslashes and backticks. */
export function quoteIdent(name: string): string {
  return '`' + name.replace(/\\/g, '\\\\').replace(/`/g, '\\`') + '`';
}

/** Single-quote a string literal for ClickHouse (used only where parameters cannot go, e.g. DDL). */
export function quoteString(value: string): string {
  return "'" + value.replace(/\\/g, '\\\\').replace(/'/g, "\\'") + "'";
}

export function isValidColumnName(name: string): boolean {
  // Control characters would make error messages and logs unreadable.
  return name.length > 0 && name.length <= COLUMN_NAME_MAX && !/[\u0000-\u001f\u007f]/.test(name);
}
