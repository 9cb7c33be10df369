/**
 * Where user code called into qforge: the first stack frame outside this package's own sources
 * (src/ under tsx/vitest, dist/ once built). torch.export records the same thing as a node's
 * `stack_trace`; we keep only the innermost user frame, as "file:line:col".
 */

/** Directory of this package's modules, as a plain path ending in "/". */
const HERE = urlToPath(new URL(".", import.meta.url).href);
/**
 * Our frames: the directory we run from, plus src/ and dist/ beside it when we run from one of
 * them (built code with source maps reports src/ paths).
 */
const OWN_DIRS = ((): string[] => {
  const m = /^(.*\/)(src|dist)\/$/.exec(HERE);
  return m === null ? [HERE] : [HERE, `${m[1]}src/`, `${m[1]}dist/`];
})();

export interface SourceLocation {
  readonly file: string;
  readonly line: number;
  readonly column: number;
}

function urlToPath(s: string): string {
  return s.startsWith("file://") ? decodeURIComponent(s.slice("file://".length)) : s;
}

// "    at fn (/a/b.ts:12:5)", "    at /a/b.ts:12:5", "    at async fn (file:///a/b.ts:12:5)".
const FRAME = /^\s*at\s+(?:.*?\()?((?:file:\/\/)?[^()\s]+?):(\d+):(\d+)\)?\s*$/;

/** Parses one V8 stack line; undefined for frames without a location (native, eval). */
export function parseStackFrame(line: string): SourceLocation | undefined {
  const m = FRAME.exec(line);
  if (m === null) return undefined;
  return { file: urlToPath(m[1]!), line: Number(m[2]), column: Number(m[3]) };
}

function isInternal(file: string): boolean {
  return OWN_DIRS.some((d) => file.startsWith(d)) || file.startsWith("node:") || file.startsWith("internal/");
}

/** Paths under the working directory are shown relative to it, so dumps do not depend on the machine. */
function displayPath(file: string): string {
  const cwd = typeof process !== "undefined" && typeof process.cwd === "function" ? process.cwd() : "";
  if (cwd !== "" && file.startsWith(`${cwd}/`)) return file.slice(cwd.length + 1);
  return file;
}

/** The innermost stack frame outside @qforge/export, or undefined when none can be found. */
export function userCallSite(): SourceLocation | undefined {
  const saved = Error.stackTraceLimit;
  // Module nesting (Sequential inside Sequential ...) puts many of our own frames on top.
  Error.stackTraceLimit = 200;
  const stack = new Error().stack ?? "";
  Error.stackTraceLimit = saved;
  for (const line of stack.split("\n").slice(1)) {
    const loc = parseStackFrame(line);
    if (loc !== undefined && !isInternal(loc.file)) return { ...loc, file: displayPath(loc.file) };
  }
  return undefined;
}

export function formatLocation(loc: SourceLocation): string {
  return `${loc.file}:${loc.line}:${loc.column}`;
}
