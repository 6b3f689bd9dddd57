"""Interoperability with NNabla and Neural Network Console: NNP/ONNX export, NNC import."""
