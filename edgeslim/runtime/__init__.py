"""The runtime layer: every inference session edgeslim opens, in the library, the agent and the
benchmarks, goes through this package.

One module per runtime (:mod:`.onnxruntime_backend`, :mod:`.openvino_backend`,
:mod:`.tensorrt_backend`) behind one interface (:mod:`.session`): open a model for inference with a
thread count and the precision its format names, run it, time it the project's paired way
(:mod:`.timing`), produce golden outputs, and say which formats this machine can build and run
(:mod:`.formats`, :mod:`.cpu`). Why one layer: a format is a runtime *and* a precision (OpenVINO's
default on an AMX or AVX512-BF16 CPU is bf16, a silent precision change), so the place that opens a
session is the place that must set the precision explicitly; seven hand-built sessions could not.
"""
