// Pooling, normalization, softmax, reductions, resize: declared by the runtime work (see ops/registry.ts).
export {};
