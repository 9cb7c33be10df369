/**
 * parseGraph: reads the text printGraph writes (docs/ir-text-format.md) back into a Graph.
 * `parseGraph(printGraph(g, { constants: "full" }))` equals g; summarized constants take their data
 * from `opts.constants`, checked against the printed dtype, shape and content hash.
 * Every malformation is a QforgeError PARSE_ERROR carrying the 1-based line (column in the message).
 */
import { QforgeError, type QforgeErrorCode } from "../errors.js";
import type { AttrValue, Constant, ConstantKind, Dim, Graph, Node, ValueType } from "../graph.js";
import { numel, type Tensor } from "../tensor.js";
import { encodeElement } from "../convert.js";
import { allocStorage, dtypeInfo, isDType, type DType } from "../dtype.js";
import { tensorHash } from "./hash.js";
import { formatType } from "./printer.js";

export interface ParseOptions {
  /** Data for constants printed as `summary(...)`, by value name (e.g. the original graph's constants). */
  readonly constants?: Readonly<Record<string, Constant>>;
}

const MAX_DEPTH = 512;

/** Assigns an own property even for keys like "__proto__" (which `obj[k] = v` would treat specially). */
function setOwn<T>(obj: Record<string, T>, key: string, value: T): void {
  Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
}

function hasOwn(obj: object, key: string): boolean {
  return Object.prototype.hasOwnProperty.call(obj, key);
}

/** A cursor over one line. */
class LineCursor {
  pos = 0;
  constructor(readonly text: string, readonly line: number) {}

  fail(message: string, at: number = this.pos, hint?: string): never {
    const near = this.text.slice(at, at + 40);
    const where = near === "" ? "at end of line" : `near ${JSON.stringify(near)}`;
    throw new QforgeError("PARSE_ERROR", `line ${this.line}, column ${at + 1}: ${message} (${where})`, {
      line: this.line,
      hint: hint ?? "see docs/ir-text-format.md for the syntax",
    });
  }

  ws(): void {
    while (this.pos < this.text.length && (this.text[this.pos] === " " || this.text[this.pos] === "\t")) this.pos++;
  }

  peek(): string {
    this.ws();
    return this.text[this.pos] ?? "";
  }

  atEnd(): boolean {
    this.ws();
    return this.pos >= this.text.length;
  }

  eat(s: string): boolean {
    this.ws();
    if (this.text.startsWith(s, this.pos)) {
      this.pos += s.length;
      return true;
    }
    return false;
  }

  expect(s: string, what: string): void {
    if (!this.eat(s)) this.fail(`expected ${what} '${s}', found ${this.describeHere()}`);
  }

  describeHere(): string {
    this.ws();
    if (this.pos >= this.text.length) return "end of line";
    return `'${this.text.slice(this.pos, this.pos + 12)}'`;
  }

  /** Matches a sticky regex at the cursor (after whitespace); returns the text or undefined. */
  match(re: RegExp): string | undefined {
    this.ws();
    re.lastIndex = this.pos;
    const m = re.exec(this.text);
    if (m === null) return undefined;
    this.pos += m[0].length;
    return m[0];
  }

  /** A JSON string literal. */
  string(): string {
    this.ws();
    const start = this.pos;
    if (this.text[start] !== '"') this.fail(`expected a string, found ${this.describeHere()}`);
    let i = start + 1;
    for (;;) {
      const c = this.text[i];
      if (c === undefined) this.fail("unterminated string", start);
      if (c === '"') break;
      i += c === "\\" ? 2 : 1;
    }
    const lit = this.text.slice(start, i + 1);
    let value: unknown;
    try {
      value = JSON.parse(lit);
    } catch {
      this.fail("invalid string literal (strings use JSON escapes: \\\" \\\\ \\n \\uXXXX)", start);
    }
    this.pos = i + 1;
    return value as string;
  }

  /** A value or node name after `%` / `@`: bare (trailing colons left for the type) or quoted. */
  name(what: string): string {
    this.ws();
    if (this.text[this.pos] === '"') return this.string();
    const start = this.pos;
    const m = this.match(/[A-Za-z0-9_.:/-]+/y);
    if (m === undefined) this.fail(`expected ${what}, found ${this.describeHere()}`);
    const trimmed = m.replace(/:+$/, "");
    if (trimmed === "") this.fail(`expected ${what}`, start);
    this.pos = start + trimmed.length;
    return trimmed;
  }

