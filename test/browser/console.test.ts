/**
 * The web console in a real browser (system Chromium via playwright-core),
 * against the real stack: Temporal dev server, MinIO, chDB, worker and API.
 * Everything is done through the page, as a user would.
 */
import type { S3Client } from '@aws-sdk/client-s3';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBucket, put, startTestConnector, testS3, uid, type TestConnector } from '../support/harness.js';
import { launchBrowser, screenshot, seriousA11yViolations, serveApp } from './support/browser.js';
import { createQueue, queueConnection, testSqs } from '../support/sqs.js';

const ADMIN = `adm-${uid('tok')}`;
const READ_ONLY = `ro-${uid('tok')}`;
const HEADER = 'timestamp,user_id,page,duration_ms\n';
const rowsFor = (day: string, n: number, bad?: number) =>
  HEADER + Array.from({ length: n }, (_, i) => `2024-01-${day} 10:00:0${i},${i + 1},/p${i},${i === bad ? 'oops' : 100 + i}`).join('\n') + '\n';

let c: TestConnector;
let s3: S3Client;
let bucket: string;
let server: { url: string; close: () => Promise<void> };
let browser: Browser;
let context: BrowserContext;
let page: Page;
let queueUrl: string;
const name = uid('console');
const prefix = uid('events');
const auth = { authorization: `Bearer ${ADMIN}` };

async function expectAccessible(label: string) {
  const violations = await seriousA11yViolations(page);
  expect(violations, `${label}: ${JSON.stringify(violations, null, 2)}`).toEqual([]);
  await screenshot(page, label);
}

const fileRow = (key: string) => page.locator(`tr[data-key="${prefix}/${key}"]`);

beforeAll(async () => {
  // A connection with an SQS queue, so the list shows the event queues.
  const sqs = testSqs();
  queueUrl = (await createQueue(sqs)).url;
  sqs.destroy();
  c = await startTestConnector({ S3CH_API_TOKENS: `admin:${ADMIN},ro:${READ_ONLY}` }, { queued: queueConnection(queueUrl) });
  s3 = testS3();
  bucket = await createBucket(s3);
  await put(s3, bucket, `${prefix}/2024-01-01.csv`, rowsFor('01', 5));
  await put(s3, bucket, `${prefix}/2024-01-02.csv`, rowsFor('02', 4, 2));
  await put(s3, bucket, `${prefix}/2024-01-03.csv.gz`, 'this is not gzip at all\n');
  server = await serveApp(c.app);
  browser = await launchBrowser();
  context = await browser.newContext({ viewport: { width: 1280, height: 800 }, bypassCSP: true });
  page = await context.newPage();
  page.setDefaultTimeout(30_000);
});

afterAll(async () => {
  await browser?.close();
  await server?.close();
  await c?.stop();
  s3?.destroy();
});

