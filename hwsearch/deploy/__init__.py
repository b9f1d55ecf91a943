"""Deploy a schedule: checked static ONNX, ONNX Runtime graph, TensorRT engine or device bundle."""
