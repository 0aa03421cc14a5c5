"""The bandit's reward model: ridge regression with upper confidence bounds (LinUCB).

Learning is split in two so that it works with rewards that arrive later, or
never: every shown item adds its context to A when the slate is served (an
impression whose reward is still 0), and every reward adds reward * context to
b. A and b are then exactly the normal equations of the regression of each
impression's total reward on its context.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RIDGE = 1.0


@dataclass
class LinearModel:
    a: np.ndarray
    b: np.ndarray
    updates: int = 0

    @classmethod
    def empty(cls, dimension: int) -> LinearModel:
        return cls(a=RIDGE * np.eye(dimension), b=np.zeros(dimension))

    @classmethod
    def zero(cls, dimension: int) -> LinearModel:
        """No prior and no data: one replica's share of a state before it has learned anything."""
        return cls(a=np.zeros((dimension, dimension)), b=np.zeros(dimension))

    def plus(self, other: LinearModel) -> LinearModel:
        """The state learned from both models' data (A, b and the update counts add up)."""
        return LinearModel(a=self.a + other.a, b=self.b + other.b, updates=self.updates + other.updates)

    @property
    def dimension(self) -> int:
        return len(self.b)

    def theta(self) -> np.ndarray:
        return np.linalg.solve(self.a, self.b)

    def upper_bounds(self, contexts: np.ndarray, alpha: float) -> np.ndarray:
        """theta.x + alpha * sqrt(x.A^-1.x) for every row x."""
        inverse = np.linalg.inv(self.a)
        width = np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", contexts, inverse, contexts), 0.0))
        return contexts @ (inverse @ self.b) + alpha * width

    def predict(self, contexts: np.ndarray) -> np.ndarray:
        return contexts @ self.theta()

    def add_impressions(self, contexts: np.ndarray) -> None:
        self.a = self.a + contexts.T @ contexts
        self.updates += len(contexts)

    def add_reward(self, context: np.ndarray, value: float) -> None:
        self.b = self.b + value * context
        self.updates += 1

    def to_bytes(self) -> tuple[bytes, bytes]:
        return self.a.astype(np.float64).tobytes(), self.b.astype(np.float64).tobytes()

    @classmethod
    def from_bytes(cls, a: bytes, b: bytes, updates: int) -> LinearModel:
        vector = np.frombuffer(b, dtype=np.float64).copy()
        matrix = np.frombuffer(a, dtype=np.float64).copy().reshape(len(vector), len(vector))
        return cls(a=matrix, b=vector, updates=updates)
