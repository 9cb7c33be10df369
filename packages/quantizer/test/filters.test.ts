import { describe, expect, test } from "vitest";
import fc from "fast-check";
import type { Node } from "@qforge/ir";
import {
  annotationStages, getAnnotation, getSymmetricQuantizationConfig, moduleNameFilter, moduleTypeFilter, operatorTypeFilter, XnnpackQuantizer,
  type QuantizationConfig,
} from "@qforge/quantizer";
import { netProgram, nodeNamed } from "./models.js";

function fakeNode(frames: { path: string; type: string }[], op = "relu"): Node {
  return { name: "n", op, inputs: [], outputs: ["n"], attrs: {}, meta: { moduleStack: frames } };
}

describe("node filters", () => {
  test("module name matches a frame path, or a frame below it (PT2E's _get_module_name_filter)", () => {
    const n = fakeNode([{ path: "", type: "Net" }, { path: "blocks", type: "Seq" }, { path: "blocks.sub", type: "Sub" }, { path: "blocks.sub.linear1", type: "Linear" }]);
    expect(moduleNameFilter("blocks.sub")(n)).toBe(true);
    expect(moduleNameFilter("blocks.sub.linear1")(n)).toBe(true);
    expect(moduleNameFilter("")(n)).toBe(true);
    expect(moduleNameFilter("blocks.su")(n)).toBe(false);
    expect(moduleNameFilter("sub")(n)).toBe(false);
    // Only the innermost frame recorded: the parent module still matches by prefix.
    expect(moduleNameFilter("blocks")(fakeNode([{ path: "blocks.sub.linear1", type: "Linear" }]))).toBe(true);
    expect(moduleNameFilter("blocks")(fakeNode([]))).toBe(false);
  });

  test("property: a name matches a single-frame node iff the path equals it or starts with name + '.'", () => {
    const seg = fc.constantFrom("a", "b", "ab", "0", "1", "10");
    const path = fc.array(seg, { minLength: 1, maxLength: 4 }).map((s) => s.join("."));
    fc.assert(fc.property(path, path, (name, p) => {
      const expected = p === name || p.startsWith(`${name}.`);
      expect(moduleNameFilter(name)(fakeNode([{ path: p, type: "T" }]))).toBe(expected);
    }));
  });

  test("module type matches any frame's class; operator type the node's op", () => {
    const n = fakeNode([{ path: "", type: "Net" }, { path: "body", type: "Block" }, { path: "body.conv", type: "Conv2d" }], "conv");
    expect(moduleTypeFilter("Block")(n)).toBe(true);
    expect(moduleTypeFilter("Conv2d")(n)).toBe(true);
    expect(moduleTypeFilter("Linear")(n)).toBe(false);
    expect(operatorTypeFilter("conv", "linear")(n)).toBe(true);
    expect(operatorTypeFilter("linear")(n)).toBe(false);
    expect(() => moduleTypeFilter("")).toThrow(/BAD_CONFIG/);
  });

  test("stages come in precedence order and exclude scopes claimed by higher levels", () => {
    const stages = annotationStages<string>({
      global: "G",
      moduleName: new Map([["body", "N"]]),
      moduleType: new Map([["Conv2d", "T"]]),
      operatorType: new Map([["linear", "O"]]),
    });
    expect(stages.map((s) => [s.label, s.config])).toEqual([
      ['module name "body"', "N"], ['module type "Conv2d"', "T"], ['operator type "linear"', "O"], ["global", "G"],
    ]);
    const conv = fakeNode([{ path: "body", type: "Block" }, { path: "body.conv", type: "Conv2d" }], "conv");
    const otherConv = fakeNode([{ path: "stem", type: "Conv2d" }], "conv");
    const lin = fakeNode([{ path: "fc", type: "Linear" }], "linear");
    const relu = fakeNode([{ path: "", type: "Net" }], "relu");
    const [byName, byType, byOp, global] = stages;
    expect(byName!.accepts([conv])).toBe(true);
    expect(byType!.accepts([conv])).toBe(false); // under the module-name key
    expect(byType!.accepts([otherConv])).toBe(true);
    expect(byType!.accepts([otherConv, relu])).toBe(false); // every node must be inside a Conv2d
    expect(byOp!.accepts([lin, relu])).toBe(true);
    expect(global!.accepts([lin, relu])).toBe(false); // has an operator-type op
    expect(global!.accepts([otherConv])).toBe(false);
    expect(global!.accepts([relu])).toBe(true);
  });

  test("no global stage when setGlobal was never called", () => {
    expect(annotationStages<string>({ global: undefined, moduleName: new Map(), moduleType: new Map(), operatorType: new Map() })).toEqual([]);
  });
});

