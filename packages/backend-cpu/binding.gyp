{
  "targets": [
    {
      "target_name": "qforge_cpu",
      "sources": [
        "native/src/addon.cc",
        "native/src/kernels_x86.cc",
        "native/src/drivers_generic.cc",
        "native/src/drivers_avx2.cc",
        "native/src/drivers_avx512.cc"
      ],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17"],
      "cflags": ["-O3", "-ffp-contract=off", "-fno-math-errno", "-Wno-unused-function"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-O3", "-ffp-contract=off", "-fno-math-errno", "-Wno-unused-function"],
      "ldflags": ["-pthread"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