describe('web console', () => {
  it('is served at / without a token, and asks for one kept in sessionStorage only', async () => {
    const res = await fetch(`${server.url}/`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-security-policy')).toContain("script-src 'self'");
    expect(await res.text()).toContain('/console/app.js');
    expect((await fetch(`${server.url}/v1/datasources`)).status).toBe(401);

    await page.goto(`${server.url}/`);
    await page.getByLabel('Token', { exact: true }).waitFor();
    await expectAccessible('login');
    await page.getByLabel('Token', { exact: true }).fill('not-a-token');
    await page.getByRole('button', { name: 'Continue' }).click();
    await expect(page.getByRole('alert').first().textContent()).resolves.toContain('not accepted');
    await page.getByLabel('Token', { exact: true }).fill(ADMIN);
    await page.getByRole('button', { name: 'Continue' }).click();
    await page.getByRole('heading', { name: 'No data sources yet' }).waitFor();
    expect(await page.evaluate(() => sessionStorage.getItem('s3ch.console.token'))).toBe(ADMIN);
    expect(await page.evaluate(() => localStorage.length)).toBe(0);
    // The token is never rendered.
    expect(await page.content()).not.toContain(ADMIN);
    await expectAccessible('list-empty');
  });

  it('creates a data source with the form: preview shows files and inferred columns; errors sit next to their field', async () => {
    await page.getByRole('link', { name: 'New data source' }).first().click();
    await page.getByLabel('Name', { exact: true }).fill(name);
    await page.getByLabel('Bucket URI').fill(`s3://${bucket}/${prefix}/*.csv{,.gz}`);
    await page.getByLabel('Format').selectOption('csv');
    await page.getByRole('button', { name: 'Preview files and columns' }).click();
    await page.locator('#preview-msg', { hasText: '3 file(s) match' }).waitFor();
    expect(await page.locator('.file-list li').count()).toBe(3);
    const columns = await page.locator('.columns-table tbody tr').evaluateAll((trs) => trs.map((tr) => (tr as HTMLElement).dataset.column));
    expect(columns).toEqual(['timestamp', 'user_id', 'page', 'duration_ms']);
    expect(await page.getByLabel('Type of column timestamp').inputValue()).toMatch(/DateTime/);
    // The suggested time column drives the keys.
    expect(await page.getByLabel('Time column').inputValue()).toBe('timestamp');
    expect(await page.getByLabel('Sorting key (ORDER BY)').inputValue()).toBe('timestamp');
    expect(await page.getByLabel('Partition key').inputValue()).toBe('toYYYYMM(timestamp)');
    await expectAccessible('create-preview');

    // Rename one column, retype another, set a TTL.
    await page.getByLabel('Name of column page').fill('page_path');
    await page.getByLabel('Type of column user_id').fill('UInt64');
    await page.getByLabel('TTL in days').fill('3650');

    // A bad schedule: the API's error lands next to the schedule field.
    await page.getByLabel('Schedule').fill('every minute');
    await page.getByRole('button', { name: 'Create data source' }).click();
    const scheduleError = page.locator('[data-error-for="schedule"]');
    await scheduleError.waitFor();
    expect(await scheduleError.textContent()).toMatch(/\S/);
    expect(await page.getByLabel('Schedule').getAttribute('aria-invalid')).toBe('true');
    await screenshot(page, 'create-error');

    await page.getByLabel('Schedule').fill('@on-demand');
    await page.getByRole('button', { name: 'Create data source' }).click();
    await page.waitForURL(`**/#/datasources/${name}`);
    const created = await c.request('GET', `/v1/datasources/${name}`, undefined, auth);
    expect(created.status).toBe(200);
    expect(created.body.columns).toContainEqual({ name: 'page_path', type: 'String', source: 'page' });
    expect(created.body.columns).toContainEqual(expect.objectContaining({ name: 'user_id', type: 'UInt64' }));
    expect(created.body.engine).toMatchObject({ sortingKey: 'timestamp', partitionKey: 'toYYYYMM(timestamp)', ttl: 'timestamp + INTERVAL 3650 DAY' });
    expect(created.body.schedule).toBe('@on-demand');
  });

  it('syncs with the button and shows files reach success without a reload, with the chart, quarantine and lifecycle', async () => {
    await page.evaluate(() => ((window as unknown as { noReload: boolean }).noReload = true));
    await page.getByRole('button', { name: `Sync now: ${name}` }).click();
    await fileRow('2024-01-01.csv').and(page.locator('[data-status="success"]')).waitFor({ timeout: 60_000 });
    await fileRow('2024-01-02.csv').and(page.locator('[data-status="success"]')).waitFor({ timeout: 60_000 });
    await fileRow('2024-01-03.csv.gz').and(page.locator('[data-status="failure"]')).waitFor({ timeout: 60_000 });
    expect(await fileRow('2024-01-01.csv').locator('td.num').first().textContent()).toBe('5');

    // Quarantine: the bad value of file 2, with its line and raw text.
    const qRow = page.locator('.quarantine-table tbody tr', { hasText: `${prefix}/2024-01-02.csv` });
    await qRow.waitFor({ timeout: 60_000 });
    expect(await qRow.textContent()).toContain('oops');
    expect(await qRow.locator('td.num').textContent()).toBe('3'); // the third data row

    // Sync history chart: one run with a failure marked; focusing it describes the run.
    const run = page.locator('.chart .run.has-failures');
    await run.first().waitFor({ timeout: 60_000 });
    await run.first().hover();
    await expect(page.locator('.chart-caption').textContent()).resolves.toMatch(/2 files imported, 1 failed/);

    // Lifecycle of one file: each transition with the time spent in it.
    await page.getByRole('button', { name: `Lifecycle of ${prefix}/2024-01-01.csv` }).click();
    const steps = page.locator('#lifecycle .timeline li');
    await steps.last().waitFor();
    const texts = await steps.allTextContents();
    expect(texts.some((t) => t.startsWith('running') && /for \d/.test(t))).toBe(true);
    expect(texts.at(-1)).toMatch(/^success.*current/);

    // The spec, as JSON and as a .datasource file; the Temporal UI link.
    await expect(page.locator('pre[aria-labelledby="spec-json"]').textContent()).resolves.toContain(`"bucketUri": "s3://${bucket}/${prefix}/*.csv{,.gz}"`);
    // A renamed column (read from another source column) has no .datasource key: the console says so.
    await expect(page.locator('#spec-datasource-note').textContent()).resolves.toContain('columns[2].source');
    expect(await page.getByRole('link', { name: /Temporal UI/ }).getAttribute('href')).toContain(`/workflows/datasource%3A${name}`);
    expect(await page.evaluate(() => (window as unknown as { noReload?: boolean }).noReload)).toBe(true);
    // Notification health: no event named a key of this data source (it was synced by hand).
    await expect(page.locator('dl.stats').textContent()).resolves.toMatch(/Eventsnone yet/);
    await expectAccessible('datasource');
  });

  it('pauses and resumes with the buttons', async () => {
    await page.getByRole('button', { name: `Pause ${name}` }).click();
    await page.locator('h1 .badge.state-paused').waitFor();
    await page.getByRole('button', { name: `Resume ${name}` }).click();
    await page.locator('h1 .badge.state-idle, h1 .badge.state-syncing').first().waitFor();
    const ds = await c.request('GET', `/v1/datasources/${name}`, undefined, auth);
    expect(ds.body.status.state).not.toBe('paused');
  });

  it('filters the file table by failure, and retries the selected file after it is fixed', async () => {
    await page.getByLabel('Status', { exact: true }).selectOption('failure');
    await page.locator('.files-table tbody tr').first().waitFor();
    await expect.poll(() => page.locator('.files-table tbody tr').count()).toBe(1);
    expect(await fileRow('2024-01-03.csv.gz').getAttribute('data-status')).toBe('failure');
    await page.getByLabel('Key contains').fill('01.csv');
    await page.getByText('No file matches this filter.').waitFor();
    await page.getByLabel('Key contains').fill('');
    await fileRow('2024-01-03.csv.gz').waitFor();

    await put(s3, bucket, `${prefix}/2024-01-03.csv.gz`, gzipSync(rowsFor('03', 3)));
    await page.getByRole('checkbox', { name: `Select ${prefix}/2024-01-03.csv.gz` }).check();
    await page.getByRole('button', { name: 'Retry selected' }).click();
    await page.getByText('No file matches this filter.').waitFor({ timeout: 60_000 });
    await page.getByLabel('Status', { exact: true }).selectOption('success');
    await fileRow('2024-01-03.csv.gz').waitFor({ timeout: 60_000 });
    expect(await fileRow('2024-01-03.csv.gz').locator('td.num').first().textContent()).toBe('3');
    await page.getByLabel('Status', { exact: true }).selectOption('');
    // The history now has the retry run too: keep the top of the page as the README's picture.
    await expect.poll(() => page.locator('.chart .run').count(), { timeout: 30_000 }).toBeGreaterThanOrEqual(2);
    await page.locator('#lifecycle button', { hasText: 'Close' }).click();
    await page.locator('#toast.show').waitFor({ state: 'hidden' });
    await page.setViewportSize({ width: 1280, height: 1100 });
    await page.evaluate(() => window.scrollTo(0, 0));
    await screenshot(page, 'datasource-overview', { fullPage: false });
    await page.setViewportSize({ width: 1280, height: 800 });
  });

  it('lists the data source with its state, counters and actions; readable on a phone', async () => {
    await page.getByRole('link', { name: 'Data sources', exact: true }).first().click();
    const row = page.locator(`tr[data-name="${name}"]`);
    await row.waitFor();
    await expect(row.textContent()).resolves.toContain('3 success');
    expect(await row.textContent()).toContain('csv · @on-demand · tracked');
    expect(await row.textContent()).toContain('11'); // 5 + 3 + 3 rows
    for (const label of [`Sync now: ${name}`, `Pause ${name}`, `Delete ${name}`]) expect(await page.getByRole('button', { name: label }).isEnabled()).toBe(true);
    // The SQS queue the worker long-polls, with its counters.
    const queues = page.getByRole('region', { name: 'Event queues table' });
    await queues.waitFor();
    const queueRow = queues.locator('tbody tr', { hasText: queueUrl });
    expect(await queueRow.locator('td').nth(0).textContent()).toBe('queued');
    expect(await queueRow.locator('td').nth(2).textContent()).toBe('yes');
    await expectAccessible('list');
    // Keyboard: from the page's first link, Tab reaches the row's actions.
    await page.locator('.brand').focus();
    let reached = false;
    for (let i = 0; i < 12 && !reached; i++) {
      await page.keyboard.press('Tab');
      reached = (await page.evaluate(() => document.activeElement?.getAttribute('aria-label') ?? '')) === `Sync now: ${name}`;
    }
    expect(reached).toBe(true);

    await page.setViewportSize({ width: 390, height: 844 });
    await expectAccessible('list-phone');
    const overflow = () => page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    expect(await overflow()).toBeLessThanOrEqual(0);
    await row.getByRole('link', { name }).click();
    await fileRow('2024-01-01.csv').waitFor();
    await page.locator('.chart .run').first().waitFor();
    await expectAccessible('datasource-phone');
    expect(await overflow()).toBeLessThanOrEqual(0);
    await page.setViewportSize({ width: 1280, height: 800 });
    await page.getByRole('link', { name: 'Data sources', exact: true }).first().click();
  });

  it('a read-only token sees everything, with every action disabled and the reason given', async () => {
    await page.getByRole('button', { name: 'Forget token' }).click();
    await page.getByLabel('Token', { exact: true }).fill(READ_ONLY);
    await page.getByRole('button', { name: 'Continue' }).click();
    const row = page.locator(`tr[data-name="${name}"]`);
    await row.waitFor();
    await expect(page.locator('#readonly-banner').textContent()).resolves.toContain('read-only');
    for (const label of [`Sync now: ${name}`, `Pause ${name}`, `Delete ${name}`]) {
      const button = page.getByRole('button', { name: label });
      expect(await button.isDisabled()).toBe(true);
      expect(await button.getAttribute('title')).toMatch(/^Read-only token: /);
    }
    await row.getByRole('link', { name }).click();
    await fileRow('2024-01-01.csv').waitFor();
    expect(await page.getByRole('button', { name: 'Retry selected' }).isDisabled()).toBe(true);
    await expectAccessible('datasource-read-only');
    await page.getByRole('link', { name: 'New data source' }).first().click();
    expect(await page.getByRole('button', { name: 'Create data source' }).isDisabled()).toBe(true);
    // The preview is becoming admin-only: when the API answers 403, the console gives its reason next to the button.
    await page.route('**/v1/preview', (route) => route.fulfill({
      status: 403, contentType: 'application/problem+json',
      body: JSON.stringify({ type: 'about:blank', title: 'Forbidden', status: 403, detail: 'previews need an admin token' }),
    }));
    await page.getByLabel('Bucket URI').fill(`s3://${bucket}/${prefix}/*.csv`);
    await page.getByRole('button', { name: 'Preview files and columns' }).click();
    await page.locator('#preview-msg', { hasText: 'Preview needs more access: previews need an admin token' }).waitFor();
    await page.unroute('**/v1/preview');
  });

  it('deletes with confirmation and the drop-table choice', async () => {
    await page.getByRole('button', { name: 'Forget token' }).click();
    await page.getByLabel('Token', { exact: true }).fill(ADMIN);
    await page.getByRole('button', { name: 'Continue' }).click();
    await page.getByRole('link', { name: 'Data sources', exact: true }).first().click();
    await page.getByRole('button', { name: `Delete ${name}` }).click();
    const dialog = page.getByRole('dialog', { name: `Delete data source ${name}?` });
    await dialog.waitFor();
    await expectAccessible('delete-dialog');
    // Cancel changes nothing.
    await dialog.getByRole('button', { name: 'Cancel' }).click();
    expect((await c.request('GET', `/v1/datasources/${name}`, undefined, auth)).status).toBe(200);

    await page.getByRole('button', { name: `Delete ${name}` }).click();
    await dialog.getByLabel(/Also drop the table/).check();
    await dialog.getByRole('button', { name: `Delete ${name}` }).click();
    await page.getByRole('heading', { name: 'No data sources yet' }).waitFor({ timeout: 60_000 });
    const exists = await c.request('POST', '/v1/sql', { query: `EXISTS TABLE ${name}` }, auth);
    expect(exists.body.data[0]).toMatchObject({ result: 0 });
  });
});

describe('web console without tokens (the npm start default)', () => {
  it('opens on the list with no token prompt and every action enabled', async () => {
    const open = await startTestConnector();
    const openServer = await serveApp(open.app);
    const p = await context.newPage();
    try {
      const own = uid('open');
      await put(s3, bucket, `${own}/a.csv`, rowsFor('04', 2));
      const created = await open.request('POST', '/v1/datasources', { name: own, connection: 'local', bucketUri: `s3://${bucket}/${own}/*.csv`, format: 'csv', schedule: '@on-demand' });
      expect(created.status, JSON.stringify(created.body)).toBe(201);
      await p.goto(`${openServer.url}/`);
      const row = p.locator(`tr[data-name="${own}"]`);
      await row.waitFor();
      expect(await p.getByLabel('Token', { exact: true }).count()).toBe(0);
      expect(await p.locator('#readonly-banner').isHidden()).toBe(true);
      expect(await p.locator('#session').textContent()).toBe('');
      await p.getByRole('button', { name: `Sync now: ${own}` }).click();
      await row.getByText('1 success').waitFor({ timeout: 60_000 });
      expect(await row.locator('td.num').textContent()).toBe('2');
    } finally {
      await p.close();
      await openServer.close();
      await open.stop();
    }
  });
});
