import { readFileSync } from 'node:fs';

/** Clock ticks per second of /proc/<pid>/stat times (USER_HZ, 100 on Linux). */
const CLK_TCK = 100;

/** The command name and CPU seconds (user + system) in a /proc `stat` line (of a process or a thread). */
export function parseStat(stat: string): { name: string; seconds: number } {
  // Fields after the ")" that closes the command name: state is field 3; utime 14, stime 15.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { name: stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')), seconds: (Number(fields[11]) + Number(fields[12])) / CLK_TCK };
}

/** CPU seconds (user + system) a process has used so far, from /proc; null where /proc cannot tell. */
export function procCpuSeconds(pid: number): number | null {
  try {
    return parseStat(readFileSync(`/proc/${pid}/stat`, 'utf8')).seconds;
  } catch {
    return null;
  }
}
