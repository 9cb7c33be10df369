// Importing this module registers every reference kernel (each file calls registerKernel at load).
import "./elementwise.js";
import "./linalg.js";
import "./conv.js";
import "./pool.js";
import "./norm.js";
import "./reduce.js";
import "./resize.js";
import "./shape.js";
import "./ao.js";
