import { readdirSync, readFileSync } from 'node:fs';
import { parseStat } from './process-cpu.js';

/** The name and CPU seconds (user + system) of each thread of this process, by thread id. */
function threadTimes(): Map<string, { name: string; seconds: number }> {
  const out = new Map<string, { name: string; seconds: number }>();
  let tids: string[];
  try {
    tids = readdirSync('/proc/self/task');
  } catch {
    return out;
  }
  for (const tid of tids) {
    try {
      out.set(tid, parseStat(readFileSync(`/proc/self/task/${tid}/stat`, 'utf8')));
    } catch {
      // The thread ended between the listing and the read.
    }
  }
  return out;
}

/**
 * The group a thread's CPU is counted in: the JavaScript main thread by
 * itself (API, activities, the benchmark's own polling), every other thread
 * by its name without a trailing number (ClickHouse names its threads by
 * the job they run: QueryPipelineEx, ChunkParser, MergeMutate, ...; the
 * Temporal bridge's are tokio-runtime-w; on Node 20 libuv's threads, where
 * chDB runs a statement's own stream, keep the process name `node`).
 */
function group(tid: string, name: string): string {
  if (tid === String(process.pid)) return 'js-main';
  return name.replace(/[-_ ]?\d+$/, '') || name;
}

/**
 * CPU seconds by thread group while it runs, from /proc/self/task every
 * `everyMs`. ClickHouse renames a pool thread for each job, so each
 * interval's CPU goes to the name the thread has at its end: fine-grained
 * sampling keeps that close. Threads that end between two samples lose
 * their last interval. Linux only; elsewhere it reports nothing.
 */
export function startThreadCpu(everyMs = 100): { stop(): Record<string, number> } {
  const totals = new Map<string, number>();
  let last = threadTimes();
  const sample = () => {
    const now = threadTimes();
    for (const [tid, t] of now) {
      const spent = t.seconds - (last.get(tid)?.seconds ?? 0);
      if (spent > 0) totals.set(group(tid, t.name), (totals.get(group(tid, t.name)) ?? 0) + spent);
    }
    last = now;
  };
  const timer = setInterval(sample, everyMs);
  return {
    stop() {
      clearInterval(timer);
      sample();
      const sorted = [...totals].sort((a, b) => b[1] - a[1]);
      return Object.fromEntries(sorted.map(([k, v]) => [k, Number(v.toFixed(2))]));
    },
  };
}

/** `name 1.02, other 0.35, ...`: the `top` largest groups and the rest summed. */
export function formatThreadCpu(byGroup: Record<string, number>, top = 6): string {
  const entries = Object.entries(byGroup);
  const shown = entries.slice(0, top).map(([k, v]) => `${k} ${v.toFixed(2)}`);
  const rest = entries.slice(top).reduce((s, [, v]) => s + v, 0);
  return [...shown, ...(rest > 0 ? [`other ${rest.toFixed(2)}`] : [])].join(', ');
}
