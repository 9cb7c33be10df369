/**
 * A schema-free view of protobuf wire format for structure-aware fuzzing: where the tags, varint
 * values and length prefixes of a message are, and how to replace one varint while keeping every
 * enclosing length prefix right (so the mutated bytes still decode and the change reaches the
 * importer instead of dying in the decoder). Wire format: protobuf encoding guide, "Message Structure".
 */

/** A field tag, a varint field value, an element of a short packed array (or a string that parses as one), a length prefix. */
export type SiteKind = "tag" | "value" | "packed" | "length";

/** One varint in the encoded bytes. `parents` are the length sites of the enclosing sub-messages, innermost first. */
export interface VarintSite {
  readonly kind: SiteKind;
  readonly at: number;
  readonly size: number;
  readonly value: bigint;
  readonly parents: readonly number[];
}

function readVarint(b: Uint8Array, at: number, end: number): { value: bigint; size: number } | undefined {
  let v = 0n;
  for (let i = 0; i < 10 && at + i < end; i++) {
    const byte = b[at + i]!;
    v |= BigInt(byte & 0x7f) << BigInt(7 * i);
    if ((byte & 0x80) === 0) return { value: v, size: i + 1 };
  }
  return undefined;
}

export function encodeVarint(v: bigint): number[] {
  let x = BigInt.asUintN(64, v);
  const out: number[] = [];
  do {
    const low = Number(x & 0x7fn);
    x >>= 7n;
    out.push(x > 0n ? low | 0x80 : low);
  } while (x > 0n);
  return out;
}

/**
 * Every varint site of the message in b[start, end), descending into length-delimited fields whose
 * payload parses as a message, else (up to 64 bytes) as packed varints. Strings and bytes that happen
 * to parse are walked too: harmless for fuzzing. Returns false when the range is not a message.
 */
function walk(b: Uint8Array, start: number, end: number, parents: readonly number[], out: VarintSite[], depth: number): boolean {
  const mark = out.length;
  let at = start;
  while (at < end) {
    const tag = readVarint(b, at, end);
    if (tag === undefined || tag.value >> 3n === 0n) break;
    out.push({ kind: "tag", at, size: tag.size, value: tag.value, parents });
    at += tag.size;
    const wire = Number(tag.value & 7n);
    if (wire === 0) {
      const v = readVarint(b, at, end);
      if (v === undefined) break;
      out.push({ kind: "value", at, size: v.size, value: v.value, parents });
      at += v.size;
    } else if (wire === 1) {
      at += 8;
    } else if (wire === 5) {
      at += 4;
    } else if (wire === 2) {
      const len = readVarint(b, at, end);
      if (len === undefined || len.value > BigInt(end - at - len.size)) break;
      const lenAt = at;
      out.push({ kind: "length", at, size: len.size, value: len.value, parents });
      at += len.size;
      const payloadEnd = at + Number(len.value);
      const inner = [lenAt, ...parents];
      if (depth < 64 && payloadEnd > at && !walk(b, at, payloadEnd, inner, out, depth + 1) && payloadEnd - at <= 64) {
        packed(b, at, payloadEnd, inner, out);
      }
      at = payloadEnd;
    } else {
      break;
    }
  }
  if (at !== end) {
    out.length = mark;
    return false;
  }
  return true;
}

/** A short payload that is a run of varints: a packed repeated integer field (proto3 writers pack dims). */
function packed(b: Uint8Array, start: number, end: number, parents: readonly number[], out: VarintSite[]): void {
  const found: VarintSite[] = [];
  for (let at = start; at < end;) {
    const v = readVarint(b, at, end);
    if (v === undefined) return;
    found.push({ kind: "packed", at, size: v.size, value: v.value, parents });
    at += v.size;
  }
  out.push(...found);
}

export function varintSites(b: Uint8Array): VarintSite[] {
  const out: VarintSite[] = [];
  walk(b, 0, b.length, [], out, 0);
  return out;
}

/**
 * Replaces the varint at `site` by `value` and fixes the length prefixes of the enclosing messages,
 * innermost first (a prefix that grows a byte makes its own parent grow one more).
 */
export function replaceVarint(b: Uint8Array, sites: readonly VarintSite[], site: VarintSite, value: bigint): Uint8Array {
  // Sites are in byte order (the walk records them as it reads): find parents by binary search.
  const siteAt = (at: number): VarintSite => {
    let lo = 0;
    let hi = sites.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (sites[mid]!.at < at) lo = mid + 1;
      else hi = mid;
    }
    const found = sites[lo];
    if (found === undefined || found.at !== at) throw new Error(`no varint site at byte ${at}`);
    return found;
  };
  const edits: { at: number; size: number; bytes: number[] }[] = [];
  const bytes = encodeVarint(value);
  edits.push({ at: site.at, size: site.size, bytes });
  let delta = bytes.length - site.size;
  for (const p of site.parents) {
    if (delta === 0) break;
    const parent = siteAt(p);
    const enc = encodeVarint(parent.value + BigInt(delta));
    edits.push({ at: parent.at, size: parent.size, bytes: enc });
    delta += enc.length - parent.size;
  }
  // Copy the untouched stretches between the edits (typed-array copies: the real models are large).
  edits.sort((x, y) => x.at - y.at);
  const size = b.length + edits.reduce((n, e) => n + e.bytes.length - e.size, 0);
  const out = new Uint8Array(size);
  let from = 0;
  let to = 0;
  for (const e of edits) {
    out.set(b.subarray(from, e.at), to);
    to += e.at - from;
    out.set(e.bytes, to);
    to += e.bytes.length;
    from = e.at + e.size;
  }
  out.set(b.subarray(from), to);
  return out;
}
