"""The candidates service's TF Serving messages are TF Serving's on the wire, and its tensor codec is TF's."""

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import get_model_status_pb2, predict_pb2

from recsys.tfserving.v1 import tfserving_pb2
from services.candidates.tensors import TensorError, to_array, to_tensor
from services.candidates.tfserving import AVAILABLE

ARRAYS = [
    np.array([["a", "é", ""]], dtype=object),
    np.arange(6, dtype=np.float32).reshape(2, 3),
    np.array([1.5, -2.25]),
    np.array([[1, -2], [3, 4]], dtype=np.int32),
    np.array([2**40, -1], dtype=np.int64),
    np.array([True, False, True]),
    np.array([1, 2, 255], dtype=np.uint8),
]


@pytest.mark.parametrize("array", ARRAYS, ids=lambda a: str(a.dtype))
def test_encoding_matches_tensorflow_both_ways(array: np.ndarray) -> None:
    ours = to_tensor(array)
    theirs = tf.make_tensor_proto(array)
    decoded_by_tf = tf.make_ndarray(type(theirs).FromString(ours.SerializeToString()))
    decoded_by_us = to_array(tfserving_pb2.Tensor.FromString(theirs.SerializeToString()))
    if array.dtype == object:
        decoded_by_tf = np.vectorize(lambda b: b.decode("utf-8"), otypes=[object])(decoded_by_tf)
    np.testing.assert_array_equal(decoded_by_tf, array)
    np.testing.assert_array_equal(decoded_by_us, array)
    assert decoded_by_us.dtype == (object if array.dtype == object else array.dtype)


def test_typed_fields_and_a_single_value_filling_the_shape() -> None:
    """TF Serving may answer in the typed fields; one value stands for every element."""
    filled = tf.make_tensor_proto(7.0, dtype=tf.float32, shape=[2, 2])
    typed = tf.make_tensor_proto([1, 2, 3], dtype=tf.int64)
    typed.ClearField("tensor_content")
    typed.int64_val.extend([1, 2, 3])
    np.testing.assert_array_equal(
        to_array(tfserving_pb2.Tensor.FromString(filled.SerializeToString())), np.full((2, 2), 7.0)
    )
    np.testing.assert_array_equal(
        to_array(tfserving_pb2.Tensor.FromString(typed.SerializeToString())), [1, 2, 3]
    )


def test_predict_messages_are_tf_servings_on_the_wire() -> None:
    ours = tfserving_pb2.PredictRequest(
        model_spec=tfserving_pb2.ModelSpec(name="candidate_gan", signature_name="serving_default"),
        inputs={"history": to_tensor(np.array([["i1", "i2"]], dtype=object))},
    )
    theirs = predict_pb2.PredictRequest.FromString(ours.SerializeToString())
    assert theirs.model_spec.name == "candidate_gan"
    assert theirs.model_spec.signature_name == "serving_default"
    assert tf.make_ndarray(theirs.inputs["history"]).tolist() == [[b"i1", b"i2"]]

    answer = predict_pb2.PredictResponse()
    answer.model_spec.name = "candidate_gan"
    answer.model_spec.version.value = 12
    answer.outputs["scores"].CopyFrom(tf.make_tensor_proto(np.array([[0.5, 0.25]], dtype=np.float32)))
    parsed = tfserving_pb2.PredictResponse.FromString(answer.SerializeToString())
    assert parsed.model_spec.version.value == 12
    np.testing.assert_array_equal(to_array(parsed.outputs["scores"]), [[0.5, 0.25]])


def test_model_status_states_keep_their_codes() -> None:
    answer = get_model_status_pb2.GetModelStatusResponse()
    answer.model_version_status.add(version=3, state=get_model_status_pb2.ModelVersionStatus.AVAILABLE)
    answer.model_version_status.add(version=4, state=get_model_status_pb2.ModelVersionStatus.LOADING)
    parsed = tfserving_pb2.GetModelStatusResponse.FromString(answer.SerializeToString())
    assert [(s.version, s.state == AVAILABLE) for s in parsed.model_version_status] == [(3, True), (4, False)]


def test_unsupported_values_are_refused_clearly() -> None:
    with pytest.raises(TensorError, match="complex"):
        to_tensor(np.array([1j]))
    with pytest.raises(TensorError, match="do not fill"):
        to_array(
            tfserving_pb2.Tensor(
                dtype=1,
                tensor_shape=tfserving_pb2.TensorShape(dim=[tfserving_pb2.TensorShapeDim(size=3)]),
                float_val=[1, 2],
            )
        )
