import { describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { fromArray, isQforgeError, QforgeError, verifyGraph } from "@qforge/ir";
import { runProgram } from "@qforge/runtime";
import {
  BatchNorm2d, Conv2d, Dropout, exportModel, F, Flatten, forwardParamNames, Linear, manualSeed, Module, Parameter, parseStackFrame, ReLU,
  Sequential, Var,
} from "@qforge/export";
import { checkExport, f32, randTensor } from "./helpers.js";

const THIS_FILE = fileURLToPath(import.meta.url);
const SOURCE_LINES = readFileSync(THIS_FILE, "utf8").split("\n");

/** 1-based line of the unique line ending in the comment `// marker` in this file. */
function lineOf(marker: string): number {
  const hits = SOURCE_LINES.flatMap((l, i) => (l.trimEnd().endsWith(`// ${marker}`) ? [i + 1] : []));
  expect(hits).toHaveLength(1);
  return hits[0]!;
}

function catchError(f: () => unknown): QforgeError {
  try {
    f();
  } catch (e) {
    if (e instanceof QforgeError) return e;
    throw e;
  }
  throw new Error("expected an error");
}

class ConvBnReLU extends Module {
  conv = new Conv2d(3, 4, 3, { padding: 1 });
  bn = new BatchNorm2d(4);
  relu = new ReLU();
  forward(x: Var): Var {
    return this.relu.call(this.bn.call(this.conv.call(x))); // @site:block
  }
}

class Net extends Module {
  block = new ConvBnReLU();
  features = new Sequential(new Conv2d(4, 4, 1), new ReLU());
  head = new Sequential(new Flatten(), new Linear(4 * 3 * 3, 2));
  forward(image: Var): Var {
    const y = this.features.call(this.block.call(image)); // @site:net
    return this.head.call(F.add(y, 1)); // @site:head
  }
}

function net(): Net {
  manualSeed(0);
  return new Net().eval();
}

describe("the exported graph", () => {
  const x = randTensor(1, [1, 3, 3, 3]);

  it("has fx-style node names, one node per op, and qualified-name constants", () => {
    const ep = exportModel(net(), [x]);
    const g = ep.graph;
    expect(g.nodes.map((n) => `${n.name}=${n.op}`)).toEqual([
      "conv=conv", "batch_norm=batch_norm", "relu=relu", "conv_1=conv", "relu_1=relu", "add=add", "flatten=flatten", "linear=linear",
    ]);
    expect(Object.entries(g.constants).map(([k, c]) => `${k}:${c.kind}`)).toEqual([
      "block.conv.weight:parameter", "block.conv.bias:parameter",
      "block.bn.weight:parameter", "block.bn.bias:parameter",
      "block.bn.running_mean:buffer", "block.bn.running_var:buffer", "block.bn.num_batches_tracked:buffer",
      "features.0.weight:parameter", "features.0.bias:parameter", "head.1.weight:parameter", "head.1.bias:parameter",
      "add_b:constant",
    ]);
    expect(g.nodes[0]!.inputs).toEqual(["image", "block.conv.weight", "block.conv.bias"]);
    expect(g.nodes[1]!.inputs).toEqual(["conv", "block.bn.weight", "block.bn.bias", "block.bn.running_mean", "block.bn.running_var"]);
    expect(ep.inputs).toEqual([{ name: "image", value: "image" }]);
    expect(ep.outputs).toEqual([{ name: "output", value: "linear" }]);
    expect(ep.meta).toEqual({ source: "trace", model: "Net" });
    expect(g.values["linear"]).toEqual({ dtype: "float32", shape: [1, 2] });
    verifyGraph(g);
  });

  it("snapshots parameter values: later changes to the module do not leak into the program", () => {
    const m = net();
    const ep = exportModel(m, [x]);
    const before = runProgram(ep, [x])[0]!;
    (m.block.conv.weight.data.data as Float32Array).fill(0);
    expect(runProgram(ep, [x])[0]!.data).toEqual(before.data);
  });

  it("records the module stack from the root to the innermost module", () => {
    const ep = exportModel(net(), [x]);
    const stacks = Object.fromEntries(ep.graph.nodes.map((n) => [n.name, n.meta.moduleStack]));
    expect(stacks["conv"]).toEqual([{ path: "", type: "Net" }, { path: "block", type: "ConvBnReLU" }, { path: "block.conv", type: "Conv2d" }]);
    expect(stacks["batch_norm"]).toEqual([{ path: "", type: "Net" }, { path: "block", type: "ConvBnReLU" }, { path: "block.bn", type: "BatchNorm2d" }]);
    expect(stacks["conv_1"]).toEqual([{ path: "", type: "Net" }, { path: "features", type: "Sequential" }, { path: "features.0", type: "Conv2d" }]);
    expect(stacks["add"]).toEqual([{ path: "", type: "Net" }]);
    expect(stacks["linear"]).toEqual([{ path: "", type: "Net" }, { path: "head", type: "Sequential" }, { path: "head.1", type: "Linear" }]);
  });

  it("records the user call site as source, skipping frames inside @qforge/export", () => {
    const ep = exportModel(net(), [x]);
    const src = Object.fromEntries(ep.graph.nodes.map((n) => [n.name, n.meta.source as string]));
    const file = "packages/export/test/trace.test.ts";
    const at = (marker: string): RegExp => new RegExp(`^${file.replace(/\./g, "\\.")}:${lineOf(marker)}:\\d+$`);
    expect(src["conv"]).toMatch(at("@site:block"));
    expect(src["relu"]).toMatch(at("@site:block"));
    expect(src["conv_1"]).toMatch(at("@site:net"));
    expect(src["add"]).toMatch(at("@site:head"));
    expect(src["linear"]).toMatch(at("@site:head"));
  });

  it("names inputs after forward's parameters and supports several outputs", () => {
    class Two extends Module {
      forward(image: Var, mask: Var): [Var, Var] {
        return [F.mul(image, mask), F.relu(image)];
      }
    }
    class Named extends Module {
      forward(a: Var): { logits: Var; probs: Var } {
        return { logits: a, probs: F.softmax(a, -1) };
      }
    }
    const ep = exportModel(new Two(), [f32([2], [1, -2]), f32([2], [3, 4])]);
    expect(ep.inputs.map((s) => s.name)).toEqual(["image", "mask"]);
    expect(ep.outputs).toEqual([{ name: "output_0", value: "mul" }, { name: "output_1", value: "relu" }]);
    expect(runProgram(ep, [f32([2], [1, -2]), f32([2], [3, 4])]).map((t) => Array.from(t.data as Float32Array))).toEqual([[3, -8], [1, 0]]);
    const named = exportModel(new Named(), [f32([1, 2], [0, 0])]);
    expect(named.outputs).toEqual([{ name: "logits", value: "a" }, { name: "probs", value: "softmax" }]);
  });

  it("reads parameter names from several function shapes", () => {
    expect(forwardParamNames(function f(a: unknown, b = 2) { return [a, b]; })).toEqual(["a", "b"]);
    expect(forwardParamNames((x: unknown, { y }: { y: number }) => [x, y])).toEqual(["x", undefined]);
    expect(forwardParamNames(function g(/* c */ c: unknown, ...rest: unknown[]) { return [c, rest]; })).toEqual(["c", undefined]);
  });

  it("an input name that clashes with a state name is suffixed", () => {
    class Clash extends Module {
      weight = new Parameter(f32([1], [2]));
      forward(weight: Var): Var {
        return F.mul(weight, this.weight);
      }
    }
    const ep = exportModel(new Clash(), [f32([1], [3])]);
    expect(ep.inputs).toEqual([{ name: "weight_1", value: "weight_1" }]);
    expect(ep.graph.nodes[0]!.inputs).toEqual(["weight_1", "weight"]);
    expect(Array.from(runProgram(ep, [f32([1], [3])])[0]!.data as Float32Array)).toEqual([6]);
  });

  it("lifts user tensors and number operands to constants", () => {
    const table = Var.from(f32([2], [10, 20]));
    class UsesConstant extends Module {
      forward(x: Var): Var {
        return F.add(F.mul(x, table), F.mul(x, table)).sub(0.5);
      }
    }
    const { ep } = checkExport(new UsesConstant(), [f32([2], [1, 2])]);
    const consts = Object.entries(ep.graph.constants).map(([k, c]) => `${k}:${c.kind}:[${c.tensor.shape.join(",")}]`);
    expect(consts).toEqual(["tensor_constant:constant:[2]", "sub_b:constant:[]"]);
  });

  it("keeps symbolic dims from dynamicDims and runs at other batch sizes", () => {
    const m = net();
    const ep = exportModel(m, [randTensor(2, [2, 3, 3, 3])], { dynamicDims: [{ 0: "N" }] });
    expect(ep.graph.values["image"]!.shape).toEqual(["N", 3, 3, 3]);
    // The batch dim stays symbolic through every node (flatten may rename the symbol).
    for (const n of ep.graph.nodes) expect(typeof ep.graph.values[n.outputs[0]!]!.shape[0]).toBe("string");
    expect(ep.graph.values["linear"]!.shape[1]).toBe(2);
    for (const n of [1, 3]) {
      const input = randTensor(10 + n, [n, 3, 3, 3]);
      const eager = m.call(Var.from(input)).toTensor();
      expect(runProgram(ep, [input])[0]!.data).toEqual(eager.data);
    }
  });

  it("reading a dynamic size during tracing is an error; static sizes stay readable", () => {
    class ReadsBatch extends Module {
      forward(x: Var): Var {
        expect(x.shape[1]).toBe(3);
        return F.reshape(x, [x.shape[0]!, -1]);
      }
    }
    const e = catchError(() => exportModel(new ReadsBatch(), [randTensor(1, [2, 3])], { dynamicDims: [{ 0: "B" }] }));
    expect(e.code).toBe("UNSUPPORTED");
    expect(e.message).toMatch(/dimension 0 of 'x' is dynamic \('B'\)/);
    expect(() => exportModel(new ReadsBatch(), [randTensor(1, [2, 3])], { dynamicDims: [{ 2: "B" }] })).toThrow(/names dim 2/);
    expect(() => exportModel(new ReadsBatch(), [randTensor(1, [2, 3])], { dynamicDims: [{ 0: "2x" }] })).toThrow(/identifier/);
  });
});

describe("control flow on traced values", () => {
  class Branchy extends Module {
    constructor(private readonly how: "item" | "compare" | "toArray" | "data" | "plus") {
      super();
    }
    forward(x: Var): Var {
      const s = F.sum(x);
      if (this.how === "item" && s.item() > 0) return F.relu(x); // @cf:item
      if (this.how === "compare" && (s as unknown as number) > 0) return F.relu(x); // @cf:compare
      if (this.how === "toArray" && s.toArray()[0]! > 0) return x; // @cf:toArray
      if (this.how === "data" && s.data.shape.length > 0) return x; // @cf:data
      if (this.how === "plus") return F.add(x, (s as unknown as number) + 1); // @cf:plus
      return x;
    }
  }

  for (const how of ["item", "compare", "toArray", "data", "plus"] as const) {
    it(`${how}: CONTROL_FLOW naming the user's line and the value`, () => {
      const e = catchError(() => exportModel(new Branchy(how), [f32([2], [1, 2])]));
      expect(e.code).toBe("CONTROL_FLOW");
      expect(e.node).toBe("reduce_sum");
      expect(e.message).toContain(`packages/export/test/trace.test.ts:${lineOf(`@cf:${how}`)}:`);
      expect(e.hint).toMatch(/data-dependent control flow can't be traced; use where\/clamp/);
    });
  }

  it("the same module runs eagerly, where data can be read", () => {
    expect(new Branchy("item").call(Var.from(f32([2], [-1, 3]))).toArray()).toEqual([0, 3]);
    expect(new Branchy("compare").call(Var.from(f32([2], [-5, 3]))).toArray()).toEqual([-5, 3]);
    expect(() => Var.from(f32([2], [1, 2])).item()).toThrow(/one-element/);
  });

  it("printing a proxy is allowed", () => {
    class Prints extends Module {
      seen = "";
      forward(x: Var): Var {
        const y = F.relu(x);
        this.seen = `${y}`;
        return y;
      }
    }
    const m = new Prints();
    exportModel(m, [f32([1, 2], [1, 2])]);
    expect(m.seen).toBe("Var(proxy relu: float32[1,2])");
    expect(String(Var.from(f32([2], [1, 2])))).toBe("Var(float32[2])");
  });
});

describe("what cannot be exported", () => {
  it("batch norm in training mode: UNSUPPORTED with a hint to call eval()", () => {
    const e = catchError(() => exportModel(new ConvBnReLU(), [randTensor(1, [1, 3, 3, 3])]));
    expect(e.code).toBe("UNSUPPORTED");
    expect(e.message).toMatch(/batch norm in training mode/);
    expect(e.hint).toMatch(/eval\(\)/);
  });

  it("dropout in training mode: UNSUPPORTED; in eval mode it is a dropout node", () => {
    expect(catchError(() => exportModel(new Dropout(0.2), [f32([2], [1, 2])])).hint).toMatch(/eval\(\)/);
    const ep = exportModel(new Dropout(0.2).eval(), [f32([2], [1, 2])]);
    expect(ep.graph.nodes.map((n) => n.op)).toEqual(["dropout"]);
  });

  it("a parameter the exported module does not own", () => {
    const stray = new Parameter(f32([1], [1]));
    class UsesStray extends Module {
      forward(x: Var): Var {
        return F.mul(x, stray);
      }
    }
    const e = catchError(() => exportModel(new UsesStray(), [f32([1], [1])]));
    expect(e.code).toBe("TRACE_ERROR");
    expect(e.hint).toMatch(/assign the module or tensor to a property/);
  });

  it("a proxy used after its export ended, and nested exports", () => {
    let leaked: Var | undefined;
    class Leaks extends Module {
      forward(x: Var): Var {
        leaked = x;
        return x;
      }
    }
    exportModel(new Leaks(), [f32([1], [1])]);
    expect(leaked!.isProxy).toBe(true);
    expect(isQforgeError(catchError(() => F.relu(leaked!)), "TRACE_ERROR")).toBe(true);
    class Nested extends Module {
      forward(x: Var): Var {
        exportModel(new ReLU(), [f32([1], [1])]);
        return x;
      }
    }
    expect(catchError(() => exportModel(new Nested(), [f32([1], [1])])).message).toMatch(/another export is tracing/);
    // The failed export left no tracer behind: eager mode works again.
    expect(F.relu(Var.from(f32([1], [-1]))).toArray()).toEqual([0]);
  });

  it("forward returning something that is not a Var", () => {
    class ReturnsNumber extends Module {
      forward(): number {
        return 3;
      }
    }
    expect(catchError(() => exportModel(new ReturnsNumber(), [])).code).toBe("TRACE_ERROR");
  });

  it("int64 ids flow through Embedding-like gathers", () => {
    class Lookup extends Module {
      table = new Parameter(f32([3, 2], [1, 2, 3, 4, 5, 6]));
      forward(ids: Var): Var {
        return F.embedding(ids, this.table);
      }
    }
    const { traced } = checkExport(new Lookup(), [fromArray("int64", [2], [2n, 0n])]);
    expect(Array.from(traced[0]!.data as Float32Array)).toEqual([5, 6, 1, 2]);
  });
});

describe("stack frame parsing", () => {
  it("reads V8 frame formats", () => {
    expect(parseStackFrame("    at Net.forward (/a/b/model.ts:12:5)")).toEqual({ file: "/a/b/model.ts", line: 12, column: 5 });
    expect(parseStackFrame("    at /a/b/model.ts:3:9")).toEqual({ file: "/a/b/model.ts", line: 3, column: 9 });
    expect(parseStackFrame("    at async run (file:///a/b%20c/x.js:1:2)")).toEqual({ file: "/a/b c/x.js", line: 1, column: 2 });
    expect(parseStackFrame("    at new Foo (/x.ts:4:1)")).toEqual({ file: "/x.ts", line: 4, column: 1 });
    expect(parseStackFrame("    at Array.map (<anonymous>)")).toBeUndefined();
    expect(parseStackFrame("Error: boom")).toBeUndefined();
  });
});