describe("XnnpackQuantizer scopes and precedence", () => {
  const perTensor = getSymmetricQuantizationConfig();
  const perChannel = getSymmetricQuantizationConfig({ isPerChannel: true });
  const narrow = getSymmetricQuantizationConfig({ actQmin: -64, actQmax: 63 });
  const weightOf = (g: ReturnType<typeof netProgram>["graph"], name: string) => {
    const n = nodeNamed(g, name);
    return getAnnotation(n)?.inputQSpecMap[n.inputs[1]!];
  };
  const annotate = (q: XnnpackQuantizer) => q.annotate(netProgram().graph);

  test("setModuleName(name, null) leaves that module in float; the rest follows the global config", () => {
    const g = annotate(new XnnpackQuantizer().setGlobal(perTensor).setModuleName("body", null));
    for (const name of ["conv_1", "clip", "max_pool_1"]) expect(getAnnotation(nodeNamed(g, name))).toBeUndefined();
    expect(weightOf(g, "conv")).toEqual(perTensor.weight);
    expect(getAnnotation(nodeNamed(g, "mul"))!.outputQSpec).toEqual(perTensor.outputActivation);
  });

  test("setModuleName overrides the global config inside the module", () => {
    const g = annotate(new XnnpackQuantizer().setGlobal(perTensor).setModuleName("body", perChannel));
    expect(weightOf(g, "conv_1")).toEqual(perChannel.weight);
    expect(weightOf(g, "conv")).toEqual(perTensor.weight);
    expect(weightOf(g, "conv_2")).toEqual(perTensor.weight);
  });

  test("setModuleType applies to modules of that class (user classes too)", () => {
    const g = annotate(new XnnpackQuantizer().setGlobal(perTensor).setModuleType("Block", perChannel));
    expect(weightOf(g, "conv_1")).toEqual(perChannel.weight);
    expect(weightOf(g, "conv")).toEqual(perTensor.weight);
    const g2 = annotate(new XnnpackQuantizer().setGlobal(perTensor).setModuleType("Linear", perChannel));
    expect(weightOf(g2, "linear_1")).toEqual(perChannel.weight);
    // linear -> relu spans Linear and ReLU modules: not all inside a Linear, so only the linear is
    // claimed (with its own output), and the relu is not annotated by the global config either.
    expect(weightOf(g2, "linear")).toEqual(perChannel.weight);
    expect(getAnnotation(nodeNamed(g2, "linear"))!.outputQSpec).toEqual(perChannel.outputActivation);
    expect(getAnnotation(nodeNamed(g2, "relu_2"))).toBeUndefined();
  });

  test("module name wins over module type, which wins over operator type, which wins over global", () => {
    const q = new XnnpackQuantizer()
      .setGlobal(perTensor)
      .setOperatorType("conv", narrow)
      .setModuleType("Conv2d", perChannel)
      .setModuleName("branch", null);
    const g = annotate(q);
    expect(getAnnotation(nodeNamed(g, "conv_2"))).toBeUndefined(); // branch: module name, null
    // conv (stem.0: Conv2d) is annotated alone by the module-type stage (relu is outside Conv2d).
    expect(weightOf(g, "conv")).toEqual(perChannel.weight);
    expect(getAnnotation(nodeNamed(g, "conv"))!.outputQSpec).toEqual(perChannel.outputActivation);
    // add -> relu stays with the global config.
    expect(getAnnotation(nodeNamed(g, "add"))!.inputQSpecMap["max_pool_1"]).toEqual(perTensor.inputActivation);
  });

  test("operator type beats global for the patterns that contain that op", () => {
    const g = annotate(new XnnpackQuantizer().setGlobal(perTensor).setOperatorType("linear", narrow));
    expect(getAnnotation(nodeNamed(g, "linear"))!.inputQSpecMap["flatten"]).toEqual(narrow.inputActivation);
    expect(getAnnotation(nodeNamed(g, "relu_2"))!.outputQSpec).toEqual(narrow.outputActivation);
    expect(getAnnotation(nodeNamed(g, "conv"))!.inputQSpecMap["x"]).toEqual(perTensor.inputActivation);
  });

  test("setOperatorType(op, null) keeps the op's patterns in float", () => {
    const g = annotate(new XnnpackQuantizer().setGlobal(perTensor).setOperatorType("add", null));
    expect(getAnnotation(nodeNamed(g, "add"))).toBeUndefined();
    expect(getAnnotation(nodeNamed(g, "relu_1"))).toBeUndefined();
    expect(getAnnotation(nodeNamed(g, "mul"))).toBeDefined();
  });

  test("a null global config annotates nothing; an unknown operator type is refused", () => {
    const g = annotate(new XnnpackQuantizer().setGlobal(null));
    expect(g.nodes.some((n) => getAnnotation(n) !== undefined)).toBe(false);
    expect(() => new XnnpackQuantizer().setOperatorType("Conv2d", perTensor)).toThrow(/unknown operator type 'Conv2d'/);
  });

  test("the first of two overlapping module names wins (insertion order, as torch's dict)", () => {
    const cfgs: QuantizationConfig[] = [perChannel, narrow];
    const g = annotate(new XnnpackQuantizer().setModuleName("body", cfgs[0]!).setModuleName("body.conv", cfgs[1]!));
    expect(weightOf(g, "conv_1")).toEqual(perChannel.weight);
  });
});
