// npx tsx examples/transformer/main.ts — quantize a small transformer with A16W8, A16W4 and 8da4w
// (torchao-style quantize_) and print accuracy, size and throughput against float.
import { formatRows, runTransformerExample } from "./quantize.js";

const { rows } = runTransformerExample({ reps: 5 });
console.log(formatRows(rows));
