"""The GAN generator's candidates, asked of TF Serving (or the local model server) per request.

The shopper's current history travels with each Predict call, so a profile that
changed a second ago is served as it is now.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ml.gan import HISTORY_LIMIT
from ml.retrieval import Retrieved
from services.candidates.tfserving import ModelServerClient
from shared import sources


class GanSource:
    def __init__(self, client: ModelServerClient) -> None:
        self.client = client

    @property
    def deadline_s(self) -> float:
        """The longest a Predict call may take."""
        return self.client.deadline_s

    async def retrieve(
        self, history: Sequence[str], exclude: set[str], timeout: float | None = None
    ) -> tuple[list[Retrieved], int]:
        """(candidates best first, model version); raises grpc.aio.AioRpcError when the server fails
        or does not answer within `timeout` seconds (None: the client's deadline)."""
        recent = list(history[:HISTORY_LIMIT]) or [""]
        prediction = await self.client.predict({"history": np.array([recent], dtype=object)}, timeout)
        realism = float(prediction.outputs["realism"][0])
        found = [
            Retrieved(item_id, sources.GENERATOR, float(score), realism=realism)
            for item_id, score in zip(
                prediction.outputs["item_ids"][0].tolist(),
                prediction.outputs["scores"][0].tolist(),
                strict=True,
            )
            if item_id not in exclude
        ]
        return found, prediction.version
