export { checkObserverCase } from "./observers.js";
export { checkFakeQuantCase } from "./fake-quant.js";
