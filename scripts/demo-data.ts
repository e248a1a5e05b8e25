/** The demo bucket `npm start` seeds when no connection is configured: a few small CSV files of web events. */
const PAGES = ['/', '/pricing', '/docs', '/blog', '/signup'];
const COUNTRIES = ['DE', 'US', 'FR', 'BR', 'JP', 'IN'];

export function demoCsv(day: number, rows: number): string {
  const lines = ['timestamp,user_id,page,country,duration_ms'];
  for (let i = 0; i < rows; i++) {
    const ts = new Date(Date.UTC(2024, 0, day, 0, 0, 0) + i * 37_000).toISOString().replace('T', ' ').slice(0, 19);
    lines.push(`${ts},${1000 + ((i * 7919) % 500)},${PAGES[i % PAGES.length]},${COUNTRIES[(i * 3) % COUNTRIES.length]},${(i * 131) % 5000}`);
  }
  return lines.join('\n') + '\n';
}

export const DEMO_FILES: Array<{ key: string; day: number; rows: number; gzip: boolean }> = [
  { key: 'events/2024/01/01/events.csv', day: 1, rows: 500, gzip: false },
  { key: 'events/2024/01/02/events.csv', day: 2, rows: 750, gzip: false },
  { key: 'events/2024/01/03/events.csv.gz', day: 3, rows: 1000, gzip: true },
];
