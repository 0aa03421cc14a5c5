"""NumPy arrays to and from TF Serving's tensors, without TensorFlow.

The same encoding as `tf.make_tensor_proto` / `tf.make_ndarray` for the dtypes the suite
sends and receives: numeric values packed little-endian in `tensor_content`, strings as
UTF-8 bytes in `string_val`; on the way back the typed fields are read too, with TF's rule
that a single value fills the whole shape.
"""

from __future__ import annotations

import numpy as np

from recsys.tfserving.v1 import tfserving_pb2

STRING = 7
# tensorflow.DataType codes of the numeric dtypes, and the typed field each is sent in.
NUMERIC: dict[int, tuple[np.dtype, str]] = {
    1: (np.dtype("<f4"), "float_val"),
    2: (np.dtype("<f8"), "double_val"),
    3: (np.dtype("<i4"), "int_val"),
    4: (np.dtype("u1"), "int_val"),
    5: (np.dtype("<i2"), "int_val"),
    6: (np.dtype("i1"), "int_val"),
    9: (np.dtype("<i8"), "int64_val"),
    10: (np.dtype("?"), "bool_val"),
    17: (np.dtype("<u2"), "int_val"),
}
CODES = {dtype: code for code, (dtype, _) in NUMERIC.items()}


class TensorError(ValueError):
    """A tensor this codec cannot represent (an unsupported dtype, values that do not fit the shape)."""


def to_tensor(value: np.ndarray) -> tfserving_pb2.Tensor:
    """The tensor of `value`: str/bytes/object arrays as strings, numeric ones packed."""
    array = np.asarray(value)
    shape = tfserving_pb2.TensorShape(dim=[tfserving_pb2.TensorShapeDim(size=s) for s in array.shape])
    if array.dtype.kind in "OUS":
        strings = [v if isinstance(v, bytes) else str(v).encode("utf-8") for v in array.ravel().tolist()]
        return tfserving_pb2.Tensor(dtype=STRING, tensor_shape=shape, string_val=strings)
    code = CODES.get(array.dtype)
    if code is None:
        raise TensorError(f"dtype {array.dtype} has no TF Serving encoding here")
    packed = np.ascontiguousarray(array, dtype=NUMERIC[code][0]).tobytes()
    return tfserving_pb2.Tensor(dtype=code, tensor_shape=shape, tensor_content=packed)


def to_array(tensor: tfserving_pb2.Tensor) -> np.ndarray:
    """The array of `tensor`; strings come back as an object array of `str`."""
    shape = tuple(d.size for d in tensor.tensor_shape.dim)
    size = int(np.prod(shape, dtype=np.int64))
    if tensor.dtype == STRING:
        values = np.array([v.decode("utf-8") for v in tensor.string_val], dtype=object)
        return _filled(values, shape, size, "")
    if tensor.dtype not in NUMERIC:
        raise TensorError(f"TF DataType {tensor.dtype} is not supported here")
    dtype, field = NUMERIC[tensor.dtype]
    if tensor.tensor_content:
        values = np.frombuffer(tensor.tensor_content, dtype=dtype)
    else:
        values = np.array(getattr(tensor, field), dtype=dtype)
    return _filled(values.astype(dtype.newbyteorder("=")), shape, size, 0)


def _filled(values: np.ndarray, shape: tuple[int, ...], size: int, empty: object) -> np.ndarray:
    """TF's rule: all values, one value repeated, or none (the dtype's zero)."""
    if values.size == size:
        return values.reshape(shape)
    if values.size == 1:
        return np.full(shape, values[0], dtype=values.dtype)
    if values.size == 0:
        return np.full(shape, empty, dtype=values.dtype)
    raise TensorError(f"{values.size} values do not fill shape {shape}")
