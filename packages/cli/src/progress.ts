/**
 * A progress bar for long loops (calibration): on a terminal it redraws one line
 *   calibrating [##########..........] 40/80  elapsed 12.1s  ETA 12.1s
 * at most every `intervalMs`; anywhere else (a pipe, a CI log) it stays silent until `finish`, which
 * prints one final line, so logs do not fill with carriage returns.
 */

/** Where the bar draws: process.stderr, or anything with the same shape (tests). */
export interface ProgressStream {
  readonly isTTY?: boolean;
  readonly columns?: number;
  write(s: string): unknown;
}

export interface ProgressOptions {
  /** Text before the bar (default "progress"). */
  readonly label?: string;
  /** Unit of the final line (default "samples"). */
  readonly unit?: string;
  /** Milliseconds between redraws (default 100); the last step always draws. */
  readonly intervalMs?: number;
  /** The clock, in milliseconds (default performance.now). */
  readonly now?: () => number;
}

export interface Progress {
  /** `done` of `total` steps are complete. */
  update(done: number): void;
  /** Ends the bar (TTY: a newline; otherwise the one summary line). Returns the elapsed seconds. */
  finish(): number;
  /** Ends the bar after a failure: a TTY line is ended so the error starts on its own line; nothing else. */
  abort(): void;
}

/** Seconds as `4.2s`, `3m07s` or `1h02m`. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "?";
  if (seconds < 60) return `${seconds.toFixed(1)}s`;
  const s = Math.round(seconds);
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

/** The bar line for `done` of `total` after `elapsed` seconds, fitted to `columns`. */
export function progressLine(label: string, done: number, total: number, elapsed: number, columns = 80): string {
  const eta = done > 0 ? (elapsed / done) * (total - done) : NaN;
  const tail = ` ${done}/${total}  elapsed ${formatDuration(elapsed)}  ETA ${done >= total ? "0.0s" : formatDuration(eta)}`;
  const width = Math.max(10, Math.min(40, columns - label.length - tail.length - 4));
  const filled = total > 0 ? Math.min(width, Math.floor((done / total) * width)) : width;
  return `${label} [${"#".repeat(filled)}${".".repeat(width - filled)}]${tail}`;
}

/** A progress bar over `total` steps on `stream` (see the module comment). */
export function progressBar(stream: ProgressStream, total: number, opts: ProgressOptions = {}): Progress {
  const label = opts.label ?? "progress";
  const unit = opts.unit ?? "samples";
  const interval = opts.intervalMs ?? 100;
  const now = opts.now ?? (() => performance.now());
  const tty = stream.isTTY === true;
  const start = now();
  let lastDraw = -Infinity;
  let done = 0;
  let drawn = false;
  const draw = (): void => {
    // \x1b[K clears what a longer previous line left on the right.
    stream.write(`\r${progressLine(label, done, total, (now() - start) / 1000, stream.columns)}\x1b[K`);
    drawn = true;
    lastDraw = now();
  };
  return {
    update(n: number): void {
      done = n;
      if (!tty) return;
      if (n >= total || now() - lastDraw >= interval) draw();
    },
    finish(): number {
      const elapsed = (now() - start) / 1000;
      if (tty) {
        if (drawn) stream.write("\n");
      } else {
        stream.write(`${label}: ${done}/${total} ${unit} in ${formatDuration(elapsed)}\n`);
      }
      return elapsed;
    },
    abort(): void {
      if (tty && drawn) stream.write("\n");
    },
  };
}
