import type { QforgeError } from "@qforge/ir";

/**
 * A QforgeError's message without what the constructor added (the `CODE: ` prefix, the
 * ` [node X]` suffix and the hint lines), to re-throw it with a different place in front.
 */
export function bareMessage(e: QforgeError): string {
  return e.message.split("\n  hint:")[0]!.replace(/^[A-Z_]+: /, "").replace(/ \[node [^\]]*\]( \(line \d+\))?$/, "");
}
