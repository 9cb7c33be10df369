// npx tsx examples/mlp/main.ts — build the MLP, run it eagerly, export it, print the graph, run it in
// the reference interpreter and check the outputs agree.
import { runExample } from "../run-example.js";
import { createModel, exampleInput } from "./model.js";

process.exitCode = runExample("MLP (examples/mlp)", createModel(), exampleInput(), { 0: "batch" });
