"""The names of LiteRT's kernel sets, in a module with no imports so the CLI can offer them cheaply."""

# Which kernels run a .tflite model, by LiteRT op resolver: "xnnpack" (the default delegate, what a
# board runs), "builtin" (LiteRT's optimized kernels, no delegate) and "reference" (its portable
# reference kernels: plain integer arithmetic, the same results on every architecture, slow).
TFLITE_KERNELS = {"xnnpack": "AUTO", "builtin": "BUILTIN_WITHOUT_DEFAULT_DELEGATES", "reference": "BUILTIN_REF"}
