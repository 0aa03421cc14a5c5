"""Exports the candidate GAN as a SavedModel in TF Serving's layout.

Serving signature `serving_default`:
- input `history`: int32 [batch, length], the shopper's current item indices
  (into `assets.extra/item_ids.txt`), padded with -1; a profile that changed a
  second ago is served as it is now, since the history comes with the request;
- outputs `item_indices` int32 [batch, N] and `scores` float32 [batch, N]: the
  generator's top N items, the shopper's own items excluded, computed in the graph;
  `realism` float32 [batch]: the discriminator's judgement of the generated vector.
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
    from services.candidates.gan_train import TrainedGan

WARMUP_FILE = "tf_serving_warmup_requests"
ITEM_IDS_FILE = "item_ids.txt"


class ServingModule(tf.Module):
    def __init__(self, trained: TrainedGan) -> None:
        super().__init__()
        self.generator = trained.gan.generator
        self.discriminator = trained.gan.discriminator
        self.items = len(trained.item_ids)
        self.noise = trained.gan.config.noise
        self.top_n = min(trained.gan.config.top_n, self.items)

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32, name="history")])
    def serve(self, history: tf.Tensor) -> dict[str, tf.Tensor]:
        valid = tf.cast(history >= 0, tf.float32)
        dense = tf.reduce_max(tf.one_hot(tf.maximum(history, 0), self.items) * valid[:, :, None], axis=1)
        noise = tf.zeros((tf.shape(history)[0], self.noise))
        generated = self.generator([dense, noise], training=False)
        realism = self.discriminator([generated, dense], training=False)[:, 0]
        masked = tf.where(dense > 0, tf.fill(tf.shape(generated), -1.0), generated)
        top = tf.math.top_k(masked, k=self.top_n)
        return {"item_indices": top.indices, "scores": top.values, "realism": realism}


def warmup_request(model_name: str = "candidate_gan") -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(name=model_name))
    request.inputs["history"].CopyFrom(tf.make_tensor_proto(np.array([[0, 1, -1]], np.int32)))
    return request


def export(trained: TrainedGan, folder: Path) -> None:
    module = ServingModule(trained)
    tf.saved_model.save(module, str(folder), signatures={"serving_default": module.serve})
    extra = folder / "assets.extra"
    extra.mkdir(exist_ok=True)
    (extra / ITEM_IDS_FILE).write_text("\n".join(trained.item_ids.tolist()) + "\n")
    log = prediction_log_pb2.PredictionLog(
        predict_log=prediction_log_pb2.PredictLog(request=warmup_request())
    )
    with tf.io.TFRecordWriter(str(extra / WARMUP_FILE)) as writer:
        writer.write(log.SerializeToString())


def item_ids(folder: Path) -> list[str]:
    return (folder / "assets.extra" / ITEM_IDS_FILE).read_text().split()
