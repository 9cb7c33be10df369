/**
 * The one error type qforge throws on purpose. `code` is stable and machine-readable; `node` names
 * the graph node (or file/line for parsers) the problem is about; `hint` says what to do about it.
 */
export type QforgeErrorCode =
  | "DANGLING_INPUT"
  | "CYCLE"
  | "NOT_TOPOLOGICAL"
  | "DUPLICATE_NAME"
  | "SHAPE_MISMATCH"
  | "DTYPE_MISMATCH"
  | "UNKNOWN_OP"
  | "BAD_ATTRIBUTE"
  | "BAD_ARITY"
  | "UNDEFINED_OUTPUT"
  | "BAD_DTYPE"
  | "BAD_SHAPE"
  | "BAD_TENSOR"
  | "PARSE_ERROR"
  | "PASS_FAILED"
  | "TRACE_ERROR"
  | "CONTROL_FLOW"
  | "NO_KERNEL"
  | "UNSUPPORTED"
  | "BAD_INPUT"
  | "BAD_MODEL"
  | "BAD_CONFIG"
  | "BAD_DATA"
  | "IO_ERROR"
  | "PATH_ESCAPE";

export interface QforgeErrorOptions {
  /** The node (or value) the error is about. */
  node?: string;
  /** What the user can do about it. */
  hint?: string;
  /** 1-based line for text parsers. */
  line?: number;
  cause?: unknown;
}

export class QforgeError extends Error {
  readonly code: QforgeErrorCode;
  readonly node: string | undefined;
  readonly hint: string | undefined;
  readonly line: number | undefined;

  constructor(code: QforgeErrorCode, message: string, options: QforgeErrorOptions = {}) {
    const where = options.node !== undefined ? ` [node ${options.node}]` : "";
    const at = options.line !== undefined ? ` (line ${options.line})` : "";
    const hint = options.hint !== undefined ? `\n  hint: ${options.hint}` : "";
    super(`${code}: ${message}${where}${at}${hint}`, options.cause !== undefined ? { cause: options.cause } : undefined);
    this.name = "QforgeError";
    this.code = code;
    this.node = options.node;
    this.hint = options.hint;
    this.line = options.line;
  }
}

export function isQforgeError(e: unknown, code?: QforgeErrorCode): e is QforgeError {
  return e instanceof QforgeError && (code === undefined || e.code === code);
}
