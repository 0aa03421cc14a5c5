"""CFGAN (Chae et al., 2018): a collaborative GAN that generates each shopper's purchase vector.

The generator reads the shopper's interaction vector (plus a little noise) and
scores every item; the discriminator judges real purchase vectors against
generated ones, both conditioned on the shopper. Two stabilizers make it learn
on implicit feedback: partial masking (the discriminator sees the generated
vector only on the shopper's items and on sampled negatives) and
zero-reconstruction (sampled negatives are pushed towards zero).

On sparse retail data the adversarial signal alone learns slowly and
unstably (on Online Retail it stayed below most-popular for 15 epochs), so the
generator is also a denoising reconstructor: while training it sees the history
with half the items dropped and must give the whole history a high multinomial
likelihood, which is what makes it generalize to items the shopper has not
bought yet. The discriminator is kept: its judgement of a generated vector is
exported as a quality signal for the candidates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from ml.gan import MAX_MEMORY_MB, MAX_MINUTES


@dataclass(frozen=True)
class GanConfig:
    hidden: int = 600
    noise: int = 16
    negative_share: float = 0.1
    zero_reconstruction: float = 0.1
    learning_rate: float = 5e-4
    batch_size: int = 128
    max_epochs: int = 80
    # Early stopping only counts after this many epochs.
    min_epochs: int = 10
    patience: int = 8
    generator_steps: int = 1
    discriminator_steps: int = 1
    top_n: int = 200
    seed: int = 7
    # Share of each shopper's items hidden from the generator's condition while training.
    condition_dropout: float = 0.5
    # Weight of the multinomial likelihood of the whole history given the (dropped-out) condition.
    reconstruction: float = 1.0
    # Weight of the adversarial term (fool the discriminator) in the generator's loss. At 0 the
    # generator is a denoising autoencoder and the discriminator only judges (the served ablation).
    adversarial: float = 1.0
    # float16 compute with float32 weights and loss scaling (worth it on GPUs with tensor cores).
    mixed_precision: bool = False
    # Training refuses to start when its estimated peak memory exceeds this (ml/gan/train.py).
    max_memory_mb: int = MAX_MEMORY_MB
    # Both training stages together stop within about this much time (ml/gan/train.py).
    max_minutes: float = MAX_MINUTES


def generator(items: int, config: GanConfig) -> tf.keras.Model:
    history = tf.keras.Input((items,), name="history")
    noise = tf.keras.Input((config.noise,), name="noise")
    # Unit length: heavy and light buyers condition the generator on the same scale (in float32:
    # an empty history would divide 0 by an epsilon that float16 rounds to 0).
    unit = tf.keras.layers.UnitNormalization(dtype="float32")(history)
    hidden = tf.keras.layers.Concatenate()([unit, noise])
    hidden = tf.keras.layers.Dense(config.hidden, activation="tanh")(hidden)
    # float32 outputs keep the losses exact under a mixed-precision policy.
    logits = tf.keras.layers.Dense(items, name="logits", dtype="float32")(hidden)
    return tf.keras.Model([history, noise], logits, name="generator")


def discriminator(items: int, config: GanConfig) -> tf.keras.Model:
    vector = tf.keras.Input((items,), name="vector")
    history = tf.keras.Input((items,), name="history")
    hidden = tf.keras.layers.Concatenate()([vector, history])
    hidden = tf.keras.layers.Dense(config.hidden, activation="relu")(hidden)
    hidden = tf.keras.layers.Dense(config.hidden // 2, activation="relu")(hidden)
    real = tf.keras.layers.Dense(1, activation="sigmoid", name="real", dtype="float32")(hidden)
    return tf.keras.Model([vector, history], real, name="discriminator")


class CFGAN:
    """The two networks, their optimizers and one adversarial training step.

    Build it inside a distribution strategy's scope to train on several devices:
    `train_step` then runs once per replica (see gan_train.fit_gan).
    """

    def __init__(self, items: int, config: GanConfig) -> None:
        tf.keras.utils.set_random_seed(config.seed)
        self.items = items
        self.config = config
        policy = tf.keras.mixed_precision.global_policy()
        tf.keras.mixed_precision.set_global_policy("mixed_float16" if config.mixed_precision else "float32")
        try:
            self.generator = generator(items, config)
            self.discriminator = discriminator(items, config)
        finally:
            tf.keras.mixed_precision.set_global_policy(policy)
        self.g_optimizer = self._optimizer()
        self.d_optimizer = self._optimizer()
        # Slots created now, in the strategy's scope, not lazily inside a replica's step.
        self.g_optimizer.build(self.generator.trainable_variables)
        self.d_optimizer.build(self.discriminator.trainable_variables)

    def _optimizer(self) -> tf.keras.optimizers.Optimizer:
        adam = tf.keras.optimizers.Adam(self.config.learning_rate)
        return tf.keras.mixed_precision.LossScaleOptimizer(adam) if self.config.mixed_precision else adam

    def _negatives(self, history: tf.Tensor) -> tf.Tensor:
        """A random share of each shopper's unbought items (the PM and ZR samples)."""
        draw = tf.random.uniform(tf.shape(history)) < self.config.negative_share
        return tf.cast(draw, tf.float32) * (1.0 - history)

    def _noise(self, rows: tf.Tensor) -> tf.Tensor:
        return tf.random.normal((rows, self.config.noise), stddev=0.1)

    def _condition(self, history: tf.Tensor) -> tf.Tensor:
        if self.config.condition_dropout <= 0:
            return history
        keep = tf.random.uniform(tf.shape(history)) >= self.config.condition_dropout
        return history * tf.cast(keep, tf.float32)

    def train_step(self, history: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """One discriminator and one generator update; traced inside the caller's tf.function."""
        rows = tf.shape(history)[0]
        eps = 1e-7
        # Each replica averages over its share of the batch; the gradients are summed across replicas.
        replicas = tf.cast(tf.distribute.get_strategy().num_replicas_in_sync, tf.float32)
        condition = self._condition(history)
        for _ in range(self.config.discriminator_steps):
            mask = history + self._negatives(history)
            with tf.GradientTape() as tape:
                fake = tf.sigmoid(self.generator([condition, self._noise(rows)], training=True)) * mask
                real_score = self.discriminator([history, history], training=True)
                fake_score = self.discriminator([fake, history], training=True)
                d_loss = -tf.reduce_mean(tf.math.log(real_score + eps) + tf.math.log(1.0 - fake_score + eps))
                d_loss = d_loss / replicas
                scaled = self.d_optimizer.scale_loss(d_loss)
            grads = tape.gradient(scaled, self.discriminator.trainable_variables)
            self.d_optimizer.apply_gradients(zip(grads, self.discriminator.trainable_variables, strict=True))
        for _ in range(self.config.generator_steps):
            partial = self._negatives(history)
            zero = self._negatives(history)
            with tf.GradientTape() as tape:
                logits = self.generator([condition, self._noise(rows)], training=True)
                generated = tf.sigmoid(logits)
                likelihood = tf.reduce_sum(tf.nn.log_softmax(logits) * history, axis=1)
                fake_score = self.discriminator([generated * (history + partial), history], training=True)
                reconstruction = tf.reduce_sum(tf.square(generated * zero), axis=1)
                g_loss = (
                    tf.reduce_mean(
                        -self.config.adversarial * tf.math.log(fake_score[:, 0] + eps)
                        + self.config.zero_reconstruction * reconstruction
                        - self.config.reconstruction * likelihood
                    )
                    / replicas
                )
                scaled = self.g_optimizer.scale_loss(g_loss)
            grads = tape.gradient(scaled, self.generator.trainable_variables)
            self.g_optimizer.apply_gradients(zip(grads, self.generator.trainable_variables, strict=True))
        return d_loss, g_loss

    def scores(self, history: np.ndarray) -> np.ndarray:
        """The generator's logits for every item (ranked like its sigmoid outputs, without ties)."""
        rows = history.shape[0]
        noise = np.zeros((rows, self.config.noise), np.float32)
        return self.generator([history, noise], training=False).numpy()