  valueRef(): string {
    const at = this.pos;
    if (!this.eat("%")) {
      this.ws();
      this.fail(`expected a value name like %x, found ${this.describeHere()}`, at);
    }
    return this.name("a value name after '%'");
  }

  /** `_` (omitted) or a %value. */
  optionalRef(): string {
    if (this.match(/_(?![A-Za-z0-9_])/y) !== undefined) return "";
    return this.valueRef();
  }

  number(): number {
    this.ws();
    const start = this.pos;
    const m = this.match(/-?(?:inf|nan|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)(?![A-Za-z0-9_.])/y);
    if (m === undefined) this.fail(`expected a number, found ${this.describeHere()}`, start);
    if (m === "nan") return NaN;
    if (m === "-nan") this.fail("'-nan' is not a number literal (write nan)", start);
    if (m === "inf") return Infinity;
    if (m === "-inf") return -Infinity;
    return Number(m);
  }

  key(): string {
    this.ws();
    if (this.text[this.pos] === '"') return this.string();
    const m = this.match(/[A-Za-z_][A-Za-z0-9_.]*/y);
    if (m === undefined) this.fail(`expected a key, found ${this.describeHere()}`);
    return m;
  }

  /** JSON plus nan/inf/-0 numbers: attribute and meta values. */
  data(depth = 0): unknown {
    if (depth > MAX_DEPTH) this.fail(`values nest deeper than ${MAX_DEPTH} levels`);
    const c = this.peek();
    if (c === '"') return this.string();
    if (c === "[") {
      this.pos++;
      const items: unknown[] = [];
      if (this.eat("]")) return items;
      do items.push(this.data(depth + 1));
      while (this.eat(","));
      this.expect("]", "list end");
      return items;
    }
    if (c === "{") {
      this.pos++;
      const obj: Record<string, unknown> = {};
      if (this.eat("}")) return obj;
      do {
        const at = this.pos;
        const k = this.string();
        if (hasOwn(obj, k)) this.fail(`duplicate key ${JSON.stringify(k)}`, at);
        this.expect(":", "object key separator");
        setOwn(obj, k, this.data(depth + 1));
      } while (this.eat(","));
      this.expect("}", "object end");
      return obj;
    }
    const word = this.match(/(?:true|false|null)(?![A-Za-z0-9_])/y);
    if (word !== undefined) return word === "null" ? null : word === "true";
    return this.number();
  }

  dtype(): DType {
    this.ws();
    const at = this.pos;
    const m = this.match(/[A-Za-z0-9_]+/y);
    if (m === undefined) this.fail(`expected a dtype, found ${this.describeHere()}`);
    if (!isDType(m)) this.fail(`unknown dtype '${m}'`, at, "dtypes are float32, float16, bfloat16, int8, uint4, ... (see dtype.ts)");
    return m;
  }

  dim(): Dim {
    const c = this.peek();
    if (c === '"') return this.string();
    if (c === "-" || c === "." || (c >= "0" && c <= "9")) return this.number();
    const m = this.match(/[A-Za-z_][A-Za-z0-9_]*/y);
    if (m === undefined) this.fail(`expected a dimension (integer, symbol or string), found ${this.describeHere()}`);
    if (m === "nan") return NaN;
    if (m === "inf") return Infinity;
    return m;
  }

  type(): ValueType {
    const dtype = this.dtype();
    this.expect("[", "shape start");
    const shape: Dim[] = [];
    if (!this.eat("]")) {
      do shape.push(this.dim());
      while (this.eat(","));
      this.expect("]", "shape end");
    }
    return { dtype, shape };
  }

  endOfLine(): void {
    if (!this.atEnd()) this.fail(`unexpected ${this.describeHere()}`);
  }
}

function sameType(a: ValueType, b: ValueType): boolean {
  return a.dtype === b.dtype && a.shape.length === b.shape.length && a.shape.every((d, i) => Object.is(d, b.shape[i]));
}

function isAttrValue(v: unknown): v is AttrValue {
  if (typeof v === "number" || typeof v === "string" || typeof v === "boolean") return true;
  if (!Array.isArray(v)) return false;
  return v.every((x) => typeof x === "number") || v.every((x) => typeof x === "string");
}

