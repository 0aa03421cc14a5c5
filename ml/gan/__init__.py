"""The candidate GAN (CFGAN family): model, training and the serving graph TF Serving runs.

This package's own namespace loads no TensorFlow, so serving code can read the
contract constants below; its modules do.
"""

# Most recent items sent to the generator; older ones add little and cost transfer time.
HISTORY_LIMIT = 200
# Training's default bounds (GanConfig, RECSYS_GAN_MAX_MEMORY_MB, RECSYS_GAN_MAX_MINUTES).
MAX_MEMORY_MB = 4096
MAX_MINUTES = 10.0
