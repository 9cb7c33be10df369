/**
 * Plain-object views of the ONNX messages, as protobufjs decodes them (snake_case field names) and as
 * `encodeModel` accepts them. Every field is optional: proto3 has no required fields, a decoded
 * message reads defaults for absent scalars ("" / 0 / []) and null for absent sub-messages.
 */

/** An int64 as protobufjs hands it out: a Long ({low, high}) or, without the long library, a number. */
export type Int64 = number | bigint | string | { readonly low: number; readonly high: number; readonly unsigned?: boolean };

export interface StringStringEntryProto {
  key?: string;
  value?: string;
}

export interface OperatorSetIdProto {
  domain?: string;
  version?: Int64;
}

export interface TensorProto {
  dims?: Int64[];
  data_type?: number;
  segment?: { begin?: Int64; end?: Int64 } | null;
  float_data?: number[];
  int32_data?: number[];
  string_data?: Uint8Array[];
  int64_data?: Int64[];
  name?: string;
  doc_string?: string;
  raw_data?: Uint8Array;
  external_data?: StringStringEntryProto[];
  data_location?: number;
  double_data?: number[];
  uint64_data?: Int64[];
  metadata_props?: StringStringEntryProto[];
}

export interface SparseTensorProto {
  values?: TensorProto | null;
  indices?: TensorProto | null;
  dims?: Int64[];
}

export interface TensorShapeDimension {
  dim_value?: Int64;
  dim_param?: string;
  denotation?: string;
  /** protobufjs's virtual oneof discriminator: which of dim_value / dim_param is set. */
  value?: "dim_value" | "dim_param";
}

export interface TensorShapeProto {
  dim?: TensorShapeDimension[];
}

export interface TypeProto {
  tensor_type?: { elem_type?: number; shape?: TensorShapeProto | null } | null;
  sequence_type?: { elem_type?: TypeProto | null } | null;
  map_type?: { key_type?: number; value_type?: TypeProto | null } | null;
  optional_type?: { elem_type?: TypeProto | null } | null;
  sparse_tensor_type?: { elem_type?: number; shape?: TensorShapeProto | null } | null;
  opaque_type?: { domain?: string; name?: string } | null;
  denotation?: string;
  /** protobufjs's virtual oneof discriminator. */
  value?: "tensor_type" | "sequence_type" | "map_type" | "optional_type" | "sparse_tensor_type" | "opaque_type";
}

export interface ValueInfoProto {
  name?: string;
  type?: TypeProto | null;
  doc_string?: string;
  metadata_props?: StringStringEntryProto[];
}

export interface AttributeProto {
  name?: string;
  ref_attr_name?: string;
  doc_string?: string;
  type?: number;
  f?: number;
  i?: Int64;
  s?: Uint8Array;
  t?: TensorProto | null;
  g?: GraphProto | null;
  sparse_tensor?: SparseTensorProto | null;
  tp?: TypeProto | null;
  floats?: number[];
  ints?: Int64[];
  strings?: Uint8Array[];
  tensors?: TensorProto[];
  graphs?: GraphProto[];
  sparse_tensors?: SparseTensorProto[];
  type_protos?: TypeProto[];
}

export interface NodeProto {
  input?: string[];
  output?: string[];
  name?: string;
  op_type?: string;
  domain?: string;
  overload?: string;
  attribute?: AttributeProto[];
  doc_string?: string;
  metadata_props?: StringStringEntryProto[];
}

export interface GraphProto {
  node?: NodeProto[];
  name?: string;
  initializer?: TensorProto[];
  sparse_initializer?: SparseTensorProto[];
  doc_string?: string;
  input?: ValueInfoProto[];
  output?: ValueInfoProto[];
  value_info?: ValueInfoProto[];
  quantization_annotation?: { tensor_name?: string; quant_parameter_tensor_names?: StringStringEntryProto[] }[];
  metadata_props?: StringStringEntryProto[];
}

export interface ModelProto {
  ir_version?: Int64;
  opset_import?: OperatorSetIdProto[];
  producer_name?: string;
  producer_version?: string;
  domain?: string;
  model_version?: Int64;
  doc_string?: string;
  graph?: GraphProto | null;
  metadata_props?: StringStringEntryProto[];
}

export interface SequenceProto {
  name?: string;
  elem_type?: number;
  tensor_values?: TensorProto[];
  sparse_tensor_values?: SparseTensorProto[];
  sequence_values?: SequenceProto[];
  optional_values?: OptionalProto[];
}

export interface OptionalProto {
  name?: string;
  elem_type?: number;
  tensor_value?: TensorProto | null;
  sparse_tensor_value?: SparseTensorProto | null;
  sequence_value?: SequenceProto | null;
  optional_value?: OptionalProto | null;
}