export function parseGraph(text: string, opts: ParseOptions = {}): Graph {
  if (typeof text !== "string") {
    throw new QforgeError("PARSE_ERROR", `parseGraph expects a string, got ${typeof text}`, { line: 1 });
  }
  const inputs: string[] = [];
  let outputs: string[] | undefined;
  const constants: Record<string, Constant> = {};
  const nodes: Node[] = [];
  const values: Record<string, ValueType> = {};

  const declare = (cur: LineCursor, name: string, type: ValueType | undefined, at: number): void => {
    if (type === undefined || name === "") return;
    const prev = hasOwn(values, name) ? values[name] : undefined;
    if (prev !== undefined && !sameType(prev, type)) {
      cur.fail(`value %${name} declared as ${formatType(type)} but earlier as ${formatType(prev)}`, at);
    }
    setOwn(values, name, type);
  };

  const lines = text.split("\n");
  let returnLine = 0;
  for (let idx = 0; idx < lines.length; idx++) {
    const raw = lines[idx]!;
    const cur: LineCursor = new LineCursor(raw.endsWith("\r") ? raw.slice(0, -1) : raw, idx + 1);
    if (cur.atEnd() || cur.text.startsWith("//", cur.pos)) continue;
    if (outputs !== undefined) cur.fail(`nothing may follow the 'return' line (line ${returnLine})`);
    const kw = cur.match(/(?:input|parameter|buffer|constant|value|return)(?![A-Za-z0-9_%"])/y);
    switch (kw) {
      case "input": {
        const at = cur.pos;
        const name = cur.valueRef();
        const type = cur.eat(":") ? cur.type() : undefined;
        cur.endOfLine();
        inputs.push(name);
        declare(cur, name, type, at);
        continue;
      }
      case "value": {
        const at = cur.pos;
        const name = cur.valueRef();
        cur.expect(":", "type separator");
        const type = cur.type();
        cur.endOfLine();
        declare(cur, name, type, at);
        continue;
      }
      case "return": {
        const outs: string[] = [];
        if (!cur.atEnd()) {
          do outs.push(cur.optionalRef());
          while (cur.eat(","));
        }
        cur.endOfLine();
        outputs = outs;
        returnLine = idx + 1;
        continue;
      }
      case "parameter": case "buffer": case "constant": {
        const kind = kw as ConstantKind;
        const at = cur.pos;
        const name = cur.valueRef();
        if (hasOwn(constants, name)) cur.fail(`constant %${name} is defined twice`, at);
        cur.expect(":", "type separator");
        const typeAt = cur.pos;
        const type = cur.type();
        const shape = type.shape.map((d) => {
          if (typeof d !== "number" || !Number.isInteger(d) || d < 0) cur.fail(`a constant's shape must be concrete, got ${formatType(type)}`, typeAt);
          return d;
        });
        cur.expect("=", "'=' before the constant's data");
        const tensor = constantData(cur, name, kind, type.dtype, shape, opts);
        cur.endOfLine();
        setOwn(constants, name, { kind, tensor });
        declare(cur, name, { dtype: type.dtype, shape: [...shape] }, at);
        continue;
      }
      default:
        nodes.push(nodeLine(cur, declare));
    }
  }
  if (outputs === undefined) {
    let last = lines.length;
    while (last > 1 && lines[last - 1]!.trim() === "") last--;
    throw new QforgeError("PARSE_ERROR", `line ${last}: missing the final 'return' line`, {
      line: last,
      hint: "a graph dump ends with `return %out, ...` (or a bare `return` when there are no outputs)",
    });
  }
  return { inputs, outputs, constants, nodes, values };
}

function nodeLine(cur: LineCursor, declare: (cur: LineCursor, name: string, type: ValueType | undefined, at: number) => void): Node {
  const first = cur.peek();
  if (first !== "%" && first !== "_" && first !== "(") {
    cur.fail(`expected a line starting with input/parameter/buffer/constant/value/return or a node '%out: T = op(...)', found ${cur.describeHere()}`);
  }
  const outputs: string[] = [];
  const outTypes: [string, ValueType | undefined, number][] = [];
  if (cur.eat("(")) {
    cur.expect(")", "'()' (a node with no outputs)");
  } else {
    do {
      const at = cur.pos;
      const name = cur.optionalRef();
      const type = name !== "" && cur.eat(":") ? cur.type() : undefined;
      outputs.push(name);
      outTypes.push([name, type, at]);
    } while (cur.eat(","));
  }
  cur.expect("=", "'=' after the node's outputs");
  const opAt = cur.pos;
  let op: string;
  if (cur.peek() === '"') op = cur.string();
  else {
    const m = cur.match(/[A-Za-z_][A-Za-z0-9_.:]*/y);
    if (m === undefined) cur.fail(`expected an op name, found ${cur.describeHere()}`, opAt);
    op = m;
  }
  cur.expect("(", "'(' before the node's inputs");
  const inputs: string[] = [];
  if (!cur.eat(")")) {
    do inputs.push(cur.optionalRef());
    while (cur.eat(","));
    cur.expect(")", "')' after the node's inputs");
  }
  const attrs: Record<string, AttrValue> = {};
  if (cur.eat("{")) {
    if (!cur.eat("}")) {
      do {
        const at = cur.pos;
        const k = cur.key();
        if (hasOwn(attrs, k)) cur.fail(`duplicate attribute '${k}'`, at);
        cur.expect("=", "'=' after the attribute name");
        const vAt = cur.pos;
        const v = cur.data();
        if (!isAttrValue(v)) cur.fail(`attribute '${k}' must be a number, string, boolean or a list of numbers or of strings`, vAt);
        setOwn(attrs, k, v);
      } while (cur.eat(","));
      cur.expect("}", "'}' after the attributes");
    }
  }
  let name: string | undefined;
  if (cur.eat("@")) name = cur.name("a node name after '@'");
  const meta: Record<string, unknown> = {};
  if (cur.eat("#")) {
    do {
      const at = cur.pos;
      const k = cur.key();
      if (hasOwn(meta, k)) cur.fail(`duplicate meta key '${k}'`, at);
      cur.expect("=", "'=' after the meta key");
      setOwn(meta, k, k === "moduleStack" && cur.peek() === "<" ? frames(cur) : cur.data());
    } while (cur.eat(","));
  }
  cur.endOfLine();
  if (name === undefined) {
    if (outputs.length === 0) cur.fail("a node without outputs needs a name: '() = op(...) @name'");
    name = outputs[0]!;
  }
  for (const [n, t, at] of outTypes) declare(cur, n, t, at);
  return { name, op, inputs, outputs, attrs, meta };
}

/** `<path:Type, path:Type>`: moduleStack frames, outermost first. */
function frames(cur: LineCursor): { path: string; type: string }[] {
  cur.expect("<", "module stack start");
  const out: { path: string; type: string }[] = [];
  const part = (what: string): string => {
    if (cur.peek() === '"') return cur.string();
    const m = cur.match(/[A-Za-z0-9_.-]+/y);
    if (m === undefined) cur.fail(`expected a module ${what}, found ${cur.describeHere()}`);
    return m;
  };
  if (cur.eat(">")) return out;
  do {
    const path = part("path");
    cur.expect(":", "':' between module path and type");
    const type = part("type");
    out.push({ path, type });
  } while (cur.eat(","));
  cur.expect(">", "module stack end");
  return out;
}

function constantData(
  cur: LineCursor, name: string, kind: ConstantKind, dtype: DType, shape: number[], opts: ParseOptions,
): Tensor {
  const n = numel(shape);
  const at = cur.pos;
  if (cur.eat("[")) {
    const data = allocStorage(dtype, n);
    const info = dtypeInfo(dtype);
    let count = 0;
    const put = (): void => {
      const eAt = cur.pos;
      if (count >= n) cur.fail(`${formatType({ dtype, shape })} holds ${n} elements, the list has more`, eAt);
      if (dtype === "int64") {
        const m = cur.match(/-?\d+(?![A-Za-z0-9_.])/y);
        if (m === undefined) cur.fail(`expected an int64 literal, found ${cur.describeHere()}`, eAt);
        const v = BigInt(m);
        if (v !== BigInt.asIntN(64, v)) cur.fail(`${m} is out of int64 range`, eAt);
        encodeElement(dtype, data, count, v);
      } else if (dtype === "bool") {
        const m = cur.match(/(?:true|false)(?![A-Za-z0-9_])/y);
        if (m === undefined) cur.fail(`expected true or false, found ${cur.describeHere()}`, eAt);
        encodeElement(dtype, data, count, m === "true" ? 1 : 0);
      } else {
        const v = cur.number();
        if (info.kind !== "float" && (!Number.isInteger(v) || v < info.min || v > info.max)) {
          cur.fail(`${v} is not a ${dtype} value (an integer in [${info.min}, ${info.max}])`, eAt);
        }
        encodeElement(dtype, data, count, v);
      }
      count++;
    };
    if (!cur.eat("]")) {
      do put();
      while (cur.eat(","));
      cur.expect("]", "']' after the constant's elements");
    }
    if (count !== n) cur.fail(`${formatType({ dtype, shape })} holds ${n} elements, the list has ${count}`, at);
    return { dtype, shape, data };
  }
  if (cur.eat('hex"')) {
    const hAt = cur.pos;
    const hex = cur.match(/[0-9a-fA-F]*/y) ?? "";
    if (!cur.eat('"')) cur.fail("hex data may only hold hex digits and must end with '\"'", cur.pos);
    const data = allocStorage(dtype, n);
    if (hex.length !== 2 * data.byteLength) {
      cur.fail(`${formatType({ dtype, shape })} needs ${data.byteLength} bytes (${2 * data.byteLength} hex digits), got ${hex.length} digits`, hAt);
    }
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
    return { dtype, shape, data };
  }
  if (cur.eat("summary(")) {
    let hash: string | undefined;
    const seen = new Set<string>();
    do {
      const kAt = cur.pos;
      const k = cur.key();
      if (seen.has(k)) cur.fail(`duplicate summary field '${k}'`, kAt);
      seen.add(k);
      cur.expect("=", "'=' in the summary");
      if (k === "fnv1a64") {
        const h = cur.match(/[0-9a-f]{16}(?![A-Za-z0-9_])/y);
        if (h === undefined) cur.fail("fnv1a64 must be 16 lowercase hex digits", cur.pos);
        hash = h;
      } else if (k === "min" || k === "max" || k === "mean") {
        cur.number(); // informational
      } else {
        cur.fail(`unknown summary field '${k}' (min, max, mean, fnv1a64)`, kAt);
      }
    } while (cur.eat(","));
    cur.expect(")", "')' after the summary");
    if (hash === undefined) cur.fail("a constant summary needs its fnv1a64 hash", at);
    return suppliedTensor(cur, name, kind, dtype, shape, hash, opts);
  }
  return cur.fail(`expected the constant's data: [elements], hex"..." or summary(...), found ${cur.describeHere()}`);
}

function suppliedTensor(
  cur: LineCursor, name: string, kind: ConstantKind, dtype: DType, shape: number[], hash: string, opts: ParseOptions,
): Tensor {
  const printed = formatType({ dtype, shape });
  const supplied = opts.constants !== undefined && hasOwn(opts.constants, name) ? opts.constants[name] : undefined;
  if (supplied === undefined) {
    cur.fail(`${kind} %${name}: ${printed} is printed as a summary and no data was supplied for it`, 0,
      `pass the tensors: parseGraph(text, { constants: { ${JSON.stringify(name)}: { kind, tensor } } }) (e.g. the original graph's constants), or print with printGraph(g, { constants: "full" })`);
  }
  const t = (supplied as { tensor?: Tensor }).tensor;
  const err = (code: QforgeErrorCode, msg: string): QforgeError =>
    new QforgeError(code, `line ${cur.line}: supplied data for %${name} ${msg}`, {
      line: cur.line, node: name, hint: "supply the same tensor the dump was printed from",
    });
  if (t === undefined || typeof t !== "object" || t.data === undefined || !Array.isArray(t.shape)) {
    throw err("BAD_INPUT", "is not a Constant { kind, tensor }");
  }
  if (t.dtype !== dtype) throw err("DTYPE_MISMATCH", `has dtype ${t.dtype}, the dump says ${dtype}`);
  if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
    throw err("SHAPE_MISMATCH", `has shape [${t.shape.join(",")}], the dump says [${shape.join(",")}]`);
  }
  const h = tensorHash(t);
  if (h !== hash) throw err("BAD_DATA", `hashes to fnv1a64=${h}, the dump says ${hash}: the data differs`);
  return t;
}
