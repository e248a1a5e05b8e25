// The sync history chart: a hand-written SVG (no chart library to ship).
// One slot per run, oldest on the left: bars are files per run (imported in
// blue, failed in red with a marker above), the line is rows per run on its
// own scale. Hovering or focusing a run shows it in the caption.
import { fmtBytes, fmtDuration, fmtInt, h, svg } from './dom.js';

const W = 1000;
const H = 230;
const PAD = { top: 22, right: 56, bottom: 34, left: 48 };

function niceMax(v) {
  if (v <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

const shortTime = (iso) => new Date(iso).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });

export function runDescription(r) {
  return `${new Date(r.startedAt).toLocaleString()} (${r.trigger}): ${fmtInt(r.filesImported)} files imported, ${fmtInt(r.filesFailed)} failed, ${fmtInt(r.filesFound)} found, ${fmtInt(r.rows)} rows, ${fmtBytes(r.bytes)}, took ${fmtDuration(r.durationMs)}`;
}

/** The chart for runs as GET /runs returns them (newest first). */
export function historyChart(runsNewestFirst) {
  const runs = runsNewestFirst.slice(0, 60).reverse();
  const caption = h('p', { class: 'chart-caption', 'aria-live': 'polite' }, runs.length ? 'Hover or focus a run to see it.' : '');
  if (!runs.length) return h('div', { class: 'chart empty' }, h('p', { class: 'muted' }, 'No sync has finished yet.'));

  const plotW = W - PAD.left - PAD.right;
  const plotH = H - PAD.top - PAD.bottom;
  const slot = plotW / runs.length;
  const barW = Math.max(2, Math.min(28, slot * 0.6));
  // A multiple of 4, so the quarter grid lines fall on whole files.
  const maxFiles = Math.max(4, Math.ceil(niceMax(Math.max(...runs.map((r) => r.filesImported + r.filesFailed))) / 4) * 4);
  const maxRows = niceMax(Math.max(...runs.map((r) => r.rows)));
  const yFiles = (v) => PAD.top + plotH - (v / maxFiles) * plotH;
  const yRows = (v) => PAD.top + plotH - (v / maxRows) * plotH;
  const x = (i) => PAD.left + slot * i + slot / 2;

  const grid = [0, 0.25, 0.5, 0.75, 1].map((f) => {
    const y = PAD.top + plotH - f * plotH;
    return svg('g', { class: 'grid' },
      svg('line', { x1: PAD.left, x2: W - PAD.right, y1: y, y2: y }),
      svg('text', { x: PAD.left - 6, y: y + 4, 'text-anchor': 'end', class: 'axis files' }, fmtInt(Math.round(maxFiles * f))),
      svg('text', { x: W - PAD.right + 6, y: y + 4, 'text-anchor': 'start', class: 'axis rows' }, compact(maxRows * f)));
  });
  const ticks = [...new Set([0, Math.floor((runs.length - 1) / 2), runs.length - 1])].map((i) =>
    svg('text', { x: x(i), y: H - 12, 'text-anchor': runs.length === 1 ? 'middle' : i === 0 ? 'start' : i === runs.length - 1 ? 'end' : 'middle', class: 'axis' }, shortTime(runs[i].startedAt)));

  const line = runs.length > 1
    ? svg('polyline', { class: 'rows-line', points: runs.map((r, i) => `${x(i)},${yRows(r.rows)}`).join(' ') })
    : null;

  const show = (r) => {
    caption.textContent = runDescription(r);
    caption.classList.toggle('failed', r.filesFailed > 0);
  };
  const bars = runs.map((r, i) => {
    const top = yFiles(r.filesImported + r.filesFailed);
    const mid = yFiles(r.filesImported);
    const base = yFiles(0);
    const label = runDescription(r);
    return svg('g', { class: `run${r.filesFailed ? ' has-failures' : ''}`, tabindex: 0, role: 'img', 'aria-label': label, onmouseenter: () => show(r), onfocus: () => show(r) },
      svg('title', {}, label),
      svg('rect', { class: 'hit', x: x(i) - slot / 2, y: PAD.top, width: slot, height: plotH }),
      svg('rect', { class: 'bar ok', x: x(i) - barW / 2, y: mid, width: barW, height: Math.max(0, base - mid) }),
      r.filesFailed ? svg('rect', { class: 'bar failed', x: x(i) - barW / 2, y: top, width: barW, height: Math.max(0, mid - top) }) : null,
      r.filesFailed ? svg('path', { class: 'fail-mark', d: `M${x(i)} ${top - 4} l-5 -9 h10 z` }) : null,
      svg('circle', { class: 'rows-dot', cx: x(i), cy: yRows(r.rows), r: 3.5 }));
  });

  const failedRuns = runs.filter((r) => r.filesFailed > 0).length;
  const chart = svg('svg', { viewBox: `0 0 ${W} ${H}`, role: 'group', 'aria-label': `Sync history: ${runs.length} runs, ${failedRuns} with failures` }, ...grid, ...ticks, line, ...bars);
  const legend = h('ul', { class: 'legend' },
    h('li', {}, h('span', { class: 'swatch ok', 'aria-hidden': 'true' }), 'files imported (left axis)'),
    h('li', {}, h('span', { class: 'swatch failed', 'aria-hidden': 'true' }), 'files failed ▼'),
    h('li', {}, h('span', { class: 'swatch rows', 'aria-hidden': 'true' }), 'rows (right axis)'));
  return h('div', { class: 'chart' }, legend, h('div', { class: 'chart-scroll' }, chart), caption);
}

function compact(v) {
  if (v >= 1e9) return `${+(v / 1e9).toFixed(1)}G`;
  if (v >= 1e6) return `${+(v / 1e6).toFixed(1)}M`;
  if (v >= 1e3) return `${+(v / 1e3).toFixed(1)}k`;
  return String(+v.toFixed(v < 10 ? 1 : 0));
}
