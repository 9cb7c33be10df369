// Shape and data-movement ops.
export {};
