"""The GAN generator's candidates, asked of TF Serving (or the local model server).

The shopper's current history travels with each Predict call, so a profile that
changed a second ago is served as it is now; a history asked for lately, while
the same model version is served, is given the list generated for it
(generated.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ml.gan import HISTORY_LIMIT
from ml.retrieval import Retrieved
from services.candidates.generated import Generated, GeneratedLists, ServedVersion
from services.candidates.tfserving import ModelServerClient
from shared import sources


class GanSource:
    def __init__(self, client: ModelServerClient, kept: GeneratedLists | None = None) -> None:
        """`kept`: the lists generated lately, reused for the same history (None: every request asks)."""
        self.client = client
        self.kept = kept
        self.served = ServedVersion(client.available_version)

    @property
    def deadline_s(self) -> float:
        """The longest a Predict call may take."""
        return self.client.deadline_s

    async def retrieve(
        self, history: Sequence[str], exclude: set[str], timeout: float | None = None
    ) -> tuple[list[Retrieved], int]:
        """(candidates best first, model version); raises grpc.aio.AioRpcError when the server fails
        or does not answer within `timeout` seconds (None: the client's deadline)."""
        recent = tuple(history[:HISTORY_LIMIT]) or ("",)
        generated = self.kept.get(recent, self.served.current()) if self.kept is not None else None
        if generated is None:
            generated = await self._generate(recent, timeout)
            if self.kept is not None:
                self.kept.put(recent, generated)
        realism = generated.realism
        found = [
            Retrieved(item_id, sources.GENERATOR, score, realism=realism)
            for item_id, score in zip(generated.item_ids, generated.scores.tolist(), strict=True)
            if item_id not in exclude
        ]
        return found, generated.version

    async def _generate(self, recent: tuple[str, ...], timeout: float | None) -> Generated:
        prediction = await self.client.predict({"history": np.array([recent], dtype=object)}, timeout)
        return Generated.of(
            prediction.version,
            prediction.outputs["item_ids"][0].tolist(),
            prediction.outputs["scores"][0].tolist(),
            float(prediction.outputs["realism"][0]),
        )
