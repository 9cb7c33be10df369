// npx tsx examples/cnn/main.ts — build the CNN, run it eagerly, export it, print the graph, run it in
// the reference interpreter, fold conv+batchnorm, and check the outputs agree.
import { runExample } from "../run-example.js";
import { createModel, exampleInput } from "./model.js";

process.exitCode = runExample("SmallCNN (examples/cnn)", createModel(), exampleInput(), { 0: "N" });
