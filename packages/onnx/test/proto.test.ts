import { describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import { fromArray, isQforgeError, toNumbers } from "@qforge/ir";
import {
  AttributeType, ContainerElemType, DataType, ONNX_PROTO, decodeModelProto, decodeOptionalProto, decodeSequenceProto,
  encodeModel, encodeOptional, encodeSequence, int64ToNumber, makeAttribute, makeGraph, makeModel, makeNode,
  makeTensorProto, makeTensorValueInfo, tensorFromProto, type AttributeProto,
} from "@qforge/onnx";

const DIR = fileURLToPath(new URL("../../../../shared/onnx-node-tests", import.meta.url));

describe("ONNX protobuf schema", () => {
  it("uses upstream field numbers for the fields external data and typing depend on", () => {
    for (const line of [
      "bytes raw_data = 9;", "repeated StringStringEntryProto external_data = 13;", "int32 data_location = 14;",
      "repeated int64 int64_data = 7 [packed = true];", "repeated uint64 uint64_data = 11 [packed = true];",
      "repeated OperatorSetIdProto opset_import = 8;", "GraphProto graph = 7;", "repeated TensorProto initializer = 5;",
      "repeated ValueInfoProto input = 11;", "repeated AttributeProto attribute = 5;", "int32 type = 20;",
      "Optional optional_type = 9;", "Sequence sequence_type = 4;", "OptionalProto optional_value = 7;",
    ]) expect(ONNX_PROTO).toContain(line);
  });

  it("round-trips a model through encodeModel / decodeModelProto", () => {
    const w = fromArray("float32", [2], [0.5, -1]);
    const model = makeModel(makeGraph({
      name: "g",
      nodes: [makeNode("Conv", ["x", "w"], ["y"], { strides: [2, 2], alpha: 0.25, mode: "edge", perm: ["a", "b"] }, { name: "c0", domain: "" })],
      inputs: [makeTensorValueInfo("x", "float16", ["N", 3])],
      outputs: [makeTensorValueInfo("y", DataType.FLOAT, undefined)],
      initializers: { w },
    }), { opset: 13, irVersion: 7, producer: "test" });
    const back = decodeModelProto(encodeModel(model));
    expect(int64ToNumber(back.ir_version, "ir")).toBe(7);
    expect(back.producer_name).toBe("test");
    expect(int64ToNumber(back.opset_import![0]!.version, "opset")).toBe(13);
    const g = back.graph!;
    expect(g.name).toBe("g");
    const n = g.node![0]!;
    expect([n.op_type, n.name, n.input, n.output]).toEqual(["Conv", "c0", ["x", "w"], ["y"]]);
    const attrs: Record<string, AttributeProto> = Object.fromEntries(n.attribute!.map((a) => [a.name ?? "", a]));
    expect(attrs.strides!.type).toBe(AttributeType.INTS);
    expect(attrs.strides!.ints!.map((v) => int64ToNumber(v, "v"))).toEqual([2, 2]);
    expect(attrs.alpha!.type).toBe(AttributeType.FLOAT);
    expect(attrs.alpha!.f).toBe(0.25);
    expect(new TextDecoder().decode(attrs.mode!.s)).toBe("edge");
    expect(attrs.perm!.type).toBe(AttributeType.STRINGS);
    const dims = g.input![0]!.type!.tensor_type!.shape!.dim!;
    expect(g.input![0]!.type!.tensor_type!.elem_type).toBe(DataType.FLOAT16);
    expect(dims.map((d) => d.value)).toEqual(["dim_param", "dim_value"]);
    expect(dims[0]!.dim_param).toBe("N");
    expect(g.output![0]!.type!.tensor_type!.shape ?? null).toBeNull();
    expect(toNumbers(tensorFromProto(g.initializer![0]!))).toEqual([0.5, -1]);
  });

  it("makeAttribute picks INT/FLOAT from the value unless told", () => {
    expect(makeAttribute("a", 2).type).toBe(AttributeType.INT);
    expect(makeAttribute("a", 2, "float")).toMatchObject({ type: AttributeType.FLOAT, f: 2 });
    expect(makeAttribute("a", [1, 2.5]).type).toBe(AttributeType.FLOATS);
    expect(makeAttribute("a", [1, 2], "float").type).toBe(AttributeType.FLOATS);
    expect(makeAttribute("a", fromArray("int64", [1], [3])).type).toBe(AttributeType.TENSOR);
    expect(() => makeTensorProto(fromArray("int3", [2], [1, 2]), "x")).toThrow(/UNSUPPORTED/);
  });

  it("reads the SequenceProto / OptionalProto test data of ONNX's Identity tests and writes them back", () => {
    const seq = decodeSequenceProto(readFileSync(join(DIR, "test_identity_sequence", "test_data_set_0", "input_0.pb")));
    expect(seq.elem_type).toBe(ContainerElemType.TENSOR);
    expect(seq.tensor_values!.length).toBeGreaterThan(0);
    const first = tensorFromProto(seq.tensor_values![0]!);
    expect(first.dtype).toBe("float32");
    const seq2 = decodeSequenceProto(encodeSequence({ name: "s", elem_type: ContainerElemType.TENSOR, tensor_values: seq.tensor_values! }));
    expect(seq2.tensor_values!.map((t) => toNumbers(tensorFromProto(t)))).toEqual(seq.tensor_values!.map((t) => toNumbers(tensorFromProto(t))));

    const opt = decodeOptionalProto(readFileSync(join(DIR, "test_identity_opt", "test_data_set_0", "input_0.pb")));
    expect(opt.name).toBe("opt_in");
    expect(opt.elem_type).toBe(ContainerElemType.SEQUENCE);
    const inner = opt.sequence_value!.tensor_values![0]!;
    expect(toNumbers(tensorFromProto(inner))).toEqual([1, 2, 3, 4, 5]);
    const opt2 = decodeOptionalProto(encodeOptional({ elem_type: ContainerElemType.TENSOR, tensor_value: makeTensorProto(fromArray("int32", [2], [7, 8]), "t") }));
    expect(toNumbers(tensorFromProto(opt2.tensor_value!))).toEqual([7, 8]);
  });

  it("int64ToNumber refuses values beyond 2^53 with BAD_MODEL", () => {
    let code = "";
    try {
      int64ToNumber("9007199254740993", "a dim");
    } catch (e) {
      code = isQforgeError(e) ? e.code : "other";
    }
    expect(code).toBe("BAD_MODEL");
    expect(int64ToNumber("-42", "x")).toBe(-42);
  });
});
