"""Exports the candidate GAN as a SavedModel in TF Serving's layout.

Serving signature `serving_default`:
- input `history`: string [batch, length], the shopper's current item ids, padded
  with ""; ids the model never saw are ignored. A profile that changed a second
  ago is served as it is now, since the history comes with the request;
- outputs `item_ids` string [batch, N] and `scores` float32 [batch, N]: the
  generator's top N items, the shopper's own items excluded, computed in the graph
  (the item vocabulary is part of the graph, so clients need no side file);
  `realism` float32 [batch]: the discriminator's judgement (0 to 1) of the
  generated vector, a quality signal for the whole list.
`assets.extra/tf_serving_warmup_requests` holds a PredictionLog that TF Serving
replays before it reports the version AVAILABLE.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

if TYPE_CHECKING:
    from ml.gan.train import TrainedGan

WARMUP_FILE = "tf_serving_warmup_requests"


class ServingModule(tf.Module):
    def __init__(self, trained: TrainedGan) -> None:
        super().__init__()
        self.generator = trained.gan.generator
        self.discriminator = trained.gan.discriminator
        self.items = len(trained.item_ids)
        self.vocabulary = tf.constant(trained.item_ids.astype(str))
        self.index = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(self.vocabulary, tf.range(self.items, dtype=tf.int32)),
            default_value=-1,
        )
        self.noise = trained.gan.config.noise
        self.top_n = min(trained.gan.config.top_n, self.items)

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.string, name="history")])
    def serve(self, item_ids: tf.Tensor) -> dict[str, tf.Tensor]:
        history = self.index.lookup(item_ids)
        rows = tf.shape(history)[0]
        # Scattered into [batch, items] directly: a one-hot of [batch, length, items] would
        # hold length times more floats than the batch's vectors.
        valid = history >= 0
        positions = tf.stack(
            [
                tf.boolean_mask(tf.broadcast_to(tf.range(rows)[:, None], tf.shape(history)), valid),
                tf.boolean_mask(history, valid),
            ],
            axis=1,
        )
        ones = tf.ones(tf.shape(positions)[:1])
        dense = tf.minimum(tf.scatter_nd(positions, ones, tf.stack([rows, self.items])), 1.0)
        noise = tf.zeros((rows, self.noise))
        logits = self.generator([dense, noise], training=False)
        realism = self.discriminator([tf.sigmoid(logits), dense], training=False)[:, 0]
        masked = tf.where(dense > 0, tf.fill(tf.shape(logits), logits.dtype.min), logits)
        top = tf.math.top_k(masked, k=self.top_n)
        return {
            "item_ids": tf.gather(self.vocabulary, top.indices),
            "scores": tf.sigmoid(top.values),
            "realism": realism,
        }


def warmup_request(history: list[str], model_name: str = "candidate_gan") -> predict_pb2.PredictRequest:
    """A Predict request for one shopper with the given history."""
    request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(name=model_name))
    request.inputs["history"].CopyFrom(tf.make_tensor_proto(np.array([history], object)))
    return request


def export(trained: TrainedGan, folder: Path) -> None:
    module = ServingModule(trained)
    tf.saved_model.save(module, str(folder), signatures={"serving_default": module.serve})
    extra = folder / "assets.extra"
    extra.mkdir(exist_ok=True)
    log = prediction_log_pb2.PredictionLog(
        predict_log=prediction_log_pb2.PredictLog(request=warmup_request(trained.item_ids[:2].tolist()))
    )
    with tf.io.TFRecordWriter(str(extra / WARMUP_FILE)) as writer:
        writer.write(log.SerializeToString())
