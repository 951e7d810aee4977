// Leftovers of training runs that were killed: temporary checkpoint folders and temporary files
// (`<name>.tmp-<pid>`, written then renamed into place) whose writer is gone. A run removes them
// from its output directory when it starts; those of a live process (another run writing into the
// same directory) are left alone.
import { readdirSync, rmSync } from 'node:fs';
import path from 'node:path';

/** Whether a process with this id exists (EPERM: it exists, owned by someone else). */
export function pidAlive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

const TEMP = /^(.+)\.tmp-(\d{1,10})$/;

/**
 * Remove `*.tmp-<pid>` entries (folders and files) directly inside `dir` whose pid is not alive;
 * returns the names removed. A missing directory has none.
 */
export function removeStaleTemps(dir: string): string[] {
  let names: string[];
  try { names = readdirSync(dir); } catch { return []; }
  const removed: string[] = [];
  for (const name of names) {
    const m = TEMP.exec(name);
    if (!m || pidAlive(Number(m[2]))) continue;
    rmSync(path.join(dir, name), { recursive: true, force: true });
    removed.push(name);
  }
  return removed;
}
